"""ARP (RFC 826): the neighbour cache, resolution with bounded queues, retries, answers.

Start-up timing differs from Linux on purpose. Linux asks `mcast_solicit` (3) times,
`retrans_time` (1 s) apart, and TCP's initial RTO is also 1 s: when the first request is
ignored (a peer still busy bringing its own side of a fresh TAP up), the first
connection waits a whole second. usernet asks a second time after `arp_first_retry`
(0.2 s: far above any link's round trip, far below the RTO), then every
`arp_retry_interval`, `arp_retries` requests in all as on Linux.

A TCP segment retransmitted while the first copy is still held for resolution
replaces that copy instead of queueing behind it, so the held segment leaves once:
Linux gets the same effect by not retransmitting a segment still in a host queue
(`skb_still_in_host_queue`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from usernet.wire import (
    ARP_REPLY,
    ARP_REQUEST,
    BROADCAST_MAC,
    ETHERTYPE_ARP,
    MalformedPacket,
    emit_arp,
    emit_ethernet,
    parse_arp,
)

if TYPE_CHECKING:
    from usernet.stack.config import InterfaceConfig
    from usernet.stack.stats import Stats

_ZERO_MAC = b"\x00" * 6
_ZERO_IP = b"\x00" * 4
BROADCAST_IP = b"\xff" * 4
_ARP_FRAME_LEN = 14 + 28

# Told of each frame dropped because its next hop never answered: (the packet in it, after
# the Ethernet header; that next hop; now).
Undeliverable: TypeAlias = Callable[[memoryview, bytes, float], None]


class _Pending:
    """Frames waiting for one next hop's MAC, and when to ask again."""

    __slots__ = ("frames", "next_try", "source", "tries")

    def __init__(self, source: bytes, now: float) -> None:
        self.frames: deque[bytearray] = deque()
        self.source = source
        self.tries = 1
        self.next_try = now


def _supersede(held: deque[bytearray], frame: bytearray) -> bool:
    """Put `frame` in the place of a held copy of the same TCP segment; False when it holds none.

    The same segment: IPv4 TCP, same addresses, ports, sequence number and flags (a
    retransmission of a SYN, a FIN or data from the same place).
    """
    if len(frame) < 54 or frame[23] != 6:  # Ethernet + IPv4 + TCP headers; protocol 6 is TCP
        return False
    l4 = 14 + (frame[14] & 15) * 4
    key = frame[26:34] + frame[l4 : l4 + 8] + frame[l4 + 13 : l4 + 14]
    for i, old in enumerate(held):
        if len(old) >= 54 and old[23] == 6:
            o4 = 14 + (old[14] & 15) * 4
            if old[26:34] + old[o4 : o4 + 8] + old[o4 + 13 : o4 + 14] == key:
                held[i] = frame
                return True
    return False


class ArpTable:
    """Maps next-hop IPv4 addresses to MAC addresses, resolving on demand.

    A frame for an unresolved next hop is held (bounded per hop and in number of hops)
    with its destination MAC left blank; the reply fills the MAC in place, so holding
    a frame costs no copy. Entries expire after `arp_timeout` and are re-resolved on
    the next use. The frames dropped when a next hop never answers go to `undeliverable`
    (the interface tells their sockets; a router has nobody to tell).
    """

    def __init__(
        self,
        config: InterfaceConfig,
        stats: Stats,
        output: list[bytearray | bytes],
        undeliverable: Undeliverable | None = None,
    ) -> None:
        self._config = config
        self._stats = stats
        self._out = output
        self._undeliverable = undeliverable
        self._mac = config.mac
        self._entries: dict[bytes, tuple[bytes, float]] = {}
        self._pending: dict[bytes, _Pending] = {}

    def lookup(self, ip: bytes, now: float) -> bytes | None:
        """The MAC for `ip` if known and fresh."""
        entry = self._entries.get(ip)
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def entries(self, now: float) -> dict[bytes, bytes]:
        """The fresh entries, for display."""
        return {ip: mac for ip, (mac, expires) in self._entries.items() if expires > now}

    def send(self, frame: bytearray, next_hop: bytes, source: bytes, now: float) -> None:
        """An Ethernet interface's IPv4 routes' way out (`route.Deliver`): `transmit`, counted in
        the interface's tx counters. A route calls this itself, not through `Interface.transmit`,
        and a fresh entry's frame leaves here, so that a frame to a known neighbour costs one call."""
        stats = self._stats
        stats.tx_frames += 1
        stats.tx_bytes += len(frame)
        entry = self._entries.get(next_hop)
        if entry is not None and entry[1] > now and next_hop != BROADCAST_IP:
            frame[0:6] = entry[0]
            self._out.append(frame)
        else:
            self.transmit(frame, next_hop, source, now)

    def transmit(self, frame: bytearray, next_hop: bytes, source: bytes, now: float) -> None:
        """Send `frame` (destination MAC still to fill) to `next_hop`, resolving it first if needed."""
        if next_hop == BROADCAST_IP:
            frame[0:6] = BROADCAST_MAC
            self._out.append(frame)
            return
        entry = self._entries.get(next_hop)  # lookup() inlined: once per frame sent
        if entry is not None and entry[1] > now:
            frame[0:6] = entry[0]
            self._out.append(frame)
            return
        pending = self._pending.get(next_hop)
        if pending is None:
            if len(self._pending) >= self._config.arp_pending_limit:
                self._stats.arp_queue_full += 1
                return
            pending = self._pending[next_hop] = _Pending(source, now)
            self._request(next_hop, source)
            pending.next_try = now + min(self._config.arp_first_retry, self._config.arp_retry_interval)
        elif _supersede(pending.frames, frame):
            self._stats.arp_superseded += 1
            return
        if len(pending.frames) >= self._config.arp_queue_limit:
            self._stats.arp_queue_full += 1
            return
        pending.frames.append(frame)

    def announce(self, address: bytes) -> None:
        """Gratuitous ARP: tell the link who owns `address` (on start, after a change)."""
        self._request(address, address)

    def receive(self, payload: memoryview, local: frozenset[bytes], now: float) -> None:
        """Handle one ARP packet: learn, answer requests for our addresses, release queues."""
        try:
            pkt = parse_arp(payload)
        except MalformedPacket:
            self._stats.arp_malformed += 1
            return
        spa = pkt.spa
        # RFC 826: update an existing entry whoever the target; add one only if we are the target.
        known = spa in self._entries
        expires = now + self._config.arp_timeout
        if known and spa != _ZERO_IP:
            self._entries[spa] = (pkt.sha, expires)
        if pkt.tpa not in local:
            if not known:
                self._stats.arp_not_for_us += 1
            if spa in self._pending and spa != _ZERO_IP:
                # A gratuitous announcement from a host we are resolving answers us too.
                self._learn(spa, pkt.sha, expires)
            return
        if spa != _ZERO_IP:
            self._learn(spa, pkt.sha, expires)
        if pkt.op == ARP_REQUEST:
            self._reply(pkt.sha, spa, pkt.tpa)
            self._stats.arp_requests_answered += 1
        elif pkt.op == ARP_REPLY:
            self._stats.arp_replies_learned += 1

    def _learn(self, ip: bytes, mac: bytes, expires: float) -> None:
        if ip not in self._entries and len(self._entries) >= self._config.arp_cache_limit:
            self._evict_oldest()
        self._entries[ip] = (mac, expires)
        pending = self._pending.pop(ip, None)
        if pending is not None:
            for frame in pending.frames:
                frame[0:6] = mac
                self._out.append(frame)

    def _evict_oldest(self) -> None:
        victim = min(self._entries.items(), key=lambda item: item[1][1])[0]
        del self._entries[victim]

    def poll(self, now: float) -> None:
        """Retry resolutions that are due; give up after `arp_retries`, drop their frames and say which."""
        if not self._pending:
            return
        interval = self._config.arp_retry_interval
        for ip, pending in list(self._pending.items()):
            if pending.next_try > now:
                continue
            if pending.tries >= self._config.arp_retries:
                self._stats.arp_unresolved += len(pending.frames)
                del self._pending[ip]
                if self._undeliverable is not None:
                    for frame in pending.frames:
                        self._undeliverable(memoryview(frame)[14:], ip, now)
                continue
            pending.tries += 1
            pending.next_try = now + interval
            self._request(ip, pending.source)

    def forget_pending_from(self, gone: frozenset[bytes]) -> None:
        """Drop the resolutions asked for from addresses that are no longer ours, and the frames
        they held: those would leave from an address someone else may have by now."""
        for ip, pending in list(self._pending.items()):
            if pending.source in gone:
                self._stats.arp_unresolved += len(pending.frames)
                del self._pending[ip]

    def next_deadline(self) -> float | None:
        if not self._pending:
            return None
        return min(p.next_try for p in self._pending.values())

    def _request(self, target: bytes, source: bytes) -> None:
        frame = bytearray(_ARP_FRAME_LEN)
        emit_ethernet(frame, 0, BROADCAST_MAC, self._mac, ETHERTYPE_ARP)
        emit_arp(frame, 14, ARP_REQUEST, self._mac, source, _ZERO_MAC, target)
        self._out.append(frame)

    def _reply(self, to_mac: bytes, to_ip: bytes, our_ip: bytes) -> None:
        frame = bytearray(_ARP_FRAME_LEN)
        emit_ethernet(frame, 0, to_mac, self._mac, ETHERTYPE_ARP)
        emit_arp(frame, 14, ARP_REPLY, self._mac, our_ip, to_mac, to_ip)
        self._out.append(frame)
