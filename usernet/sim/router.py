"""A router host joining simulated segments: IPv4 and IPv6 forwarding between its ports.

Each port sits on one segment's switch with an IPv4 address, an IPv6 one, or both; a
packet arriving on a port for an address on another port's network leaves there with its
TTL (IPv6: hop limit) decremented and, for IPv4, its header checksum recomputed, the next
hop resolved by that port's own `ArpTable` or `NeighborCache` (the stack's: they queue
frames while they ask, retry, give up and count). What it cannot forward it drops and
counts, and answers as a router does (RFC 1812 §4.3, RFC 4443 §3; rate-limited like
Linux's): a TTL that runs out with time exceeded, a network it has no port on with net
unreachable (IPv6: no route), a next hop that never answers with host unreachable (IPv6:
address unreachable), a link-local source with a destination off its link with beyond
scope, each to the sender, so that traceroute works and a connect to an absent host fails
with "No route to host" instead of timing out. Of the packets for the router itself it
answers pings (to any of its addresses, and IPv6 ones to all nodes) and neighbour and
router solicitations, and drops the rest.

On an IPv6 port it is an advertising router (RFC 4861 §6.2): a link-local address formed
from the port's MAC (modified EUI-64); router advertisements to all nodes, three at
start-up 16 s apart, then one per 200-600 s (seeded), and within half a second of a
solicitation but never two within 3 s (a solicitation inside that gap is answered when
it ends). Each names the port's prefix on-link and the router a default router for
`ROUTER_LIFETIME`; the prefix is not offered for autoconfiguration: a simulated host has
the address it was given. The periodic advertisements ride on traffic (they go out when
a frame or another timer wakes the router, never on a timer of their own), so that a
simulation where every task waits still ends in `SimulationDeadlock` instead of running
through virtual time forever; the long lifetime (RFC 8319's limit) covers a quiet link.

It runs on the simulation's loop outside every host: a port's arrival schedules a pump,
and one timer follows the earliest deadline of its cables, ARP tables, neighbour caches
and scheduled advertisements.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import random
from dataclasses import dataclass, field

from usernet.link.switch import SwitchPort
from usernet.native import internet_checksum
from usernet.stack.arp import ArpTable
from usernet.stack.config import InterfaceConfig
from usernet.stack.ndisc import NeighborCache, ndp_frame
from usernet.stack.ratelimit import TokenBucket
from usernet.stack.stats import Stats
from usernet.wire import (
    BROADCAST_MAC,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ICMP_DEST_UNREACH,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    ICMP_TIME_EXCEEDED,
    IPPROTO_ICMP,
    UNREACH_HOST,
    UNREACH_NET,
    IPv4Packet,
    MalformedPacket,
    emit_ethernet,
    emit_icmp,
    emit_ipv4_header,
    is_icmp_error,
    parse_ethernet,
    parse_icmp,
    parse_ipv4,
)
from usernet.wire.ethernet import ETHERTYPE_IPV6
from usernet.wire.icmpv6 import (
    ICMPV6_DEST_UNREACH,
    ICMPV6_ECHO_REPLY,
    ICMPV6_ECHO_REQUEST,
    ICMPV6_TIME_EXCEEDED,
    UNREACH6_ADDRESS,
    UNREACH6_BEYOND_SCOPE,
    UNREACH6_NO_ROUTE,
    emit_icmpv6,
    is_icmpv6_error,
    parse_icmpv6,
)
from usernet.wire.ipv6 import (
    ALL_NODES,
    IPPROTO_ICMPV6,
    IPV6_MIN_MTU,
    UNSPECIFIED,
    IPv6Packet,
    emit_ipv6_header,
    is_link_local,
    parse_ipv6,
    walk_extensions,
)
from usernet.wire.ndp import (
    ND_NEIGHBOR_ADVERT,
    ND_NEIGHBOR_SOLICIT,
    ND_ROUTER_SOLICIT,
    PrefixInfo,
    emit_router_advert,
    parse_neighbor_advert,
    parse_neighbor_solicit,
    parse_router_solicit,
)

__all__ = ["RouterPort", "SimRouter"]

_TTL = 14 + 8
_CHECKSUM = 14 + 10
_HOP_LIMIT = 14 + 7
_MAX_QUOTE = 576 - 20 - 8  # an error fits the minimum datagram every host takes (RFC 1812 §4.3.2.3)
_MAX_QUOTE6 = IPV6_MIN_MTU - 40 - 8  # as much as fits in the minimum MTU (RFC 4443 §2.4 (c))
_LINK_LOCAL = bytes.fromhex("fe80000000000000")
_LOOPBACK6 = bytes(15) + b"\x01"
_NEVER = float("inf")
# RFC 4861 §6.2.1, §10 (seconds)
_INITIAL_ADVERTS = 3  # MAX_INITIAL_RTR_ADVERTISEMENTS
_INITIAL_INTERVAL = 16.0  # MAX_INITIAL_RTR_ADVERT_INTERVAL
_ADVERT_INTERVAL = (200.0, 600.0)  # MinRtrAdvInterval, MaxRtrAdvInterval
_ADVERT_GAP = 3.0  # MIN_DELAY_BETWEEN_RAS
_ANSWER_DELAY = 0.5  # MAX_RA_DELAY_TIME
#: The router lifetime its advertisements give (RFC 8319's largest: an idle link keeps its route 18 h).
ROUTER_LIFETIME = 65535


def _eui64_link_local(mac: bytes) -> bytes:
    """fe80::/64 with the modified EUI-64 identifier of `mac` (RFC 4291 appendix A)."""
    return _LINK_LOCAL + bytes((mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]))


def _single_host6(addr: bytes) -> bool:
    """A unicast address of one host elsewhere: not ::, ::1 or a group (RFC 4291 §2.5.2-3)."""
    return addr != UNSPECIFIED and addr != _LOOPBACK6 and addr[0] != 0xFF


@dataclass
class RouterPort:
    """One leg of the router: its switch port, its IPv4 and IPv6 addresses and networks, and
    the ARP table and neighbour cache that resolve its next hops (each there only with an
    address of its family)."""

    port: SwitchPort
    interface: ipaddress.IPv4Interface | None = None
    interface6: ipaddress.IPv6Interface | None = None
    output: list[bytearray | bytes] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    arp: ArpTable | None = field(init=False)
    neighbors: NeighborCache | None = field(init=False)
    #: Datagrams (IPv4 or IPv6) whose next hop never answered, for the router to answer.
    unresolved: list[bytes] = field(default_factory=list)
    #: The port's link-local address (IPv6 ports), the source of its advertisements.
    link_local: bytes = field(init=False, default=b"")
    #: When the port last advertised itself (IPv6 ports), for §10's minimum spacing.
    advertised_at: float = field(init=False, default=float("-inf"))
    #: When the next scheduled advertisement goes (a start-up one, or an answer), on a timer.
    advert_due: float = field(init=False, default=_NEVER)
    #: When traffic next brings a periodic advertisement (no timer of its own).
    refresh_at: float = field(init=False, default=_NEVER)
    initial_left: int = field(init=False, default=_INITIAL_ADVERTS)

    def __post_init__(self) -> None:
        v4, v6 = self.interface, self.interface6
        if v4 is None and v6 is None:
            raise ValueError("a router port needs an IPv4 or an IPv6 address")
        mac = self.port.mac
        config = InterfaceConfig(
            mac=mac,
            addresses=((v4.ip.packed, v4.network.prefixlen),) if v4 is not None else (),
            addresses6=((v6.ip.packed, v6.network.prefixlen),) if v6 is not None else (),
        )
        self.arp = ArpTable(config, self.stats, self.output, self._unresolved) if v4 is not None else None
        self.neighbors = None
        if v6 is not None:
            self.neighbors = NeighborCache(config, self.stats, self.output, self._unresolved, router=True)
            self.link_local = _eui64_link_local(mac)

    def _unresolved(self, datagram: memoryview, next_hop: bytes, now: float) -> None:
        self.unresolved.append(bytes(datagram))

    @property
    def address(self) -> bytes:
        """The port's IPv4 address (b"" on an IPv6-only port)."""
        return self.interface.ip.packed if self.interface is not None else b""

    @property
    def address6(self) -> bytes:
        """The port's IPv6 address (b"" on an IPv4-only port)."""
        return self.interface6.ip.packed if self.interface6 is not None else b""

    def next_deadline(self) -> float | None:
        """The earliest of its cable's, ARP table's and neighbour cache's deadlines."""
        deadlines = [self.port.next_deadline()]
        if self.arp is not None:
            deadlines.append(self.arp.next_deadline())
        if self.neighbors is not None:
            deadlines.append(self.neighbors.next_deadline())
            if self.advert_due != _NEVER:
                deadlines.append(self.advert_due)
        return min((d for d in deadlines if d is not None), default=None)


class SimRouter:
    """Forwards IPv4 and IPv6 between its ports; counters say what it did (`forwarded`,
    `dropped`, the ICMP errors it sent, `icmp_errors_sent`, or held back by the rate limit,
    `icmp_rate_limited`, the pings it answered, `echo_answered`, and its router
    advertisements, `adverts_sent`). `seed` decides the spacing of its advertisements."""

    def __init__(self, name: str, ports: list[RouterPort], seed: int = 0) -> None:
        self.name = name
        self.ports = ports
        self.local = frozenset(p.address for p in ports if p.interface is not None)
        self.local6 = frozenset(p.address6 for p in ports if p.interface6 is not None)  # link-locals: per port
        self._random = random.Random(seed)
        self.forwarded = 0
        self.dropped = 0
        self.icmp_errors_sent = 0
        self.icmp_rate_limited = 0
        self.echo_answered = 0
        self.adverts_sent = 0
        # The hosts' own ICMP error budget (InterfaceConfig's defaults: Linux's icmp_msgs_per_sec, _burst).
        self._budget = TokenBucket(InterfaceConfig.icmp_error_rate, InterfaceConfig.icmp_error_burst)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._armed: float | None = None
        self._pending = False
        self._context = contextvars.Context()  # on no host
        for leg in ports:
            leg.port.on_arrival = self._arrived

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        now = loop.time()
        for leg in self.ports:
            if leg.arp is not None:
                leg.arp.announce(leg.address)
            if leg.neighbors is not None:
                self._advertise(leg, now)
        self._flush()
        self._rearm()

    def _arrived(self) -> None:
        if not self._pending and self._loop is not None:
            self._pending = True
            self._loop.call_soon(self._pump, context=self._context)

    def _on_timer(self) -> None:
        self._timer = self._armed = None
        self._pump()

    def _pump(self) -> None:
        self._pending = False
        assert self._loop is not None
        now = self._loop.time()
        for leg in self.ports:
            leg.port.poll(now)
            if leg.arp is not None:
                leg.arp.poll(now)
            if leg.neighbors is not None:
                leg.neighbors.poll(now)
                if leg.advert_due <= now or leg.refresh_at <= now:
                    self._advertise(leg, now)
            for datagram in leg.unresolved:
                if datagram[0] >> 4 == 6:
                    self._answer6(ICMPV6_DEST_UNREACH, UNREACH6_ADDRESS, datagram, now)
                else:
                    self._answer(ICMP_DEST_UNREACH, UNREACH_HOST, datagram, now)
            leg.unresolved.clear()
            for frame in leg.port.receive(1 << 16):
                self._receive(leg, frame, now)
        self._flush()
        self._rearm()

    def _receive(self, leg: RouterPort, frame: bytes | memoryview, now: float) -> None:
        try:
            eth = parse_ethernet(frame)
        except MalformedPacket:
            self.dropped += 1
            return
        ethertype = eth.ethertype
        mine = eth.dst == leg.port.mac
        if not mine and not eth.dst[0] & 1:  # another's, and no broadcast or multicast
            return
        if ethertype == ETHERTYPE_ARP and leg.arp is not None:
            leg.arp.receive(eth.payload, frozenset((leg.address,)), now)
        elif ethertype == ETHERTYPE_IPV4 and leg.interface is not None:
            if mine or eth.dst == BROADCAST_MAC:  # an IPv4 group is none of ours
                self._receive4(leg, frame, eth.payload, now)
        elif ethertype == ETHERTYPE_IPV6 and leg.neighbors is not None:
            self._receive6(leg, frame, eth.payload, eth.src, mine, now)
        elif mine:
            self.dropped += 1  # a protocol this port does not speak, sent to it

    # -- IPv4 -----------------------------------------------------------------------------

    def _receive4(self, leg: RouterPort, frame: bytes | memoryview, datagram: memoryview, now: float) -> None:
        try:
            packet = parse_ipv4(datagram)
        except MalformedPacket:
            self.dropped += 1
            return
        if packet.dst in self.local:
            self._local(packet, now)
            return
        out = self._egress(packet.dst)
        if out is leg:
            self.dropped += 1
            return
        if out is None or packet.ttl <= 1:
            self.dropped += 1
            if out is None:
                self._answer(ICMP_DEST_UNREACH, UNREACH_NET, datagram, now)
            else:
                self._answer(ICMP_TIME_EXCEEDED, 0, datagram, now)
            return
        assert out.arp is not None
        copy = bytearray(frame)
        copy[_TTL] -= 1
        header_end = 14 + (copy[14] & 0x0F) * 4
        copy[_CHECKSUM : _CHECKSUM + 2] = b"\x00\x00"
        copy[_CHECKSUM : _CHECKSUM + 2] = internet_checksum(copy[14:header_end]).to_bytes(2, "big")
        copy[6:12] = out.port.mac
        out.arp.transmit(copy, packet.dst, out.address, now)
        self.forwarded += 1

    def _local(self, packet: IPv4Packet, now: float) -> None:
        """A packet for one of the router's addresses: a ping is answered, the rest dropped."""
        if packet.protocol == IPPROTO_ICMP and not packet.fragment_offset and not packet.more_fragments:
            try:
                msg = parse_icmp(packet.payload)
            except MalformedPacket:
                msg = None
            if msg is not None and msg.type == ICMP_ECHO_REQUEST and msg.code == 0:
                back = self._host(packet.src)
                if back is not None:
                    self._send_icmp(back, packet.dst, packet.src, ICMP_ECHO_REPLY, 0, msg.rest, msg.payload, now)
                    self.echo_answered += 1
                return
        self.dropped += 1

    def _answer(self, kind: int, code: int, datagram: bytes | memoryview, now: float) -> None:
        """An ICMP error about `datagram` to its sender, from the port toward it; none about an
        ICMP error, a later fragment, or a sender that is no single host (RFC 1812 §4.3.2.7)."""
        try:
            ip = parse_ipv4(datagram)
        except MalformedPacket:
            return
        if ip.fragment_offset or (ip.protocol == IPPROTO_ICMP and is_icmp_error(ip.payload)):
            return
        back = self._host(ip.src)
        if back is None or not self._allowed(now):
            return
        quote = datagram[: min(ip.total_length, _MAX_QUOTE)]
        self._send_icmp(back, back.address, ip.src, kind, code, 0, quote, now)
        self.icmp_errors_sent += 1

    def _send_icmp(
        self,
        back: RouterPort,
        src: bytes,
        dst: bytes,
        kind: int,
        code: int,
        rest: int,
        payload: bytes | memoryview,
        now: float,
    ) -> None:
        """An ICMP message from `src` (one of ours) to `dst`, out of port `back` (`_host`'s)."""
        assert back.arp is not None
        frame = bytearray(14 + 20 + 8 + len(payload))
        emit_ethernet(frame, 0, bytes(6), back.port.mac, ETHERTYPE_IPV4)  # ARP fills the destination
        emit_ipv4_header(frame, 14, src, dst, IPPROTO_ICMP, 8 + len(payload))
        emit_icmp(frame, 34, kind, code, rest, payload)
        back.arp.transmit(frame, dst, back.address, now)

    def _host(self, dst: bytes) -> RouterPort | None:
        """The port toward `dst` when it is a single host on one of our networks (not 0/8, a
        group, ours or a broadcast address), to send it ICMP; else None."""
        back = self._egress(dst)
        if back is None or back.interface is None:
            return None
        if dst[0] == 0 or dst[0] >= 224 or dst in self.local or dst == back.interface.network.broadcast_address.packed:
            return None
        return back

    def _egress(self, dst: bytes) -> RouterPort | None:
        address = ipaddress.IPv4Address(dst)
        for leg in self.ports:
            if leg.interface is not None and address in leg.interface.network:
                return leg
        return None

    # -- IPv6 -----------------------------------------------------------------------------

    def _receive6(
        self, leg: RouterPort, frame: bytes | memoryview, datagram: memoryview, src_mac: bytes, mine: bool, now: float
    ) -> None:
        """`mine`: the frame was sent to this port's MAC; one to a link-layer group may be for
        the router itself, never one to forward or to answer with an error (RFC 4443 §2.4 (e.3))."""
        try:
            packet = parse_ipv6(datagram)
        except MalformedPacket:
            self.dropped += 1
            return
        dst = packet.dst
        if dst[0] == 0xFF or dst == leg.link_local or dst in self.local6:
            self._local6(leg, packet, src_mac, mine, now)
            return
        if not mine:
            return  # a unicast packet in a frame to a group: not ours to forward (Linux: PACKET_MULTICAST)
        src = packet.src
        if not _single_host6(src) or is_link_local(dst):
            self.dropped += 1  # RFC 4291 §2.5.2-3, §2.5.6: none of these leave their link
            return
        if is_link_local(src):
            self.dropped += 1
            self._answer6(ICMPV6_DEST_UNREACH, UNREACH6_BEYOND_SCOPE, datagram, now, leg)
            return
        out = self._egress6(dst)
        if out is leg:
            self.dropped += 1
            return
        if out is None or packet.hop_limit <= 1:
            self.dropped += 1
            if out is None:
                self._answer6(ICMPV6_DEST_UNREACH, UNREACH6_NO_ROUTE, datagram, now)
            else:
                self._answer6(ICMPV6_TIME_EXCEEDED, 0, datagram, now)
            return
        assert out.neighbors is not None
        copy = bytearray(frame[: 14 + 40 + packet.payload_length])  # without the link's padding
        copy[_HOP_LIMIT] -= 1
        copy[6:12] = out.port.mac
        out.neighbors.transmit(copy, dst, out.address6, now)
        self.forwarded += 1

    def _local6(self, leg: RouterPort, packet: IPv6Packet, src_mac: bytes, mine: bool, now: float) -> None:
        """A packet for the router or a group on the link: neighbour discovery, router
        solicitations and pings are answered; the rest for us is dropped, other groups' ignored."""
        unicast = packet.dst[0] != 0xFF
        if packet.next_header != IPPROTO_ICMPV6:
            if unicast:
                self.dropped += 1
            return
        try:
            msg = parse_icmpv6(packet.payload, packet.src, packet.dst)
        except MalformedPacket:
            self.dropped += 1
            return
        kind = msg.type
        neighbors = leg.neighbors
        assert neighbors is not None
        src = packet.src
        try:
            if kind in (ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT, ND_ROUTER_SOLICIT) and packet.hop_limit != 255:
                self.dropped += 1  # RFC 4861 §6.1, §7.1: from off the link
            elif kind == ND_NEIGHBOR_SOLICIT:
                ns = parse_neighbor_solicit(msg)
                if ns.target in (leg.address6, leg.link_local):
                    neighbors.solicited(ns, src, now)
                    neighbors.answer(ns, src, src_mac)
            elif kind == ND_NEIGHBOR_ADVERT:
                neighbors.advertised(parse_neighbor_advert(msg), now)
            elif kind == ND_ROUTER_SOLICIT:
                self._solicited(leg, src, parse_router_solicit(msg).source_mac, now)
            elif kind == ICMPV6_ECHO_REQUEST and msg.code == 0 and (mine or not unicast):
                # To a group: answered from the port's own address on that link (Linux does).
                source = packet.dst if unicast else (leg.link_local if is_link_local(src) else leg.address6)
                if self._host6(leg, src):
                    self._send_icmp6(leg, source, src, ICMPV6_ECHO_REPLY, 0, msg.rest, msg.payload, now)
                    self.echo_answered += 1
            elif unicast:
                self.dropped += 1
        except MalformedPacket:
            self.dropped += 1

    def _solicited(self, leg: RouterPort, src: bytes, source_mac: bytes | None, now: float) -> None:
        """A router solicitation (RFC 4861 §6.2.6): its link-layer address learnt, and an
        advertisement to all nodes within `_ANSWER_DELAY`, or when the 3 s gap since the last
        one ends; none from :: that names a link-layer address (§6.1.1)."""
        assert leg.neighbors is not None
        if src == UNSPECIFIED:
            if source_mac is not None:
                self.dropped += 1
                return
        else:
            leg.neighbors.link_address_seen(src, source_mac, now)
        due = max(now + self._random.uniform(0, _ANSWER_DELAY), leg.advertised_at + _ADVERT_GAP)
        if due < leg.advert_due:
            leg.advert_due = due

    def _advertise(self, leg: RouterPort, now: float) -> None:
        """A router advertisement out of `leg` to all nodes: this port a default router, its
        prefix on-link (not for autoconfiguration); and when the next one goes."""
        iface = leg.interface6
        assert iface is not None and leg.neighbors is not None
        prefix = PrefixInfo(iface.network.network_address.packed, iface.network.prefixlen, True, False, 0xFFFFFFFF, 0)
        mac = leg.port.mac
        src = leg.link_local
        frame = ndp_frame(
            mac,
            bytes(6),  # the cache fills in the group's MAC
            src,
            ALL_NODES,
            lambda b, o: emit_router_advert(b, o, src, ALL_NODES, ROUTER_LIFETIME, mac, (prefix,)),
        )
        leg.neighbors.transmit(frame, ALL_NODES, src, now)
        leg.advertised_at = now
        if leg.initial_left > 0:
            leg.initial_left -= 1
        leg.advert_due = now + _INITIAL_INTERVAL if leg.initial_left else _NEVER
        leg.refresh_at = now + self._random.uniform(*_ADVERT_INTERVAL)
        self.adverts_sent += 1

    def _answer6(
        self, kind: int, code: int, datagram: bytes | memoryview, now: float, via: RouterPort | None = None
    ) -> None:
        """An ICMPv6 error about `datagram` to its sender, from the port toward it (`via`: the
        one it came in on, for a link-local sender); none about an ICMPv6 error, a packet to a
        group, or from no single host (RFC 4443 §2.4 (e))."""
        try:
            ip = parse_ipv6(datagram)
            upper = walk_extensions(ip)
        except MalformedPacket:  # ParameterProblem too: what the walk refuses is no packet to quote
            return
        src = ip.src
        if ip.dst[0] == 0xFF:
            return
        first = upper.fragment is None or upper.fragment.offset == 0  # where an ICMPv6 header is seen
        if upper.protocol == IPPROTO_ICMPV6 and first and (not upper.payload or is_icmpv6_error(upper.payload[0])):
            return
        back = via if via is not None else self._egress6(src)
        if back is None or not self._host6(back, src) or not self._allowed(now):
            return
        source = back.link_local if is_link_local(src) else back.address6
        quote = datagram[: min(40 + ip.payload_length, _MAX_QUOTE6)]
        self._send_icmp6(back, source, src, kind, code, 0, quote, now)
        self.icmp_errors_sent += 1

    def _send_icmp6(
        self,
        back: RouterPort,
        src: bytes,
        dst: bytes,
        kind: int,
        code: int,
        rest: int,
        payload: bytes | memoryview,
        now: float,
    ) -> None:
        """An ICMPv6 message from `src` (one of ours) to `dst`, out of port `back` (`_host6` said yes)."""
        assert back.neighbors is not None
        frame = bytearray(14 + 40 + 8 + len(payload))
        emit_ethernet(frame, 0, bytes(6), back.port.mac, ETHERTYPE_IPV6)  # the cache fills the destination
        emit_ipv6_header(frame, 14, src, dst, IPPROTO_ICMPV6, 8 + len(payload))
        emit_icmpv6(frame, 54, src, dst, kind, code, rest, payload)
        back.neighbors.transmit(frame, dst, src, now)

    def _host6(self, back: RouterPort, dst: bytes) -> bool:
        """Whether `dst`, reached out of `back`, is a single host to send ICMPv6 to (not ::, ::1,
        a group or one of ours)."""
        return _single_host6(dst) and dst not in self.local6 and dst != back.link_local

    def _egress6(self, dst: bytes) -> RouterPort | None:
        address = ipaddress.IPv6Address(dst)
        for leg in self.ports:
            if leg.interface6 is not None and address in leg.interface6.network:
                return leg
        return None

    # -- both -----------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """What it did (the counters above), and its ports' ARP and neighbour discovery
        counters summed (arp_unresolved, nd_unresolved, ...)."""
        counts = {
            "forwarded": self.forwarded,
            "dropped": self.dropped,
            "icmp_errors_sent": self.icmp_errors_sent,
            "icmp_rate_limited": self.icmp_rate_limited,
            "echo_answered": self.echo_answered,
            "adverts_sent": self.adverts_sent,
        }
        for leg in self.ports:
            for name, value in leg.stats.as_dict().items():
                if value and name.startswith(("arp_", "nd_")):
                    counts[name] = counts.get(name, 0) + value
        return counts

    def _allowed(self, now: float) -> bool:
        """Whether the error budget has room for one more ICMP error (counted when not)."""
        if self._budget.allow(now):
            return True
        self.icmp_rate_limited += 1
        return False

    def _flush(self) -> None:
        for leg in self.ports:
            output = leg.output
            for frame in output:
                leg.port.send(frame)
            output.clear()

    def _rearm(self) -> None:
        deadlines = [d for leg in self.ports if (d := leg.next_deadline()) is not None]
        if not deadlines or self._loop is None:
            return
        deadline = min(deadlines)
        if self._armed is not None and self._armed <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._on_timer, context=self._context)
        self._armed = deadline

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._armed = None
        self._loop = None
