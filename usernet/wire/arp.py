"""ARP for IPv4 over Ethernet (RFC 826); other hardware/protocol pairs are refused."""

from __future__ import annotations

import struct
from typing import NamedTuple

from usernet.native import BytesLike
from usernet.wire.errors import MalformedPacket, check_address, ensure_room, field_error, not_a_byte_buffer

__all__ = ["ARP_LEN", "ARP_REPLY", "ARP_REQUEST", "ArpPacket", "emit_arp", "parse_arp"]

ARP_REQUEST = 1
ARP_REPLY = 2
ARP_LEN = 28

# hardware type 1 (Ethernet), protocol 0x0800 (IPv4), address lengths 6 and 4
_ETHERNET_IPV4 = b"\x00\x01\x08\x00\x06\x04"
_BODY = struct.Struct("!H6s4s6s4s")  # op, sha, spa, tha, tpa; after the 6 fixed bytes
_new = tuple.__new__


class ArpPacket(NamedTuple):
    op: int
    sha: bytes
    spa: bytes
    tha: bytes
    tpa: bytes


def parse_arp(data: BytesLike) -> ArpPacket:
    """Decode an Ethernet/IPv4 ARP message; any opcode is returned for the stack to judge."""
    try:
        mv = memoryview(data).cast("B")
    except (TypeError, ValueError, BufferError):
        raise not_a_byte_buffer("arp", data) from None
    if len(mv) < ARP_LEN:
        raise MalformedPacket("arp", f"{len(mv)} bytes is shorter than the 28-byte Ethernet/IPv4 message")
    if mv[:6] != _ETHERNET_IPV4:
        raise MalformedPacket("arp", "unsupported hardware/protocol type")
    return _new(ArpPacket, _BODY.unpack_from(mv, 6))


def emit_arp(buf: bytearray | memoryview, offset: int, op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> int:
    """Write a 28-byte Ethernet/IPv4 ARP message."""
    check_address(sha, 6, "sender MAC")
    check_address(spa, 4, "sender IPv4 address")
    check_address(tha, 6, "target MAC")
    check_address(tpa, 4, "target IPv4 address")
    ensure_room(buf, offset, ARP_LEN, "an ARP message")
    try:
        _BODY.pack_into(buf, offset + 6, op, sha, spa, tha, tpa)
    except struct.error as exc:
        raise field_error("arp", exc) from None
    buf[offset : offset + 6] = _ETHERNET_IPV4
    return ARP_LEN
