"""Software GRO (`gro_read`): each implementation against an independent reference, then C against twin.

A merged frame is compared byte for byte with the one segment `build_ipv4_tcp` makes of
the joined payloads, and read back through `usernet.wire` with checksum verification; a
frame that must not merge must come back exactly as it was sent, so the stack still sees
(and counts) whatever GRO had no business touching. Frames travel through a
SOCK_SEQPACKET pair, which keeps datagram boundaries like a TAP does.
"""

from __future__ import annotations

import errno
import os
import random
import re
import socket
import struct
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_native import c, needs_c
from tests.test_native_offload import ACK, DST, FIN, MAC, PEER_MAC, PSH, SRC
from usernet._native import pure
from usernet.wire import IPv4Packet, TcpSegment, parse_ethernet, parse_ipv4, parse_tcp
from usernet.wire.tcp import encode_tcp_options

Impl = Any
SYN, RST, URG, ECE = 0x02, 0x04, 0x20, 0x40
TS = encode_tcp_options(timestamp=(5, 6))
A = 1000  # the sequence number most runs start at
ARP = bytes.fromhex("ffffffffffff") + PEER_MAC + b"\x08\x06" + bytes(46)


def segment(
    payload: bytes,
    seq: int,
    *,
    flags: int = ACK,
    ack: int = 99,
    window: int = 512,
    options: bytes = TS,
    sport: int = 40000,
    ident: int = 7,
    ttl: int = 64,
    urgent: int = 0,
    dst_mac: bytes = MAC,
    pad: bool = True,
) -> bytearray:
    """One TCP/IPv4 frame with full checksums, padded to Ethernet's 60-byte minimum as a link hands it over."""
    length = 54 + len(options) + len(payload)
    frame = bytearray(max(60, length) if pad else length)
    pure.build_ipv4_tcp(
        frame, 0, dst_mac, PEER_MAC, SRC, DST, ident, ttl, sport, 80, seq, ack, flags, window, urgent, options, payload
    )
    return frame


def run(sizes: Sequence[int], seq: int = A, last: int = ACK | PSH, options: bytes = TS) -> list[bytearray]:
    """In-order segments of one flow, ACK on all but the last: what a bulk sender puts on the wire."""
    frames = []
    for i, size in enumerate(sizes):
        frames.append(
            segment(os.urandom(size), seq, flags=last if i == len(sizes) - 1 else ACK, ident=7 + i, options=options)
        )
        seq = (seq + size) & 0xFFFFFFFF
    return frames


def parse(frame: bytes | bytearray) -> tuple[IPv4Packet, TcpSegment]:
    """The frame through the wire layer, both checksums verified."""
    ip = parse_ipv4(parse_ethernet(frame).payload, verify_checksum=True)
    return ip, parse_tcp(ip.payload, ip.src, ip.dst, verify_checksum=True)


def merged(frames: Sequence[bytearray]) -> bytes:
    """The one segment a NIC's GRO makes of `frames`: the first's headers, the last's flags, all payloads."""
    ip, tcp = parse(frames[0])
    payload = b"".join(bytes(parse(f)[1].payload) for f in frames)
    options = bytes(frames[0][54 : 34 + tcp.header_length])
    return bytes(
        segment(
            payload,
            tcp.seq,
            flags=parse(frames[-1])[1].flags,
            ack=tcp.ack,
            window=tcp.window,
            options=options,
            ident=ip.ident,
            ttl=ip.ttl,
            urgent=tcp.urgent,
            pad=False,
        )
    )


def gro(
    impl: Impl, frames: Sequence[bytes | bytearray], frame_cap: int = 2048, max_frames: int = 64, link_len: int = 14
) -> tuple[pure.GroRead, list[bytes], list[bytes]]:
    """Queue `frames` on a datagram pair, gro_read them; (result, the frames in buf, the frames left queued)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with a, b:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        a.setblocking(False)  # a full queue fails the test instead of hanging it
        for frame in frames:
            a.send(frame)
        b.setblocking(False)
        buf = bytearray(frame_cap * max_frames)
        result = impl.gro_read(b.fileno(), buf, frame_cap, max_frames, link_len)
        left = []
        while True:
            try:
                left.append(b.recv(70000))
            except BlockingIOError:
                return result, [bytes(buf[o : o + n]) for o, n in result[0]], left


# ---------------------------------------------------------------- what merges


@pytest.mark.parametrize("seq", [A, 0xFFFFF000], ids=["plain", "wrapping"])
def test_a_bulk_run_comes_back_as_one_segment(impl: Impl, seq: int) -> None:
    frames = run([1448] * 5, seq)
    result, out, _ = gro(impl, frames)
    expected = merged(frames)
    assert result == ([(0, len(expected))], 5, 4, 0)
    assert out == [expected]
    ip, tcp = parse(out[0])
    assert (tcp.seq, tcp.flags, ip.ident) == (seq, ACK | PSH, 7)
    assert bytes(tcp.payload) == b"".join(f[66:] for f in frames)


def test_psh_ends_a_run_and_the_next_one_merges_on_its_own(impl: Impl) -> None:
    first = run([1000, 1000, 1000])
    second = run([500, 500, 500], seq=A + 3000, last=ACK)
    result, out, _ = gro(impl, first + second)
    assert out == [merged(first), merged(second)] and result[1:] == (6, 4, 0)


def test_a_corrupt_segment_passes_through_and_breaks_the_run(impl: Impl) -> None:
    frames = run([700] * 4)
    frames[2][-1] ^= 0x10  # its TCP checksum no longer holds
    result, out, _ = gro(impl, frames)
    assert out == [merged(frames[:2]), bytes(frames[2]), bytes(frames[3])] and result[1:] == (4, 1, 0)


@pytest.mark.parametrize("extra", [0, 1], ids=["exactly_65535", "one_past"])
def test_a_merge_stops_at_the_largest_ipv4_packet(impl: Impl, extra: int) -> None:
    frames = run([8948] * 7 + [65535 - (20 + 32 + 7 * 8948) + extra])  # MTU 9000 frames
    _result, out, _ = gro(impl, frames, frame_cap=9018, max_frames=8)
    assert out == ([merged(frames)] if not extra else [merged(frames[:7]), bytes(frames[7])])
    assert len(out[0]) - 14 == (65535 if not extra else 20 + 32 + 7 * 8948)


@pytest.mark.parametrize("where", [0, 1, 2], ids=["first", "middle", "last"])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_ethernet_padding_is_dropped_from_a_merge(impl: Impl, where: int, size: int) -> None:
    sizes = [500, 500, 500]
    sizes[where] = size
    frames = run(sizes, options=b"")
    assert len(frames[where]) == 60, "a tiny segment arrives padded"
    frames[where][-(6 - size) :] = b"\xee" * (6 - size)  # padding is not always zeros
    result, out, _ = gro(impl, frames)
    assert out == [merged(frames)] and result[1:] == (3, 2, 0)
    assert bytes(parse(out[0])[1].payload) == b"".join(bytes(parse(f)[1].payload) for f in frames)


# ---------------------------------------------------------------- what does not


def pair(**second: Any) -> list[bytearray]:
    """Two in-order 100-byte segments of one flow, but for what `second` changes on the second."""
    return [segment(b"a" * 100, A), segment(b"b" * 100, **{"seq": A + 100, "flags": ACK | PSH, **second})]


def flagged(first: int, second: int) -> list[bytearray]:
    """Two in-order 100-byte segments of one flow with these flags."""
    return [segment(b"a" * 100, A, flags=first), segment(b"b" * 100, A + 100, flags=second)]


def corrupt(frames: list[bytearray], index: int, offset: int) -> list[bytearray]:
    """One bit of one frame flipped: a checksum no longer holds."""
    frames[index][offset] ^= 0x01
    return frames


def fragment(frames: list[bytearray]) -> list[bytearray]:
    """The second one marked as a first fragment, its IPv4 checksum made right again."""
    struct.pack_into("!HxxH", frames[1], 20, 0x2000, 0)
    struct.pack_into("!H", frames[1], 24, pure.internet_checksum(frames[1][14:34]))
    return frames


FLAGS = [("fin", FIN), ("syn", SYN), ("rst", RST), ("urg", URG), ("ece", ECE)]
UDP = bytearray(60)
pure.build_ipv4_udp(UDP, 0, MAC, PEER_MAC, SRC, DST, 7, 64, 40000, 80, b"u" * 10)

APART: dict[str, Callable[[], list[bytearray]]] = {
    "gap": lambda: pair(seq=A + 101),
    "same_seq": lambda: pair(seq=A),
    "ack": lambda: pair(ack=100),
    "window": lambda: pair(window=513),
    "timestamps": lambda: pair(options=encode_tcp_options(timestamp=(6, 6))),
    "no_options": lambda: pair(options=b""),
    "urgent_pointer": lambda: pair(urgent=1),
    "ttl": lambda: pair(ttl=63),
    "dst_mac": lambda: pair(dst_mac=b"\x02" * 6),
    "port": lambda: pair(sport=40001),
    "psh_on_first": partial(flagged, ACK | PSH, ACK),
    **{f"{name}_on_first": partial(flagged, ACK | bit, ACK) for name, bit in FLAGS},
    **{f"{name}_on_second": partial(flagged, ACK, ACK | bit) for name, bit in FLAGS},
    "no_ack_flag": partial(flagged, ACK, PSH),
    "tcp_checksum_first": lambda: corrupt(pair(), 0, 80),
    "tcp_checksum_second": lambda: corrupt(pair(), 1, 80),
    "ip_checksum_second": lambda: corrupt(pair(), 1, 25),
    "fragment": lambda: fragment(pair()),
    "udp_between": lambda: [segment(b"a" * 100, A), UDP, segment(b"b" * 100, A + 100)],
    "arp_between": lambda: [segment(b"a" * 100, A), bytearray(ARP), segment(b"b" * 100, A + 100)],
    "flows_interleaved": lambda: [
        segment(b"a" * 100, A),
        segment(b"x" * 100, A, sport=40001),
        segment(b"b" * 100, A + 100),
        segment(b"y" * 100, A + 100, sport=40001),
    ],
    "pure_ack_first": lambda: [segment(b"", A), segment(b"b" * 100, A)],
    "pure_ack_second": lambda: [segment(b"a" * 100, A), segment(b"", A + 100)],
}


@pytest.mark.parametrize("case", APART)
def test_what_must_not_merge_passes_through_byte_identical(impl: Impl, case: str) -> None:
    frames = APART[case]()
    result, out, _ = gro(impl, frames)
    assert out == [bytes(f) for f in frames]
    assert result[1:] == (len(frames), 0, 0)


# ---------------------------------------------------------------- reads, room and errors


def test_max_frames_bounds_the_reads_and_closes_the_merge(impl: Impl) -> None:
    frames = run([1000] * 5)
    result, out, left = gro(impl, frames, max_frames=3)
    assert out == [merged(frames[:3])] and result[1:] == (3, 2, 0)
    assert left == [bytes(f) for f in frames[3:]]
    assert gro(impl, frames, max_frames=0) == (([], 0, 0, 0), [], [bytes(f) for f in frames])


def test_an_empty_descriptor_gives_nothing(impl: Impl) -> None:
    assert gro(impl, []) == (([], 0, 0, 0), [], [])


@pytest.mark.parametrize(("size", "frame_cap", "max_frames"), [(599, 60, 10), (590, 59, 10), (0, 60, 1)])
def test_too_little_room_is_refused(impl: Impl, size: int, frame_cap: int, max_frames: int) -> None:
    with pytest.raises(ValueError, match=re.escape(pure.BUILD_ERRORS[pure.GRO_NO_ROOM])):
        impl.gro_read(0, bytearray(size), frame_cap, max_frames)


def test_a_failed_read_is_reported_not_raised(impl: Impl) -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)  # a closed descriptor: the read fails with EBADF
    assert impl.gro_read(r, bytearray(600), 60, 10) == ([], 0, 0, errno.EBADF)


# ---------------------------------------------------------------- C against twin


def traffic(rng: random.Random, count: int) -> list[bytes]:
    """Bulk runs broken up by what a real link also carries, some of it damaged or cut short."""
    frames: list[bytearray] = []
    seq = rng.getrandbits(32)
    options = rng.choice([b"", TS])
    while len(frames) < count:
        roll = rng.random()
        if roll < 0.7:
            size = rng.choice([1448, rng.randrange(1, 64), rng.randrange(1, 9000)])
            flags = [ACK] * rng.randrange(8) + [rng.choice([ACK, ACK | PSH, ACK | PSH, ACK | FIN, PSH])]
            for flag in flags:
                frames.append(
                    segment(
                        rng.randbytes(size),
                        seq,
                        flags=flag,
                        options=options,
                        ident=rng.getrandbits(16),
                        window=rng.choice([512] * 9 + [600]),
                    )
                )
                seq = (seq + size + rng.choice([0] * 20 + [1, -1])) & 0xFFFFFFFF
        else:
            frames.append(
                rng.choice(
                    [
                        bytearray(UDP),
                        bytearray(ARP),
                        segment(rng.randbytes(rng.randrange(0, 100)), seq, sport=rng.choice([40000, 40001])),
                    ]
                )
            )
    for frame in frames:
        if rng.random() < 0.05:
            frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.03:
            del frame[rng.randrange(1, len(frame)) :]
    return [bytes(f) for f in frames[:count]]


@needs_c
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    count=st.integers(0, 20),
    frame_cap=st.sampled_from([60, 1514, 1514, 9100]),
    max_frames=st.integers(1, 24),
)
def test_c_merges_what_the_twin_merges(seed: int, count: int, frame_cap: int, max_frames: int) -> None:
    frames = traffic(random.Random(seed), count)
    got = gro(c(), frames, frame_cap, max_frames)
    assert got == gro(pure, frames, frame_cap, max_frames)
    (spans, read, joined, error), _, left = got
    assert (len(spans) + joined, read + len(left), error) == (read, count, 0)
