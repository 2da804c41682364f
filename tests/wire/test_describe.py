"""describe() gives tcpdump-like lines for known frames."""

from __future__ import annotations

import pytest

from tests.wire import vectors as v
from usernet.native import internet_checksum
from usernet.wire import describe, emit_ethernet, emit_icmp, emit_ipv4_header, emit_tcp, encode_tcp_options

pytestmark = pytest.mark.usefixtures("backend")


@pytest.mark.parametrize(
    ("frame", "line"),
    [
        (v.ARP_REQUEST, "ARP, Request who-has 192.0.2.2 tell 192.0.2.1"),
        (v.ARP_REPLY, "ARP, Reply 192.0.2.2 is-at 1a:99:06:92:d9:5e"),
        (v.ECHO_REQUEST, "192.0.2.1 > 192.0.2.2: ICMP echo request, id 8548, seq 1, length 64"),
        (v.ECHO_REPLY, "192.0.2.2 > 192.0.2.1: ICMP echo reply, id 8548, seq 1, length 64"),
        (v.UDP_HELLO, "192.0.2.1.48473 > 192.0.2.2.9: UDP, length 6"),
        (v.PORT_UNREACHABLE, "192.0.2.2 > 192.0.2.1: ICMP 192.0.2.2 udp port 9 unreachable, length 42"),
        (
            v.TCP_SYN,
            (
                "192.0.2.1.58282 > 192.0.2.2.7: Flags [S], seq 3840596179, win 64240, "
                "options [mss 1460,sackOK,TS val 4072934463 ecr 0,wscale 10], length 0"
            ),
        ),
        (
            v.TCP_DATA,
            (
                "192.0.2.1.58282 > 192.0.2.2.7: Flags [P.], seq 3840596180:3840596183, ack 1658377437, win 63, "
                "options [TS val 4072934463 ecr 2723094681], length 3"
            ),
        ),
        (v.TCP_RST_ACK, "192.0.2.2.9 > 192.0.2.1.39824: Flags [R.], seq 0, ack 1134251802, win 0, length 0"),
    ],
)
def test_captured_frames(frame: bytes, line: str) -> None:
    assert describe(frame) == line


def test_malformed_frames_are_described() -> None:
    assert describe(b"\x01\x02") == "malformed (ethernet: 2 bytes is shorter than the 14-byte header)"
    assert describe(v.TCP_SYN[:20]) == "malformed (ipv4: 6 bytes is shorter than the 20-byte header)"
    truncated_tcp = bytearray(v.TCP_SYN[:54])
    truncated_tcp[16:18] = (40).to_bytes(2, "big")  # IPv4 total length: 20 + a 20-byte TCP header
    assert describe(truncated_tcp) == ("192.0.2.1 > 192.0.2.2: malformed (tcp: data offset beyond the segment)")
    assert describe(None) == "malformed (ethernet: NoneType is not a contiguous bytes-like object)"  # type: ignore[arg-type]  # wrong on purpose: the error is tested


def test_vlan_other_ethertypes_and_fragments() -> None:
    tagged = v.ARP_REQUEST[:12] + b"\x81\x00\x00\x05" + v.ARP_REQUEST[12:]
    assert describe(tagged) == "vlan 5, ARP, Request who-has 192.0.2.2 tell 192.0.2.1"
    ipv6 = v.MAC_2 + v.MAC_1 + b"\x86\xdd" + bytes(40)
    assert describe(ipv6) == "a6:8f:3e:82:02:1b > 1a:99:06:92:d9:5e, ethertype 0x86dd, length 54"
    frag = bytearray(v.UDP_HELLO)
    frag[20:22] = (0x2000 | 3).to_bytes(2, "big")  # MF, offset 24
    frag[24:26] = b"\0\0"
    frag[24:26] = internet_checksum(frag[14:34]).to_bytes(2, "big")
    assert describe(frag) == "192.0.2.1 > 192.0.2.2: ip-proto-17, fragment id 55169, offset 24+, length 14"


def test_tcp_flags_options_and_other_icmp() -> None:
    frame = bytearray(14 + 20 + 44 + 2)
    emit_ethernet(frame, 0, v.MAC_2, v.MAC_1, 0x0800)
    emit_ipv4_header(frame, 14, v.IP_1, v.IP_2, 6, 46)
    options = encode_tcp_options(timestamp=(1, 2), sack_blocks=((5, 9),))
    emit_tcp(frame, 34, v.IP_1, v.IP_2, 1, 2, 0xFFFFFFFF, 7, 0xFF, 9, options, b"zz", urgent=3)
    assert describe(frame) == (
        "192.0.2.1.1 > 192.0.2.2.2: Flags [FSRP.UEW], seq 4294967295:1, ack 7, win 9, urg 3, "
        "options [TS val 1 ecr 2,sack 1 {5:9}], length 2"
    )
    emit_tcp(frame, 34, v.IP_1, v.IP_2, 1, 2, 0, 0, 0, 9, options, b"zz")
    assert "Flags [none], seq 0:2, win 9," in describe(frame)

    icmp = bytearray(14 + 20 + 8)
    emit_ethernet(icmp, 0, v.MAC_2, v.MAC_1, 0x0800)
    emit_ipv4_header(icmp, 14, v.IP_1, v.IP_2, 1, 8)
    emit_icmp(icmp, 34, 13, 0, 0, b"")
    assert describe(icmp) == "192.0.2.1 > 192.0.2.2: ICMP type 13, code 0, length 8"
    emit_icmp(icmp, 34, 11, 0, 0, b"")
    assert describe(icmp) == "192.0.2.1 > 192.0.2.2: ICMP time exceeded in-transit, length 8"
    emit_icmp(icmp, 34, 3, 1, 0, b"")
    assert describe(icmp) == (
        "192.0.2.1 > 192.0.2.2: ICMP unreachable, code 1 "
        "(quoted datagram: 0 bytes is shorter than the 20-byte header), length 8"
    )
