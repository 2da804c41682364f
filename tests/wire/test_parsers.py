"""Edge cases of each parser: what is accepted, and the reason given for what is not."""

from __future__ import annotations

import array
import pickle

import pytest

from tests.wire import vectors as v
from usernet._native.pure import TCP_ERRORS
from usernet.native import internet_checksum
from usernet.wire import (
    ACK,
    ETHERTYPE_IPV4,
    ICMP_ECHO_REQUEST,
    IPPROTO_TCP,
    IPPROTO_UDP,
    MalformedPacket,
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

SRC = v.IP_1
DST = v.IP_2


def ipv4_packet(protocol: int, payload: bytes) -> bytearray:
    out = bytearray(20 + len(payload))
    emit_ipv4_header(out, 0, SRC, DST, protocol, len(payload))
    out[20:] = payload
    return out


def tcp_segment(options: bytes = b"", payload: bytes = b"", flags: int = ACK) -> bytearray:
    out = bytearray(20 + len(options) + len(payload))
    emit_tcp(out, 0, SRC, DST, 1000, 80, 1, 2, flags, 512, options, payload)
    return out


def reject(layer: str, reason_part: str, parse, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]  # pytest parametrizes these
    with pytest.raises(MalformedPacket) as info:
        parse(*args, **kwargs)
    assert info.value.layer == layer
    assert reason_part in info.value.reason
    assert str(info.value) == f"{layer}: {info.value.reason}"


def test_malformed_packet_is_a_value_error_and_pickles() -> None:
    err = MalformedPacket("udp", "bad checksum")
    assert isinstance(err, ValueError)
    again = pickle.loads(pickle.dumps(err))
    assert (again.layer, again.reason, str(again)) == ("udp", "bad checksum", "udp: bad checksum")


# --- buffers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [bytes, bytearray, memoryview, lambda b: memoryview(bytearray(b)).cast("c"), lambda b: memoryview(b"\0" + b)[1:]],
    ids=["bytes", "bytearray", "memoryview", "char-view", "unaligned"],
)
def test_any_contiguous_buffer_is_accepted(make) -> None:  # type: ignore[no-untyped-def]  # pytest parametrizes these
    eth = parse_ethernet(make(v.TCP_DATA))
    assert eth.payload.format == "B" and eth.payload.ndim == 1
    ip = parse_ipv4(eth.payload)
    assert bytes(parse_tcp(ip.payload, ip.src, ip.dst).payload) == b"hi\n"


def test_multibyte_item_buffers_are_read_as_bytes() -> None:
    frame = v.ARP_REQUEST + b"\0" * 2  # 44 bytes = 11 four-byte items
    as_words = memoryview(array.array("I", frame))
    eth = parse_ethernet(as_words)
    assert len(eth.payload) == 30 and parse_arp(eth.payload).tpa == v.IP_2


@pytest.mark.parametrize(
    "parse",
    [
        parse_ethernet,
        parse_arp,
        parse_ipv4,
        parse_icmp,
        lambda d: parse_udp(d, SRC, DST),
        lambda d: parse_tcp(d, SRC, DST),
    ],
)
def test_unusable_buffers_are_malformed(parse) -> None:  # type: ignore[no-untyped-def]  # pytest parametrizes these
    released = memoryview(bytes(64))
    released.release()
    for bad in (None, 42, "a string", memoryview(bytes(128))[::2], released, [1, 2, 3]):
        with pytest.raises(MalformedPacket, match="not a contiguous bytes-like object"):
            parse(bad)


# --- ethernet ----------------------------------------------------------------------


def test_ethernet_vlan_tag() -> None:
    frame = v.TCP_SYN[:12] + b"\x81\x00\x20\x64" + v.TCP_SYN[12:]
    eth = parse_ethernet(frame)
    assert (eth.ethertype, eth.vlan) == (ETHERTYPE_IPV4, 100)
    assert bytes(eth.payload) == v.TCP_SYN[14:]
    reject("ethernet", "802.1Q", parse_ethernet, frame[:17])


def test_ethernet_short() -> None:
    reject("ethernet", "shorter than the 14-byte header", parse_ethernet, v.TCP_SYN[:13])
    assert len(parse_ethernet(v.TCP_SYN[:14]).payload) == 0


# --- arp ---------------------------------------------------------------------------


def test_arp_refuses_other_types_and_short_messages() -> None:
    body = bytearray(v.ARP_REQUEST[14:])
    reject("arp", "shorter than the 28-byte", parse_arp, body[:27])
    for index, value in ((1, 6), (2, 0x86), (4, 16), (5, 16)):  # IEEE 802, IPv6 ptype, hlen, plen
        changed = bytearray(body)
        changed[index] = value
        reject("arp", "unsupported hardware/protocol type", parse_arp, changed)
    assert parse_arp(body + b"\0" * 18).tpa == v.IP_2  # Ethernet padding is fine


# --- ipv4 --------------------------------------------------------------------------


def test_ipv4_trims_link_padding() -> None:
    frame = v.TCP_RST_ACK + bytes(6)  # padded to the 60-byte Ethernet minimum
    ip = parse_ipv4(parse_ethernet(frame).payload)
    assert len(ip.payload) == 20 and ip.total_length == 40


def test_ipv4_options_and_fragments() -> None:
    packet = bytearray(ipv4_packet(IPPROTO_UDP, bytes(12)))
    # add a 4-byte option (NOP NOP NOP EOL): IHL 6, total length + 4, checksum recomputed
    packet[20:20] = b"\x01\x01\x01\x00"
    packet[0] = 0x46
    packet[2:4] = (36).to_bytes(2, "big")
    packet[6:8] = (0x2000 | 185).to_bytes(2, "big")  # MF, offset 185 * 8
    packet[10:12] = b"\0\0"
    packet[10:12] = internet_checksum(packet[:24]).to_bytes(2, "big")
    ip = parse_ipv4(packet)
    assert (ip.header_length, bytes(ip.options), len(ip.payload)) == (24, b"\x01\x01\x01\x00", 12)
    assert ip.more_fragments and not ip.dont_fragment and ip.fragment_offset == 1480 and ip.is_fragment


@pytest.mark.parametrize(
    ("index", "value", "reason"),
    [
        (0, 0x65, "version 6 is not 4"),
        (0, 0x44, "header length 16 is below 20"),
        (0, 0x4F, "header length 60 runs past"),
        (3, 19, "total length 19 is shorter than the 20-byte header"),
        (3, 0xFF, "exceeds the"),
        (10, 0x00, "bad header checksum"),
    ],
)
def test_ipv4_rejections(index: int, value: int, reason: str) -> None:
    packet = ipv4_packet(IPPROTO_UDP, bytes(12))
    packet[index] = value
    reject("ipv4", reason, parse_ipv4, packet)


def test_ipv4_checksum_check_can_be_skipped() -> None:
    packet = ipv4_packet(IPPROTO_UDP, bytes(12))
    packet[10] ^= 0xFF
    reject("ipv4", "bad header checksum", parse_ipv4, packet)
    assert parse_ipv4(packet, verify_checksum=False).checksum == int.from_bytes(packet[10:12], "big")
    reject("ipv4", "shorter than the 20-byte header", parse_ipv4, packet[:19])


# --- icmp --------------------------------------------------------------------------


def icmp_message(icmp_type: int, code: int, rest: int, payload: bytes) -> bytearray:
    out = bytearray(8 + len(payload))
    emit_icmp(out, 0, icmp_type, code, rest, payload)
    return out


def test_icmp_checksum_and_length() -> None:
    msg = icmp_message(ICMP_ECHO_REQUEST, 0, (7 << 16) | 9, b"ping")
    assert parse_icmp(msg)[:2] == (8, 0) and (parse_icmp(msg).ident, parse_icmp(msg).sequence) == (7, 9)
    msg[-1] ^= 1
    reject("icmp", "bad checksum", parse_icmp, msg)
    assert bytes(parse_icmp(msg, verify_checksum=False).payload) == b"pinf"
    reject("icmp", "shorter than the 8-byte header", parse_icmp, msg[:7])
    assert parse_icmp(icmp_message(0, 0, 0, b"")).checksum == 0xFFFF


def test_parse_quoted_frag_needed_with_short_quote() -> None:
    original = ipv4_packet(IPPROTO_TCP, bytes(tcp_segment(payload=bytes(1000))))
    msg = parse_icmp(icmp_message(3, 4, 1400, bytes(original[:28])))
    assert msg.next_hop_mtu == 1400
    quoted, sport, dport = parse_quoted(msg)
    assert (quoted.total_length, len(quoted.payload), sport, dport) == (1040, 8, 1000, 80)


def test_parse_quoted_rejections() -> None:
    original = ipv4_packet(IPPROTO_UDP, bytes(12))
    reject("icmp", "type 8 does not quote", parse_quoted, parse_icmp(icmp_message(8, 0, 0, bytes(original))))
    reject("icmp", "lacks the 8 bytes", parse_quoted, parse_icmp(icmp_message(3, 3, 0, bytes(original[:27]))))
    broken = bytearray(original)
    broken[0] = 0x55
    reject("icmp", "quoted datagram: version 5", parse_quoted, parse_icmp(icmp_message(11, 0, 0, bytes(broken))))
    broken[0] = 0x45
    broken[10] ^= 0xFF  # quoted headers are not checksummed (routers may have changed them)
    assert parse_quoted(parse_icmp(icmp_message(11, 0, 0, bytes(broken))))[0].protocol == IPPROTO_UDP


# --- udp ---------------------------------------------------------------------------


def udp_datagram(payload: bytes) -> bytearray:
    out = bytearray(8 + len(payload))
    emit_udp(out, 0, SRC, DST, 5000, 53, payload)
    return out


def test_udp_length_field() -> None:
    dgram = udp_datagram(b"abc")
    assert bytes(parse_udp(dgram + b"xx", SRC, DST).payload) == b"abc"  # IP payload longer: trailer ignored
    reject("udp", "length field 11 does not fit the 10 bytes", parse_udp, dgram[:10], SRC, DST)
    dgram[4:6] = b"\x00\x07"
    reject("udp", "length field 7", parse_udp, dgram, SRC, DST)
    reject("udp", "shorter than the 8-byte header", parse_udp, dgram[:7], SRC, DST)


def test_udp_checksum() -> None:
    dgram = udp_datagram(b"abc")
    reject("udp", "bad checksum", parse_udp, dgram, SRC, bytes((192, 0, 2, 3)))
    dgram[-1] ^= 0x40
    reject("udp", "bad checksum", parse_udp, dgram, SRC, DST)
    assert bytes(parse_udp(dgram, SRC, DST, verify_checksum=False).payload) == b"abc"[:2] + bytes([ord("c") ^ 0x40])
    dgram[6:8] = b"\0\0"  # zero: the sender computed no checksum
    assert parse_udp(dgram, SRC, DST).checksum == 0


def test_udp_computed_zero_is_sent_as_ffff() -> None:
    # with a zero payload word the sum is s0; a payload word of 0xFFFF - s0 makes it 0xFFFF,
    # whose complement, the computed checksum, is 0
    s0 = ~int.from_bytes(udp_datagram(b"\0\0")[6:8], "big") & 0xFFFF
    dgram = udp_datagram((0xFFFF - s0).to_bytes(2, "big"))
    assert dgram[6:8] == b"\xff\xff"
    assert parse_udp(dgram, SRC, DST).checksum == 0xFFFF


# --- tcp ---------------------------------------------------------------------------


def test_tcp_error_codes_become_reasons() -> None:
    seg = tcp_segment(encode_tcp_options(mss=1460))
    reject("tcp", TCP_ERRORS[-1], parse_tcp, seg[:19], SRC, DST)
    low = bytearray(seg)
    low[12] = 0x40
    reject("tcp", TCP_ERRORS[-2], parse_tcp, low, SRC, DST)
    reject("tcp", TCP_ERRORS[-3], parse_tcp, seg[:22], SRC, DST)
    bad_option = bytearray(seg)
    bad_option[21] = 9  # MSS option claiming 9 bytes in a 4-byte option area
    reject("tcp", TCP_ERRORS[-4], parse_tcp, bad_option, SRC, DST)
    assert set(TCP_ERRORS) == {-1, -2, -3, -4}


def test_tcp_checksum_and_ns_flag() -> None:
    seg = tcp_segment(payload=b"data", flags=0x100 | ACK)
    parsed = parse_tcp(seg, SRC, DST)
    assert parsed.flags == 0x110 and seg[12] == 0x51
    seg[-1] ^= 1
    reject("tcp", "bad checksum", parse_tcp, seg, SRC, DST)
    assert bytes(parse_tcp(seg, SRC, DST, verify_checksum=False).payload) == b"dat`"


def test_tcp_options_with_wrong_lengths_are_ignored() -> None:
    # MSS with length 3 + pad, window scale with length 4, unknown kind 30 with 4 bytes
    options = b"\x02\x03\x05\x01" + b"\x03\x04\x07\x00" + b"\x1e\x04\xaa\xbb"
    seg = parse_tcp(tcp_segment(options), SRC, DST)
    assert (seg.mss, seg.wscale, seg.header_length) == (None, None, 32)


def test_tcp_sack_blocks() -> None:
    blocks = ((1, 2), (3, 4), (0xFFFFFFF0, 5))
    seg = parse_tcp(tcp_segment(encode_tcp_options(timestamp=(1, 2), sack_blocks=blocks)), SRC, DST)
    assert seg.sack_blocks == blocks and seg.timestamp == (1, 2)
