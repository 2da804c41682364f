"""Known frames decode to the values tshark showed, and re-emit byte for byte."""

from __future__ import annotations

import pytest

from tests.wire import vectors as v
from usernet.native import internet_checksum, sum16
from usernet.wire import (
    ACK,
    ARP_REPLY,
    ARP_REQUEST,
    BROADCAST_MAC,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ICMP_DEST_UNREACH,
    ICMP_ECHO_REQUEST,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    PSH,
    RST,
    SYN,
    UNREACH_PORT,
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
    parse_quoted,
    parse_tcp,
    parse_udp,
)

pytestmark = pytest.mark.usefixtures("backend")


def test_rfc1071_example() -> None:
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert sum16(data) == 0xDDF2
    assert internet_checksum(data) == 0x220D
    # appending the checksum makes the whole verify, which is how every parser checks
    assert sum16(data + b"\x22\x0d") == 0xFFFF


def test_arp_request() -> None:
    eth = parse_ethernet(v.ARP_REQUEST)
    assert (eth.dst, eth.src, eth.ethertype, eth.vlan) == (BROADCAST_MAC, v.MAC_1, ETHERTYPE_ARP, None)
    arp = parse_arp(eth.payload)
    assert arp == (ARP_REQUEST, v.MAC_1, v.IP_1, bytes(6), v.IP_2)
    out = bytearray(42)
    emit_ethernet(out, 0, BROADCAST_MAC, v.MAC_1, ETHERTYPE_ARP)
    assert emit_arp(out, 14, *arp) == 28
    assert out == v.ARP_REQUEST


def test_arp_reply() -> None:
    arp = parse_arp(parse_ethernet(v.ARP_REPLY).payload)
    assert arp == (ARP_REPLY, v.MAC_2, v.IP_2, v.MAC_1, v.IP_1)


def test_echo_request() -> None:
    eth = parse_ethernet(v.ECHO_REQUEST)
    assert (eth.dst, eth.src, eth.ethertype) == (v.MAC_2, v.MAC_1, ETHERTYPE_IPV4)
    ip = parse_ipv4(eth.payload)
    assert (ip.src, ip.dst, ip.protocol, ip.ttl, ip.total_length, ip.header_length) == (
        v.IP_1,
        v.IP_2,
        IPPROTO_ICMP,
        64,
        84,
        20,
    )
    assert ip.dont_fragment and not ip.more_fragments and not ip.is_fragment
    assert (ip.ident, ip.checksum, bytes(ip.options)) == (0x0F51, 0xA754, b"")
    msg = parse_icmp(ip.payload)
    assert (msg.type, msg.code, msg.ident, msg.sequence) == (ICMP_ECHO_REQUEST, 0, 0x2164, 1)
    assert len(msg.payload) == 56 and bytes(msg.payload).endswith(b"a" * 40)
    out = bytearray(len(v.ECHO_REQUEST))
    emit_ethernet(out, 0, eth.dst, eth.src, eth.ethertype)
    emit_ipv4_header(out, 14, ip.src, ip.dst, ip.protocol, len(ip.payload), ttl=ip.ttl, ident=ip.ident)
    emit_icmp(out, 34, msg.type, msg.code, msg.rest, msg.payload)
    assert out == v.ECHO_REQUEST


def test_udp_and_its_port_unreachable() -> None:
    ip = parse_ipv4(parse_ethernet(v.UDP_HELLO).payload)
    udp = parse_udp(ip.payload, ip.src, ip.dst)
    assert (udp.sport, udp.dport, udp.length, udp.checksum, bytes(udp.payload)) == (48473, 9, 14, 0x7A8F, b"hello\n")
    out = bytearray(14)
    assert emit_udp(out, 0, ip.src, ip.dst, udp.sport, udp.dport, udp.payload) == 14
    assert out == bytes(ip.payload)

    err_ip = parse_ipv4(parse_ethernet(v.PORT_UNREACHABLE).payload)
    assert err_ip.tos == 0xC0
    msg = parse_icmp(err_ip.payload)
    assert (msg.type, msg.code) == (ICMP_DEST_UNREACH, UNREACH_PORT)
    quoted, sport, dport = parse_quoted(msg)
    assert (quoted.src, quoted.dst, quoted.protocol, quoted.total_length) == (v.IP_1, v.IP_2, IPPROTO_UDP, 34)
    assert (sport, dport) == (48473, 9)
    assert bytes(quoted.payload) == bytes(ip.payload)


def test_tcp_syn_as_linux_sends_it() -> None:
    ip = parse_ipv4(parse_ethernet(v.TCP_SYN).payload)
    seg = parse_tcp(ip.payload, ip.src, ip.dst)
    assert (seg.sport, seg.dport, seg.seq, seg.ack, seg.flags, seg.window) == (58282, 7, 3840596179, 0, SYN, 64240)
    assert (seg.mss, seg.wscale, seg.sack_permitted, seg.timestamp) == (1460, 10, True, (4072934463, 0))
    assert (seg.header_length, seg.sack_blocks, bytes(seg.payload)) == (40, (), b"")
    options = encode_tcp_options(mss=1460, sack_permitted=True, timestamp=(4072934463, 0), wscale=10)
    assert options == bytes(ip.payload[20:40])
    out = bytearray(40)
    emit_tcp(out, 0, ip.src, ip.dst, seg.sport, seg.dport, seg.seq, seg.ack, seg.flags, seg.window, options)
    assert out == bytes(ip.payload)


def test_tcp_data_and_rst() -> None:
    ip = parse_ipv4(parse_ethernet(v.TCP_DATA).payload)
    seg = parse_tcp(ip.payload, ip.src, ip.dst)
    assert seg.flags == PSH | ACK and bytes(seg.payload) == b"hi\n"
    assert encode_tcp_options(timestamp=seg.timestamp) == bytes(ip.payload[20:32])
    ip = parse_ipv4(parse_ethernet(v.TCP_RST_ACK).payload)
    seg = parse_tcp(ip.payload, ip.src, ip.dst)
    assert (seg.flags, seg.seq, seg.ack, seg.window, seg.header_length) == (RST | ACK, 0, 1134251802, 0, 20)
    assert seg.timestamp is None and seg.mss is None and not seg.sack_permitted


@pytest.mark.parametrize("frame", v.ALL_FRAMES, ids=range(len(v.ALL_FRAMES)))
def test_captured_frames_verify_and_payloads_are_views(frame: bytes) -> None:
    eth = parse_ethernet(frame)
    assert eth.payload.obj is frame
    if eth.ethertype != ETHERTYPE_IPV4:
        return
    ip = parse_ipv4(eth.payload)
    assert ip.payload.obj is frame
    if ip.protocol == IPPROTO_TCP:
        inner = parse_tcp(ip.payload, ip.src, ip.dst).payload
    elif ip.protocol == IPPROTO_UDP:
        inner = parse_udp(ip.payload, ip.src, ip.dst).payload
    else:
        inner = parse_icmp(ip.payload).payload
    assert inner.obj is frame and inner.format == "B"


def test_internet_checksum_is_public_on_the_wire_package():
    from usernet import wire

    rfc1071 = bytes.fromhex("0001f203f4f5f6f7")
    assert wire.internet_checksum(rfc1071) == 0x220D
    assert wire.internet_checksum(memoryview(b"x" + rfc1071)[1:]) == 0x220D  # unaligned view
