"""Packet formats: parse and emit, no state, no I/O.

Parsers take any bytes-like object, return NamedTuples whose payloads are memoryview
slices of the input, and raise only MalformedPacket. Emitters write into a caller's
buffer at an offset, return the byte count, and raise ValueError when it cannot fit.
`internet_checksum` (RFC 1071, any bytes-like object at any alignment) is public here
because every format needs it; it is the C core's, through `usernet.native`.
"""

from usernet.native import internet_checksum
from usernet.wire.arp import ARP_LEN, ARP_REPLY, ARP_REQUEST, ArpPacket, emit_arp, parse_arp
from usernet.wire.describe import describe
from usernet.wire.errors import MalformedPacket
from usernet.wire.ethernet import (
    BROADCAST_MAC,
    ETH_HLEN,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ETHERTYPE_VLAN,
    EthernetFrame,
    emit_ethernet,
    parse_ethernet,
)
from usernet.wire.fragment import Fragment, check_fragment
from usernet.wire.icmp import (
    ICMP_DEST_UNREACH,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    ICMP_TIME_EXCEEDED,
    UNREACH_FRAG_NEEDED,
    UNREACH_HOST,
    UNREACH_NET,
    UNREACH_PORT,
    UNREACH_PROTOCOL,
    IcmpMessage,
    emit_icmp,
    is_icmp_error,
    parse_datagram_head,
    parse_icmp,
    parse_quoted,
)
from usernet.wire.ipv4 import (
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV4_HLEN,
    IPv4Packet,
    emit_ipv4_header,
    ipv4_fragment,
    parse_ipv4,
)
from usernet.wire.tcp import (
    ACK,
    CWR,
    ECE,
    FIN,
    PSH,
    RST,
    SYN,
    TCP_HLEN,
    URG,
    TcpSegment,
    emit_tcp,
    encode_tcp_options,
    parse_tcp,
)
from usernet.wire.udp import UDP_HLEN, UdpDatagram, emit_udp, parse_udp

__all__ = [  # noqa: RUF022 - grouped by module, as the imports above
    "MalformedPacket",
    "describe",
    "internet_checksum",
    # ethernet
    "ETH_HLEN",
    "ETHERTYPE_IPV4",
    "ETHERTYPE_ARP",
    "ETHERTYPE_IPV6",
    "ETHERTYPE_VLAN",
    "BROADCAST_MAC",
    "EthernetFrame",
    "parse_ethernet",
    "emit_ethernet",
    # arp
    "ARP_REQUEST",
    "ARP_REPLY",
    "ARP_LEN",
    "ArpPacket",
    "parse_arp",
    "emit_arp",
    # ipv4
    "IPPROTO_ICMP",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "IPV4_HLEN",
    "IPv4Packet",
    "parse_ipv4",
    "emit_ipv4_header",
    "Fragment",
    "check_fragment",
    "ipv4_fragment",
    # icmp
    "ICMP_ECHO_REPLY",
    "ICMP_DEST_UNREACH",
    "ICMP_ECHO_REQUEST",
    "ICMP_TIME_EXCEEDED",
    "UNREACH_NET",
    "UNREACH_HOST",
    "UNREACH_PROTOCOL",
    "UNREACH_PORT",
    "UNREACH_FRAG_NEEDED",
    "IcmpMessage",
    "parse_icmp",
    "parse_datagram_head",
    "parse_quoted",
    "emit_icmp",
    "is_icmp_error",
    # udp
    "UDP_HLEN",
    "UdpDatagram",
    "parse_udp",
    "emit_udp",
    # tcp
    "FIN",
    "SYN",
    "RST",
    "PSH",
    "ACK",
    "URG",
    "ECE",
    "CWR",
    "TCP_HLEN",
    "TcpSegment",
    "parse_tcp",
    "encode_tcp_options",
    "emit_tcp",
]
