"""emit -> parse -> emit gives the same bytes, for every format and any field values."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.wire.strategies import ipv4_address, mac, offset, payload, tcp_options, u8, u16, u32
from usernet.wire import (
    emit_arp,
    emit_ethernet,
    emit_icmp,
    emit_ipv4_header,
    emit_tcp,
    emit_udp,
    encode_tcp_options,
    parse_arp,
    parse_ethernet,
    parse_icmp,
    parse_ipv4,
    parse_tcp,
    parse_udp,
)

pytestmark = pytest.mark.usefixtures("backend")
roundtrip = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def place(length: int, at: int) -> bytearray:
    """A buffer with junk before `at` and after the packet, so emitters must honour offset and length."""
    return bytearray(b"\xa5" * (at + length + 3))


@roundtrip
@given(dst=mac, src=mac, ethertype=u16.filter(lambda t: t != 0x8100), body=payload, at=offset)
def test_ethernet(dst: bytes, src: bytes, ethertype: int, body: bytes, at: int) -> None:
    buf = place(14 + len(body), at)
    assert emit_ethernet(buf, at, dst, src, ethertype) == 14
    buf[at + 14 : at + 14 + len(body)] = body
    eth = parse_ethernet(buf[at : at + 14 + len(body)])
    assert (eth.dst, eth.src, eth.ethertype, eth.vlan, bytes(eth.payload)) == (dst, src, ethertype, None, body)
    again = bytearray(14)
    emit_ethernet(again, 0, eth.dst, eth.src, eth.ethertype)
    assert again == buf[at : at + 14]


@roundtrip
@given(op=u16, sha=mac, spa=ipv4_address, tha=mac, tpa=ipv4_address, at=offset)
def test_arp(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes, at: int) -> None:
    buf = place(28, at)
    assert emit_arp(buf, at, op, sha, spa, tha, tpa) == 28
    arp = parse_arp(memoryview(buf)[at:])
    assert arp == (op, sha, spa, tha, tpa)
    again = bytearray(28)
    emit_arp(again, 0, *arp)
    assert again == buf[at : at + 28]


@roundtrip
@given(
    src=ipv4_address,
    dst=ipv4_address,
    protocol=u8,
    body=payload,
    ttl=u8,
    ident=u16,
    tos=u8,
    df=st.booleans(),
    at=offset,
)
def test_ipv4(
    src: bytes, dst: bytes, protocol: int, body: bytes, ttl: int, ident: int, tos: int, df: bool, at: int
) -> None:
    buf = place(20 + len(body), at)
    assert (
        emit_ipv4_header(buf, at, src, dst, protocol, len(body), ttl=ttl, ident=ident, tos=tos, dont_fragment=df) == 20
    )
    buf[at + 20 : at + 20 + len(body)] = body
    ip = parse_ipv4(memoryview(buf)[at:])  # the trailing junk must be cut off by total_length
    assert (ip.src, ip.dst, ip.protocol, ip.ttl, ip.ident, ip.tos, ip.dont_fragment) == (
        src,
        dst,
        protocol,
        ttl,
        ident,
        tos,
        df,
    )
    assert (bytes(ip.payload), ip.total_length, ip.is_fragment) == (body, 20 + len(body), False)
    again = bytearray(20)
    emit_ipv4_header(again, 0, ip.src, ip.dst, ip.protocol, len(ip.payload), ip.ttl, ip.ident, ip.tos, ip.dont_fragment)
    assert again == buf[at : at + 20]


@roundtrip
@given(icmp_type=u8, code=u8, rest=u32, body=payload, at=offset)
def test_icmp(icmp_type: int, code: int, rest: int, body: bytes, at: int) -> None:
    buf = place(8 + len(body), at)
    assert emit_icmp(buf, at, icmp_type, code, rest, body) == 8 + len(body)
    msg = parse_icmp(buf[at : at + 8 + len(body)])
    assert (msg.type, msg.code, msg.rest, bytes(msg.payload)) == (icmp_type, code, rest, body)
    again = bytearray(8 + len(body))
    emit_icmp(again, 0, msg.type, msg.code, msg.rest, msg.payload)
    assert again == buf[at : at + 8 + len(body)]


@roundtrip
@given(src=ipv4_address, dst=ipv4_address, sport=u16, dport=u16, body=payload, at=offset)
def test_udp(src: bytes, dst: bytes, sport: int, dport: int, body: bytes, at: int) -> None:
    n = 8 + len(body)
    buf = place(n, at)
    assert emit_udp(buf, at, src, dst, sport, dport, body) == n
    udp = parse_udp(buf[at : at + n], src, dst)
    assert (udp.sport, udp.dport, udp.length, bytes(udp.payload)) == (sport, dport, n, body)
    assert udp.checksum != 0
    again = bytearray(n)
    emit_udp(again, 0, src, dst, udp.sport, udp.dport, udp.payload)
    assert again == buf[at : at + n]


@roundtrip
@given(
    src=ipv4_address, dst=ipv4_address, sport=u16, dport=u16, seq=u32, ack=u32, flags=st.integers(0, 0x1FF),
    window=u16, urgent=u16, options=tcp_options(), body=payload, at=offset,
)  # fmt: skip  # arguments grouped a line, compact
def test_tcp(
    src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, window: int, urgent: int,
    options: dict[str, object], body: bytes, at: int,
) -> None:  # fmt: skip  # arguments grouped a line, compact
    encoded = encode_tcp_options(**options)  # type: ignore[arg-type]  # keywords from a dict
    assert len(encoded) % 4 == 0 and len(encoded) <= 40
    n = 20 + len(encoded) + len(body)
    buf = place(n, at)
    assert emit_tcp(buf, at, src, dst, sport, dport, seq, ack, flags, window, encoded, body, urgent) == n
    seg = parse_tcp(buf[at : at + n], src, dst)
    assert (seg.sport, seg.dport, seg.seq, seg.ack, seg.flags, seg.window, seg.urgent) == (
        sport, dport, seq, ack, flags, window, urgent
    )  # fmt: skip  # arguments grouped a line, compact
    assert (seg.header_length, bytes(seg.payload)) == (20 + len(encoded), body)
    decoded = {
        "mss": seg.mss,
        "wscale": seg.wscale,
        "sack_permitted": seg.sack_permitted,
        "timestamp": seg.timestamp,
        "sack_blocks": seg.sack_blocks,
    }
    assert decoded == options
    assert encode_tcp_options(**decoded) == encoded  # type: ignore[arg-type]  # keywords from a dict
    again = bytearray(n)
    emit_tcp(
        again,
        0,
        src,
        dst,
        seg.sport,
        seg.dport,
        seg.seq,
        seg.ack,
        seg.flags,
        seg.window,
        encoded,
        seg.payload,
        seg.urgent,
    )
    assert again == buf[at : at + n]


def test_emitters_write_into_a_writable_memoryview() -> None:
    backing = bytearray(64)
    view = memoryview(backing)[10:]
    assert emit_udp(view, 2, b"\x01\x02\x03\x04", b"\x05\x06\x07\x08", 1, 2, memoryview(b"xyz")) == 11
    assert parse_udp(backing[12:23], b"\x01\x02\x03\x04", b"\x05\x06\x07\x08").payload.tobytes() == b"xyz"
