"""UDP datagrams (RFC 768) over IPv4, checksummed against the pseudo-header."""

from __future__ import annotations

import struct
from typing import NamedTuple

from usernet.native import BytesLike, l4_checksum_v4
from usernet.wire.errors import MalformedPacket, check_address, ensure_room, field_error, not_a_byte_buffer

__all__ = ["UDP_HLEN", "UdpDatagram", "emit_udp", "parse_udp"]

UDP_HLEN = 8
_IPPROTO_UDP = 17
_HEADER = struct.Struct("!HHHH")
_new = tuple.__new__


class UdpDatagram(NamedTuple):
    sport: int
    dport: int
    length: int
    checksum: int  # 0 means the sender did not compute one
    payload: memoryview


def parse_udp(data: BytesLike, src: bytes, dst: bytes, verify_checksum: bool = True) -> UdpDatagram:
    """Decode a datagram; bytes after `length` (IP payload longer than UDP says) are ignored."""
    try:
        mv = memoryview(data).cast("B")
    except (TypeError, ValueError, BufferError):
        raise not_a_byte_buffer("udp", data) from None
    n = len(mv)
    if n < UDP_HLEN:
        raise MalformedPacket("udp", f"{n} bytes is shorter than the 8-byte header")
    sport, dport, length, checksum = _HEADER.unpack_from(mv)
    if length < UDP_HLEN or length > n:
        raise MalformedPacket("udp", f"length field {length} does not fit the {n} bytes received")
    if verify_checksum and checksum and l4_checksum_v4(src, dst, _IPPROTO_UDP, mv[:length]):
        raise MalformedPacket("udp", f"bad checksum 0x{checksum:04x}")
    return _new(UdpDatagram, (sport, dport, length, checksum, mv[UDP_HLEN:length]))


def emit_udp(
    buf: bytearray | memoryview, offset: int, src: bytes, dst: bytes, sport: int, dport: int, payload: BytesLike
) -> int:
    """Write header and payload with the checksum; a computed 0 goes out as 0xFFFF (0 means "none")."""
    check_address(src, 4, "source IPv4 address")
    check_address(dst, 4, "destination IPv4 address")
    length = UDP_HLEN + len(payload)
    if length > 0xFFFF:
        raise ValueError(f"a UDP payload of {len(payload)} bytes exceeds the 65527-byte maximum")
    ensure_room(buf, offset, length, "a UDP datagram")
    try:
        _HEADER.pack_into(buf, offset, sport, dport, length, 0)
    except struct.error as exc:
        raise field_error("udp", exc) from None
    buf[offset + UDP_HLEN : offset + length] = payload
    csum = l4_checksum_v4(src, dst, _IPPROTO_UDP, memoryview(buf)[offset : offset + length]) or 0xFFFF
    buf[offset + 6] = csum >> 8
    buf[offset + 7] = csum & 0xFF
    return length
