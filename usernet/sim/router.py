"""A router host joining simulated segments: IPv4 and IPv6 forwarding between its ports.

Each port sits on one segment's switch with an IPv4 address, an IPv6 one, or both; a
packet arriving on a port for an address on another port's network leaves there with its
TTL (IPv6: hop limit) decremented and, for IPv4, its header checksum recomputed, the next
hop resolved by that port's own `ArpTable` or `NeighborCache` (the stack's: they queue
frames while they ask, retry, give up and count). What it cannot forward it drops and
counts, and answers as a router does (RFC 1812 §4.3, RFC 4443 §3; rate-limited like
Linux's): a TTL that runs out with time exceeded, a network it has no port on with net
unreachable (IPv6: no route), a next hop that never answers with host unreachable (IPv6:
address unreachable), each to the sender, so that traceroute works and a connect to an
absent host fails with "No route to host" instead of timing out. Of the packets for the
router itself it answers pings (to any of its addresses, from the port toward the sender)
and neighbour solicitations, and drops the rest.

On an IPv6 port it is an advertising router (RFC 4861 §6): a link-local address formed
from the port's MAC (modified EUI-64), a router advertisement to all nodes when it starts
and to each host that solicits one (at most one per `_RA_MIN_INTERVAL` per port), naming
the port's prefix on-link and itself a default router, so hosts need no `gateway6`. The
prefix is not offered for autoconfiguration: a simulated host has the address it was given.

It runs on the simulation's loop outside every host: a port's arrival schedules a pump,
and one timer follows the earliest deadline of its cables, ARP tables and neighbour caches.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
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
    parse_ipv6,
)
from usernet.wire.ndp import (
    ND_NEIGHBOR_ADVERT,
    ND_NEIGHBOR_SOLICIT,
    ND_ROUTER_SOLICIT,
    PrefixInfo,
    emit_router_advert,
    parse_neighbor_advert,
    parse_neighbor_solicit,
)

__all__ = ["RouterPort", "SimRouter"]

_TTL = 14 + 8
_CHECKSUM = 14 + 10
_HOP_LIMIT = 14 + 7
_MAX_QUOTE = 576 - 20 - 8  # an error fits the minimum datagram every host takes (RFC 1812 §4.3.2.3)
_MAX_QUOTE6 = IPV6_MIN_MTU - 40 - 8  # as much as fits in the minimum MTU (RFC 4443 §2.4 (c))
_LINK_LOCAL = bytes.fromhex("fe80000000000000")
_RA_MIN_INTERVAL = 3.0  # RFC 4861 §10 MIN_DELAY_BETWEEN_RAS
_ROUTER_LIFETIME = 1800  # seconds (§6.2.1's default: 3 x MaxRtrAdvInterval)


def _eui64_link_local(mac: bytes) -> bytes:
    """fe80::/64 with the modified EUI-64 identifier of `mac` (RFC 4291 appendix A)."""
    return _LINK_LOCAL + bytes((mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]))


def _single_host6(addr: bytes) -> bool:
    """A unicast address an ICMPv6 error may go to: not ::, not multicast."""
    return addr != UNSPECIFIED and addr[0] != 0xFF


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
        return min((d for d in deadlines if d is not None), default=None)


class SimRouter:
    """Forwards IPv4 and IPv6 between its ports; counters say what it did (`forwarded`,
    `dropped`, the ICMP errors it sent, `icmp_errors_sent`, or held back by the rate limit,
    `icmp_rate_limited`, the pings it answered, `echo_answered`, and its router
    advertisements, `adverts_sent`)."""

    def __init__(self, name: str, ports: list[RouterPort]) -> None:
        self.name = name
        self.ports = ports
        self.local = frozenset(p.address for p in ports if p.interface is not None)
        self.local6 = frozenset(a for p in ports if p.interface6 is not None for a in (p.address6, p.link_local))
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
                self._advertise(leg, ALL_NODES, now)
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
            self._receive6(leg, frame, eth.payload, eth.src, now)
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
                if self._send_icmp(packet.dst, packet.src, ICMP_ECHO_REPLY, 0, msg.rest, msg.payload, now):
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
        back = self._egress(ip.src)
        if back is None or not self._allowed(now):
            return
        quote = datagram[: min(ip.total_length, _MAX_QUOTE)]
        if self._send_icmp(back.address, ip.src, kind, code, 0, quote, now):
            self.icmp_errors_sent += 1

    def _send_icmp(
        self, src: bytes, dst: bytes, kind: int, code: int, rest: int, payload: bytes | memoryview, now: float
    ) -> bool:
        """An ICMP message from `src` (one of ours) to `dst`, out of the port toward it; False
        when `dst` is no single host on one of our networks."""
        back = self._egress(dst)
        if back is None or back.arp is None or back.interface is None:
            return False
        if dst[0] == 0 or dst[0] >= 224 or dst in self.local or dst == back.interface.network.broadcast_address.packed:
            return False
        frame = bytearray(14 + 20 + 8 + len(payload))
        emit_ethernet(frame, 0, bytes(6), back.port.mac, ETHERTYPE_IPV4)  # ARP fills the destination
        emit_ipv4_header(frame, 14, src, dst, IPPROTO_ICMP, 8 + len(payload))
        emit_icmp(frame, 34, kind, code, rest, payload)
        back.arp.transmit(frame, dst, back.address, now)
        return True

    def _egress(self, dst: bytes) -> RouterPort | None:
        address = ipaddress.IPv4Address(dst)
        for leg in self.ports:
            if leg.interface is not None and address in leg.interface.network:
                return leg
        return None

    # -- IPv6 -----------------------------------------------------------------------------

    def _receive6(
        self, leg: RouterPort, frame: bytes | memoryview, datagram: memoryview, src_mac: bytes, now: float
    ) -> None:
        try:
            packet = parse_ipv6(datagram)
        except MalformedPacket:
            self.dropped += 1
            return
        dst = packet.dst
        if dst[0] == 0xFF or dst[:8] == _LINK_LOCAL or dst in self.local6:
            self._local6(leg, packet, src_mac, now)
            return
        src = packet.src
        if not _single_host6(src) or src[:8] == _LINK_LOCAL:
            self.dropped += 1  # RFC 4291 §2.5.6: what is from a link-local address stays on its link
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

    def _local6(self, leg: RouterPort, packet: IPv6Packet, src_mac: bytes, now: float) -> None:
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
        try:
            if kind in (ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT, ND_ROUTER_SOLICIT) and packet.hop_limit != 255:
                self.dropped += 1  # RFC 4861 §6.1, §7.1: from off the link
            elif kind == ND_NEIGHBOR_SOLICIT:
                ns = parse_neighbor_solicit(msg)
                if ns.target in (leg.address6, leg.link_local):
                    neighbors.solicited(ns, packet.src, now)
                    neighbors.answer(ns, packet.src, src_mac)
            elif kind == ND_NEIGHBOR_ADVERT:
                neighbors.advertised(parse_neighbor_advert(msg), now)
            elif kind == ND_ROUTER_SOLICIT:
                if now - leg.advertised_at >= _RA_MIN_INTERVAL:
                    self._advertise(leg, packet.src if _single_host6(packet.src) else ALL_NODES, now)
            elif kind == ICMPV6_ECHO_REQUEST and msg.code == 0 and unicast:
                if self._send_icmp6(packet.dst, packet.src, ICMPV6_ECHO_REPLY, 0, msg.rest, msg.payload, now):
                    self.echo_answered += 1
            elif unicast:
                self.dropped += 1
        except MalformedPacket:
            self.dropped += 1

    def _advertise(self, leg: RouterPort, dst: bytes, now: float) -> None:
        """A router advertisement out of `leg` to `dst` (all nodes, or the host that asked):
        this port a default router, its prefix on-link (not for autoconfiguration)."""
        iface = leg.interface6
        assert iface is not None and leg.neighbors is not None
        prefix = PrefixInfo(iface.network.network_address.packed, iface.network.prefixlen, True, False, 0xFFFFFFFF, 0)
        mac = leg.port.mac
        src = leg.link_local
        frame = ndp_frame(
            mac,
            bytes(6),
            src,
            dst,
            lambda b, o: emit_router_advert(b, o, src, dst, _ROUTER_LIFETIME, mac, (prefix,)),
        )
        leg.neighbors.transmit(frame, dst, src, now)
        leg.advertised_at = now
        self.adverts_sent += 1

    def _answer6(self, kind: int, code: int, datagram: bytes | memoryview, now: float) -> None:
        """An ICMPv6 error about `datagram` to its sender, from the port toward it; none about
        an ICMPv6 error, a packet to a group, or from no single host (RFC 4443 §2.4 (e))."""
        try:
            ip = parse_ipv6(datagram)
        except MalformedPacket:
            return
        if not _single_host6(ip.src) or ip.dst[0] == 0xFF:
            return
        if ip.next_header == IPPROTO_ICMPV6 and len(ip.payload) and is_icmpv6_error(ip.payload[0]):
            return
        back = self._egress6(ip.src)
        if back is None or not self._allowed(now):
            return
        quote = datagram[: min(40 + ip.payload_length, _MAX_QUOTE6)]
        if self._send_icmp6(back.address6, ip.src, kind, code, 0, quote, now):
            self.icmp_errors_sent += 1

    def _send_icmp6(
        self, src: bytes, dst: bytes, kind: int, code: int, rest: int, payload: bytes | memoryview, now: float
    ) -> bool:
        """An ICMPv6 message from `src` (one of ours) to `dst`, out of the port toward it;
        False when `dst` is no single host on one of our networks."""
        back = self._egress6(dst)
        if back is None or back.neighbors is None or not _single_host6(dst) or dst in self.local6:
            return False
        frame = bytearray(14 + 40 + 8 + len(payload))
        emit_ethernet(frame, 0, bytes(6), back.port.mac, ETHERTYPE_IPV6)  # the cache fills the destination
        emit_ipv6_header(frame, 14, src, dst, IPPROTO_ICMPV6, 8 + len(payload))
        emit_icmpv6(frame, 54, src, dst, kind, code, rest, payload)
        back.neighbors.transmit(frame, dst, back.address6, now)
        return True

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
