"""`build_tcp`/`build_udp`: a route's link header and IP header template, then the L4 segment.

The same builder serves Ethernet+IPv4 (what the stack sends today), bare IP (an IP-only
link: no link header) and IPv6 (a 40-byte template): each is checked against an
independent decoding, against the older whole-frame builders where they overlap, and C
against its twin on random input, exceptions included.
"""

from __future__ import annotations

import random
import re
import struct
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usernet import native
from usernet._native import pure
from usernet.wire import parse_ethernet, parse_ipv4, parse_tcp, parse_udp

needs_c = pytest.mark.skipif(native.c_impl is None, reason="the C core is not loaded (USERNET_PURE=1?)")
Impl = Any

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
IP_A = bytes([192, 0, 2, 2])
IP_B = bytes([192, 0, 2, 1])
V6_A = bytes.fromhex("20010db8000000000000000000000002")
V6_B = bytes.fromhex("20010db8000000000000000000000001")
ETH_V4 = bytes(6) + MAC_A + b"\x08\x00"
ETH_V6 = bytes(6) + MAC_A + b"\x86\xdd"


def v4_template(src: bytes = IP_A, dst: bytes = IP_B, ttl: int = 64) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0x4000, ttl, 0, 0, src, dst)


def v6_template(src: bytes = V6_A, dst: bytes = V6_B, hops: int = 64) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, 0, 0, hops, src, dst)


def c() -> SimpleNamespace:
    assert native.c_impl is not None
    return native.c_impl


@pytest.fixture(params=["pure", "c"])
def impl(request: pytest.FixtureRequest) -> Impl:
    if request.param == "c":
        if native.c_impl is None:
            pytest.skip("the C core is not loaded")
        return native.c_impl
    return pure


def tcp_args(**changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        ident=7, sport=40000, dport=80, seq=1000, ack=2000, flags=0x18, window=512, urgent=0,
        options=b"\x01\x01\x08\x0a" + bytes(8), payload=b"hello",
    )  # fmt: skip
    args.update(changes)
    return args


def test_ethernet_ipv4_frame_equals_the_whole_frame_builder(impl: Impl) -> None:
    args = tcp_args()
    buf = bytearray(200)
    n = impl.build_tcp(buf, ETH_V4, v4_template(), **args)
    old = bytearray(200)
    m = impl.build_ipv4_tcp(old, 0, bytes(6), MAC_A, IP_A, IP_B, args["ident"], 64, *list(args.values())[1:])
    assert n == m == 14 + 20 + 20 + 12 + 5
    assert buf == old


def test_bare_ip_frame_parses_with_valid_checksums(impl: Impl) -> None:
    buf = bytearray(100)
    n = impl.build_tcp(buf, b"", v4_template(), **tcp_args())
    ip = parse_ipv4(memoryview(buf)[:n])  # verifies the header checksum
    assert (ip.src, ip.dst, ip.protocol, ip.ident, ip.ttl, ip.dont_fragment) == (IP_A, IP_B, 6, 7, 64, True)
    seg = parse_tcp(ip.payload, ip.src, ip.dst)  # verifies the TCP checksum
    assert (seg.sport, seg.dport, seg.seq, seg.ack, bytes(seg.payload)) == (40000, 80, 1000, 2000, b"hello")


def test_udp_over_ethernet_and_bare_ip(impl: Impl) -> None:
    for link in (ETH_V4, b""):
        buf = bytearray(100)
        n = impl.build_udp(buf, link, v4_template(), 9, 5353, 53, b"query")
        frame = memoryview(buf)[:n]
        packet = parse_ethernet(frame).payload if link else frame
        ip = parse_ipv4(packet)
        dgram = parse_udp(ip.payload, ip.src, ip.dst)
        assert (ip.protocol, ip.ident, dgram.sport, dgram.dport, bytes(dgram.payload)) == (17, 9, 5353, 53, b"query")


def ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


@pytest.mark.parametrize("proto", [6, 17])
def test_ipv6_template_gets_length_next_header_and_its_pseudo_header(impl: Impl, proto: int) -> None:
    buf = bytearray(200)
    if proto == 6:
        n = impl.build_tcp(buf, ETH_V6, v6_template(), **tcp_args())
    else:
        n = impl.build_udp(buf, ETH_V6, v6_template(), 0, 5353, 53, b"query")
    ip = buf[14:54]
    l4 = bytes(buf[54:n])
    assert ip[0] >> 4 == 6 and ip[6] == proto and ip[7] == 64
    assert struct.unpack("!H", ip[4:6])[0] == len(l4)
    pseudo = V6_A + V6_B + struct.pack("!IxxxB", len(l4), proto)
    assert ones_sum(pseudo + l4) == 0xFFFF  # RFC 8200 §8.1: the checksum covers this pseudo-header


def test_partial_checksum_holds_the_pseudo_header_sum(impl: Impl) -> None:
    buf = bytearray(200)
    n = impl.build_tcp(buf, b"", v4_template(), **tcp_args(), csum_mode=native.CSUM_PARTIAL)
    expected = native.pseudo_sum_v4(IP_A, IP_B, 6, n - 20)
    assert struct.unpack_from("!H", buf, 36)[0] == expected


@pytest.mark.parametrize(
    ("link", "ip", "changes", "room", "reason"),
    [
        (ETH_V4, v4_template(), {}, -1, native.BUILD_ERRORS[-10]),
        (ETH_V4, v4_template()[:19], {}, 0, native.BUILD_ERRORS[-16]),
        (ETH_V4, b"\x46" + v4_template()[1:], {}, 0, native.BUILD_ERRORS[-16]),
        (bytes(65), v4_template(), {}, 0, native.BUILD_ERRORS[-16]),
        (ETH_V4, v4_template(), {"options": b"\x01"}, 0, native.BUILD_ERRORS[-11]),
        (ETH_V4, v4_template(), {"flags": 0x200}, 0, native.BUILD_ERRORS[-14]),
        (b"", v4_template(), {"payload": bytes(0xFFFF - 40 - 12 + 1)}, 0, native.BUILD_ERRORS[-12]),
    ],
)
def test_build_failures_raise_naming_the_problem(
    impl: Impl, link: bytes, ip: bytes, changes: dict[str, Any], room: int, reason: str
) -> None:
    args = tcp_args(**changes)
    size = max(0, len(link) + len(ip) + 20 + len(args["options"]) + len(args["payload"]) + room)
    buf = bytearray(size)
    with pytest.raises(ValueError, match=re.escape(reason)):
        impl.build_tcp(buf, link, ip, **args)
    assert buf == bytearray(size)  # nothing written


def test_ipv6_takes_a_longer_segment_than_ipv4(impl: Impl) -> None:
    payload = bytes(0xFFFF - 20 - 12)  # too long for IPv4's total length, fine for IPv6's payload length
    buf = bytearray(60 + 14 + 40 + 20 + 12 + len(payload))
    with pytest.raises(ValueError, match=re.escape(native.BUILD_ERRORS[-12])):
        impl.build_tcp(buf, ETH_V4, v4_template(), **tcp_args(payload=payload))
    assert impl.build_tcp(buf, ETH_V6, v6_template(), **tcp_args(payload=payload)) == 14 + 40 + 0xFFFF


templates = st.sampled_from([v4_template(), v6_template(), v4_template()[:19], b"\x46" + bytes(19), bytes(40)])
links = st.sampled_from([b"", ETH_V4, ETH_V6, bytes(65), b"\xaa" * 4])


def outcome(build: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        return ("ok", build(*args, **kwargs))
    except (ValueError, OverflowError, TypeError, BufferError) as exc:
        return (type(exc).__name__, str(exc) if isinstance(exc, ValueError) else None)


@needs_c
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    link=links,
    ip=templates,
    room=st.integers(-4, 8),
    ident=st.integers(0, 0x1FFFF),
    flags=st.integers(0, 0x3FF),
    seq=st.integers(0, 2**32 - 1),
    options=st.binary(max_size=44),
    payload=st.binary(max_size=1600),
    csum_mode=st.integers(0, 2),
    udp=st.booleans(),
)
def test_c_equals_twin(
    link: bytes,
    ip: bytes,
    room: int,
    ident: int,
    flags: int,
    seq: int,
    options: bytes,
    payload: bytes,
    csum_mode: int,
    udp: bool,
) -> None:
    size = max(0, len(link) + len(ip) + (8 if udp else 20 + len(options)) + len(payload) + room)
    fill = random.Random(size).randbytes(size)
    results = []
    for implementation in (pure, c()):
        buf = bytearray(fill)
        if udp:
            result = outcome(implementation.build_udp, buf, link, ip, ident, 1, 2, payload, csum_mode)
        else:
            args = tcp_args(ident=ident, flags=flags, seq=seq, options=options, payload=memoryview(payload))
            result = outcome(implementation.build_tcp, buf, link, ip, **args, csum_mode=csum_mode)
        results.append((result, bytes(buf)))
    assert results[0] == results[1]
