"""Header prediction (`rx_ipv4_tcp`) and software GSO (`gso_write`): C against twin, and each against the wire layer.

The twins are checked against an independent reading of the same frames through
`usernet.wire` (their parsers and checksum verification), so agreement between C and
twin is agreement with a reference, not only with each other.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import struct
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_native import FRAMES, Frame, c, frame_id, needs_c
from usernet._native import pure
from usernet.wire import IPv4Packet, MalformedPacket, parse_ethernet, parse_ipv4, parse_tcp
from usernet.wire.tcp import encode_tcp_options

fast = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Impl = Any

MAC = bytes.fromhex("020000000001")
PEER_MAC = bytes.fromhex("020000000002")
SRC = bytes([192, 0, 2, 1])
DST = bytes([192, 0, 2, 2])
FIN, PSH, ACK = 0x01, 0x08, 0x10


def tcp_frame(
    payload: bytes,
    *,
    options: bytes = b"",
    flags: int = ACK | PSH,
    seq: int = 1000,
    ident: int = 7,
    mode: int = pure.CSUM_FULL,
    dst_mac: bytes = MAC,
) -> bytearray:
    frame = bytearray(54 + len(options) + len(payload))
    built = pure.build_ipv4_tcp(
        frame, 0, dst_mac, PEER_MAC, SRC, DST, ident, 64, 40000, 80, seq, 99, flags, 512, 0, options, payload, mode
    )
    assert built == len(frame)
    return frame


# ---------------------------------------------------------------- rx_ipv4_tcp


def unicast_ipv4(frame: bytes, mac: bytes, protocol: int) -> IPv4Packet | None:
    """The wire layer's reading of what both receive predictions accept first: an
    unfragmented IPv4 packet of `protocol`, untagged, to `mac`, with a good header checksum.
    Raises MalformedPacket for what the wire layer cannot parse."""
    eth = parse_ethernet(frame)
    if eth.dst != mac or eth.ethertype != 0x0800 or eth.vlan is not None:
        return None
    ip = parse_ipv4(eth.payload, verify_checksum=True)
    if ip.protocol != protocol or ip.is_fragment:
        return None
    return ip


def reference_rx(frame: bytes, mac: bytes, trusted: bool) -> tuple[Any, ...] | None:
    """What rx_ipv4_tcp must say, read through the wire layer."""
    try:
        ip = unicast_ipv4(frame, mac, 6)
        if ip is None:
            return None
        parse_tcp(ip.payload, ip.src, ip.dst, verify_checksum=not trusted)
    except MalformedPacket:
        return None
    p = pure.tcp_parse(ip.payload)
    ihl = (frame[14] & 0x0F) * 4
    key = (int.from_bytes(ip.src, "big") << 32) | (p[1] << 16) | p[2]
    return (*p, int.from_bytes(ip.dst, "big"), key, 14 + ihl + p[5], len(ip.payload) - p[5])


@pytest.mark.parametrize(
    "options",
    [
        b"",
        encode_tcp_options(timestamp=(5, 6)),
        encode_tcp_options(timestamp=(1, 2), sack_blocks=[(10, 20), (30, 40), (50, 60)]),
    ],
)
@pytest.mark.parametrize("size", [0, 1, 64, 1448])
def test_rx_parses_a_valid_segment_like_the_wire_layer(impl: Impl, options: bytes, size: int) -> None:
    frame = tcp_frame(os.urandom(size), options=options)
    got = impl.rx_ipv4_tcp(frame, MAC, False)
    assert got is not None and got == reference_rx(bytes(frame), MAC, False)
    assert got[-2:] == (54 + len(options), size)
    assert got[-3] == (0xC0000201 << 32) | (40000 << 16) | 80  # above 2**63: the key is unsigned


@pytest.mark.parametrize(
    "spoil",
    [
        "mac",
        "broadcast",
        "ethertype",
        "vlan",
        "ip_checksum",
        "tcp_checksum",
        "fragment",
        "more_fragments",
        "udp",
        "short",
        "total_past_end",
        "bad_offset",
    ],
)
def test_rx_leaves_everything_else_to_the_general_path(impl: Impl, spoil: str) -> None:
    frame = tcp_frame(b"x" * 100, options=encode_tcp_options(timestamp=(5, 6)))
    mac = MAC
    if spoil == "mac":
        mac = PEER_MAC
    elif spoil == "broadcast":
        frame[:6] = b"\xff" * 6
    elif spoil == "ethertype":
        frame[12:14] = b"\x86\xdd"
    elif spoil == "vlan":
        frame[12:14] = b"\x81\x00"
    elif spoil == "ip_checksum":
        frame[22] ^= 1  # the TTL: only the IPv4 header checksum notices
    elif spoil == "tcp_checksum":
        frame[-1] ^= 0x40
    elif spoil in ("fragment", "more_fragments"):
        struct.pack_into("!H", frame, 20, 0x0001 if spoil == "fragment" else 0x2000)
        struct.pack_into("!H", frame, 24, 0)
        struct.pack_into("!H", frame, 24, pure.internet_checksum(frame[14:34]))
    elif spoil == "udp":
        frame[23] = 17
        struct.pack_into("!H", frame, 24, 0)
        struct.pack_into("!H", frame, 24, pure.internet_checksum(frame[14:34]))
    elif spoil == "short":
        frame = frame[:53]
    elif spoil == "total_past_end":
        frame = frame[:-1]
    elif spoil == "bad_offset":
        frame[46] = 0x40  # data offset 4 words
    assert impl.rx_ipv4_tcp(frame, mac, False) is None
    if spoil == "tcp_checksum":
        assert impl.rx_ipv4_tcp(frame, mac, True) is not None, "a trusted link's checksum is not looked at"


def test_rx_allows_ethernet_padding_after_the_ipv4_total_length(impl: Impl) -> None:
    frame = tcp_frame(b"", options=b"") + bytes(6)  # a 54-byte frame padded to 60, as on real Ethernet
    got = impl.rx_ipv4_tcp(frame, MAC, False)
    assert got is not None and got[-1] == 0


@pytest.mark.parametrize("frame", [f for f in FRAMES if f.mode == "full" and f.proto == "tcp"], ids=frame_id)
def test_rx_on_frames_captured_from_linux(impl: Impl, frame: Frame) -> None:
    mac = frame.data[:6]
    got = impl.rx_ipv4_tcp(frame.data, mac, False)
    assert got is not None and got == reference_rx(frame.data, mac, False)


@needs_c
@fast
@given(
    seed=st.integers(0, 2**32),
    trusted=st.booleans(),
    flips=st.integers(0, 3),
    cut=st.integers(0, 80),
    size=st.integers(0, 1500),
)
def test_rx_c_equals_twin_on_valid_and_mutated_frames(
    seed: int, trusted: bool, flips: int, cut: int, size: int
) -> None:
    rng = random.Random(seed)
    options = rng.choice(
        [
            b"",
            encode_tcp_options(timestamp=(rng.getrandbits(32), rng.getrandbits(32))),
            encode_tcp_options(mss=1460, sack_permitted=True, wscale=7),
            encode_tcp_options(sack_blocks=[(rng.getrandbits(32), rng.getrandbits(32))]),
        ]
    )
    frame = tcp_frame(rng.randbytes(size), options=options, flags=rng.getrandbits(9), seq=rng.getrandbits(32))
    for _ in range(flips):
        frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
    if cut:
        del frame[max(0, len(frame) - cut) :]
    expected = pure.rx_ipv4_tcp(frame, MAC, trusted)
    assert c().rx_ipv4_tcp(frame, MAC, trusted) == expected
    assert expected == reference_rx(bytes(frame), MAC, trusted)


def test_rx_refuses_a_non_bytes_address_like_cffi(impl: Impl) -> None:
    with pytest.raises(TypeError):
        impl.rx_ipv4_tcp(tcp_frame(b""), bytearray(MAC), False)
    assert impl.rx_ipv4_tcp(tcp_frame(b""), MAC[:5], False) is None


# ---------------------------------------------------------------- gso_write


def written_frames(
    impl: Impl, frame: bytes | bytearray, gso_size: int, link_len: int = 14
) -> tuple[tuple[int, int, int, int], list[bytes]]:
    """What gso_write puts on a datagram socket pair: one datagram per frame, as on a TAP.

    A thread reads while gso_write writes: the pair queues only a bounded number of
    datagrams, and a frame cut into thousands of tiny segments would otherwise block the
    blocking write forever (hypothesis finds such frames, then replays them every run).
    """
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with a, b:
        frames: list[bytes] = []

        def read_all() -> None:
            while datagram := b.recv(70000):  # b"" once the writer shuts down
                frames.append(datagram)

        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        try:
            result = impl.gso_write(a.fileno(), frame, gso_size, link_len)
        finally:
            a.shutdown(socket.SHUT_WR)
            reader.join(timeout=30)
        assert not reader.is_alive(), "the reader did not see the writer's end"
        return result, frames


def check_segments(original: bytes, segments: list[bytes], gso_size: int) -> None:
    """The segments are what a NIC doing TSO sends: valid, contiguous, flags and ids right."""
    eth = parse_ethernet(original)
    ip0 = parse_ipv4(eth.payload, verify_checksum=True)
    tcp0 = parse_tcp(ip0.payload, ip0.src, ip0.dst, verify_checksum=False)
    payload = b"".join(
        bytes(parse_tcp(parse_ipv4(parse_ethernet(s).payload).payload, SRC, DST).payload) for s in segments
    )
    assert payload == bytes(tcp0.payload)
    offset = 0
    for i, segment in enumerate(segments):
        ip = parse_ipv4(parse_ethernet(segment).payload, verify_checksum=True)
        tcp = parse_tcp(ip.payload, ip.src, ip.dst, verify_checksum=True)
        last = i == len(segments) - 1
        assert segment[:14] == original[:14]
        assert ip.ident == (ip0.ident + i) & 0xFFFF
        assert tcp.seq == (tcp0.seq + offset) & 0xFFFFFFFF
        assert (tcp.timestamp, tcp.header_length, tcp.ack, tcp.window) == (
            tcp0.timestamp,
            tcp0.header_length,
            tcp0.ack,
            tcp0.window,
        )
        assert tcp.flags == (tcp0.flags if last else tcp0.flags & ~(FIN | PSH))
        assert len(tcp.payload) == (gso_size if not last else len(tcp.payload)) and len(tcp.payload) <= (
            gso_size or len(tcp0.payload)
        )
        offset += len(tcp.payload)


@pytest.mark.parametrize(
    ("size", "gso_size", "count"),
    [
        (0, 1448, 1),
        (10, 1448, 1),
        (1448, 1448, 1),
        (1449, 1448, 2),
        (5000, 1448, 4),
        (5000, 0, 1),
        (65483, 1448, 46),
        (3000, 1000, 3),
    ],
)
def test_gso_cuts_like_a_nic(impl: Impl, size: int, gso_size: int, count: int) -> None:
    frame = tcp_frame(
        os.urandom(size),
        options=encode_tcp_options(timestamp=(5, 6)),
        flags=ACK | PSH | FIN,
        seq=0xFFFFF000,
        ident=0xFFFE,
        mode=pure.CSUM_PARTIAL,
    )
    (written, made, sent, error), segments = written_frames(impl, frame, gso_size)
    assert (written, made, error) == (count, count, 0) and len(segments) == count
    assert sent == sum(map(len, segments)) == len(frame) + (count - 1) * (len(frame) - size)
    check_segments(bytes(frame), segments, gso_size)
    assert segments == pure.gso_segments(frame, gso_size)


@needs_c
@fast
@given(
    size=st.integers(0, 20000),
    gso_size=st.integers(0, 3000),
    flags=st.integers(0, 0x1FF),
    seq=st.integers(0, 2**32 - 1),
    ident=st.integers(0, 0xFFFF),
    ts=st.booleans(),
)
def test_gso_c_writes_what_the_twin_writes(
    size: int, gso_size: int, flags: int, seq: int, ident: int, ts: bool
) -> None:
    options = encode_tcp_options(timestamp=(1, 2)) if ts else b""
    frame = tcp_frame(os.urandom(size), options=options, flags=flags, seq=seq, ident=ident, mode=pure.CSUM_PARTIAL)
    assert written_frames(c(), frame, gso_size) == written_frames(pure, frame, gso_size)


def test_gso_cuts_a_frame_into_thousands_of_segments(impl: Impl) -> None:
    """More segments than a socket pair queues at once: the reader keeps up, nothing blocks for good."""
    frame = tcp_frame(os.urandom(20000), mode=pure.CSUM_PARTIAL)
    result, frames = written_frames(impl, frame, 1)
    assert result[-1] == 0, "no write failed"
    assert len(frames) == 20000
    check_segments(bytes(frame), frames, 1)


def test_gso_refuses_what_is_not_one_tcp_frame(impl: Impl) -> None:
    frame = tcp_frame(b"abc", mode=pure.CSUM_PARTIAL)
    for bad in (frame[:53], frame + b"\0", bytes(frame[:23]) + b"\x11" + bytes(frame[24:])):
        with pytest.raises(ValueError, match="TCP frame over IPv4 or IPv6"):
            impl.gso_write(1, bad, 1448)


def test_gso_reports_a_failed_write_and_stops(impl: Impl) -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)  # a closed descriptor: every write fails with EBADF
    frame = tcp_frame(bytes(5000), mode=pure.CSUM_PARTIAL)
    assert impl.gso_write(w, frame, 1448) == (0, 4, 0, errno.EBADF)
