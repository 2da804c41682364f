"""IPv6 on an interface (RFC 8200, RFC 4861, RFC 4862): receive, routes, NDP, addresses.

The interface hands this layer every frame of EtherType 0x86DD (on an IP-only link:
every packet of version 6). Packets are accepted for our usable unicast addresses,
all-nodes and the solicited-node groups of all our addresses (tentative ones included,
so duplicate address detection hears the others).
No MLD is sent: on a TAP, a Linux bridge or a veth, multicast reaches us without it.
Extension headers are walked by RFC 8200's rules (`usernet.wire.ipv6.walk_extensions`);
fragments are counted and dropped; ICMPv6 is answered and NDP kept. TCP and UDP
segments go to the handlers the interface registered (`on_protocol`); other upper-layer
protocols are answered with a parameter problem (unrecognised next header).

Routes for IPv6 destinations are `Route`s with an IPv6 template, so sockets send
through the same seam as over IPv4; they carry no offloads (the link's TSO is IPv4's).
They are cached until an address, router or prefix changes.

On an IP-only link (a TUN, a tunnel: `config.ethernet` False) there are no link-layer
addresses to discover and no neighbours but the other end, so there is no NDP at all:
no duplicate address detection (as Linux skips it on a NOARP device such as a TUN), no
router solicitations, and neighbour and router messages that arrive are counted
(`nd_ip_only_ignored`) and dropped. Addresses are the static ones plus the link-local
address, formed as on Ethernet (RFC 7217, as Linux forms one for a TUN with its
stable-privacy or random address generation) and usable at once; packets leave bare, and
every destination on-link or behind the gateway goes to the other end.
"""

from __future__ import annotations

from collections.abc import Callable

from usernet.native import pseudo_sum_v6, sum16
from usernet.stack.config import InterfaceConfig
from usernet.stack.fragments import Reassembler
from usernet.stack.icmp import PingSocket
from usernet.stack.icmpv6 import Icmpv6Layer
from usernet.stack.ipv6_fragments import Ipv6Reassembly
from usernet.stack.ndisc import NeighborCache
from usernet.stack.pmtu import PathMtuCache
from usernet.stack.route import Route
from usernet.stack.slaac import LINK_LOCAL_PREFIX, PREFERRED, STATE_NAMES, TENTATIVE, Address6, Autoconf
from usernet.stack.stats import Stats
from usernet.wire.errors import MalformedPacket
from usernet.wire.ethernet import ETHERTYPE_IPV6
from usernet.wire.icmpv6 import ICMPV6_PARAM_PROBLEM, parse_icmpv6
from usernet.wire.ipv6 import (
    ALL_NODES,
    IPPROTO_ICMPV6,
    IPPROTO_NONE,
    IPV6_MIN_MTU,
    PARAM_BAD_NEXT_HEADER,
    UNSPECIFIED,
    IPv6Packet,
    ParameterProblem,
    Upper,
    is_link_local,
    parse_ipv6,
    solicited_node,
    walk_extensions,
    with_upper,
)
from usernet.wire.ndp import (
    ND_NEIGHBOR_ADVERT,
    ND_NEIGHBOR_SOLICIT,
    ND_REDIRECT,
    ND_ROUTER_ADVERT,
    NeighborAdvert,
    NeighborSolicit,
    parse_neighbor_advert,
    parse_neighbor_solicit,
    parse_router_advert,
)

_ROUTE_CACHE_LIMIT = 1024
# A transport's receive side: (the packet, with the upper-layer segment as its payload, now)
# -> False when no socket is there for it and no answer of its own (UDP): a port
# unreachable goes back.
Transport = Callable[[IPv6Packet, float], bool]


def _prefix_mask(length: int) -> int:
    return ((1 << 128) - 1) ^ ((1 << (128 - length)) - 1)


class Ipv6:
    """The IPv6 side of one interface: its addresses, neighbours, routers and ICMPv6."""

    def __init__(
        self,
        config: InterfaceConfig,
        stats: Stats,
        output: list[bytearray | bytes],
        mark_ready: Callable[[object], None],
    ) -> None:
        self._config = config
        self._stats = stats
        self._ethernet = config.ethernet
        self._out = output
        self._link_header = bytes(6) + config.mac + ETHERTYPE_IPV6.to_bytes(2, "big") if config.ethernet else b""
        self._routes: dict[tuple[bytes, bytes | None], Route] = {}
        self._local: frozenset[bytes] = frozenset()  # usable unicast addresses (DAD passed)
        self._tentative: dict[bytes, Address6] = {}
        self._groups: frozenset[bytes] = frozenset((ALL_NODES,))
        self._on_link: tuple[tuple[int, int], ...] = ()
        self.icmp = Icmpv6Layer(config, stats, self.route_to, mark_ready, self.lower_path_mtu)
        self.neighbors = NeighborCache(config, stats, output, self.icmp.undeliverable)
        self.autoconf = Autoconf(config, stats, output, self.neighbors, self._changed)
        self.path_mtu = self._path_cache(config.mtu)
        self._reassembler = Reassembler(config.frag_timeout, config.frag_memory_limit, config.frag_source_limit)
        self.reassembly = Ipv6Reassembly(self._reassembler, self.icmp.send_error)
        self._transports: dict[int, Transport] = {}

    def on_protocol(self, protocol: int, handler: Transport) -> None:
        """Hand packets of upper-layer `protocol` (TCP, UDP) to `handler`."""
        self._transports[protocol] = handler

    # -- driver side ---------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Start duplicate address detection; router solicitations follow once it passes."""
        self.autoconf.start(now)
        self.autoconf.poll(now)

    def poll(self, now: float) -> None:
        self.neighbors.poll(now)
        self.autoconf.poll(now)
        due = self._reassembler.deadline
        if due is not None and due <= now:
            self.reassembly.poll(now)
        due = self.path_mtu.deadline
        if due is not None and due <= now:
            self.path_mtu.poll(now)

    def next_deadline(self) -> float | None:
        """The earliest of the tables' cached deadlines: no table is scanned here."""
        due = self.neighbors.next_deadline()
        for d in (self.autoconf.next_deadline(), self._reassembler.deadline, self.path_mtu.deadline):
            if d is not None and (due is None or d < due):
                due = d
        return due

    def reassembly_counters(self) -> dict[str, int]:
        """What became of the fragments received, as `ipv6_reasm_*`."""
        return self._reassembler.counters.as_dict("ipv6_reasm_")

    def _path_cache(self, link_mtu: int) -> PathMtuCache:
        config = self._config
        return PathMtuCache(link_mtu, config.pmtu_expires, IPV6_MIN_MTU, self._stats, config.secret)

    def set_link_mtu(self, mtu: int) -> None:
        """The link's MTU changed while running (Interface.set_mtu): routes made from now take it,
        through a fresh path MTU cache, as a router's MTU option does."""
        self.autoconf.set_link_mtu(mtu)
        self._changed()

    def lower_path_mtu(self, dst: bytes, mtu: int, now: float) -> bool:
        """A packet too big (RFC 8201): the path toward `dst` takes `mtu`, never below IPv6's 1280."""
        return self.path_mtu.lower(dst, max(mtu, IPV6_MIN_MTU), now)

    # -- what the rest of the stack asks -------------------------------------------------

    @property
    def local_addresses(self) -> frozenset[bytes]:
        """Our usable unicast addresses: link-local, static and autoconfigured ones that passed DAD."""
        return self._local

    def addresses(self) -> list[tuple[bytes, int, str]]:
        """Every address with its prefix length and state, for display."""
        return [(a.address, a.prefix_length, STATE_NAMES[a.state]) for a in self.autoconf.addresses]

    @property
    def settling(self) -> bool:
        """An address is still in duplicate address detection: it becomes usable within RetransTimer."""
        return bool(self._tentative)

    @property
    def default_router(self) -> bytes | None:
        """The static gateway, else the first router whose advertisement is still valid."""
        if self._config.gateway6 is not None:
            return self._config.gateway6
        return next(iter(self.autoconf.routers), None)

    @property
    def dns_servers(self) -> tuple[bytes, ...]:
        """DNS servers routers advertised (RFC 8106), still within their lifetime."""
        return tuple(self.autoconf.dns)

    @property
    def dns_search(self) -> tuple[str, ...]:
        """Search domains routers advertised (RFC 8106 DNSSL), still within their lifetime."""
        return tuple(self.autoconf.domains)

    def open_ping(self, ident: int | None = None) -> PingSocket:
        return self.icmp.open_ping(ident)

    def route_to(self, dst: bytes, source: bytes | None = None) -> Route | None:
        """The route to `dst` from `source` (one of ours; None: the best one), None if unreachable.

        On-link (link-local, multicast, or inside an on-link prefix): the destination is
        the next hop; elsewhere the default router. None also while no address is usable.
        """
        key = (dst, source)
        route = self._routes.get(key)
        if route is not None:
            return route
        if dst[0] == 0xFF or is_link_local(dst) or self._is_on_link(dst):
            hop = dst
        else:
            router = self.default_router
            if router is None:
                return None
            hop = router
        src = source if source is not None else self._source_for(dst)
        if src is None:
            return None
        autoconf = self.autoconf
        config = self._config
        route = Route(
            dst, src, hop, self._link_header, autoconf.hop_limit, autoconf.mtu, self.transmit,
            tx_checksum_partial=config.tx_checksum_partial, tso_max=config.tso_max, path=self.path_mtu.entry(dst),
        )  # fmt: skip
        if len(self._routes) >= _ROUTE_CACHE_LIMIT:
            self._routes.clear()
        self._routes[key] = route
        return route

    def transmit(self, frame: bytearray, next_hop: bytes, src: bytes, now: float) -> None:
        """A route's way out: the neighbour cache fills the destination MAC or holds the frame;
        on an IP-only link the packet leaves as it is."""
        self._stats.tx_frames += 1
        self._stats.tx_bytes += len(frame)
        if self._ethernet:
            self.neighbors.transmit(frame, next_hop, src, now)
        else:
            self._out.append(frame)

    def _is_on_link(self, dst: bytes) -> bool:
        value = int.from_bytes(dst, "big")
        return any(value & mask == net for net, mask in self._on_link)

    def _source_for(self, dst: bytes) -> bytes | None:
        """RFC 6724's choice, cut down: link-local for link-local and link-scope multicast,
        else a preferred address sharing the longest prefix with `dst`, else a deprecated
        one, else the link-local address."""
        link_local = self.autoconf.link_local()
        if is_link_local(dst) or (dst[0] == 0xFF and dst[1] & 0x0F <= 2):
            return link_local
        value = int.from_bytes(dst, "big")
        best: tuple[bool, int] | None = None
        choice = None
        for entry in self.autoconf.addresses:
            if entry.state == TENTATIVE or is_link_local(entry.address):
                continue
            common = 128 - (value ^ int.from_bytes(entry.address, "big")).bit_length()
            rank = (entry.state == PREFERRED, common)
            if best is None or rank > best:
                best, choice = rank, entry.address
        return choice if choice is not None else link_local

    def _changed(self) -> None:
        """Addresses, routers or prefixes moved: recompute what we accept and forget cached routes."""
        addresses = self.autoconf.addresses
        self._local = frozenset(a.address for a in addresses if a.state != TENTATIVE)
        self._tentative = {a.address: a for a in addresses if a.state == TENTATIVE}
        self._groups = frozenset([ALL_NODES, *(solicited_node(a.address) for a in addresses)])
        on_link = {
            (int.from_bytes(a.address, "big") & _prefix_mask(a.prefix_length), _prefix_mask(a.prefix_length))
            for a in addresses
            if a.state != TENTATIVE and a.address[:8] != LINK_LOCAL_PREFIX
        }
        for prefix, length in self.autoconf.prefixes:
            on_link.add((int.from_bytes(prefix, "big") & _prefix_mask(length), _prefix_mask(length)))
        self._on_link = tuple(on_link)
        if self.autoconf.mtu != self.path_mtu.link_mtu:  # a router's MTU option: the routes to come take it
            self.path_mtu = self._path_cache(self.autoconf.mtu)
        self._routes.clear()

    # -- receive path --------------------------------------------------------------------

    def receive(self, src_mac: bytes, packet: memoryview, now: float) -> None:
        """One IPv6 packet from the frame of `src_mac` (empty on an IP-only link); counted and
        dropped when not ours or bad."""
        stats = self._stats
        try:
            ip = parse_ipv6(packet)
        except MalformedPacket:
            stats.ipv6_malformed += 1
            return
        dst = ip.dst
        local = dst in self._local
        if not local and dst not in self._groups:
            stats.ipv6_not_for_us += 1
            return
        if ip.src[0] == 0xFF:
            stats.ipv6_bad_source += 1  # RFC 4291 §2.7: a multicast address is never a source
            return
        upper = self._walk(ip, packet, now)
        if upper is None:
            return
        if upper.fragment is not None:
            stats.ipv6_fragments += 1
            whole = self.reassembly.add(ip, upper, packet, now)
            if whole is None:
                return
            ip, packet = whole
            upper = self._walk(ip, packet, now)
            if upper is None:
                return
            if upper.fragment is not None:
                stats.ipv6_malformed += 1  # a fragment header inside a fragmented packet
                return
        protocol = upper.protocol
        transport = self._transports.get(protocol)
        if transport is not None:
            if not transport(with_upper(ip, upper), now):
                self.icmp.port_unreachable(ip, packet, now)
        elif protocol == IPPROTO_ICMPV6:
            self._icmpv6_in(ip, upper.payload, local, src_mac, now)
        elif protocol == IPPROTO_NONE:
            stats.ipv6_no_next_header += 1
        else:
            stats.ipv6_unknown_protocol += 1
            self.icmp.send_error(ICMPV6_PARAM_PROBLEM, PARAM_BAD_NEXT_HEADER, upper.pointer, ip, packet, now)

    def _walk(self, ip: IPv6Packet, packet: memoryview, now: float) -> Upper | None:
        """Where the upper layer starts, or None when RFC 8200 says to drop `ip` (answered if it says so)."""
        try:
            return walk_extensions(ip)
        except ParameterProblem as problem:
            self._stats.ipv6_param_problems += 1
            if problem.report:
                self.icmp.send_error(ICMPV6_PARAM_PROBLEM, problem.code, problem.pointer, ip, packet, now)
        except MalformedPacket:
            self._stats.ipv6_malformed += 1
        return None

    def _icmpv6_in(self, ip: IPv6Packet, message: memoryview, local: bool, src_mac: bytes, now: float) -> None:
        stats = self._stats
        n = len(message)
        if n >= 8 and sum16(message, pseudo_sum_v6(ip.src, ip.dst, IPPROTO_ICMPV6, n)) != 0xFFFF:
            stats.icmpv6_bad_checksum += 1
            return
        try:
            msg = parse_icmpv6(message, ip.src, ip.dst, verify_checksum=False)
        except MalformedPacket:
            stats.icmpv6_malformed += 1
            return
        kind = msg.type
        if kind < ND_ROUTER_ADVERT or kind > ND_REDIRECT:
            self.icmp.receive(ip, msg, local, now)
            return
        if kind == ND_REDIRECT:
            stats.nd_redirects_ignored += 1  # RFC 4861 §8: the default router keeps forwarding for us
            return
        if not self._ethernet:
            stats.nd_ip_only_ignored += 1  # no link-layer addresses, no routers: nothing to discover
            return
        if ip.hop_limit != 255:
            stats.nd_malformed += 1  # §6.1, §7.1: from off the link
            return
        try:
            if kind == ND_NEIGHBOR_SOLICIT:
                self._solicit_in(ip, parse_neighbor_solicit(msg), src_mac, now)
            elif kind == ND_NEIGHBOR_ADVERT:
                self._advert_in(ip, parse_neighbor_advert(msg), now)
            elif not is_link_local(ip.src):
                stats.nd_malformed += 1  # §6.1.2: an RA comes from a link-local address
            elif self._config.slaac:
                self.autoconf.router_advert(parse_router_advert(msg), ip.src, now)
            else:
                stats.icmpv6_unhandled += 1
        except MalformedPacket:
            stats.nd_malformed += 1

    def _solicit_in(self, ip: IPv6Packet, ns: NeighborSolicit, src_mac: bytes, now: float) -> None:
        stats = self._stats
        target = ns.target
        src = ip.src
        if target[0] == 0xFF or (src == UNSPECIFIED and (ip.dst != solicited_node(target) or ns.options.source_mac)):
            stats.nd_malformed += 1  # §7.1.1: DAD's solicitation goes to the group and names no link address
            return
        tentative = self._tentative.get(target)
        if tentative is not None:
            if src == UNSPECIFIED:  # RFC 4862 §5.4.3: another node is testing the same address
                self.autoconf.duplicate(tentative, now)
            return
        if target not in self._local:
            stats.icmpv6_unhandled += 1
            return
        self.neighbors.solicited(ns, src, now)
        self.neighbors.answer(ns, src, src_mac)

    def _advert_in(self, ip: IPv6Packet, na: NeighborAdvert, now: float) -> None:
        target = na.target
        if target[0] == 0xFF or (na.solicited and ip.dst[0] == 0xFF):
            self._stats.nd_malformed += 1  # §7.1.2
            return
        tentative = self._tentative.get(target)
        if tentative is not None:  # RFC 4862 §5.4.4: the address is someone else's
            self.autoconf.duplicate(tentative, now)
        elif target in self._local:
            self._stats.nd_address_conflicts += 1  # another node claims an address we hold: we keep it (§5.4.4)
        else:
            self.neighbors.advertised(na, now)
