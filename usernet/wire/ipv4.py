"""IPv4 headers (RFC 791): parse with the header checksum checked, emit with it filled in."""

from __future__ import annotations

import struct
from typing import NamedTuple

from usernet.native import BytesLike, internet_checksum, sum16
from usernet.wire.errors import MalformedPacket, check_address, ensure_room, field_error, not_a_byte_buffer
from usernet.wire.fragment import Fragment, check_fragment

__all__ = [
    "IPPROTO_ICMP",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "IPV4_HLEN",
    "IPv4Packet",
    "emit_ipv4_header",
    "ipv4_fragment",
    "parse_ipv4",
]

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPV4_HLEN = 20

_DF = 0x4000
_MF = 0x2000
_HEADER = struct.Struct("!BBHHHBBH4s4s")
_TOTAL_LENGTH = struct.Struct("!H")  # at offset 2
_NO_OPTIONS = memoryview(b"")  # shared by the (almost all) headers without options
_new = tuple.__new__


class IPv4Packet(NamedTuple):
    tos: int
    total_length: int
    ident: int
    dont_fragment: bool
    more_fragments: bool
    fragment_offset: int  # in bytes, not 8-byte units
    ttl: int
    protocol: int
    checksum: int
    src: bytes
    dst: bytes
    header_length: int
    options: memoryview
    payload: memoryview  # total_length - header_length bytes: link-layer padding is cut off

    @property
    def is_fragment(self) -> bool:
        """True for any piece of a fragmented datagram, first one included."""
        return self.more_fragments or self.fragment_offset != 0


def parse_ipv4(data: BytesLike, verify_checksum: bool = True) -> IPv4Packet:
    """Decode a datagram; the payload stops at total_length, so Ethernet padding never reaches L4."""
    try:
        mv = memoryview(data).cast("B")
    except (TypeError, ValueError, BufferError):
        raise not_a_byte_buffer("ipv4", data) from None
    n = len(mv)
    if n < IPV4_HLEN:
        raise MalformedPacket("ipv4", f"{n} bytes is shorter than the 20-byte header")
    vihl, tos, total_length, ident, frag, ttl, protocol, checksum, src, dst = _HEADER.unpack_from(mv)
    if vihl == 0x45:
        hlen = IPV4_HLEN
    else:
        if vihl >> 4 != 4:
            raise MalformedPacket("ipv4", f"version {vihl >> 4} is not 4")
        hlen = (vihl & 0x0F) << 2
        if hlen < IPV4_HLEN:
            raise MalformedPacket("ipv4", f"header length {hlen} is below 20 bytes")
        if hlen > n:
            raise MalformedPacket("ipv4", f"header length {hlen} runs past the {n} bytes received")
    if total_length < hlen:
        raise MalformedPacket("ipv4", f"total length {total_length} is shorter than the {hlen}-byte header")
    if total_length > n:
        raise MalformedPacket("ipv4", f"total length {total_length} exceeds the {n} bytes received")
    # a correct header, checksum field included, sums to 0xFFFF
    if verify_checksum and sum16(mv[:hlen]) != 0xFFFF:
        raise MalformedPacket("ipv4", f"bad header checksum 0x{checksum:04x}")
    return _new(
        IPv4Packet,
        (
            tos,
            total_length,
            ident,
            frag & _DF != 0,
            frag & _MF != 0,
            (frag & 0x1FFF) << 3,
            ttl,
            protocol,
            checksum,
            src,
            dst,
            hlen,
            _NO_OPTIONS if hlen == IPV4_HLEN else mv[IPV4_HLEN:hlen],
            mv[hlen:total_length],
        ),
    )


def ipv4_fragment(ip: IPv4Packet) -> Fragment:
    """The fragment `ip` (one with `is_fragment`) holds, checked for reassembly, or MalformedPacket.

    A datagram, header included, is at most 65535 bytes: a fragment whose end lies beyond
    that for its header length is refused here, before any reassembly starts.
    """
    return check_fragment(ip.fragment_offset, ip.more_fragments, ip.payload, 0xFFFF - ip.header_length, "ipv4")


def parse_quoted_ipv4(quote: memoryview) -> IPv4Packet:
    """Decode the header an ICMP error quotes: no checksum check, and the datagram may be cut short.

    `total_length` stays the original datagram's; the payload is whatever part of it was quoted.
    """
    n = len(quote)
    if n < 4 or _TOTAL_LENGTH.unpack_from(quote, 2)[0] <= n:
        return parse_ipv4(quote, verify_checksum=False)
    # the quote stops before the datagram does: decode a copy that says it ends there (this
    # path is rare and the copy small), then restore the real length and view the quote itself
    cut = bytearray(quote)
    cut[2:4] = n.to_bytes(2, "big")
    ip = parse_ipv4(cut, verify_checksum=False)
    hlen = ip.header_length
    return ip._replace(
        total_length=_TOTAL_LENGTH.unpack_from(quote, 2)[0], options=quote[IPV4_HLEN:hlen], payload=quote[hlen:]
    )


def emit_ipv4_header(
    buf: bytearray | memoryview,
    offset: int,
    src: bytes,
    dst: bytes,
    protocol: int,
    payload_length: int,
    ttl: int = 64,
    ident: int = 0,
    tos: int = 0,
    dont_fragment: bool = True,
    more_fragments: bool = False,
    fragment_offset: int = 0,
) -> int:
    """Write a 20-byte header without options, checksum filled in; the payload goes after it.

    `fragment_offset` is in bytes (a multiple of 8) and with `more_fragments` makes the
    header one fragment's (`dont_fragment` then False).
    """
    check_address(src, 4, "source IPv4 address")
    check_address(dst, 4, "destination IPv4 address")
    total_length = IPV4_HLEN + payload_length
    if payload_length < 0 or total_length > 0xFFFF:
        raise ValueError(f"payload of {payload_length} bytes does not fit an IPv4 datagram (at most 65515)")
    if fragment_offset & 7 or not 0 <= fragment_offset <= 0xFFF8:
        raise ValueError(f"fragment offset {fragment_offset} is not a multiple of 8 in 0..65528")
    ensure_room(buf, offset, IPV4_HLEN, "an IPv4 header")
    frag = (_DF if dont_fragment else 0) | (_MF if more_fragments else 0) | fragment_offset >> 3
    try:
        _HEADER.pack_into(buf, offset, 0x45, tos, total_length, ident, frag, ttl, protocol, 0, src, dst)
    except struct.error as exc:
        raise field_error("ipv4", exc) from None
    csum = internet_checksum(memoryview(buf)[offset : offset + IPV4_HLEN])
    buf[offset + 10] = csum >> 8
    buf[offset + 11] = csum & 0xFF
    return IPV4_HLEN
