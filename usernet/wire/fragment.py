"""A fragment of an IP datagram, family-neutral: where it goes, whether more follow, its bytes.

IPv4 carries the offset and the more-fragments flag in its header (`ipv4.ipv4_fragment`),
IPv6 in a fragment extension header (RFC 8200 §4.5); both hand the reassembler the same
`Fragment`, checked by the same rules here, so the stack's reassembly knows no family.
"""

from __future__ import annotations

from typing import NamedTuple

from usernet.wire.errors import MalformedPacket

__all__ = ["Fragment", "check_fragment"]


class Fragment(NamedTuple):
    offset: int  # in bytes from the start of the fragmentable part
    more: bool  # more fragments follow (IPv4 MF, IPv6 M)
    payload: memoryview  # this fragment's part of the datagram


def check_fragment(offset: int, more: bool, payload: memoryview, limit: int, layer: str) -> Fragment:
    """A fragment that a reassembler may take, or MalformedPacket.

    Every fragment but the last carries a multiple of 8 bytes (the offset's unit, RFC 791
    and RFC 8200 §4.5), none is empty, and none reaches past `limit`, the largest datagram
    the family can carry: a piece ending beyond it is the "ping of death", which no
    reassembly may even start on.
    """
    size = len(payload)
    if size == 0:
        raise MalformedPacket(layer, f"empty fragment at offset {offset}")
    if more and size & 7:
        raise MalformedPacket(layer, f"fragment of {size} bytes with more to follow is not a multiple of 8")
    if offset + size > limit:
        raise MalformedPacket(
            layer, f"fragment at offset {offset} of {size} bytes ends past the {limit}-byte datagram limit"
        )
    return Fragment(offset, more, payload)
