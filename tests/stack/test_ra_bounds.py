"""What router advertisements fill stays bounded: routers, prefixes, addresses, RDNSS and DNSSL.

A flood of RAs, each naming new routers, prefixes, servers and domains, must never grow
the tables past their bounds (Linux's max_addresses, systemd-networkd's 64 per link);
what does not fit is dropped and counted, never raised; entries already kept are still
refreshed and withdrawn, and once lifetimes run out the room is there for new ones.
The neighbour cache, which RAs and solicitations from strangers feed, keeps its bound too.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.stack.test_ipv6_sim import ROUTER, ROUTER_MAC, frame, iface, link_local, settled
from usernet.stack import Interface
from usernet.stack.slaac import MAX_ADDRESSES, MAX_DNS_SERVERS, MAX_DOMAINS, MAX_PREFIXES, MAX_ROUTERS, Autoconf
from usernet.wire.ipv6 import ALL_NODES, IPPROTO_ICMPV6, multicast_mac, solicited_node
from usernet.wire.ndp import PrefixInfo, emit_neighbor_solicit, emit_router_advert

INFINITE = 0xFFFFFFFF


def router(n: int) -> bytes:
    return ROUTER[:12] + n.to_bytes(4, "big")


def prefix(n: int) -> bytes:
    return bytes.fromhex("20010db8") + n.to_bytes(4, "big") + bytes(8)


def server(n: int) -> bytes:
    return bytes.fromhex("20010db8ffff") + bytes(6) + n.to_bytes(4, "big")


def ra(
    src: int,
    lifetime: int,
    prefixes: tuple[int, ...] = (),
    valid: int = 3600,
    servers: tuple[int, ...] = (),
    domains: tuple[int, ...] = (),
    dns_lifetime: int = 3600,
) -> bytes:
    """An RA from router `src` with autonomous on-link /64s, one RDNSS and one DNSSL option."""
    me = router(src)
    infos = tuple(PrefixInfo(prefix(p), 64, True, True, valid, min(valid, 1800)) for p in prefixes)
    message = bytearray(1400)
    n = emit_router_advert(
        message, 0, me, ALL_NODES, lifetime, ROUTER_MAC, infos,
        dns=tuple(server(s) for s in servers), dns_lifetime=dns_lifetime, domains=tuple(f"d{d}.lan" for d in domains),
    )  # fmt: skip
    return frame(me, ALL_NODES, IPPROTO_ICMPV6, bytes(message[:n]), hop_limit=255, dst_mac=multicast_mac(ALL_NODES))


def autoconf(i: Interface) -> Autoconf:
    assert i.ipv6 is not None
    return i.ipv6.autoconf


def within_bounds(a: Autoconf) -> bool:
    return (
        len(a.addresses) <= MAX_ADDRESSES
        and len(a.routers) <= MAX_ROUTERS
        and len(a.prefixes) <= MAX_PREFIXES
        and len(a.dns) <= MAX_DNS_SERVERS
        and len(a.domains) <= MAX_DOMAINS
    )


def test_a_flood_of_new_routers_and_prefixes_fills_each_table_to_its_bound_and_counts_the_rest():
    i = settled(iface())
    a = autoconf(i)
    for n in range(100):
        i.receive(ra(n, 1800, (n,), servers=(n,), domains=(n,)), 5.0)
        i.poll(5.0)
    assert (len(a.routers), len(a.prefixes), len(a.dns), len(a.domains)) == (64, 64, 64, 64)
    assert len(a.addresses) == MAX_ADDRESSES  # the link-local address and 15 formed ones, as on Linux
    stats = i.stats()
    assert (stats["nd_routers_full"], stats["nd_prefixes_full"]) == (36, 36)
    assert (stats["nd_dns_full"], stats["nd_domains_full"]) == (36, 36)
    assert stats["nd_addresses_full"] == 100 - (MAX_ADDRESSES - 1)
    # Those kept first are the ones kept: a later flood does not push them out.
    assert router(0) in a.routers and router(99) not in a.routers


def test_entries_kept_are_still_refreshed_and_withdrawn_when_the_tables_are_full():
    i = settled(iface())
    a = autoconf(i)
    for n in range(MAX_ROUTERS):
        i.receive(ra(n, 1800, (n,), servers=(n,), domains=(n,)), 5.0)
    i.receive(ra(0, 1800, (0,), servers=(0,), domains=(0,), dns_lifetime=9000), 100.0)  # refresh: not a new entry
    assert a.routers[router(0)] == 1900.0 and a.dns[server(0)] == 9100.0 and i.stats()["nd_routers_full"] == 0
    i.receive(ra(1, 0, (1,), valid=0, servers=(1,), domains=(1,), dns_lifetime=0), 100.0)  # withdrawn
    assert router(1) not in a.routers and (prefix(1), 64) not in a.prefixes and server(1) not in a.dns
    i.receive(ra(500, 1800, (500,), servers=(500,), domains=(500,)), 100.0)  # the room withdrawn left
    assert router(500) in a.routers and (prefix(500), 64) in a.prefixes and server(500) in a.dns
    assert "d500.lan" in a.domains and within_bounds(a)


def test_expiry_frees_the_room_even_before_the_poll_that_removes_them():
    i = settled(iface())
    a = autoconf(i)
    for n in range(MAX_ROUTERS):
        i.receive(ra(n, 10, (n,), valid=10, servers=(n,), domains=(n,), dns_lifetime=10), 5.0)
    i.receive(ra(1000, 1800, (1000,), servers=(1000,), domains=(1000,)), 15.0)  # all ran out at 15, no poll yet
    assert set(a.routers) == {router(1000)} and set(a.prefixes) == {(prefix(1000), 64)}
    assert set(a.dns) == {server(1000)} and set(a.domains) == {"d1000.lan"}
    stats = i.stats()
    assert stats["nd_routers_full"] == stats["nd_prefixes_full"] == stats["nd_dns_full"] == 0
    i.poll(15.0)
    i.poll(5.0 + 3600)  # the formed addresses' valid lifetime: only the link-local one and the new one stay
    assert len(a.addresses) == 2 and i.next_deadline() is not None


LIFETIMES = st.sampled_from([0, 1, 5, 60, 3600, INFINITE])
ADVERTS = st.tuples(
    st.integers(0, 300),  # router
    LIFETIMES,  # router lifetime
    st.lists(st.integers(0, 400), max_size=12).map(tuple),  # prefixes
    LIFETIMES,  # their valid lifetime
    st.lists(st.integers(0, 400), max_size=12).map(tuple),  # RDNSS servers
    st.lists(st.integers(0, 400), max_size=8).map(tuple),  # DNSSL domains
    LIFETIMES,  # RDNSS and DNSSL lifetime
    st.sampled_from([0.0, 0.5, 2.0, 30.0, 4000.0]),  # time passing after it
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ADVERTS, min_size=1, max_size=120))
def test_a_random_flood_of_router_advertisements_never_exceeds_the_bounds(flood):
    i = settled(iface())
    a = autoconf(i)
    now = 5.0
    for src, lifetime, prefixes, valid, servers, domains, dns_lifetime, step in flood:
        i.receive(ra(src, lifetime, prefixes, valid, servers, domains, dns_lifetime), now)
        assert within_bounds(a)
        now += step
        i.poll(now)
        assert within_bounds(a)
        # Nothing kept has outlived its lifetime past the poll: expiry still works under the flood.
        for table in (a.routers, a.prefixes, a.dns, a.domains):
            assert all(until > now for until in table.values())
    # When every finite lifetime has run out, only the infinite ones stay, and a new router gets in.
    now += 2.0**33
    i.poll(now)
    for table in (a.routers, a.prefixes, a.dns, a.domains):
        assert all(until == float("inf") for until in table.values())
    if len(a.routers) < MAX_ROUTERS:
        i.receive(ra(1000, 1800), now)
        assert router(1000) in a.routers


def test_solicitations_from_a_flood_of_strangers_keep_the_neighbour_cache_to_its_bound():
    i = settled(iface(arp_cache_limit=4))
    assert i.ipv6 is not None
    target = link_local(i)
    group = solicited_node(target)
    for n in range(4):  # four neighbours being resolved (INCOMPLETE): in use, never evicted
        route = i.ipv6.route_to(router(n))
        assert route is not None
        route.send_udp(1000, 2000, b"x", 5.0)
    for n in range(100, 110):  # strangers soliciting us: no room for what they tell
        src = router(n)
        message = bytearray(64)
        size = emit_neighbor_solicit(message, 0, src, group, target, ROUTER_MAC)
        i.receive(frame(src, group, IPPROTO_ICMPV6, bytes(message[:size]), 255, multicast_mac(group)), 6.0)
    entries = i.ipv6.neighbors.entries()
    assert set(entries) == {router(n) for n in range(4)} and i.stats()["nd_cache_full"] == 10
