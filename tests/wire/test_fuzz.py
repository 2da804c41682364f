"""Random and mutated input: parsers either decode it or raise MalformedPacket, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.wire import vectors
from tests.wire.strategies import (
    arp_messages,
    frames,
    icmp_messages,
    ipv4_address,
    ipv4_fragments,
    ipv4_packets,
    tcp_segments,
    udp_datagrams,
)
from usernet.wire import (
    MalformedPacket,
    check_fragment,
    describe,
    ipv4_fragment,
    parse_arp,
    parse_ethernet,
    parse_icmp,
    parse_ipv4,
    parse_quoted,
    parse_tcp,
    parse_udp,
)

pytestmark = pytest.mark.usefixtures("backend")
fuzz = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid packet with a few byte flips, truncations, extensions or overwritten 16-bit fields."""
    data = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("flip", "truncate", "extend", "word")))
        if op == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=40))
        elif op == "word" and len(data) >= 2:
            at = draw(st.integers(0, len(data) - 2))
            data[at : at + 2] = draw(st.sampled_from((0, 1, 0xFF, 0xFFFF, 0x8100, 0x4500))).to_bytes(2, "big")
    return bytes(data)


def fuzz_input(valid: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=120) | mutated(valid)


def only_malformed(parse: Callable[..., Any], data: bytes, *args: Any) -> Any:
    """Run a parser; a decoded result must hold its payload as a view of `data`."""
    try:
        result = parse(data, *args)
    except MalformedPacket as exc:
        assert exc.layer in ("ethernet", "arp", "ipv4", "icmp", "udp", "tcp", "ipv6", "icmpv6", "ndp") and exc.reason
        return None
    payload = getattr(result, "payload", None)
    if payload is not None:
        assert isinstance(payload, memoryview) and payload.obj is data
    return result


@fuzz
@given(data=fuzz_input(frames()))
def test_ethernet_and_describe(data: bytes) -> None:
    only_malformed(parse_ethernet, data)
    line = describe(data)
    assert isinstance(line, str) and line and "\n" not in line


@fuzz
@given(data=fuzz_input(arp_messages()))
def test_arp(data: bytes) -> None:
    only_malformed(parse_arp, data)


@fuzz
@given(data=fuzz_input(ipv4_packets()), verify=st.booleans())
def test_ipv4(data: bytes, verify: bool) -> None:
    ip = only_malformed(parse_ipv4, data, verify)
    if ip is not None:
        assert len(ip.payload) == ip.total_length - ip.header_length


@fuzz
@given(data=fuzz_input(ipv4_fragments()) | fuzz_input(ipv4_packets()))
def test_ipv4_fragment(data: bytes) -> None:
    """A fragment is either fit for reassembly (within 65535 bytes, a multiple of 8 unless
    last, not empty) or MalformedPacket, never anything else."""
    ip = only_malformed(parse_ipv4, data, False)
    if ip is None or not ip.is_fragment:
        return
    try:
        frag = ipv4_fragment(ip)
    except MalformedPacket as exc:
        assert exc.layer == "ipv4" and exc.reason
        return
    assert frag.offset == ip.fragment_offset and frag.payload.obj is data and len(frag.payload) > 0
    assert ip.header_length + frag.offset + len(frag.payload) <= 0xFFFF
    assert not frag.more or len(frag.payload) % 8 == 0


@fuzz
@given(offset=st.integers(0, 0x20000), more=st.booleans(), size=st.integers(0, 40), limit=st.integers(0, 0xFFFF))
def test_check_fragment_is_the_one_rule_for_every_family(offset: int, more: bool, size: int, limit: int) -> None:
    payload = memoryview(bytes(size))
    fits = size > 0 and (not more or size % 8 == 0) and offset + size <= limit
    try:
        frag = check_fragment(offset, more, payload, limit, "ipv6")
    except MalformedPacket as exc:
        assert not fits and exc.layer == "ipv6"
    else:
        assert fits and frag == (offset, more, payload)


@fuzz
@given(
    data=fuzz_input(icmp_messages()) | mutated(st.just(vectors.PORT_UNREACHABLE[34:])),
    verify=st.booleans(),
)
def test_icmp_and_quoted(data: bytes, verify: bool) -> None:
    msg = only_malformed(parse_icmp, data, verify)
    if msg is not None:
        try:
            quoted, sport, dport = parse_quoted(msg)
        except MalformedPacket as exc:
            assert exc.layer == "icmp"
        else:
            assert 0 <= sport <= 0xFFFF and 0 <= dport <= 0xFFFF and quoted.payload.obj is data


@fuzz
@given(data=fuzz_input(udp_datagrams().map(lambda t: t[2])), src=ipv4_address, dst=ipv4_address, verify=st.booleans())
def test_udp(data: bytes, src: bytes, dst: bytes, verify: bool) -> None:
    only_malformed(parse_udp, data, src, dst, verify)


@fuzz
@given(data=fuzz_input(tcp_segments().map(lambda t: t[2])), src=ipv4_address, dst=ipv4_address, verify=st.booleans())
def test_tcp(data: bytes, src: bytes, dst: bytes, verify: bool) -> None:
    seg = only_malformed(parse_tcp, data, src, dst, verify)
    if seg is not None:
        assert 20 <= seg.header_length <= min(60, len(data)) and len(seg.sack_blocks) <= 4


@fuzz
@given(data=mutated(st.sampled_from(vectors.ALL_FRAMES)))
def test_mutated_captures_through_every_layer(data: bytes) -> None:
    """Walk a mutated real frame down the layers as the stack would, with checksums off."""
    eth = only_malformed(parse_ethernet, data)
    if eth is None:
        return
    only_malformed(parse_arp, data[14:])
    ip = only_malformed(parse_ipv4, data[14:], False)
    if ip is not None:
        body = bytes(ip.payload)
        only_malformed(parse_tcp, body, ip.src, ip.dst, False)
        only_malformed(parse_udp, body, ip.src, ip.dst, False)
        only_malformed(parse_icmp, body, False)
    assert describe(data)


def test_a_bad_checksum_is_caught_after_a_single_bit_flip() -> None:
    """Each checksummed layer notices any one flipped bit in what it covers."""
    ip_bytes = vectors.TCP_DATA[14:]
    for bit in range(len(ip_bytes) * 8):
        broken = bytearray(ip_bytes)
        broken[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(MalformedPacket):
            ip = parse_ipv4(bytes(broken))
            parse_tcp(ip.payload, ip.src, ip.dst)
