"""A router host joining simulated segments: IPv4 forwarding between its ports, ARP on each.

Each port sits on one segment's switch with one address; a packet arriving on a port
for an address on another port's network leaves there with its TTL decremented and its
header checksum recomputed, the next hop resolved by that port's own `ArpTable` (the
stack's: it queues frames while it asks, retries, gives up and counts). What it cannot
forward it drops and counts, and answers as a router does (RFC 1812 §4.3, rate-limited
like Linux's): a TTL that runs out with time exceeded, a network it has no port on with
net unreachable, a next hop that never answers ARP with host unreachable, each to the
sender, so that traceroute works and a connect to an absent host fails with "No route to
host" instead of timing out. Of the packets for the router itself it answers pings (an echo
request to any of its addresses, from the port toward the sender) and drops the rest.

It runs on the simulation's loop outside every host: a port's arrival schedules a pump,
and one timer follows the earliest deadline of its cables and ARP tables.
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

__all__ = ["RouterPort", "SimRouter"]

_TTL = 14 + 8
_CHECKSUM = 14 + 10
_MAX_QUOTE = 576 - 20 - 8  # an error fits the minimum datagram every host takes (RFC 1812 §4.3.2.3)


@dataclass
class RouterPort:
    """One leg of the router: its switch port, its address and network, its ARP table."""

    port: SwitchPort
    interface: ipaddress.IPv4Interface
    output: list[bytearray | bytes] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    arp: ArpTable = field(init=False)
    #: Datagrams ARP gave up on (their next hop never answered), for the router to answer.
    unresolved: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        config = InterfaceConfig(
            mac=self.port.mac, addresses=((self.interface.ip.packed, self.interface.network.prefixlen),)
        )
        self.arp = ArpTable(config, self.stats, self.output, self._unresolved)

    def _unresolved(self, datagram: memoryview, next_hop: bytes, now: float) -> None:
        self.unresolved.append(bytes(datagram))

    @property
    def address(self) -> bytes:
        return self.interface.ip.packed


class SimRouter:
    """Forwards IPv4 between its ports; counters say what it did (`forwarded`, `dropped`, the
    ICMP errors it sent, `icmp_errors_sent`, or held back by the rate limit, `icmp_rate_limited`,
    and the pings it answered, `echo_answered`)."""

    def __init__(self, name: str, ports: list[RouterPort]) -> None:
        self.name = name
        self.ports = ports
        self.local = frozenset(p.address for p in ports)
        self.forwarded = 0
        self.dropped = 0
        self.icmp_errors_sent = 0
        self.icmp_rate_limited = 0
        self.echo_answered = 0
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
        for leg in self.ports:
            leg.arp.announce(leg.address)
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
            leg.arp.poll(now)
            for datagram in leg.unresolved:
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
        if eth.dst != leg.port.mac and eth.dst != BROADCAST_MAC:
            return
        if eth.ethertype == ETHERTYPE_ARP:
            leg.arp.receive(eth.payload, frozenset((leg.address,)), now)
            return
        if eth.ethertype != ETHERTYPE_IPV4:
            self.dropped += 1
            return
        try:
            packet = parse_ipv4(eth.payload)
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
                self._answer(ICMP_DEST_UNREACH, UNREACH_NET, eth.payload, now)
            else:
                self._answer(ICMP_TIME_EXCEEDED, 0, eth.payload, now)
            return
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
        if back is None:
            return
        if not self._budget.allow(now):
            self.icmp_rate_limited += 1
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
        if (
            back is None
            or dst[0] == 0
            or dst[0] >= 224
            or dst in self.local
            or ipaddress.IPv4Address(dst) == back.interface.network.broadcast_address
        ):
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
            if address in leg.interface.network:
                return leg
        return None

    def _flush(self) -> None:
        for leg in self.ports:
            output = leg.output
            for frame in output:
                leg.port.send(frame)
            output.clear()

    def _rearm(self) -> None:
        deadlines = [
            d for leg in self.ports for d in (leg.port.next_deadline(), leg.arp.next_deadline()) if d is not None
        ]
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
