"""IPv6 in the receive predictions (`rx_ipv6_tcp`, `rx_ipv6_udp`) and the offloads (`gso_write`, `gro_read`).

As for IPv4, each implementation is checked against an independent reading of the same
frames (the wire layer's parsers, a word-by-word checksum oracle), and C against twin on
randomly damaged frames: a prediction may only say yes to what the general path would
take as a unicast TCP segment or UDP datagram to us with no extension header, and must
never raise. GSO's segments are read back through the wire layer; GRO's merged frame is
compared with the one segment `build_tcp` makes of the joined payloads.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_native import c, needs_c, oracle_sum16
from tests.test_native_gro import gro, run
from tests.test_native_offload import ACK, FIN, MAC, PEER_MAC, PSH, fast, written_frames
from tests.test_native_rx_udp import damage
from usernet._native import pure
from usernet.stack.route import ect_template, ipv6_template
from usernet.wire import MalformedPacket, parse_ethernet
from usernet.wire.ipv6 import parse_ipv6
from usernet.wire.tcp import encode_tcp_options

Impl = Any
SRC6 = bytes.fromhex("20010db8000000000000000000000001")
DST6 = bytes.fromhex("20010db8000000000000000000000002")
ETHERNET6 = MAC + PEER_MAC + b"\x86\xdd"
TS = encode_tcp_options(timestamp=(5, 6))
SPORT, DPORT = 40000, 80


def tcp6(
    payload: bytes,
    *,
    seq: int = 1000,
    flags: int = ACK | PSH,
    options: bytes = b"",
    mode: int = pure.CSUM_FULL,
    link: bytes = ETHERNET6,
    src: bytes = SRC6,
    dst: bytes = DST6,
    hop_limit: int = 64,
    ect: bool = False,
    pad: int = 0,
) -> bytearray:
    """A TCP/IPv6 frame as a route builds it (the stack's own builder, IPv6 template)."""
    ip = ipv6_template(src, dst, hop_limit)
    frame = bytearray(len(link) + 60 + len(options) + len(payload) + pad)
    pure.build_tcp(frame, link, ect_template(ip) if ect else ip, 0, SPORT, DPORT, seq, 99, flags, 512, 0, options,
                   payload, mode)  # fmt: skip
    return frame


def udp6(payload: bytes, *, link: bytes = ETHERNET6, pad: int = 0) -> bytearray:
    frame = bytearray(len(link) + 48 + len(payload) + pad)
    pure.build_udp(frame, link, ipv6_template(SRC6, DST6, 64), 0, 5353, 53, payload, pure.CSUM_FULL)
    return frame


def oracle_l4_ok(src: bytes, dst: bytes, proto: int, segment: bytes) -> bool:
    """The RFC 8200 pseudo-header spelled out as bytes, summed word by word."""
    pseudo = src + dst + len(segment).to_bytes(4, "big") + bytes(3) + bytes([proto])
    return oracle_sum16(pseudo + segment) == 0xFFFF


def reference_ip(frame: bytes, mac: bytes, link: int, proto: int) -> tuple[Any, int] | None:
    """The wire layer's reading of what both IPv6 predictions take: IPv6 to `mac` (or a bare
    packet), next header `proto`, unicast both ways; the packet and where its payload starts."""
    try:
        if link == 14:
            eth = parse_ethernet(frame)
            if eth.dst != mac or eth.ethertype != 0x86DD or eth.vlan is not None:
                return None
            packet = eth.payload
        else:
            packet = memoryview(frame)
        ip = parse_ipv6(packet)
    except MalformedPacket:
        return None
    if ip.next_header != proto or ip.src[0] == 0xFF or ip.dst[0] == 0xFF:
        return None
    return ip, link + 40


def reference_tcp(frame: bytes, mac: bytes, trusted: bool, link: int = 14) -> tuple[Any, ...] | None:
    """What rx_ipv6_tcp must say."""
    found = reference_ip(frame, mac, link, 6)
    if found is None:
        return None
    ip, tcp = found
    segment = bytes(ip.payload)
    if ip.traffic_class & 3 == 3:
        return None
    try:
        parsed = pure.tcp_parse(segment)
    except pure.NativeError:
        return None
    if not trusted and not oracle_l4_ok(ip.src, ip.dst, 6, segment):
        return None
    hlen = parsed[5]
    key = (1 << 160) | (int.from_bytes(ip.src, "big") << 32) | (parsed[1] << 16) | parsed[2]
    return (*parsed, int.from_bytes(ip.dst, "big"), key, tcp + hlen, len(segment) - hlen)


def reference_udp(frame: bytes, mac: bytes, trusted: bool, link: int = 14) -> tuple[int, ...] | None:
    """What rx_ipv6_udp must say."""
    found = reference_ip(frame, mac, link, 17)
    if found is None:
        return None
    ip, udp = found
    segment = bytes(ip.payload)
    if len(segment) < 8:
        return None
    length = int.from_bytes(segment[4:6], "big")
    if length < 8 or length > len(segment) or segment[6:8] == b"\0\0":
        return None
    if not trusted and not oracle_l4_ok(ip.src, ip.dst, 17, segment[:length]):
        return None
    return (
        int.from_bytes(ip.src, "big"),
        int.from_bytes(segment[0:2], "big"),
        int.from_bytes(ip.dst, "big"),
        int.from_bytes(segment[2:4], "big"),
        udp + 8,
        length - 8,
    )


def damaged(frame: bytearray, seed: int, flips: int, cut: int, start: int = 14) -> bytearray:
    rng = random.Random(seed)
    for _ in range(flips):
        frame[rng.randrange(start, len(frame))] ^= 1 << rng.randrange(8)
    del frame[max(start, len(frame) - cut) :]
    return frame


def random_tcp6(seed: int, size: int) -> bytearray:
    rng = random.Random(seed)
    options = rng.choice(
        [b"", TS, encode_tcp_options(mss=1440, wscale=7), encode_tcp_options(sack_blocks=((1, 2), (5, 9)))]
    )
    return tcp6(rng.randbytes(size), seq=rng.getrandbits(32), flags=rng.getrandbits(9), options=options,
                pad=rng.choice([0, 0, 3]))  # fmt: skip


# ---------------------------------------------------------------- rx_ipv6_tcp


@pytest.mark.parametrize(
    "options", [b"", TS, encode_tcp_options(sack_blocks=((1, 2), (3, 4), (5, 6)))], ids=["none", "ts", "sack"]
)
@pytest.mark.parametrize("size", [0, 1, 1440])
def test_rx6_tcp_takes_a_valid_segment(impl: Impl, options: bytes, size: int) -> None:
    frame = tcp6(os.urandom(size), options=options)
    got = impl.rx_ipv6_tcp(frame, MAC, False)
    assert got is not None and got == reference_tcp(bytes(frame), MAC, False)
    assert got[-2:] == (74 + len(options), size)
    assert got[-4] == int.from_bytes(DST6, "big")
    assert got[-3] == pure.IPV6_FLOW | (int.from_bytes(SRC6, "big") << 32) | (SPORT << 16) | DPORT
    bare = impl.rx_ipv6_tcp(frame[14:], b"", False, 0)
    assert bare == (*got[:-2], got[-2] - 14, got[-1]), "a bare packet reads as the frame without Ethernet"


def with_next_header(frame: bytearray, value: int) -> bytearray:
    frame[20] = value
    return frame


REFUSED = {
    "wrong_mac": lambda: tcp6(b"x", link=PEER_MAC + MAC + b"\x86\xdd"),
    "ipv4_ethertype": lambda: tcp6(b"x", link=MAC + PEER_MAC + b"\x08\x00"),
    "hop_by_hop_header": lambda: with_next_header(tcp6(b"x" * 8), 0),
    "multicast_destination": lambda: tcp6(b"x", dst=bytes.fromhex("ff02") + bytes(13) + b"\x01"),
    "multicast_source": lambda: tcp6(b"x", src=bytes.fromhex("ff02") + bytes(13) + b"\x01"),
    "ce_mark": lambda: ce(tcp6(b"x", ect=True)),
    "jumbogram_length": lambda: payload_length(tcp6(b"x"), 0),
    "length_past_the_frame": lambda: payload_length(tcp6(b"x"), 22),
    "bad_checksum": lambda: flip(tcp6(b"hello"), -1),
    "truncated_header": lambda: tcp6(b"")[:70],
}


def ce(frame: bytearray) -> bytearray:
    frame[15] |= 0x30
    return frame


def payload_length(frame: bytearray, value: int) -> bytearray:
    frame[18:20] = value.to_bytes(2, "big")
    return frame


def flip(frame: bytearray, at: int) -> bytearray:
    frame[at] ^= 1
    return frame


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_rx6_tcp_leaves_what_the_general_path_must_judge(impl: Impl, case: str) -> None:
    frame = REFUSED[case]()
    assert impl.rx_ipv6_tcp(frame, MAC, False) is None
    assert reference_tcp(bytes(frame), MAC, False) is None


def test_rx6_tcp_skips_the_checksum_on_a_trusted_link_only(impl: Impl) -> None:
    frame = flip(tcp6(b"hello"), -1)
    assert impl.rx_ipv6_tcp(frame, MAC, False) is None
    assert impl.rx_ipv6_tcp(frame, MAC, True) is not None
    assert impl.rx_ipv6_tcp(tcp6(b"x" * 3000, mode=pure.CSUM_PARTIAL), MAC, True) is not None


def test_rx6_knows_only_ethernet_and_no_link_header(impl: Impl) -> None:
    frame = tcp6(b"hello")
    for link_len in (4, 13, 15, 64):
        assert impl.rx_ipv6_tcp(frame, MAC, False, link_len) is None
        assert impl.rx_ipv6_udp(udp6(b"hi"), MAC, False, link_len) is None


def test_rx6_ignores_ipv4_frames_and_rx4_ignores_ipv6_ones(impl: Impl) -> None:
    from tests.test_native_offload import tcp_frame

    assert impl.rx_ipv6_tcp(tcp_frame(b"hello"), MAC, False) is None
    assert impl.rx_ipv4_tcp(tcp6(b"hello"), MAC, False) is None
    assert impl.rx_ipv6_tcp(tcp_frame(b"hello")[14:], MAC, False, 0) is None
    assert impl.rx_ipv4_tcp(tcp6(b"hello")[14:], MAC, False, 0) is None


@pytest.mark.parametrize("which", ["pure", pytest.param("c", marks=needs_c)])
@fast
@given(trusted=st.booleans(), bare=st.booleans(), seed=st.integers(0, 2**32), size=st.integers(0, 1500),
       flips=st.integers(0, 3), cut=st.one_of(st.just(0), st.integers(1, 60)))  # fmt: skip
def test_rx6_tcp_agrees_with_the_wire_layer_on_damaged_frames(
    which: str, trusted: bool, bare: bool, seed: int, size: int, flips: int, cut: int
) -> None:
    impl = c() if which == "c" else pure
    frame = damaged(random_tcp6(seed, size), seed, flips, cut)
    if bare:
        frame = frame[14:]
    link = 0 if bare else 14
    assert impl.rx_ipv6_tcp(frame, MAC, trusted, link) == reference_tcp(bytes(frame), MAC, trusted, link)


@needs_c
@fast
@given(data=st.binary(max_size=120), trusted=st.booleans(), link_len=st.sampled_from([0, 14, 4]))
def test_rx6_c_equals_twin_on_random_bytes(data: bytes, trusted: bool, link_len: int) -> None:
    frame = (ETHERNET6 if link_len == 14 else b"") + b"\x60" + data
    assert c().rx_ipv6_tcp(frame, MAC, trusted, link_len) == pure.rx_ipv6_tcp(frame, MAC, trusted, link_len)
    assert c().rx_ipv6_udp(frame, MAC, trusted, link_len) == pure.rx_ipv6_udp(frame, MAC, trusted, link_len)


def test_rx6_refuses_bad_arguments_as_cffi_does(impl: Impl) -> None:
    with pytest.raises(TypeError):
        impl.rx_ipv6_tcp(tcp6(b""), bytearray(MAC), False)
    with pytest.raises(OverflowError):
        impl.rx_ipv6_tcp(tcp6(b""), MAC, False, -1)


# ---------------------------------------------------------------- rx_ipv6_udp


@pytest.mark.parametrize("size", [0, 1, 1452])
def test_rx6_udp_takes_a_valid_datagram(impl: Impl, size: int) -> None:
    frame = udp6(os.urandom(size), pad=3)
    got = impl.rx_ipv6_udp(frame, MAC, False)
    assert got == (int.from_bytes(SRC6, "big"), 5353, int.from_bytes(DST6, "big"), 53, 62, size)
    assert got == reference_udp(bytes(frame), MAC, False)
    assert impl.rx_ipv6_udp(frame[14:], b"", False, 0) == (*got[:4], 48, size)


def test_rx6_udp_refuses_a_zero_checksum_even_on_a_trusted_link(impl: Impl) -> None:
    frame = udp6(b"hello")
    frame[60:62] = b"\0\0"
    assert impl.rx_ipv6_udp(frame, MAC, True) is None


@pytest.mark.parametrize("which", ["pure", pytest.param("c", marks=needs_c)])
@fast
@given(trusted=st.booleans(), bare=st.booleans(), **damage)
def test_rx6_udp_agrees_with_the_wire_layer_on_damaged_frames(
    which: str, trusted: bool, bare: bool, seed: int, size: int, flips: int, cut: int, pad: int
) -> None:
    impl = c() if which == "c" else pure
    frame = damaged(udp6(random.Random(seed).randbytes(size), pad=pad), seed, flips, cut)
    if bare:
        frame = frame[14:]
    link = 0 if bare else 14
    assert impl.rx_ipv6_udp(frame, MAC, trusted, link) == reference_udp(bytes(frame), MAC, trusted, link)


# ---------------------------------------------------------------- GSO


def check_segments6(original: bytes, segments: list[bytes], gso_size: int, link: int = 14) -> None:
    """The segments are what a NIC doing TSO6 sends: valid checksums, contiguous, flags right."""
    ip0 = parse_ipv6(original[link:])
    tcp0 = pure.tcp_parse(ip0.payload)
    hlen = tcp0[5]
    joined = b""
    offset = 0
    for i, segment in enumerate(segments):
        ip = parse_ipv6(segment[link:])
        body = bytes(ip.payload)
        assert len(segment) == link + 40 + len(body), "the payload length covers exactly the segment"
        assert oracle_l4_ok(ip.src, ip.dst, 6, body)
        tcp = pure.tcp_parse(body)
        last = i == len(segments) - 1
        assert (
            segment[: link + 4] == original[: link + 4]
            and segment[link + 6 : link + 40] == original[link + 6 : link + 40]
        )
        assert tcp[3] == (tcp0[3] + offset) & 0xFFFFFFFF
        assert tcp[6] == (tcp0[6] if last else tcp0[6] & ~(FIN | PSH))
        assert (tcp[4], tcp[5], tcp[7], tcp[13:15]) == (tcp0[4], tcp0[5], tcp0[7], tcp0[13:15])
        data = body[hlen:]
        assert len(data) <= (gso_size or len(ip0.payload) - hlen) and (last or len(data) == gso_size)
        joined += data
        offset += len(data)
    assert joined == bytes(ip0.payload[hlen:])


@pytest.mark.parametrize("gso_size", [0, 536, 1428])
@pytest.mark.parametrize("size", [0, 1, 1428, 3000, 65535 - 20 - 12 - 40])
@pytest.mark.parametrize("bare", [False, True], ids=["ethernet", "bare"])
def test_gso_cuts_an_ipv6_frame_as_tso6_would(impl: Impl, gso_size: int, size: int, bare: bool) -> None:
    frame = tcp6(random.Random(size).randbytes(size), mode=pure.CSUM_PARTIAL, options=TS, flags=ACK | PSH | FIN)
    link = 0 if bare else 14
    packet = bytes(frame[14:]) if bare else bytes(frame)
    (written, count, sent, error), segments = written_frames(impl, packet, gso_size, link)
    assert (written, count, error) == (len(segments), len(segments), 0) and sent == sum(map(len, segments))
    check_segments6(packet, segments, gso_size, link)
    assert segments == pure.gso_segments(packet, gso_size, link)


def test_gso_refuses_an_ipv6_frame_it_cannot_cut(impl: Impl) -> None:
    frame = tcp6(b"abc" * 1000, mode=pure.CSUM_PARTIAL)
    for bad in (
        with_next_header(bytearray(frame), 0),
        frame + b"\0",
        frame[:73],
        MAC + PEER_MAC + b"\x08\x00" + frame[14:],
    ):
        with pytest.raises(pure.NativeError) as caught:
            impl.gso_write(1, bad, 1428)
        assert caught.value.code == pure.GSO_NOT_TCP


@needs_c
@fast
@given(size=st.integers(0, 9000), gso_size=st.integers(0, 2000), flags=st.integers(0, 0x1FF),
       seq=st.integers(0, 2**32 - 1), ts=st.booleans(), bare=st.booleans())  # fmt: skip
def test_gso_c_cuts_ipv6_as_the_twin(size: int, gso_size: int, flags: int, seq: int, ts: bool, bare: bool) -> None:
    frame = tcp6(os.urandom(size), seq=seq, flags=flags, options=TS if ts else b"", mode=pure.CSUM_PARTIAL)
    packet = bytes(frame[14:]) if bare else bytes(frame)
    link = 0 if bare else 14
    assert written_frames(c(), packet, gso_size, link) == written_frames(pure, packet, gso_size, link)


# ---------------------------------------------------------------- GRO


def run6(sizes: list[int], seq: int = 1000, last: int = ACK | PSH) -> list[bytearray]:
    """In-order segments of one IPv6 flow, ACK on all but the last."""
    frames = []
    for i, size in enumerate(sizes):
        frames.append(tcp6(os.urandom(size), seq=seq, flags=last if i == len(sizes) - 1 else ACK, options=TS))
        seq = (seq + size) & 0xFFFFFFFF
    return frames


def merged6(frames: list[bytearray]) -> bytes:
    """The one segment a NIC's GRO makes of an IPv6 run: the first's headers, the last's flags."""
    first = pure.tcp_parse(parse_ipv6(frames[0][14:]).payload)
    payload = b"".join(bytes(parse_ipv6(f[14:]).payload[first[5] :]) for f in frames)
    flags = pure.tcp_parse(parse_ipv6(frames[-1][14:]).payload)[6]
    return bytes(tcp6(payload, seq=first[3], flags=flags, options=TS))


@pytest.mark.parametrize("seq", [1000, 0xFFFFF000], ids=["plain", "wrapping"])
@pytest.mark.parametrize("bare", [False, True], ids=["ethernet", "bare"])
def test_gro_merges_an_ipv6_run_into_one_segment(impl: Impl, seq: int, bare: bool) -> None:
    frames = run6([1428] * 5, seq)
    expected = merged6(frames)
    if bare:
        (_spans, read, joined, error), out, left = gro(impl, [bytes(f[14:]) for f in frames], link_len=0)
        expected = expected[14:]
    else:
        (_spans, read, joined, error), out, left = gro(impl, frames)
    assert (read, joined, error, left) == (5, 4, 0, [])
    assert out == [expected]


def test_gro_stops_an_ipv6_merge_at_the_largest_packet(impl: Impl) -> None:
    # 40-byte IPv6 header and 32 bytes of TCP header: 45 segments of 1440 = 64,800, a 46th would pass 65,535.
    frames = run6([1440] * 46)
    (_spans, read, joined, _error), out, _ = gro(impl, frames, frame_cap=1600, max_frames=64)
    assert (read, joined) == (46, 44)
    assert [len(f) for f in out] == [14 + 40 + 32 + 45 * 1440, 14 + 40 + 32 + 1440]
    assert out[0] == merged6(frames[:45])


APART = {
    "flow_label": lambda f: f.__setitem__(slice(15, 18), b"\x0a\xbc\xde"),
    "hop_limit": lambda f: f.__setitem__(21, 63),
    "traffic_class": lambda f: f.__setitem__(15, f[15] | 0x10),
}


@pytest.mark.parametrize("case", sorted(APART))
def test_gro_keeps_ipv6_segments_apart_whose_headers_differ(impl: Impl, case: str) -> None:
    frames = run6([500, 500])
    second = bytearray(frames[1])
    APART[case](second)
    frames[1] = second  # the checksum does not cover these fields: only the header differs
    (_spans, read, joined, _error), out, _ = gro(impl, frames)
    assert (read, joined) == (2, 0) and out == [bytes(f) for f in frames]


def test_gro_never_joins_ipv6_onto_ipv4(impl: Impl) -> None:
    v4 = run([500, 500], last=ACK)
    v6 = run6([500])
    (_spans, read, joined, _error), out, _ = gro(impl, [v4[0], v6[0], v4[1]])
    assert (read, joined) == (3, 0) and out == [bytes(v4[0]), bytes(v6[0]), bytes(v4[1])]


def test_gro_leaves_a_corrupt_ipv6_segment_alone(impl: Impl) -> None:
    frames = run6([500, 500, 500])
    frames[1] = flip(frames[1], -1)
    (_spans, read, joined, _error), out, _ = gro(impl, frames)
    assert (read, joined) == (3, 0) and out == [bytes(f) for f in frames]


@needs_c
@fast
@given(sizes=st.lists(st.integers(1, 1428), min_size=1, max_size=10), seed=st.integers(0, 2**32),
       flips=st.integers(0, 3), bare=st.booleans())  # fmt: skip
def test_gro_c_merges_ipv6_as_the_twin(sizes: list[int], seed: int, flips: int, bare: bool) -> None:
    rng = random.Random(seed)
    frames: list[bytes] = []
    for frame in run6(sizes):
        if flips and rng.random() < 0.3:
            frame[rng.randrange(14, len(frame))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.2:
            frame = random_tcp6(rng.getrandbits(32), rng.randrange(100))
        frames.append(bytes(frame[14:]) if bare else bytes(frame))
    link = 0 if bare else 14
    assert gro(c(), frames, link_len=link) == gro(pure, frames, link_len=link)


def test_the_vnet_header_of_an_ipv6_frame_asks_for_tso6() -> None:
    from usernet.link.tap import GSO_NONE, GSO_TCPV6, NEEDS_CSUM, decode_vnet_header, encode_vnet_header

    frame = tcp6(bytes(5000), options=TS, mode=pure.CSUM_PARTIAL)
    assert decode_vnet_header(encode_vnet_header(frame, 1428)) == (NEEDS_CSUM, GSO_TCPV6, 14 + 40 + 32, 1428, 54, 16)
    assert decode_vnet_header(encode_vnet_header(frame[14:], 1428, 0)) == (NEEDS_CSUM, GSO_TCPV6, 72, 1428, 40, 16)
    assert decode_vnet_header(encode_vnet_header(frame, 0)) == (NEEDS_CSUM, GSO_NONE, 0, 0, 54, 16)
