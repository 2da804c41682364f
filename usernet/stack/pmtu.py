"""Path MTU discovery's memory (RFC 1191, RFC 8201): what ICMP taught us about each destination.

Every route to a destination shares that destination's `PathMtu`, so when an ICMP
"fragmentation needed" (or IPv6's "packet too big") that passed its checks lowers it,
every socket sending there — UDP sizing its fragments, new TCP connections sizing their
MSS — sees the new value at once, whichever route object it holds. A lowered value ages
out after `expires` seconds (Linux's mtu_expires, 10 minutes) and the link's MTU applies
again: if the path is still narrow, the next ICMP lowers it again (RFC 1191 §6.3).
Values below `floor` (Linux's min_pmtu, 552) are refused, as RFC 5927 §5.2 advises
against the forged-ICMP attack that shrinks a connection to a few bytes per segment;
nothing here ever raises a path MTU except the ageing — or the bound: at most
`LOWERED_LIMIT` destinations are remembered lowered (forged errors quoting datagrams to
ever-new destinations would otherwise grow it for ten minutes each), and past it the
oldest goes back to the link's MTU early, counted in `pmtu_evicted` (Linux bounds its
exception cache per hash bucket the same way, dropping the oldest).
"""

from __future__ import annotations

import hashlib
import weakref

from usernet.stack.stats import Stats

LOWERED_LIMIT = 4096  # destinations remembered with a lowered MTU; past it the oldest ages out early


class PathMtu:
    """The MTU toward one destination: the link's, or less since an ICMP said so.

    It also counts the identification of the datagrams sent there in fragments: one
    counter per destination, whichever route (source address, socket) sends, so that no
    two fragmented datagrams to it share one within the peer's reassembly time (RFC 791,
    RFC 6864 §4.1; segments with DF keep their route's counter, RFC 6864 lets them).
    """

    __slots__ = ("__weakref__", "ident", "link_mtu", "mtu")

    def __init__(self, link_mtu: int, ident: int = 0) -> None:
        self.link_mtu = link_mtu
        self.mtu = link_mtu
        self.ident = ident

    def next_ident(self) -> int:
        ident = self.ident = (self.ident + 1) & 0xFFFF
        return ident


class PathMtuCache:
    """Per-destination path MTUs: shared entries for routes, lowered ones kept until they age out."""

    def __init__(self, link_mtu: int, expires: float, floor: int, stats: Stats, secret: bytes = b"") -> None:
        self.link_mtu = link_mtu
        self._stats = stats
        self.expires = expires
        self.floor = floor
        self._secret = secret[:32]
        self._made = 0  # entries made so far: a remade entry's idents start somewhere new
        # Entries live while a route holds them; lowered ones also stay here until they expire.
        self._entries: weakref.WeakValueDictionary[bytes, PathMtu] = weakref.WeakValueDictionary()
        self._lowered: dict[bytes, tuple[float, PathMtu]] = {}  # insertion order is expiry order
        self.deadline: float | None = None  # the first expiry: when `poll` has work

    def entry(self, dst: bytes) -> PathMtu:
        """The shared entry of `dst`, for a route to hold."""
        entry = self._entries.get(dst)
        if entry is None:
            self._made += 1
            seed = hashlib.blake2s(dst + self._made.to_bytes(8, "big"), key=self._secret, digest_size=2).digest()
            entry = self._entries[dst] = PathMtu(self.link_mtu, int.from_bytes(seed, "big"))
        return entry

    def mtu(self, dst: bytes) -> int:
        """The path MTU toward `dst` now."""
        entry = self._entries.get(dst)
        return self.link_mtu if entry is None else entry.mtu

    def acceptable(self, mtu: int) -> bool:
        """May an ICMP's next-hop MTU be acted on at all? Not 0 (RFC 792's unused field) nor below the floor."""
        return mtu >= self.floor

    def lower(self, dst: bytes, mtu: int, now: float) -> bool:
        """Lower the path MTU toward `dst` to `mtu` (already checked by `acceptable` and by the
        transport whose datagram the ICMP quoted); True if it went down."""
        entry = self.entry(dst)
        if mtu >= entry.mtu:
            return False
        entry.mtu = mtu
        lowered = self._lowered
        if lowered.pop(dst, None) is None and len(lowered) >= LOWERED_LIMIT:
            oldest = next(iter(lowered))
            lowered.pop(oldest)[1].mtu = self.link_mtu
            self._stats.pmtu_evicted += 1
        lowered[dst] = (now + self.expires, entry)
        self.deadline = lowered[next(iter(lowered))][0]
        return True

    def poll(self, now: float) -> None:
        """Age out what is due: those destinations get the link's MTU back."""
        lowered = self._lowered
        while lowered:
            dst = next(iter(lowered))
            due, entry = lowered[dst]
            if due > now:
                break
            del lowered[dst]
            entry.mtu = entry.link_mtu
        self.deadline = lowered[next(iter(lowered))][0] if lowered else None

    def next_deadline(self) -> float | None:
        return self.deadline
