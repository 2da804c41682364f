"""IPv6 address autoconfiguration (RFC 4862) with stable interface identifiers (RFC 7217).

Every address the interface gets — its link-local address, the static ones from the
config, those formed from the prefixes routers advertise — starts TENTATIVE and is
tested by duplicate address detection: `dad_transmits` solicitations from ::, then
RetransTimer of silence makes it PREFERRED (on an IP-only link at once, without DAD,
and no router is solicited); its preferred lifetime ending makes it DEPRECATED (still
ours, no longer chosen as a source), its valid lifetime ending removes it. A duplicate
found for an address with a generated identifier is retried with the next DAD counter
(RFC 7217 §6, at most `IDGEN_RETRIES` times); a duplicate static address is dropped and
counted.

Router advertisements give the default routers, the on-link prefixes, the link MTU,
the hop limit, DNS servers (RFC 8106) and, through prefixes with the A flag, global
addresses. Router solicitations go out once the link-local address is usable.
Redirects are ignored (RFC 4861 §8 lets a host do so): every destination off the link
goes to the default router, which keeps forwarding what it redirects.

What RAs fill is bounded, as Linux and systemd-networkd bound it, so that a flood of RAs
naming ever new routers, prefixes, servers or domains cannot grow memory without limit:
an address is formed from a prefix only while the interface has fewer than
`MAX_ADDRESSES` (Linux's max_addresses, 16, counted over every address as Linux's
ipv6_count_addresses does), and at most `MAX_ROUTERS` default routers, `MAX_PREFIXES`
on-link prefixes, `MAX_DNS_SERVERS` RDNSS servers and `MAX_DOMAINS` DNSSL domains are
kept (systemd's NDISC_RDNSS_MAX and NDISC_DNSSL_MAX are 64; the same bound serves
routers and prefixes). Past a bound a new entry is dropped and counted (`nd_*_full`)
while those already kept are refreshed, shortened or withdrawn as usual; one whose
lifetime ended makes room at once, even before the next poll removes it.

The earliest of all these timers (DAD steps, lifetimes, the next solicitation) is
cached, so that `poll` and `next_deadline` cost one comparison while nothing is due:
the interface polls after every batch of frames. Whatever moves a timer (an address
added, a duplicate, an RA, a poll that did work) drops the cache, and the next
question rescans the tables once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, TypeVar

from usernet.stack.ndisc import NeighborCache, ndp_frame
from usernet.wire.ipv6 import ALL_ROUTERS, multicast_mac, solicited_node
from usernet.wire.ndp import RouterAdvert, emit_router_solicit

if TYPE_CHECKING:
    from usernet.stack.config import InterfaceConfig
    from usernet.stack.stats import Stats

K = TypeVar("K", bound=Hashable)

TENTATIVE = 0
PREFERRED = 1
DEPRECATED = 2
STATE_NAMES = ("TENTATIVE", "PREFERRED", "DEPRECATED")
IDGEN_RETRIES = 3  # RFC 7217 §6
LINK_LOCAL_PREFIX = bytes.fromhex("fe80000000000000")
#: The bounds on what router advertisements fill (see the module).
MAX_ADDRESSES = 16
MAX_ROUTERS = 64
MAX_PREFIXES = 64
MAX_DNS_SERVERS = 64
MAX_DOMAINS = 64
_TWO_HOURS = 7200.0
_INFINITE = 0xFFFFFFFF
_FOREVER = float("inf")


def _lifetime(now: float, seconds: int) -> float:
    return _FOREVER if seconds == _INFINITE else now + seconds


def _first(expiries: dict[K, float]) -> float:
    return min(expiries.values(), default=_FOREVER)


def _expire(table: dict[K, float], now: float) -> bool:
    """Drop the entries of `table` whose time is up; True when any went."""
    gone = [key for key, until in table.items() if until <= now]
    for key in gone:
        del table[key]
    return bool(gone)


def _admit(table: dict[K, float], key: K, until: float, bound: int, now: float) -> bool:
    """Keep `key` until `until`: a key already there is refreshed; a new one only while the table
    holds fewer than `bound` live entries. False when it was refused (the caller counts it)."""
    if key not in table and len(table) >= bound:
        _expire(table, now)  # room held by what already ran out goes first
        if len(table) >= bound:
            return False
    table[key] = until
    return True


def _advertised(table: dict[K, float], entries: tuple[tuple[K, int], ...], now: float, bound: int) -> int:
    """RDNSS and DNSSL entries (RFC 8106 §5.3.1): each lives its lifetime from now; 0 takes it away.
    Returns how many new entries the bound refused."""
    refused = 0
    for key, lifetime in entries:
        if lifetime:
            refused += not _admit(table, key, _lifetime(now, lifetime), bound, now)
        else:
            table.pop(key, None)
    return refused


def _reserved(iid: bytes) -> bool:
    """Interface identifiers RFC 5453 reserves: all zeros, the IANA Ethernet block, subnet anycast."""
    return (
        iid == bytes(8)
        or iid[:5] == b"\x02\x00\x5e\xff\xfe"
        or (iid[:7] == b"\xfd\xff\xff\xff\xff\xff\xff" and iid[7] >= 0x80)
    )


class StableIds:
    """RFC 7217 interface identifiers: F(prefix, interface, DAD counter, secret), keyed BLAKE2s.

    The same secret, MAC and prefix give the same address after every restart, a new
    prefix an unrelated one (so addresses cannot be followed across networks).
    """

    __slots__ = ("_hash", "_mac")

    def __init__(self, secret: bytes, mac: bytes) -> None:
        if not 1 <= len(secret) <= 32:
            raise ValueError(
                f"the IPv6 stable secret must be 1 to 32 bytes (os.urandom(16) will do), got {len(secret)}"
            )
        self._hash = hashlib.blake2s(key=secret, digest_size=8, person=b"rfc7217")
        self._mac = mac

    def address(self, prefix: bytes, counter: int) -> tuple[bytes, int]:
        """The address for a /64 `prefix` (its first 8 bytes count) at DAD counter `counter` or the next one
        whose identifier is not reserved; returns (address, counter used)."""
        while True:
            h = self._hash.copy()
            h.update(prefix[:8] + self._mac + counter.to_bytes(2, "big"))
            iid = h.digest()
            if not _reserved(iid):
                return prefix[:8] + iid, counter
            counter += 1


class Address6:
    """One of our IPv6 addresses and where it is in its life."""

    __slots__ = (
        "address",
        "counter",
        "dad_left",
        "deadline",
        "preferred_until",
        "prefix_length",
        "stable",
        "state",
        "valid_until",
    )

    def __init__(self, address: bytes, prefix_length: int, stable: bool, counter: int, dad: int, now: float) -> None:
        self.address = address
        self.prefix_length = prefix_length
        self.stable = stable  # generated (RFC 7217): a duplicate is retried with counter + 1
        self.counter = counter
        self.state = TENTATIVE
        self.dad_left = dad
        self.deadline = now  # next DAD step while TENTATIVE
        self.valid_until = _FOREVER
        self.preferred_until = _FOREVER

    def __repr__(self) -> str:
        return f"<Address6 {self.address.hex()}/{self.prefix_length} {STATE_NAMES[self.state]}>"


class Autoconf:
    """The addresses, routers, on-link prefixes and link parameters of one IPv6 interface.

    `changed()` is called whenever what routing depends on moves (an address becomes
    usable or goes, a router or prefix comes or goes), so the Ipv6 layer can drop its
    cached routes and recompute the groups it listens to.
    """

    def __init__(
        self,
        config: InterfaceConfig,
        stats: Stats,
        output: list[bytearray | bytes],
        neighbors: NeighborCache,
        changed: Callable[[], None],
    ) -> None:
        self._config = config
        self._stats = stats
        self._out = output
        self._neighbors = neighbors
        self._changed = changed
        self._ids = StableIds(config.ipv6_stable_secret or config.secret, config.mac)
        self.addresses: list[Address6] = []
        self.routers: dict[bytes, float] = {}  # default routers learnt from RAs -> when their lifetime ends
        self.prefixes: dict[tuple[bytes, int], float] = {}  # on-link prefixes from RAs -> expiry
        self.dns: dict[bytes, float] = {}  # RDNSS servers -> expiry
        self.domains: dict[str, float] = {}  # DNSSL search domains -> expiry
        self.link_mtu = config.mtu  # the link's: an RA's MTU option may lower it, never pass it
        self.mtu = config.mtu
        self.hop_limit = config.ttl
        # No DAD and no router solicitations on an IP-only link (stack/ipv6.py says why).
        self._dad = config.dad_transmits if config.ethernet else 0
        self._solicits_left = config.rtr_solicitations if config.slaac and config.ethernet else 0
        self.solicit_at = _FOREVER  # armed when the link-local address becomes usable
        self._heard_router = False
        self._due: float | None = _FOREVER  # the earliest timer of all; None: rescan before use

    # -- life of addresses ---------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin DAD for the link-local address and the static ones."""
        address, counter = self._ids.address(LINK_LOCAL_PREFIX, 0)
        self._add(Address6(address, 64, True, counter, self._dad, now))
        for address, prefix_length in self._config.addresses6:
            self._add(Address6(address, prefix_length, False, 0, self._dad, now))

    def _add(self, entry: Address6) -> None:
        self.addresses.append(entry)
        self._due = None
        self._changed()

    def find(self, address: bytes) -> Address6 | None:
        for entry in self.addresses:
            if entry.address == address:
                return entry
        return None

    def duplicate(self, entry: Address6, now: float) -> None:
        """Someone else has `entry`'s address: give it up (RFC 4862 §5.4.5), retry a generated one."""
        self._stats.dad_duplicates += 1
        if entry in self.addresses:
            self.addresses.remove(entry)
        if entry.stable and entry.counter < IDGEN_RETRIES:
            address, counter = self._ids.address(entry.address[:8], entry.counter + 1)
            retry = Address6(address, entry.prefix_length, True, counter, self._dad, now)
            retry.valid_until = entry.valid_until
            retry.preferred_until = entry.preferred_until
            self.addresses.append(retry)
        self._due = None
        self._changed()

    def poll(self, now: float) -> None:
        if self._earliest() > now:
            return
        moved = False
        for entry in list(self.addresses):
            if entry.state == TENTATIVE:
                if entry.deadline > now:
                    continue
                if entry.dad_left > 0:
                    entry.dad_left -= 1
                    entry.deadline = now + self._neighbors.retrans_time
                    group = solicited_node(entry.address)
                    self._neighbors.send_solicit(bytes(16), group, multicast_mac(group), entry.address)
                    continue
                entry.state = PREFERRED
                moved = True
                if entry.address[:8] == LINK_LOCAL_PREFIX and self._solicits_left and self.solicit_at == _FOREVER:
                    self.solicit_at = now
            if entry.valid_until <= now:
                self.addresses.remove(entry)
                moved = True
            elif entry.state == PREFERRED and entry.preferred_until <= now:
                entry.state = DEPRECATED
                moved = True
        if (
            _expire(self.routers, now)
            | _expire(self.prefixes, now)
            | _expire(self.dns, now)
            | _expire(self.domains, now)
        ):
            moved = True
        if self.solicit_at <= now:
            self._router_solicit(now)
        self._due = None  # something was due: it moved on or went
        if moved:
            self._changed()

    def _router_solicit(self, now: float) -> None:
        link_local = self.link_local()
        if self._heard_router or not self._solicits_left or link_local is None:
            self.solicit_at = _FOREVER
            return
        self._solicits_left -= 1
        self.solicit_at = now + self._config.rtr_solicitation_interval if self._solicits_left else _FOREVER
        mac = self._config.mac
        self._out.append(
            ndp_frame(
                mac,
                multicast_mac(ALL_ROUTERS),
                link_local,
                ALL_ROUTERS,
                lambda b, o: emit_router_solicit(b, o, link_local, ALL_ROUTERS, mac),
            )
        )

    def next_deadline(self) -> float | None:
        deadline = self._earliest()
        return None if deadline == _FOREVER else deadline

    def _earliest(self) -> float:
        """When `poll` next has work (infinity: never), rescanned only after a timer moved."""
        deadline = self._due
        if deadline is not None:
            return deadline
        deadline = min(
            self.solicit_at, _first(self.routers), _first(self.prefixes), _first(self.dns), _first(self.domains)
        )
        for entry in self.addresses:
            if entry.state == TENTATIVE:
                deadline = min(deadline, entry.deadline)
            deadline = min(deadline, entry.valid_until)
            if entry.state == PREFERRED:
                deadline = min(deadline, entry.preferred_until)
        self._due = deadline
        return deadline

    def link_local(self) -> bytes | None:
        """The usable link-local address, if DAD has passed."""
        for entry in self.addresses:
            if entry.state != TENTATIVE and entry.address[:8] == LINK_LOCAL_PREFIX:
                return entry.address
        return None

    def set_link_mtu(self, mtu: int) -> None:
        """The link's MTU changed (a new DHCP lease's): it is the MTU from now, and the ceiling for
        RAs; what an earlier RA said is forgotten until the next one, as Linux resets mtu6 on
        NETDEV_CHANGEMTU. The caller tells the routes (Ipv6.set_link_mtu)."""
        self.link_mtu = self.mtu = mtu

    # -- router advertisements -----------------------------------------------------------

    def router_advert(self, ra: RouterAdvert, router: bytes, now: float) -> None:
        """Take what a valid RA says (RFC 4861 §6.3.4, RFC 4862 §5.5.3)."""
        config = self._config
        self._heard_router = True
        self.solicit_at = _FOREVER
        self._stats.nd_router_adverts += 1
        options = ra.options
        self._neighbors.link_address_seen(router, options.source_mac, now)
        if ra.hop_limit:
            self.hop_limit = ra.hop_limit
        if ra.reachable_time:
            self._neighbors.reachable_time = ra.reachable_time / 1000
        if ra.retrans_timer:
            self._neighbors.retrans_time = ra.retrans_timer / 1000
        if options.mtu is not None and 1280 <= options.mtu <= self.link_mtu:
            self.mtu = options.mtu
        stats = self._stats
        if ra.router_lifetime:
            if not _admit(self.routers, router, now + ra.router_lifetime, MAX_ROUTERS, now):
                stats.nd_routers_full += 1
        else:
            self.routers.pop(router, None)
        stats.nd_dns_full += _advertised(self.dns, options.dns, now, MAX_DNS_SERVERS)
        stats.nd_domains_full += _advertised(self.domains, options.domains, now, MAX_DOMAINS)
        for info in options.prefixes:
            prefix = info.prefix
            if prefix[:8] == LINK_LOCAL_PREFIX or prefix[0] == 0xFF:
                continue  # §6.3.4 and RFC 4862 §5.5.3 b: never from an RA
            if info.on_link:
                key = (prefix, info.prefix_length)
                if info.valid_lifetime:
                    if not _admit(self.prefixes, key, _lifetime(now, info.valid_lifetime), MAX_PREFIXES, now):
                        stats.nd_prefixes_full += 1
                else:
                    self.prefixes.pop(key, None)
            if info.autonomous and config.slaac and info.prefix_length == 64:
                if info.preferred_lifetime > info.valid_lifetime:
                    continue  # RFC 4862 §5.5.3 c
                self._autonomous(prefix, info.valid_lifetime, info.preferred_lifetime, now)
        self._due = None
        self._changed()

    def _autonomous(self, prefix: bytes, valid: int, preferred: int, now: float) -> None:
        for entry in self.addresses:
            if entry.stable and entry.address[:8] == prefix[:8]:
                # RFC 4862 §5.5.3 e: a short valid lifetime only shortens what is left past two hours
                remaining = entry.valid_until - now
                if valid > _TWO_HOURS or valid > remaining:
                    entry.valid_until = _lifetime(now, valid)
                elif remaining > _TWO_HOURS:
                    entry.valid_until = now + _TWO_HOURS
                entry.preferred_until = _lifetime(now, preferred)
                if entry.state == DEPRECATED and entry.preferred_until > now:
                    entry.state = PREFERRED
                return
        if not valid:
            return
        if len(self.addresses) >= MAX_ADDRESSES:
            self.addresses = [entry for entry in self.addresses if entry.valid_until > now]  # ran out: room
            if len(self.addresses) >= MAX_ADDRESSES:
                self._stats.nd_addresses_full += 1  # Linux: ipv6_count_addresses() >= max_addresses
                return
        address, counter = self._ids.address(prefix, 0)
        entry = Address6(address, 64, True, counter, self._dad, now)
        entry.valid_until = _lifetime(now, valid)
        entry.preferred_until = _lifetime(now, preferred)
        self._add(entry)
