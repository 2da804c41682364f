"""The cached IPv6 deadlines (neighbour cache, autoconfiguration) always equal a fresh scan of the tables.

`NeighborCache` and `Autoconf` keep their earliest timer instead of scanning on every
`poll` / `next_deadline`; a stale cache would make the interface sleep through a DAD
step, a lifetime or a retransmission. Random sequences of router advertisements (router,
prefix, RDNSS and DNSSL lifetimes from zero to infinite), solicitations, advertisements,
DAD conflicts, sends and the passing of time are applied, and after each one the cached
answers are compared with the minimum over every entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.stack.test_ipv6_sim import MAC, PREFIX, ROUTER, ROUTER_MAC, frame, iface
from usernet.stack import Interface
from usernet.stack.ipv6 import Ipv6
from usernet.stack.slaac import LINK_LOCAL_PREFIX, PREFERRED, TENTATIVE
from usernet.wire.ipv6 import ALL_NODES, IPPROTO_ICMPV6, UNSPECIFIED, multicast_mac, solicited_node
from usernet.wire.ndp import (
    NA_OVERRIDE,
    NA_SOLICITED,
    PrefixInfo,
    emit_neighbor_advert,
    emit_neighbor_solicit,
    emit_router_advert,
)

INFINITE = 0xFFFFFFFF
FOREVER = float("inf")
NEIGHBORS = [bytes.fromhex(f"fe8000000000000000000000000000{n:02x}") for n in (0x11, 0x12, 0x13)]
MACS = [bytes.fromhex(f"0200000000{n:02x}") for n in (0x11, 0x12)]
PREFIXES = [PREFIX, bytes.fromhex("20010db8000000080000000000000000")]
LIFETIMES = st.sampled_from([0, 1, 2, 3, 30, 7201, INFINITE])
STEPS = st.sampled_from([0.0, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 31.0, 7200.0])


def _ndp(src: bytes, dst: bytes, write: Callable[[bytearray], int]) -> bytes:
    message = bytearray(120)
    n = write(message)
    dst_mac = multicast_mac(dst) if dst[0] == 0xFF else MAC
    return frame(src, dst, IPPROTO_ICMPV6, bytes(message[:n]), 255, dst_mac)


def _ra(router: int, lifetime: int, prefix: int, valid: int, preferred: int, dns_lifetime: int) -> bytes:
    src = ROUTER[:15] + bytes((0xA0 + router,))
    info = PrefixInfo(PREFIXES[prefix], 64, True, True, valid, preferred)
    dns = (PREFIXES[0][:15] + b"\x53",)
    return _ndp(
        src,
        ALL_NODES,
        lambda m: emit_router_advert(
            m, 0, src, ALL_NODES, lifetime, ROUTER_MAC, (info,), dns=dns, dns_lifetime=dns_lifetime, domains=("lan",)
        ),
    )


def _ns(src: bytes, target: bytes, mac: bytes | None) -> bytes:
    dst = solicited_node(target)
    return _ndp(src, dst, lambda m: emit_neighbor_solicit(m, 0, src, dst, target, mac))


def _na(src: bytes, dst: bytes, flags: int, mac: bytes) -> bytes:
    return _ndp(src, dst, lambda m: emit_neighbor_advert(m, 0, src, dst, src, flags, mac))


EVENTS = st.one_of(
    st.tuples(st.just("wait"), STEPS),
    st.tuples(st.just("due")),
    st.tuples(st.just("ra"), st.integers(0, 1), LIFETIMES, st.integers(0, 1), LIFETIMES, LIFETIMES, LIFETIMES),
    st.tuples(st.just("ns"), st.integers(0, 2), st.integers(0, 1)),
    st.tuples(st.just("na"), st.integers(0, 2), st.integers(0, 1), st.booleans(), st.booleans()),
    st.tuples(st.just("send"), st.integers(0, 2)),
    st.tuples(st.just("dad_ns"), st.integers(0, 3)),
    st.tuples(st.just("dad_na"), st.integers(0, 3)),
)


def _scanned_neighbors(v6: Ipv6) -> float | None:
    cache = v6.neighbors
    deadlines = [entry.deadline for entry in map(cache.lookup, cache.entries()) if entry is not None]
    earliest = min(deadlines, default=FOREVER)
    return None if earliest == FOREVER else earliest


def _scanned_autoconf(v6: Ipv6) -> float | None:
    ac = v6.autoconf
    timers = [ac.solicit_at, *ac.routers.values(), *ac.prefixes.values(), *ac.dns.values(), *ac.domains.values()]
    for a in ac.addresses:  # what `poll` acts on: a DAD step, the valid lifetime, the preferred one while PREFERRED
        timers += [a.valid_until, a.deadline if a.state == TENTATIVE else FOREVER]
        timers.append(a.preferred_until if a.state == PREFERRED else FOREVER)
    earliest = min(timers)
    return None if earliest == FOREVER else earliest


def _ours(v6: Ipv6) -> bytes:
    """Our link-local address (tentative or not), or a neighbour's once DAD conflicts took ours away for good."""
    return next((a.address for a in v6.autoconf.addresses if a.address[:8] == LINK_LOCAL_PREFIX), NEIGHBORS[0])


def _apply(i: Interface, v6: Ipv6, event: tuple[Any, ...], now: float) -> float:
    kind = event[0]
    if kind == "wait":
        now += event[1]
        i.poll(now)
    elif kind == "due":
        deadline = i.next_deadline()
        if deadline is not None and deadline < FOREVER:
            now = max(now, deadline)
            i.poll(now)
    elif kind == "ra":
        _, router, lifetime, prefix, valid, preferred, dns_lifetime = event
        i.receive(_ra(router, min(lifetime, 9000), prefix, valid, preferred, dns_lifetime), now)
    elif kind == "ns":
        i.receive(_ns(NEIGHBORS[event[1]], _ours(v6), MACS[event[2]]), now)
    elif kind == "na":
        _, who, mac, solicited, override = event
        flags = (NA_SOLICITED if solicited else 0) | (NA_OVERRIDE if override else 0)
        i.receive(_na(NEIGHBORS[who], _ours(v6) if solicited else ALL_NODES, flags, MACS[mac]), now)
    elif kind == "send":
        route = i.route_to(NEIGHBORS[event[1]])
        if route is not None:
            v6.neighbors.transmit(bytearray(64), route.next_hop, route.source, now)
    else:
        tentative = [a.address for a in v6.autoconf.addresses if a.state == TENTATIVE]
        if tentative:
            target = tentative[event[1] % len(tentative)]
            dad = _ns(UNSPECIFIED, target, None) if kind == "dad_ns" else _na(target, ALL_NODES, NA_OVERRIDE, MACS[0])
            i.receive(dad, now)
    return now


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2), st.lists(EVENTS, max_size=40))
def test_cached_deadlines_equal_a_fresh_scan_after_any_events(dad: int, events: list[tuple[Any, ...]]) -> None:
    i = iface("2001:db8::2/64", dad_transmits=dad)
    v6 = i.ipv6
    assert v6 is not None
    now = 0.0
    i.start(now)
    for event in events:
        now = _apply(i, v6, event, now)
        i.take_output()
        neighbors, autoconf = _scanned_neighbors(v6), _scanned_autoconf(v6)
        assert v6.neighbors.next_deadline() == neighbors, event
        assert v6.autoconf.next_deadline() == autoconf, event
        expected = min((d for d in (neighbors, autoconf) if d is not None), default=None)
        assert v6.next_deadline() == expected, event
