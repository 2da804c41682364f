"""IPv6 headers (RFC 8200): the fixed header, the walk over extension headers, the multicast names.

The fixed header is parsed like IPv4's; the extension headers are walked separately
(`walk_extensions`) because what to do with them is a host's policy written down in the
RFC: hop-by-hop and destination options are skipped option by option, and an option
this host does not know is acted on by the two high bits of its type (RFC 8200 §4.2);
a routing header with segments left is refused (this host forwards nothing, and type 0
is deprecated by RFC 5095), a fragment header ends the walk. A refusal the sender must
hear about is a `ParameterProblem` (a `MalformedPacket`), carrying the ICMPv6 code and
pointer to answer with.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from usernet.native import BytesLike
from usernet.wire.errors import MalformedPacket, check_address, ensure_room, field_error, not_a_byte_buffer

__all__ = [
    "ALL_NODES",
    "ALL_ROUTERS",
    "IPPROTO_DSTOPTS",
    "IPPROTO_FRAGMENT",
    "IPPROTO_HOPOPTS",
    "IPPROTO_ICMPV6",
    "IPPROTO_NONE",
    "IPPROTO_ROUTING",
    "IPV6_HLEN",
    "IPV6_MIN_MTU",
    "PARAM_BAD_FIELD",
    "PARAM_BAD_NEXT_HEADER",
    "PARAM_BAD_OPTION",
    "UNSPECIFIED",
    "FragmentHeader",
    "IPv6Packet",
    "ParameterProblem",
    "Upper",
    "emit_ipv6_header",
    "is_multicast",
    "multicast_mac",
    "parse_ipv6",
    "parse_quoted_ipv6",
    "solicited_node",
    "walk_extensions",
    "with_upper",
]

IPV6_HLEN = 40
IPV6_MIN_MTU = 1280  # RFC 8200 §5: every link carries packets this large
IPPROTO_HOPOPTS = 0
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60

# ICMPv6 parameter problem codes (RFC 4443 §3.4)
PARAM_BAD_FIELD = 0
PARAM_BAD_NEXT_HEADER = 1
PARAM_BAD_OPTION = 2

UNSPECIFIED = bytes(16)
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")
_SOLICITED_PREFIX = bytes.fromhex("ff0200000000000000000001ff")

_HEADER = struct.Struct("!IHBB16s16s")
_FRAGMENT = struct.Struct("!BxHI")
_new = tuple.__new__


class IPv6Packet(NamedTuple):
    traffic_class: int
    flow_label: int
    payload_length: int
    next_header: int  # the fixed header's: the first extension header or the upper layer
    hop_limit: int
    src: bytes
    dst: bytes
    payload: memoryview  # payload_length bytes after the fixed header: link padding is cut off

    @property
    def tos(self) -> int:
        """The traffic class under IPv4's name for the same byte (DSCP and ECN), for code that reads either."""
        return self.traffic_class


class FragmentHeader(NamedTuple):
    next_header: int
    offset: int  # in bytes, not 8-byte units
    more: bool
    ident: int


class Upper(NamedTuple):
    """Where the walk over the extension headers ended."""

    protocol: int  # the upper-layer protocol (after a fragment header: the fragmented one's), or IPPROTO_NONE
    pointer: int  # offset, from the start of the IPv6 header, of the field that named `protocol`
    fragment: FragmentHeader | None  # set when the packet is a fragment (offset or M set), which ends the walk
    payload: memoryview  # from the upper-layer header (or the fragment's data) to the end of the packet


class ParameterProblem(MalformedPacket):
    """A packet RFC 8200 says to discard, with what an ICMPv6 parameter problem would say.

    `pointer` counts from the start of the IPv6 header. `report` is False when the rule
    discards silently (option action 01, or action 11 toward a multicast destination).
    """

    def __init__(self, code: int, pointer: int, report: bool, reason: str) -> None:
        super().__init__("ipv6", reason)
        self.code = code
        self.pointer = pointer
        self.report = report

    def __reduce__(self) -> tuple[type[MalformedPacket], tuple[object, ...]]:
        return (type(self), (self.code, self.pointer, self.report, self.reason))


def parse_ipv6(data: BytesLike) -> IPv6Packet:
    """Decode the fixed header; the payload stops at payload_length, so Ethernet padding never reaches L4.

    A payload length of 0 is an empty payload: jumbograms (RFC 2675) need links far
    larger than any this stack drives.
    """
    try:
        mv = memoryview(data).cast("B")
    except (TypeError, ValueError, BufferError):
        raise not_a_byte_buffer("ipv6", data) from None
    n = len(mv)
    if n < IPV6_HLEN:
        raise MalformedPacket("ipv6", f"{n} bytes is shorter than the 40-byte header")
    first, length, next_header, hop_limit, src, dst = _HEADER.unpack_from(mv)
    if first >> 28 != 6:
        raise MalformedPacket("ipv6", f"version {first >> 28} is not 6")
    if IPV6_HLEN + length > n:
        raise MalformedPacket("ipv6", f"payload length {length} exceeds the {n - IPV6_HLEN} bytes received")
    return _new(
        IPv6Packet,
        ((first >> 20) & 0xFF, first & 0xFFFFF, length, next_header, hop_limit, src, dst, mv[40 : 40 + length]),
    )


def parse_quoted_ipv6(quote: memoryview) -> IPv6Packet:
    """Decode the header an ICMPv6 error quotes: the packet may be cut short of its payload length.

    `payload_length` stays the original packet's; the payload is whatever part of it was quoted.
    """
    n = len(quote)
    if n >= IPV6_HLEN and IPV6_HLEN + ((quote[4] << 8) | quote[5]) > n:
        cut = bytearray(quote[:IPV6_HLEN])
        cut[4:6] = b"\0\0"
        ip = parse_ipv6(cut)
        return ip._replace(payload_length=(quote[4] << 8) | quote[5], payload=quote[IPV6_HLEN:])
    return parse_ipv6(quote)


def _options(body: memoryview, start: int, end: int, base: int, multicast: bool) -> None:
    """Walk the TLV options of a hop-by-hop or destination options header (`body[start:end]`).

    Pad1 and PadN are the only options this host knows; any other is acted on by the two
    high bits of its type: 00 skip, 01 discard, 10 discard and report, 11 discard and
    report unless the destination is multicast. `base` turns offsets into pointers.
    """
    i = start
    while i < end:
        kind = body[i]
        if kind == 0:  # Pad1
            i += 1
            continue
        if i + 2 > end or i + 2 + body[i + 1] > end:
            raise MalformedPacket("ipv6", f"option {kind} at {base + i} runs past its header")
        action = kind >> 6
        if kind != 1 and action:
            raise ParameterProblem(
                PARAM_BAD_OPTION,
                base + i,
                action == 2 or (action == 3 and not multicast),
                f"unrecognised option {kind} at {base + i} (action {action:02b})",
            )
        i += 2 + body[i + 1]


def walk_extensions(ip: IPv6Packet) -> Upper:
    """Skip the extension headers of `ip` by RFC 8200's rules and say where the upper layer starts.

    Raises `ParameterProblem` for what must be refused (an option to act on, a routing
    header with segments left, hop-by-hop options anywhere but first) and
    `MalformedPacket` for headers cut short. An atomic fragment (offset 0, M clear, RFC
    6946) is walked through as if it were whole.
    """
    body = ip.payload
    n = len(body)
    protocol = ip.next_header
    pointer = 6  # the fixed header's next-header field
    at = 0
    fragment = None
    multicast = ip.dst[0] == 0xFF
    while True:
        if protocol in (IPPROTO_HOPOPTS, IPPROTO_DSTOPTS, IPPROTO_ROUTING):
            if protocol == IPPROTO_HOPOPTS and at:
                raise ParameterProblem(
                    PARAM_BAD_NEXT_HEADER, pointer, True, "hop-by-hop options after the first header"
                )
            if at + 8 > n:
                raise MalformedPacket("ipv6", f"extension header {protocol} cut short at {40 + at}")
            end = at + (body[at + 1] + 1) * 8
            if end > n:
                raise MalformedPacket("ipv6", f"extension header {protocol} of {end - at} bytes runs past the packet")
            if protocol == IPPROTO_ROUTING:
                if body[at + 3]:  # segments left: this host forwards nothing, and type 0 is deprecated
                    raise ParameterProblem(
                        PARAM_BAD_FIELD,
                        40 + at + 2,
                        True,
                        f"routing header type {body[at + 2]} with {body[at + 3]} segments left",
                    )
            else:
                _options(body, at + 2, end, 40, multicast)
        elif protocol == IPPROTO_FRAGMENT:
            if at + 8 > n:
                raise MalformedPacket("ipv6", f"fragment header cut short at {40 + at}")
            next_header, word, ident = _FRAGMENT.unpack_from(body, at)
            end = at + 8
            if word & 0xFFF9:  # an offset or M: a real fragment, whose rest is not headers to walk
                fragment = _new(FragmentHeader, (next_header, word & 0xFFF8, word & 1 == 1, ident))
                return _new(Upper, (next_header, 40 + at, fragment, body[end:]))
        else:
            return _new(Upper, (protocol, pointer, fragment, body[at:]))
        pointer = 40 + at
        protocol = body[at]
        at = end


def with_upper(ip: IPv6Packet, upper: Upper) -> IPv6Packet:
    """`ip` with the upper-layer segment as its payload, for layers that read `payload` as
    theirs (as they do an IPv4 packet's); `ip` itself when no extension header came first."""
    if len(upper.payload) == len(ip.payload):
        return ip
    return ip._replace(payload=upper.payload)


def emit_ipv6_header(
    buf: bytearray | memoryview,
    offset: int,
    src: bytes,
    dst: bytes,
    next_header: int,
    payload_length: int,
    hop_limit: int = 64,
    traffic_class: int = 0,
    flow_label: int = 0,
) -> int:
    """Write the 40-byte fixed header; the payload goes after it."""
    check_address(src, 16, "source IPv6 address")
    check_address(dst, 16, "destination IPv6 address")
    if not 0 <= payload_length <= 0xFFFF:
        raise ValueError(f"payload of {payload_length} bytes does not fit an IPv6 packet (at most 65535)")
    if not 0 <= traffic_class <= 0xFF or not 0 <= flow_label <= 0xFFFFF:
        raise ValueError(f"traffic class {traffic_class} or flow label {flow_label} is out of range")
    ensure_room(buf, offset, IPV6_HLEN, "an IPv6 header")
    try:
        _HEADER.pack_into(
            buf,
            offset,
            (6 << 28) | (traffic_class << 20) | flow_label,
            payload_length,
            next_header,
            hop_limit,
            src,
            dst,
        )
    except struct.error as exc:
        raise field_error("ipv6", exc) from None
    return IPV6_HLEN


def is_multicast(addr: bytes) -> bool:
    return addr[0] == 0xFF


def is_link_local(addr: bytes) -> bool:
    """In fe80::/10 (RFC 4291 §2.5.6): an address that means something on one link only."""
    return addr[0] == 0xFE and addr[1] & 0xC0 == 0x80


def solicited_node(addr: bytes) -> bytes:
    """The solicited-node multicast group of a unicast address: ff02::1:ff + its low 24 bits (RFC 4291 §2.7.1)."""
    return _SOLICITED_PREFIX + addr[13:16]


def multicast_mac(group: bytes) -> bytes:
    """The Ethernet address an IPv6 multicast group maps to: 33:33 + its low 32 bits (RFC 2464 §7)."""
    return b"\x33\x33" + group[12:16]
