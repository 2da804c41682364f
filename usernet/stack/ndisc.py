"""Neighbor Discovery (RFC 4861 §7): the neighbour cache and its five states, solicitations, answers.

The IPv6 twin of `arp.py`: a frame for a next hop whose link-layer address is unknown
is held (bounded, destination MAC blank) while multicast solicitations go out, and the
advertisement fills the MAC in place. Entries move INCOMPLETE -> REACHABLE -> STALE ->
DELAY -> PROBE -> REACHABLE as §7.3.2 says. No upper-layer reachability hints are
taken (Linux takes TCP's): a neighbour in use is confirmed by a unicast probe once per
reachable time, which costs one NS/NA pair every 30 s.

The earliest deadline of all entries is cached (`_due`), so that `poll` and
`next_deadline` cost one comparison while nothing is due — the interface polls after
every batch of frames. Every deadline change goes through `_retime` (and every removal
through `_forget`), which keeps the cache exact and rescans the entries only when the
earliest one moves later or goes.

The first retry of a solicitation follows `arp_first_retry`, for the reason arp.py
gives (TCP's initial RTO equals RetransTimer), and the bounds on held frames and entries
are ARP's (`arp_queue_limit`, `arp_pending_limit`, `arp_cache_limit`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from usernet.wire.ethernet import ETHERTYPE_IPV6, emit_ethernet
from usernet.wire.ipv6 import ALL_NODES, IPPROTO_ICMPV6, UNSPECIFIED, emit_ipv6_header, multicast_mac, solicited_node
from usernet.wire.ndp import (
    NA_OVERRIDE,
    NA_ROUTER,
    NA_SOLICITED,
    NeighborAdvert,
    NeighborSolicit,
    emit_neighbor_advert,
    emit_neighbor_solicit,
)

if TYPE_CHECKING:
    from usernet.stack.arp import Undeliverable
    from usernet.stack.config import InterfaceConfig
    from usernet.stack.stats import Stats

INCOMPLETE = 0
REACHABLE = 1
STALE = 2
DELAY = 3
PROBE = 4
STATE_NAMES = ("INCOMPLETE", "REACHABLE", "STALE", "DELAY", "PROBE")
_NO_DEADLINE = float("inf")
_NDP_ROOM = 14 + 40 + 80  # Ethernet, IPv6 and room for any NDP message this stack sends

# Which source address to solicit from, for a target (the Ipv6 layer's source selection).
SourceFor = Callable[[bytes], bytes | None]


def ndp_frame(mac: bytes, dst_mac: bytes, src: bytes, dst: bytes, write: Callable[[bytearray, int], int]) -> bytearray:
    """An Ethernet frame holding an NDP message (hop limit 255, RFC 4861 §6.1.1) that `write` emits at 54."""
    frame = bytearray(_NDP_ROOM)
    length = write(frame, 54)
    del frame[54 + length :]
    emit_ethernet(frame, 0, dst_mac, mac, ETHERTYPE_IPV6)
    emit_ipv6_header(frame, 14, src, dst, IPPROTO_ICMPV6, length, hop_limit=255)
    return frame


class Neighbor:
    """One cache entry: the MAC (None while INCOMPLETE), the state, its deadline and held frames.

    The deadline is the cache's to move (`NeighborCache._retime`), which keeps its earliest one."""

    __slots__ = ("deadline", "frames", "mac", "probes", "source", "state")

    def __init__(self, state: int, mac: bytes | None, deadline: float, source: bytes) -> None:
        self.state = state
        self.mac = mac
        self.deadline = deadline
        self.probes = 0
        self.source = source
        self.frames: deque[bytearray] = deque()


class NeighborCache:
    """Next-hop IPv6 address -> MAC, with RFC 4861's reachability states; sends its own NS."""

    def __init__(
        self,
        config: InterfaceConfig,
        stats: Stats,
        output: list[bytearray | bytes],
        undeliverable: Undeliverable | None = None,
        *,
        router: bool = False,
    ) -> None:
        self._config = config
        self._answer_flags = NA_ROUTER if router else 0  # a router says so in its advertisements (§4.4)
        self._stats = stats
        self._out = output
        self._undeliverable = undeliverable  # told of the frames dropped when resolution fails
        self._mac = config.mac
        self._entries: dict[bytes, Neighbor] = {}
        self._due: float | None = _NO_DEADLINE  # the earliest entry deadline; None: rescan before use
        self.reachable_time = config.nd_reachable_time
        self.retrans_time = config.nd_retrans_time

    def lookup(self, ip: bytes) -> Neighbor | None:
        return self._entries.get(ip)

    def entries(self) -> dict[bytes, tuple[bytes | None, str]]:
        """Every entry as (MAC, state name), for display."""
        return {ip: (n.mac, STATE_NAMES[n.state]) for ip, n in self._entries.items()}

    def transmit(self, frame: bytearray, next_hop: bytes, source: bytes, now: float) -> None:
        """Send `frame` (destination MAC still to fill) to `next_hop`, resolving it first if needed."""
        if next_hop[0] == 0xFF:
            frame[0:6] = multicast_mac(next_hop)
            self._out.append(frame)
            return
        entry = self._entries.get(next_hop)
        if entry is not None and entry.mac is not None:
            state = entry.state
            if state == REACHABLE and entry.deadline <= now:
                state = STALE
            if state == STALE:  # §7.3.3: using a stale entry starts the wait for a confirmation
                entry.state = DELAY
                self._retime(entry, now + self._config.nd_delay_first_probe)
                entry.source = source
            frame[0:6] = entry.mac
            self._out.append(frame)
            return
        if entry is None:
            if len(self._entries) >= self._config.arp_cache_limit and not self._evict():
                self._stats.nd_queue_full += 1
                return
            entry = self._entries[next_hop] = Neighbor(INCOMPLETE, None, _NO_DEADLINE, source)
            self._solicit(next_hop, entry, now)
        if len(entry.frames) >= self._config.arp_queue_limit:
            self._stats.nd_queue_full += 1
            return
        entry.frames.append(frame)

    def _evict(self) -> bool:
        """Make room by dropping a STALE entry (one nobody is using); False when every entry is busy."""
        for ip, entry in self._entries.items():
            if entry.state == STALE:
                self._forget(ip, entry)
                return True
        return False

    def _retime(self, entry: Neighbor, deadline: float) -> None:
        """Give `entry` a new deadline and keep `_due` the earliest of all."""
        due = self._due
        if due is not None:
            if deadline < due:
                self._due = deadline
            elif entry.deadline == due and deadline != due:
                self._due = None  # the earliest moved later: another entry may be first now
        entry.deadline = deadline

    def _forget(self, ip: bytes, entry: Neighbor) -> None:
        """Remove `entry`; when it held the earliest deadline, `_due` is rescanned."""
        del self._entries[ip]
        if entry.deadline == self._due:
            self._due = None

    def _earliest(self) -> float:
        """The earliest deadline of all entries (infinity for none), rescanned only after it moved later."""
        due = self._due
        if due is None:
            due = self._due = min((entry.deadline for entry in self._entries.values()), default=_NO_DEADLINE)
        return due

    def _solicit(self, target: bytes, entry: Neighbor, now: float) -> None:
        """Send the next NS for `entry`: multicast while INCOMPLETE, unicast to the cached MAC in PROBE."""
        entry.probes += 1
        first = entry.probes == 1 and entry.state == INCOMPLETE
        wait = min(self._config.arp_first_retry, self.retrans_time) if first else self.retrans_time
        self._retime(entry, now + wait)
        if entry.state == INCOMPLETE or entry.mac is None:
            dst, dst_mac = solicited_node(target), multicast_mac(solicited_node(target))
        else:
            dst, dst_mac = target, entry.mac
        self.send_solicit(entry.source, dst, dst_mac, target)

    def send_solicit(self, src: bytes, dst: bytes, dst_mac: bytes, target: bytes) -> None:
        """One NS for `target`; from :: (duplicate address detection) it carries no link-layer option."""
        option = None if src == UNSPECIFIED else self._mac
        self._out.append(
            ndp_frame(self._mac, dst_mac, src, dst, lambda b, o: emit_neighbor_solicit(b, o, src, dst, target, option))
        )

    def poll(self, now: float) -> None:
        """Advance entries whose deadline passed: retry, give up, go stale, start probing."""
        if self._earliest() > now:
            return
        config = self._config
        for ip, entry in list(self._entries.items()):
            if entry.deadline > now:
                continue
            state = entry.state
            if state == INCOMPLETE:
                if entry.probes >= config.nd_max_multicast_solicit:
                    self._stats.nd_unresolved += len(entry.frames)
                    self._forget(ip, entry)
                    if self._undeliverable is not None:
                        for frame in entry.frames:
                            self._undeliverable(memoryview(frame)[14:], ip, now)
                else:
                    self._solicit(ip, entry, now)
            elif state == REACHABLE:
                entry.state = STALE
                self._retime(entry, _NO_DEADLINE)
            elif state == DELAY:
                entry.state = PROBE
                entry.probes = 0
                self._solicit(ip, entry, now)
            elif state == PROBE:
                if entry.probes >= config.nd_max_unicast_solicit:
                    self._forget(ip, entry)
                else:
                    self._solicit(ip, entry, now)

    def next_deadline(self) -> float | None:
        deadline = self._earliest()
        return None if deadline == _NO_DEADLINE else deadline

    def solicited(self, ns: NeighborSolicit, src: bytes, now: float) -> None:
        """What an NS tells us about its sender (§7.2.3): a new or changed MAC makes a STALE entry."""
        mac = ns.options.source_mac
        if src == UNSPECIFIED or mac is None:
            return
        self._learn_unsolicited(src, mac, now)

    def link_address_seen(self, ip: bytes, mac: bytes | None, now: float) -> None:
        """The source link-layer option of a router advertisement (§6.3.4) or, at a router, of a
        router solicitation (§6.2.6), taken as an NS's would be."""
        if mac is not None:
            self._learn_unsolicited(ip, mac, now)

    def _learn_unsolicited(self, ip: bytes, mac: bytes, now: float) -> None:
        entry = self._entries.get(ip)
        if entry is None:
            if len(self._entries) >= self._config.arp_cache_limit and not self._evict():
                self._stats.nd_cache_full += 1  # every entry is in use: news of a stranger waits
                return
            self._entries[ip] = Neighbor(STALE, mac, _NO_DEADLINE, UNSPECIFIED)
        elif entry.mac != mac:
            entry.mac = mac
            entry.state = STALE
            self._retime(entry, _NO_DEADLINE)
            self._release(entry)

    def advertised(self, na: NeighborAdvert, now: float) -> None:
        """Take an NA (§7.2.5): complete a resolution, confirm reachability, or note a changed MAC."""
        entry = self._entries.get(na.target)
        if entry is None:
            return  # unsolicited news of a neighbour we do not talk to: no entry is made
        mac = na.options.target_mac
        self._stats.nd_adverts_learned += 1
        if entry.state == INCOMPLETE:
            if mac is None:
                return
            entry.mac = mac
            self._confirm(entry, na.solicited, now)
            self._release(entry)
            return
        changed = mac is not None and mac != entry.mac
        if changed and not na.override:
            if entry.state == REACHABLE:
                entry.state = STALE
                self._retime(entry, _NO_DEADLINE)
            return
        if changed:
            entry.mac = mac
        if na.solicited:
            self._confirm(entry, True, now)
        elif changed:
            entry.state = STALE
            self._retime(entry, _NO_DEADLINE)

    def _confirm(self, entry: Neighbor, solicited: bool, now: float) -> None:
        entry.probes = 0
        entry.state = REACHABLE if solicited else STALE
        self._retime(entry, now + self.reachable_time if solicited else _NO_DEADLINE)

    def _release(self, entry: Neighbor) -> None:
        mac = entry.mac
        if mac is None:
            return
        while entry.frames:
            frame = entry.frames.popleft()
            frame[0:6] = mac
            self._out.append(frame)

    def answer(self, ns: NeighborSolicit, src: bytes, src_mac: bytes) -> None:
        """Advertise our address `ns.target` to the soliciting node (§7.2.4), to all nodes if it was ::.

        The answer goes to the MAC the solicitation came from: that is the node asking,
        whether or not it sent a link-layer option.
        """
        target = ns.target
        if src == UNSPECIFIED:
            dst, dst_mac, flags = ALL_NODES, multicast_mac(ALL_NODES), self._answer_flags | NA_OVERRIDE
        else:
            dst, dst_mac, flags = src, src_mac, self._answer_flags | NA_SOLICITED | NA_OVERRIDE
        mac = self._mac
        self._out.append(
            ndp_frame(
                mac, dst_mac, target, dst, lambda b, o: emit_neighbor_advert(b, o, target, dst, target, flags, mac)
            )
        )
        self._stats.nd_solicits_answered += 1
