"""IPv6 fragments (RFC 8200 §4.5): reassembly through the family-neutral `Reassembler`, and
fragmentation at the source.

Fragments are keyed by (source, destination, identification). The headers before the
fragment header (the unfragmentable part) were walked on every fragment as it came; the
rebuilt packet is the first fragment's fixed header with the fragment's next header and
the whole payload, so the walk then goes on into the fragmentable part as for any packet.
A packet whose reassembly times out is answered with "fragment reassembly time exceeded"
when its first fragment came (RFC 8200 §4.5), as IPv4's is.
"""

from __future__ import annotations

from collections.abc import Callable

from usernet.stack.fragments import Reassembler
from usernet.wire.errors import MalformedPacket
from usernet.wire.fragment import check_fragment
from usernet.wire.icmpv6 import ICMPV6_TIME_EXCEEDED
from usernet.wire.ipv6 import (
    IPPROTO_FRAGMENT,
    IPV6_HLEN,
    IPv6Packet,
    Upper,
    emit_ipv6_header,
    parse_ipv6,
    parse_quoted_ipv6,
)

# (type, code, rest, the packet's header, the packet as bytes, now): Icmpv6Layer.send_error
SendError = Callable[[int, int, int, IPv6Packet, memoryview, float], None]
TIME_EXCEEDED_REASSEMBLY = 1  # RFC 4443 §3.3


class Ipv6Reassembly:
    """Fragments of IPv6 packets in, whole packets out; expiry answered by ICMPv6."""

    def __init__(self, reassembler: Reassembler, send_error: SendError) -> None:
        self.reassembler = reassembler
        self._send_error = send_error

    def add(self, ip: IPv6Packet, upper: Upper, packet: memoryview, now: float) -> tuple[IPv6Packet, memoryview] | None:
        """Take the fragment `upper` ended at (`upper.fragment` set); the whole packet, parsed and
        as bytes, once complete."""
        frag = upper.fragment
        assert frag is not None  # the caller's test: a fragment header with an offset or M
        try:
            piece = check_fragment(frag.offset, frag.more, upper.payload, 0xFFFF, "ipv6")
        except MalformedPacket:
            self.reassembler.counters.malformed += 1
            return None
        header = bytes(packet[:IPV6_HLEN]) + bytes((frag.next_header,)) if frag.offset == 0 else None
        done = self.reassembler.add(
            (ip.src, ip.dst, frag.ident), ip.src, piece.offset, piece.more, piece.payload, header, now
        )
        if done is None:
            return None
        first, payload = done
        whole = bytearray(first[:IPV6_HLEN])
        whole[4:6] = len(payload).to_bytes(2, "big")
        whole[6] = first[IPV6_HLEN]  # the fragmented part's first header
        whole += payload
        view = memoryview(whole)
        return parse_ipv6(view), view

    def poll(self, now: float) -> None:
        """Expire what is due; answer each expired packet whose first fragment came."""
        for header, first in self.reassembler.poll(now):
            quote = bytearray(header[:IPV6_HLEN])
            quote[6] = header[IPV6_HLEN]
            quote += first[: 1232 - IPV6_HLEN]
            view = memoryview(quote)
            try:
                ip = parse_quoted_ipv6(view)
            except MalformedPacket:  # it parsed when it came: cannot happen, but never crash
                continue
            self._send_error(ICMPV6_TIME_EXCEEDED, TIME_EXCEEDED_REASSEMBLY, 0, ip, view, now)


def ipv6_fragments(
    link_header: bytes, l4: memoryview, src: bytes, dst: bytes, next_header: int, hop_limit: int, ident: int, mtu: int
) -> list[bytearray]:
    """Cut a whole upper-layer message into IPv6 fragment frames for a path MTU of `mtu` (RFC 8200 §4.5).

    Only the source fragments in IPv6: every frame is the fixed header, a fragment header
    naming `next_header` with `ident`, and the largest multiple of 8 bytes that fits (the
    last one less). The cold path of a datagram larger than the path MTU.
    """
    step = (mtu - IPV6_HLEN - 8) & ~7
    link = len(link_header)
    frames = []
    size = len(l4)
    for offset in range(0, size, step):
        piece = l4[offset : offset + step]
        frame = bytearray(link + IPV6_HLEN + 8 + len(piece))
        frame[:link] = link_header
        emit_ipv6_header(frame, link, src, dst, IPPROTO_FRAGMENT, 8 + len(piece), hop_limit=hop_limit)
        at = link + IPV6_HLEN
        frame[at] = next_header
        frame[at + 2 : at + 4] = (offset | (1 if offset + step < size else 0)).to_bytes(2, "big")
        frame[at + 4 : at + 8] = ident.to_bytes(4, "big")
        frame[at + 8 :] = piece
        frames.append(frame)
    return frames
