"""IPv6, ICMPv6 and NDP: round trips, RFC 8200's extension-header rules, an independent checksum, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.wire.strategies import ipv6_address, ipv6_packets, mac, ndp_messages, offset, payload, u8, u32
from tests.wire.test_fuzz import mutated, only_malformed
from usernet.wire import MalformedPacket
from usernet.wire.icmpv6 import (
    ICMPV6_DEST_UNREACH,
    ICMPV6_ECHO_REQUEST,
    emit_icmpv6,
    parse_icmpv6,
    parse_quoted_v6,
)
from usernet.wire.ipv6 import (
    ALL_NODES,
    IPPROTO_ICMPV6,
    IPPROTO_NONE,
    PARAM_BAD_FIELD,
    PARAM_BAD_NEXT_HEADER,
    PARAM_BAD_OPTION,
    ParameterProblem,
    emit_ipv6_header,
    multicast_mac,
    parse_ipv6,
    solicited_node,
    walk_extensions,
)
from usernet.wire.ndp import (
    NA_OVERRIDE,
    NA_SOLICITED,
    ND_NEIGHBOR_ADVERT,
    ND_NEIGHBOR_SOLICIT,
    ND_ROUTER_ADVERT,
    ND_ROUTER_SOLICIT,
    PrefixInfo,
    emit_neighbor_advert,
    emit_neighbor_solicit,
    emit_router_advert,
    parse_neighbor_advert,
    parse_neighbor_solicit,
    parse_router_advert,
    parse_router_solicit,
)

pytestmark = pytest.mark.usefixtures("backend")
many = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

SRC = bytes.fromhex("fe800000000000000000000000000001")
DST = bytes.fromhex("20010db8000000000000000000000002")


def packet(next_header: int, body: bytes, dst: bytes = DST) -> bytes:
    out = bytearray(40 + len(body))
    emit_ipv6_header(out, 0, SRC, dst, next_header, len(body), hop_limit=64)
    out[40:] = body
    return bytes(out)


def oracle_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    """RFC 8200 §8.1 by the book, word by word: the pseudo-header, then the message."""
    data = src + dst + len(message).to_bytes(4, "big") + bytes(3) + bytes([IPPROTO_ICMPV6]) + message
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@many
@given(src=ipv6_address, dst=ipv6_address, kind=u8, code=u8, rest=u32, body=payload, at=offset)
def test_icmpv6_round_trip_and_checksum(src: bytes, dst: bytes, kind: int, code: int, rest: int, body: bytes, at: int):
    buf = bytearray(b"\xa5" * (at + 8 + len(body) + 3))
    n = emit_icmpv6(buf, at, src, dst, kind, code, rest, body)
    message = bytes(buf[at : at + n])
    zeroed = message[:2] + b"\0\0" + message[4:]
    assert int.from_bytes(message[2:4], "big") == oracle_checksum(src, dst, zeroed)
    msg = parse_icmpv6(message, src, dst)
    assert (msg.type, msg.code, msg.rest, bytes(msg.payload)) == (kind, code, rest, body)
    other = bytes([dst[0] ^ 1]) + dst[1:]
    with pytest.raises(MalformedPacket):
        parse_icmpv6(message, src, other)  # the pseudo-header counts


@many
@given(src=ipv6_address, dst=ipv6_address, nh=u8, hop=u8, tc=u8, flow=st.integers(0, 0xFFFFF), body=payload)
def test_ipv6_header_round_trip(src: bytes, dst: bytes, nh: int, hop: int, tc: int, flow: int, body: bytes):
    out = bytearray(40 + len(body) + 5)  # link padding after the packet
    emit_ipv6_header(out, 0, src, dst, nh, len(body), hop, tc, flow)
    out[40 : 40 + len(body)] = body
    ip = parse_ipv6(out)
    assert (ip.src, ip.dst, ip.next_header, ip.hop_limit, ip.traffic_class, ip.flow_label) == (
        src,
        dst,
        nh,
        hop,
        tc,
        flow,
    )
    assert bytes(ip.payload) == body and ip.payload_length == len(body)


def test_extension_headers_are_skipped_by_their_lengths():
    hop_by_hop = bytes([60, 0, 1, 4, 0, 0, 0, 0])  # PadN of 4
    router_alert = bytes([58, 0, 5, 2, 0, 0, 1, 0])  # action 00: skipped though unknown... and a Pad1
    echo = bytearray(12)
    emit_icmpv6(echo, 0, SRC, DST, ICMPV6_ECHO_REQUEST, 0, 0x10001, b"ping")
    ip = parse_ipv6(packet(0, hop_by_hop + router_alert + bytes(echo)))
    upper = walk_extensions(ip)
    assert upper.protocol == IPPROTO_ICMPV6 and upper.pointer == 48 and upper.fragment is None
    assert bytes(upper.payload) == bytes(echo)


@pytest.mark.parametrize(
    ("action", "multicast", "report"),
    [(1, False, False), (2, False, True), (2, True, True), (3, False, True), (3, True, False)],
)
def test_unknown_options_follow_the_two_high_bits(action: int, multicast: bool, report: bool):
    kind = (action << 6) | 0x1E
    options = bytes([IPPROTO_NONE, 0, 1, 0, kind, 0, 0, 0])  # PadN 0, then the option with no data
    dst = ALL_NODES if multicast else DST
    with pytest.raises(ParameterProblem) as caught:
        walk_extensions(parse_ipv6(packet(60, options, dst)))
    assert (caught.value.code, caught.value.pointer, caught.value.report) == (PARAM_BAD_OPTION, 44, report)


def test_routing_header_type_0_with_segments_left_is_refused():
    routing = bytes([58, 2, 0, 1]) + bytes(4) + DST  # type 0, one segment left, one address
    with pytest.raises(ParameterProblem) as caught:
        walk_extensions(parse_ipv6(packet(43, routing)))
    assert (caught.value.code, caught.value.pointer, caught.value.report) == (PARAM_BAD_FIELD, 42, True)


def test_routing_header_with_no_segments_left_is_ignored():
    routing = bytes([IPPROTO_NONE, 0, 0, 0]) + bytes(4)
    assert walk_extensions(parse_ipv6(packet(43, routing))).protocol == IPPROTO_NONE


def test_hop_by_hop_options_anywhere_but_first_are_refused():
    chain = bytes([0, 0, 1, 4, 0, 0, 0, 0]) + bytes([59, 0, 1, 4, 0, 0, 0, 0])  # dest opts, then hop-by-hop
    with pytest.raises(ParameterProblem) as caught:
        walk_extensions(parse_ipv6(packet(60, chain)))
    assert (caught.value.code, caught.value.pointer) == (PARAM_BAD_NEXT_HEADER, 40)


def test_fragment_header_ends_the_walk_and_atomic_fragments_do_not():
    later = bytes([17, 0, 0x05, 0x39, 0xDE, 0xAD, 0xBE, 0xEF]) + b"data"  # offset 0x538 bytes, M set
    upper = walk_extensions(parse_ipv6(packet(44, later)))
    assert upper.protocol == 17 and upper.fragment is not None
    assert (upper.fragment.offset, upper.fragment.more, upper.fragment.ident) == (0x538, True, 0xDEADBEEF)
    assert bytes(upper.payload) == b"data"
    atomic = bytes([17, 0, 0, 0, 0, 0, 0, 7]) + b"whole"
    upper = walk_extensions(parse_ipv6(packet(44, atomic)))
    assert upper.fragment is None and upper.protocol == 17 and bytes(upper.payload) == b"whole"


def test_headers_cut_short_are_malformed():
    for body in (bytes([58, 0, 1]), bytes([58, 1, 1, 4, 0, 0, 0, 0]), bytes([58, 0, 1, 9, 0, 0, 0, 0])):
        with pytest.raises(MalformedPacket) as caught:
            walk_extensions(parse_ipv6(packet(60, body)))
        assert not isinstance(caught.value, ParameterProblem)


def test_multicast_names():
    address = bytes.fromhex("20010db80000000002aabbfffe123456")
    assert solicited_node(address) == bytes.fromhex("ff0200000000000000000001ff123456")
    assert multicast_mac(solicited_node(address)) == bytes.fromhex("3333ff123456")


def test_ndp_messages_round_trip():
    buf = bytearray(200)
    target = DST
    n = emit_neighbor_solicit(buf, 0, SRC, solicited_node(target), target, b"\x02" * 6)
    ns = parse_neighbor_solicit(parse_icmpv6(buf[:n], SRC, solicited_node(target)))
    assert ns.target == target and ns.options.source_mac == b"\x02" * 6
    n = emit_neighbor_advert(buf, 0, target, SRC, target, NA_SOLICITED | NA_OVERRIDE, b"\x04" * 6)
    na = parse_neighbor_advert(parse_icmpv6(buf[:n], target, SRC))
    assert (na.router, na.solicited, na.override, na.target, na.options.target_mac) == (
        False, True, True, target, b"\x04" * 6,
    )  # fmt: skip
    prefix = PrefixInfo(bytes.fromhex("20010db8000000010000000000000000"), 64, True, True, 0xFFFFFFFF, 600)
    n = emit_router_advert(buf, 0, SRC, ALL_NODES, 1800, b"\x06" * 6, (prefix,), 1400, 32, 30000, 1000)
    ra = parse_router_advert(parse_icmpv6(buf[:n], SRC, ALL_NODES))
    assert (ra.hop_limit, ra.router_lifetime, ra.reachable_time, ra.retrans_timer) == (32, 1800, 30000, 1000)
    assert ra.options.prefixes == (prefix,) and ra.options.mtu == 1400 and ra.options.source_mac == b"\x06" * 6


def test_ndp_rejects_zero_length_options_and_wrong_codes():
    buf = bytearray(64)
    n = emit_neighbor_solicit(buf, 0, SRC, DST, DST, b"\x02" * 6)
    broken = bytearray(buf[:n])
    broken[25] = 0  # the source link-layer option's length
    with pytest.raises(MalformedPacket):
        parse_neighbor_solicit(parse_icmpv6(broken, SRC, DST, verify_checksum=False))
    broken = bytearray(buf[:n])
    broken[1] = 1  # code
    with pytest.raises(MalformedPacket):
        parse_neighbor_solicit(parse_icmpv6(broken, SRC, DST, verify_checksum=False))


def test_quoted_packet_gives_the_ports_even_when_cut_short():
    udp = (40000).to_bytes(2, "big") + (53).to_bytes(2, "big") + (1000).to_bytes(2, "big") + bytes(2) + bytes(992)
    original = packet(17, udp)[: 48 + 8]  # the quote stops inside the payload
    buf = bytearray(8 + len(original))
    emit_icmpv6(buf, 0, DST, SRC, ICMPV6_DEST_UNREACH, 4, 0, original)
    quoted, upper, sport, dport = parse_quoted_v6(parse_icmpv6(buf, DST, SRC))
    assert (quoted.payload_length, upper.protocol, sport, dport) == (1000, 17, 40000, 53)


def _walk_everything(data: bytes) -> None:
    ip = only_malformed(parse_ipv6, data)
    if ip is None:
        return
    try:
        upper = walk_extensions(ip)
    except MalformedPacket as exc:
        assert exc.layer == "ipv6" and exc.reason
        return
    assert upper.payload.obj is data
    if upper.protocol != IPPROTO_ICMPV6:
        return
    msg = only_malformed(parse_icmpv6, bytes(upper.payload), ip.src, ip.dst, False)
    if msg is None:
        return
    parsers = {
        ND_ROUTER_SOLICIT: parse_router_solicit,
        ND_ROUTER_ADVERT: parse_router_advert,
        ND_NEIGHBOR_SOLICIT: parse_neighbor_solicit,
        ND_NEIGHBOR_ADVERT: parse_neighbor_advert,
    }
    for parse in (*parsers.values(), parse_quoted_v6):
        try:
            parse(msg)
        except MalformedPacket as exc:
            assert exc.layer in ("ipv6", "icmpv6", "ndp") and exc.reason


@many
@given(data=st.binary(max_size=160) | mutated(ipv6_packets()))
def test_fuzzed_packets_only_raise_malformed_packet(data: bytes):
    _walk_everything(data)


@many
@given(data=ipv6_packets())
def test_generated_packets_walk_to_their_upper_layer(data: bytes):
    upper = walk_extensions(parse_ipv6(data))
    assert upper.protocol in (IPPROTO_ICMPV6, 17, IPPROTO_NONE) and upper.fragment is None


@many
@given(message=mutated(ndp_messages(SRC, DST)), lladdr=mac)
def test_fuzzed_ndp_bodies(message: bytes, lladdr: bytes):
    del lladdr
    msg = only_malformed(parse_icmpv6, message, SRC, DST, False)
    if msg is not None:
        for parse in (parse_router_solicit, parse_router_advert, parse_neighbor_solicit, parse_neighbor_advert):
            try:
                parse(msg)
            except MalformedPacket as exc:
                assert exc.layer == "ndp"
