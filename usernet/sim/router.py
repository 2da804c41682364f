"""A router host joining simulated segments: IPv4 forwarding between its ports, ARP on each.

Each port sits on one segment's switch with one address; a packet arriving on a port
for an address on another port's network leaves there with its TTL decremented and its
header checksum recomputed, the next hop resolved by that port's own `ArpTable` (the
stack's: it queues frames while it asks, retries, gives up and counts). Packets for the
router itself, for networks it has no port on, or whose TTL runs out are dropped and
counted: it answers no ICMP.

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
from usernet.stack.stats import Stats
from usernet.wire import BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4, MalformedPacket, parse_ethernet, parse_ipv4

__all__ = ["RouterPort", "SimRouter"]

_TTL = 14 + 8
_CHECKSUM = 14 + 10


@dataclass
class RouterPort:
    """One leg of the router: its switch port, its address and network, its ARP table."""

    port: SwitchPort
    interface: ipaddress.IPv4Interface
    output: list[bytearray | bytes] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    arp: ArpTable = field(init=False)

    def __post_init__(self) -> None:
        config = InterfaceConfig(
            mac=self.port.mac, addresses=((self.interface.ip.packed, self.interface.network.prefixlen),)
        )
        self.arp = ArpTable(config, self.stats, self.output)

    @property
    def address(self) -> bytes:
        return self.interface.ip.packed


class SimRouter:
    """Forwards IPv4 between its ports; counters say what it did (`forwarded`, `dropped`)."""

    def __init__(self, name: str, ports: list[RouterPort]) -> None:
        self.name = name
        self.ports = ports
        self.local = frozenset(p.address for p in ports)
        self.forwarded = 0
        self.dropped = 0
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
        out = self._egress(packet.dst)
        if packet.dst in self.local or out is None or out is leg or packet.ttl <= 1:
            self.dropped += 1
            return
        copy = bytearray(frame)
        copy[_TTL] -= 1
        header_end = 14 + (copy[14] & 0x0F) * 4
        copy[_CHECKSUM : _CHECKSUM + 2] = b"\x00\x00"
        copy[_CHECKSUM : _CHECKSUM + 2] = internet_checksum(copy[14:header_end]).to_bytes(2, "big")
        copy[6:12] = out.port.mac
        out.arp.transmit(copy, packet.dst, out.address, now)
        self.forwarded += 1

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
