"""ICMP messages (RFC 792): echo for ping, and the errors that quote the datagram they answer."""

from __future__ import annotations

import struct
from typing import NamedTuple

from usernet.native import BytesLike, internet_checksum, sum16
from usernet.wire.errors import MalformedPacket, ensure_room, field_error, not_a_byte_buffer
from usernet.wire.ipv4 import IPv4Packet, parse_quoted_ipv4

__all__ = [
    "ICMP_DEST_UNREACH",
    "ICMP_ECHO_REPLY",
    "ICMP_ECHO_REQUEST",
    "ICMP_TIME_EXCEEDED",
    "UNREACH_FRAG_NEEDED",
    "UNREACH_HOST",
    "UNREACH_NET",
    "UNREACH_PORT",
    "UNREACH_PROTOCOL",
    "IcmpMessage",
    "emit_icmp",
    "is_icmp_error",
    "parse_datagram_head",
    "parse_icmp",
    "parse_quoted",
]

ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO_REQUEST = 8
ICMP_TIME_EXCEEDED = 11
UNREACH_NET = 0
UNREACH_HOST = 1
UNREACH_PROTOCOL = 2
UNREACH_PORT = 3
UNREACH_FRAG_NEEDED = 4

# the types whose body is "IP header + first 8 bytes of the original datagram":
# destination unreachable, source quench, redirect, time exceeded, parameter problem
_QUOTING_TYPES = frozenset((3, 4, 5, 11, 12))
_HEADER = struct.Struct("!BBHI")
_PORTS = struct.Struct("!HH")
_new = tuple.__new__


class IcmpMessage(NamedTuple):
    type: int
    code: int
    checksum: int
    rest: int  # the 32-bit "rest of header", read per type through the properties below
    payload: memoryview

    @property
    def ident(self) -> int:
        """Echo identifier."""
        return self.rest >> 16

    @property
    def sequence(self) -> int:
        """Echo sequence number."""
        return self.rest & 0xFFFF

    @property
    def next_hop_mtu(self) -> int:
        """The MTU a "fragmentation needed" message asks for (RFC 1191)."""
        return self.rest & 0xFFFF


def parse_icmp(data: BytesLike, verify_checksum: bool = True) -> IcmpMessage:
    """Decode a message; the checksum covers the whole message, payload included."""
    try:
        mv = memoryview(data).cast("B")
    except (TypeError, ValueError, BufferError):
        raise not_a_byte_buffer("icmp", data) from None
    if len(mv) < 8:
        raise MalformedPacket("icmp", f"{len(mv)} bytes is shorter than the 8-byte header")
    # a correct message, checksum field included, sums to 0xFFFF
    if verify_checksum and sum16(mv) != 0xFFFF:
        raise MalformedPacket("icmp", "bad checksum")
    icmp_type, code, checksum, rest = _HEADER.unpack_from(mv)
    return _new(IcmpMessage, (icmp_type, code, checksum, rest, mv[8:]))


def is_icmp_error(payload: BytesLike) -> bool:
    """Whether an ICMP message (its bytes from the type on) is an error, or of an unknown type:
    what no error may be sent about (RFC 1122 §3.2.2); echo, timestamp, information and
    address mask messages are not."""
    return bool(payload) and payload[0] not in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY, 13, 14, 15, 16, 17, 18)


def parse_quoted(msg: IcmpMessage) -> tuple[IPv4Packet, int, int]:
    """The datagram an ICMP error refers to: its IPv4 header and the first two 16-bit words after it.

    For TCP and UDP those words are the source and destination ports, which is what the
    stack needs to find the socket the error belongs to.
    """
    if msg.type not in _QUOTING_TYPES:
        raise MalformedPacket("icmp", f"type {msg.type} does not quote a datagram")
    return parse_datagram_head(msg.payload)


def parse_datagram_head(quote: memoryview) -> tuple[IPv4Packet, int, int]:
    """An IPv4 datagram's header and its ports, from its start (a quote, or a datagram that was never sent).

    The stack takes both apart the same way: the datagram an ICMP error quotes, and one of
    its own that the link could not deliver (`IcmpLayer.undeliverable`).
    """
    try:
        ip = parse_quoted_ipv4(quote)
    except MalformedPacket as exc:
        raise MalformedPacket("icmp", f"quoted datagram: {exc.reason}") from None
    if len(quote) < ip.header_length + 8:
        raise MalformedPacket("icmp", f"quote of {len(quote)} bytes lacks the 8 bytes after the IPv4 header")
    sport, dport = _PORTS.unpack_from(quote, ip.header_length)
    return ip, sport, dport


def emit_icmp(buf: bytearray | memoryview, offset: int, type: int, code: int, rest: int, payload: BytesLike) -> int:
    """Write a message with its checksum; `payload` is copied in after the 8-byte header."""
    length = 8 + len(payload)
    ensure_room(buf, offset, length, "an ICMP message")
    try:
        _HEADER.pack_into(buf, offset, type, code, 0, rest)
    except struct.error as exc:
        raise field_error("icmp", exc) from None
    buf[offset + 8 : offset + length] = payload
    csum = internet_checksum(memoryview(buf)[offset : offset + length])
    buf[offset + 2] = csum >> 8
    buf[offset + 3] = csum & 0xFF
    return length
