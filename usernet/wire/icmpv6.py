"""ICMPv6 messages (RFC 4443): echo, the four errors, and the checksum over the IPv6 pseudo-header.

A message decodes into ICMPv4's `IcmpMessage` (type, code, checksum, the 32-bit rest, the
body): the header is the same; only the checksum and the meaning of the types differ.

Neighbor Discovery's messages are ICMPv6 types too; their bodies and options are in
`usernet.wire.ndp`, which builds on the two functions here.
"""

from __future__ import annotations

import struct

from usernet.native import BytesLike, pseudo_sum_v6, sum16
from usernet.wire.errors import MalformedPacket, check_address, ensure_room, field_error, not_a_byte_buffer
from usernet.wire.icmp import IcmpMessage
from usernet.wire.ipv6 import IPPROTO_ICMPV6, IPv6Packet, Upper, parse_quoted_ipv6, walk_extensions

__all__ = [
    "ICMPV6_DEST_UNREACH",
    "ICMPV6_ECHO_REPLY",
    "ICMPV6_ECHO_REQUEST",
    "ICMPV6_PACKET_TOO_BIG",
    "ICMPV6_PARAM_PROBLEM",
    "ICMPV6_TIME_EXCEEDED",
    "UNREACH6_ADDRESS",
    "UNREACH6_ADMIN",
    "UNREACH6_NO_ROUTE",
    "UNREACH6_PORT",
    "emit_icmpv6",
    "is_icmpv6_error",
    "parse_icmpv6",
    "parse_packet_head_v6",
    "parse_quoted_v6",
]

ICMPV6_DEST_UNREACH = 1
ICMPV6_PACKET_TOO_BIG = 2
ICMPV6_TIME_EXCEEDED = 3
ICMPV6_PARAM_PROBLEM = 4
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129
UNREACH6_NO_ROUTE = 0
UNREACH6_ADMIN = 1
UNREACH6_BEYOND_SCOPE = 2  # a link-local source, a destination off its link
UNREACH6_ADDRESS = 3
UNREACH6_PORT = 4

_HEADER = struct.Struct("!BBHI")
_PORTS = struct.Struct("!HH")
_new = tuple.__new__


def is_icmpv6_error(kind: int) -> bool:
    """Types below 128 are errors (RFC 4443 §2.1): no error is ever sent about one."""
    return kind < 128


def parse_icmpv6(data: BytesLike, src: bytes, dst: bytes, verify_checksum: bool = True) -> IcmpMessage:
    """Decode a message; the checksum covers the pseudo-header (RFC 8200 §8.1) and the whole message."""
    try:
        mv = memoryview(data).cast("B")
    except (TypeError, ValueError, BufferError):
        raise not_a_byte_buffer("icmpv6", data) from None
    n = len(mv)
    if n < 8:
        raise MalformedPacket("icmpv6", f"{n} bytes is shorter than the 8-byte header")
    if verify_checksum and sum16(mv, pseudo_sum_v6(src, dst, IPPROTO_ICMPV6, n)) != 0xFFFF:
        raise MalformedPacket("icmpv6", "bad checksum")
    kind, code, checksum, rest = _HEADER.unpack_from(mv)
    return _new(IcmpMessage, (kind, code, checksum, rest, mv[8:]))


def parse_quoted_v6(msg: IcmpMessage) -> tuple[IPv6Packet, Upper, int, int]:
    """The packet an ICMPv6 error refers to: its header, where its upper layer starts, and that
    layer's first two 16-bit words (for TCP and UDP: the source and destination ports)."""
    if not is_icmpv6_error(msg.type):
        raise MalformedPacket("icmpv6", f"type {msg.type} does not quote a packet")
    return parse_packet_head_v6(msg.payload)


def parse_packet_head_v6(quote: memoryview) -> tuple[IPv6Packet, Upper, int, int]:
    """An IPv6 packet's header, upper layer and ports, from its start (a quote, or a packet never sent);
    the twin of `icmp.parse_datagram_head` for IPv6."""
    try:
        ip = parse_quoted_ipv6(quote)
        upper = walk_extensions(ip)
    except MalformedPacket as exc:
        raise MalformedPacket("icmpv6", f"quoted packet: {exc.reason}") from None
    if upper.fragment is not None and upper.fragment.offset:
        raise MalformedPacket("icmpv6", "the quoted packet is a later fragment: it holds no ports")
    if len(upper.payload) < 4:
        raise MalformedPacket("icmpv6", "the quote stops before the upper-layer ports")
    sport, dport = _PORTS.unpack_from(upper.payload)
    return ip, upper, sport, dport


def emit_icmpv6(
    buf: bytearray | memoryview,
    offset: int,
    src: bytes,
    dst: bytes,
    type: int,
    code: int,
    rest: int,
    payload: BytesLike,
) -> int:
    """Write a message with its checksum over the pseudo-header of `src` and `dst`; returns its length."""
    check_address(src, 16, "source IPv6 address")
    check_address(dst, 16, "destination IPv6 address")
    length = 8 + len(payload)
    ensure_room(buf, offset, length, "an ICMPv6 message")
    try:
        _HEADER.pack_into(buf, offset, type, code, 0, rest)
    except struct.error as exc:
        raise field_error("icmpv6", exc) from None
    buf[offset + 8 : offset + length] = payload
    csum = ~sum16(memoryview(buf)[offset : offset + length], pseudo_sum_v6(src, dst, IPPROTO_ICMPV6, length)) & 0xFFFF
    buf[offset + 2] = csum >> 8
    buf[offset + 3] = csum & 0xFF
    return length
