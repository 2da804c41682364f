"""Ethernet II frames, with at most one 802.1Q tag."""

from __future__ import annotations

import struct
from typing import NamedTuple

from usernet.native import BytesLike
from usernet.wire.errors import MalformedPacket, check_address, ensure_room, field_error, not_a_byte_buffer

__all__ = [
    "BROADCAST_MAC",
    "ETHERTYPE_ARP",
    "ETHERTYPE_IPV4",
    "ETHERTYPE_IPV6",
    "ETHERTYPE_VLAN",
    "ETH_HLEN",
    "EthernetFrame",
    "emit_ethernet",
    "parse_ethernet",
]

ETH_HLEN = 14
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = 0x8100
BROADCAST_MAC = b"\xff" * 6

_HEADER = struct.Struct("!6s6sH")
_TAG = struct.Struct("!HH")  # TCI, then the real ethertype
_new = tuple.__new__  # builds the NamedTuple without the Python-level __new__ frame


class EthernetFrame(NamedTuple):
    dst: bytes
    src: bytes
    ethertype: int
    vlan: int | None  # the 12-bit VLAN ID when the frame carried one 802.1Q tag
    payload: memoryview


def parse_ethernet(frame: BytesLike) -> EthernetFrame:
    """Split a frame; short frames are accepted because a TAP hands them over unpadded."""
    try:
        mv = memoryview(frame).cast("B")
    except (TypeError, ValueError, BufferError):
        raise not_a_byte_buffer("ethernet", frame) from None
    n = len(mv)
    if n < ETH_HLEN:
        raise MalformedPacket("ethernet", f"{n} bytes is shorter than the 14-byte header")
    dst, src, ethertype = _HEADER.unpack_from(mv)
    if ethertype != ETHERTYPE_VLAN:
        return _new(EthernetFrame, (dst, src, ethertype, None, mv[ETH_HLEN:]))
    if n < ETH_HLEN + 4:
        raise MalformedPacket("ethernet", f"802.1Q tag cut short: {n} bytes")
    tci, ethertype = _TAG.unpack_from(mv, ETH_HLEN)
    return _new(EthernetFrame, (dst, src, ethertype, tci & 0x0FFF, mv[ETH_HLEN + 4 :]))


def emit_ethernet(buf: bytearray | memoryview, offset: int, dst: bytes, src: bytes, ethertype: int) -> int:
    """Write an untagged header; the payload is the caller's to place after it."""
    check_address(dst, 6, "destination MAC")
    check_address(src, 6, "source MAC")
    ensure_room(buf, offset, ETH_HLEN, "an Ethernet header")
    try:
        _HEADER.pack_into(buf, offset, dst, src, ethertype)
    except struct.error as exc:
        raise field_error("ethernet", exc) from None
    return ETH_HLEN
