"""Neighbor Discovery messages and options (RFC 4861 §4, RFC 8106 for DNS servers and search domains).

The bodies ride in ICMPv6 messages (`usernet.wire.icmpv6`): parsers take a decoded
`IcmpMessage`, emitters write a whole ICMPv6 message with its checksum. Options of
unknown types are skipped, as §4.6 asks; an option of length zero makes the message
malformed (§4.6: "nodes MUST silently discard").
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from usernet.wire.dns import emit_names, parse_names
from usernet.wire.errors import MalformedPacket, check_address
from usernet.wire.icmp import IcmpMessage
from usernet.wire.icmpv6 import emit_icmpv6

__all__ = [
    "NA_OVERRIDE",
    "NA_ROUTER",
    "NA_SOLICITED",
    "ND_NEIGHBOR_ADVERT",
    "ND_NEIGHBOR_SOLICIT",
    "ND_REDIRECT",
    "ND_ROUTER_ADVERT",
    "ND_ROUTER_SOLICIT",
    "NdpOptions",
    "NeighborAdvert",
    "NeighborSolicit",
    "PrefixInfo",
    "RouterAdvert",
    "emit_neighbor_advert",
    "emit_neighbor_solicit",
    "emit_router_advert",
    "emit_router_solicit",
    "parse_neighbor_advert",
    "parse_neighbor_solicit",
    "parse_router_advert",
    "parse_router_solicit",
]

ND_ROUTER_SOLICIT = 133
ND_ROUTER_ADVERT = 134
ND_NEIGHBOR_SOLICIT = 135
ND_NEIGHBOR_ADVERT = 136
ND_REDIRECT = 137
NA_ROUTER = 0x80000000
NA_SOLICITED = 0x40000000
NA_OVERRIDE = 0x20000000

_OPT_SOURCE_LL = 1
_OPT_TARGET_LL = 2
_OPT_PREFIX = 3
_OPT_MTU = 5
_OPT_RDNSS = 25
_OPT_DNSSL = 31
_PREFIX = struct.Struct("!BBIII16s")  # after type and length: prefix length, flags, valid, preferred, reserved
_MTU = struct.Struct("!xxI")
_DNS_LIFETIME = struct.Struct("!xxI")
_RA_BODY = struct.Struct("!II")
_new = tuple.__new__


class PrefixInfo(NamedTuple):
    prefix: bytes
    prefix_length: int
    on_link: bool  # L
    autonomous: bool  # A: usable for SLAAC
    valid_lifetime: int  # seconds, 0xFFFFFFFF is infinity
    preferred_lifetime: int


class NdpOptions(NamedTuple):
    source_mac: bytes | None
    target_mac: bytes | None
    prefixes: tuple[PrefixInfo, ...]
    mtu: int | None
    dns: tuple[tuple[bytes, int], ...]  # (server, lifetime in seconds)
    domains: tuple[tuple[str, int], ...] = ()  # DNSSL search domains (RFC 8106 §5.2), (domain, lifetime)


class RouterAdvert(NamedTuple):
    hop_limit: int  # 0: unspecified
    managed: bool
    other: bool
    router_lifetime: int  # seconds; 0: not a default router
    reachable_time: int  # milliseconds; 0: unspecified
    retrans_timer: int  # milliseconds; 0: unspecified
    options: NdpOptions


class NeighborSolicit(NamedTuple):
    target: bytes
    options: NdpOptions


class NeighborAdvert(NamedTuple):
    router: bool
    solicited: bool
    override: bool
    target: bytes
    options: NdpOptions


def _parse_options(data: memoryview) -> NdpOptions:
    source = target = None
    mtu = None
    prefixes: list[PrefixInfo] = []
    dns: list[tuple[bytes, int]] = []
    domains: list[tuple[str, int]] = []
    i = 0
    n = len(data)
    while i < n:
        if i + 2 > n:
            raise MalformedPacket("ndp", f"option header cut short at {i}")
        kind = data[i]
        size = data[i + 1] * 8
        if size == 0:
            raise MalformedPacket("ndp", f"option {kind} at {i} has length zero")
        if i + size > n:
            raise MalformedPacket("ndp", f"option {kind} of {size} bytes runs past the message")
        if kind in (_OPT_SOURCE_LL, _OPT_TARGET_LL):
            if size != 8:  # an Ethernet address: six bytes after type and length
                raise MalformedPacket("ndp", f"link-layer address option of {size} bytes is not Ethernet's 8")
            mac = bytes(data[i + 2 : i + 8])
            if kind == _OPT_SOURCE_LL:
                source = mac
            else:
                target = mac
        elif kind == _OPT_PREFIX:
            if size != 32:
                raise MalformedPacket("ndp", f"prefix information option of {size} bytes is not 32")
            length, flags, valid, preferred, _, prefix = _PREFIX.unpack_from(data, i + 2)
            if length > 128:
                raise MalformedPacket("ndp", f"prefix length {length} is above 128")
            prefixes.append(_new(PrefixInfo, (prefix, length, flags & 0x80 != 0, flags & 0x40 != 0, valid, preferred)))
        elif kind == _OPT_MTU:
            if size != 8:
                raise MalformedPacket("ndp", f"MTU option of {size} bytes is not 8")
            mtu = _MTU.unpack_from(data, i + 2)[0]
        elif kind == _OPT_RDNSS:
            if size < 24 or (size - 8) % 16:
                raise MalformedPacket("ndp", f"DNS server option of {size} bytes holds no whole addresses")
            lifetime = _DNS_LIFETIME.unpack_from(data, i + 2)[0]
            dns.extend((bytes(data[at : at + 16]), lifetime) for at in range(i + 8, i + size, 16))
        elif kind == _OPT_DNSSL:
            if size < 16:
                raise MalformedPacket("ndp", f"search list option of {size} bytes holds no name")
            lifetime = _DNS_LIFETIME.unpack_from(data, i + 2)[0]
            try:
                names = parse_names(data[i + 8 : i + size])
            except MalformedPacket as exc:
                raise MalformedPacket("ndp", f"search list option: {exc.reason}") from None
            domains.extend((name, lifetime) for name in names)
        i += size
    return _new(NdpOptions, (source, target, tuple(prefixes), mtu, tuple(dns), tuple(domains)))


def _body(msg: IcmpMessage, kind: int, fixed: int) -> memoryview:
    if msg.type != kind:
        raise MalformedPacket("ndp", f"ICMPv6 type {msg.type} is not {kind}")
    if msg.code != 0:
        raise MalformedPacket("ndp", f"code {msg.code} is not 0")  # RFC 4861 §6.1, §7.1
    if len(msg.payload) < fixed:
        raise MalformedPacket("ndp", f"{len(msg.payload)} bytes is shorter than the {fixed}-byte body")
    return msg.payload


def parse_router_solicit(msg: IcmpMessage) -> NdpOptions:
    return _parse_options(_body(msg, ND_ROUTER_SOLICIT, 0))


def parse_router_advert(msg: IcmpMessage) -> RouterAdvert:
    body = _body(msg, ND_ROUTER_ADVERT, 8)
    reachable, retrans = _RA_BODY.unpack_from(body)
    rest = msg.rest
    return _new(
        RouterAdvert,
        (
            rest >> 24,
            rest & 0x800000 != 0,
            rest & 0x400000 != 0,
            rest & 0xFFFF,
            reachable,
            retrans,
            _parse_options(body[8:]),
        ),
    )


def parse_neighbor_solicit(msg: IcmpMessage) -> NeighborSolicit:
    body = _body(msg, ND_NEIGHBOR_SOLICIT, 16)
    return _new(NeighborSolicit, (bytes(body[:16]), _parse_options(body[16:])))


def parse_neighbor_advert(msg: IcmpMessage) -> NeighborAdvert:
    body = _body(msg, ND_NEIGHBOR_ADVERT, 16)
    rest = msg.rest
    return _new(
        NeighborAdvert,
        (
            rest & NA_ROUTER != 0,
            rest & NA_SOLICITED != 0,
            rest & NA_OVERRIDE != 0,
            bytes(body[:16]),
            _parse_options(body[16:]),
        ),
    )


def _ll_option(kind: int, mac: bytes | None) -> bytes:
    if mac is None:
        return b""
    check_address(mac, 6, "link-layer address")
    return bytes((kind, 1)) + mac


def emit_neighbor_solicit(
    buf: bytearray | memoryview, offset: int, src: bytes, dst: bytes, target: bytes, source_mac: bytes | None
) -> int:
    """A solicitation for `target`; `source_mac` None (required when `src` is ::, for DAD) leaves the option out."""
    check_address(target, 16, "target address")
    body = target + _ll_option(_OPT_SOURCE_LL, source_mac)
    return emit_icmpv6(buf, offset, src, dst, ND_NEIGHBOR_SOLICIT, 0, 0, body)


def emit_neighbor_advert(
    buf: bytearray | memoryview, offset: int, src: bytes, dst: bytes, target: bytes, flags: int, target_mac: bytes
) -> int:
    """An advertisement for `target` with `flags` (NA_ROUTER | NA_SOLICITED | NA_OVERRIDE)."""
    check_address(target, 16, "target address")
    body = target + _ll_option(_OPT_TARGET_LL, target_mac)
    return emit_icmpv6(buf, offset, src, dst, ND_NEIGHBOR_ADVERT, 0, flags, body)


def emit_router_solicit(
    buf: bytearray | memoryview, offset: int, src: bytes, dst: bytes, source_mac: bytes | None
) -> int:
    return emit_icmpv6(buf, offset, src, dst, ND_ROUTER_SOLICIT, 0, 0, _ll_option(_OPT_SOURCE_LL, source_mac))


def emit_router_advert(
    buf: bytearray | memoryview,
    offset: int,
    src: bytes,
    dst: bytes,
    router_lifetime: int,
    source_mac: bytes | None,
    prefixes: tuple[PrefixInfo, ...] = (),
    mtu: int | None = None,
    hop_limit: int = 64,
    reachable_time: int = 0,
    retrans_timer: int = 0,
    dns: tuple[bytes, ...] = (),
    dns_lifetime: int = 0,
    domains: tuple[str, ...] = (),
) -> int:
    """A router advertisement (what a router, or a test playing one, sends); `dns` servers go in one
    RDNSS option (RFC 8106 §5.1) and search `domains` in one DNSSL option (§5.2), both with
    `dns_lifetime`."""
    options = bytearray(_ll_option(_OPT_SOURCE_LL, source_mac))
    for p in prefixes:
        check_address(p.prefix, 16, "prefix")
        flags = (0x80 if p.on_link else 0) | (0x40 if p.autonomous else 0)
        options += bytes((_OPT_PREFIX, 4)) + _PREFIX.pack(
            p.prefix_length, flags, p.valid_lifetime, p.preferred_lifetime, 0, p.prefix
        )
    if mtu is not None:
        options += bytes((_OPT_MTU, 1)) + _MTU.pack(mtu)
    if dns:
        for server in dns:
            check_address(server, 16, "DNS server")
        options += bytes((_OPT_RDNSS, 1 + 2 * len(dns))) + _DNS_LIFETIME.pack(dns_lifetime) + b"".join(dns)
    if domains:
        names = emit_names(domains)
        names += bytes(-len(names) % 8)
        options += bytes((_OPT_DNSSL, 1 + len(names) // 8)) + _DNS_LIFETIME.pack(dns_lifetime) + names
    rest = (hop_limit << 24) | router_lifetime
    body = _RA_BODY.pack(reachable_time, retrans_timer) + options
    return emit_icmpv6(buf, offset, src, dst, ND_ROUTER_ADVERT, 0, rest, body)
