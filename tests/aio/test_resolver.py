"""The stub resolver over usernet's UDP and TCP, against a small DNS server on the peer host.

The server (host B, through the same transports the loop gives programs) answers from
a table built with usernet.wire.dns and can misbehave on purpose: stay silent, answer
with a wrong ID first, truncate over UDP. Host A's loop runs the resolver. The same
resolver against dnsmasq over a TAP is in test_resolver_network.py.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from tests.aio.conftest import B_IP, B_IP6, Pair, make_pair, serve_on_b
from tests.stack.test_ipv6_sim import ROUTER, frame, iface, settled
from usernet.aio.datagram import open_endpoint
from usernet.aio.resolver import Answer, DnsCache, Resolver, network_servers, parse_hosts, parse_resolv_conf
from usernet.wire.dns import (
    CLASS_IN,
    FLAG_QR,
    FLAG_TC,
    RCODE_NXDOMAIN,
    RCODE_SERVFAIL,
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    TYPE_SOA,
    Message,
    Record,
    Soa,
    emit_message,
    name_key,
    parse_message,
)
from usernet.wire.ipv6 import ALL_NODES, IPPROTO_ICMPV6, multicast_mac
from usernet.wire.ndp import emit_router_advert

T = TypeVar("T")
EAI_NODATA = getattr(socket, "EAI_NODATA", socket.EAI_NONAME)
SOA = Record("test", TYPE_SOA, CLASS_IN, 600, Soa("ns.test", "admin.test", 1, 3600, 600, 86400, 30))


@dataclass
class Zone:
    """What the server knows, and how it misbehaves."""

    records: list[Record] = field(default_factory=list)
    silent: int = 0  # UDP queries to ignore before answering
    wrong_id_first: bool = False
    truncate: bool = False  # answer UDP with TC and no records
    failing: str | None = None  # names ending so get SERVFAIL
    udp_queries: int = 0
    tcp_queries: int = 0

    def answer(self, query: bytes) -> bytes:
        message = parse_message(query)
        question = message.questions[0]
        if self.failing is not None and name_key(question.name).endswith(name_key(self.failing)):
            return emit_message(Message(message.ident, FLAG_QR | RCODE_SERVFAIL, message.questions))
        name, answers = question.name, []
        for _ in range(8):  # follow CNAMEs the zone holds, as a recursive server does
            found = [r for r in self.records if name_key(r.name) == name_key(name)]
            answers += [r for r in found if r.rtype in (question.qtype, TYPE_CNAME)]
            alias = next((r for r in found if r.rtype == TYPE_CNAME), None)
            if alias is None or question.qtype == TYPE_CNAME:
                break
            name = str(alias.data)
        known = any(name_key(r.name) == name_key(name) for r in self.records)
        rcode = 0 if known or answers else RCODE_NXDOMAIN
        authority = (SOA,) if not any(r.rtype == question.qtype for r in answers) else ()
        reply = Message(message.ident, FLAG_QR | rcode, message.questions, tuple(answers), authority)
        return emit_message(reply)


class UdpServer(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        zone = self.zone
        zone.udp_queries += 1
        if zone.silent:
            zone.silent -= 1
            return
        reply = bytearray(zone.answer(data))
        if zone.wrong_id_first:
            zone.wrong_id_first = False
            wrong = bytearray(reply)
            wrong[0] ^= 0xFF
            self.transport.sendto(bytes(wrong), addr)
        if zone.truncate:
            reply = bytearray(emit_message(parse_message(reply)._replace(answers=(), authorities=())))
            reply[2] |= FLAG_TC >> 8
        self.transport.sendto(bytes(reply), addr)


class TcpServer(asyncio.Protocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.buffer = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 2 and len(self.buffer) >= 2 + int.from_bytes(self.buffer[:2], "big"):
            size = int.from_bytes(self.buffer[:2], "big")
            query, self.buffer = self.buffer[2 : 2 + size], self.buffer[2 + size :]
            self.zone.tcp_queries += 1
            reply = self.zone.answer(query)
            self.transport.write(len(reply).to_bytes(2, "big") + reply)


def _serve(pair: Pair, zone: Zone, host: str | None) -> Iterator[Zone]:
    """`zone` served on host B's port 53 over UDP and TCP, on `host` (None: any IPv4 address)."""

    async def start() -> tuple[asyncio.BaseTransport, asyncio.AbstractServer]:
        if host is not None and ":" in host:
            await pair.b_driver.ipv6_settled()  # its address is usable once DAD is over
        transport, _ = await open_endpoint(
            pair.loop, pair.b_driver, lambda: UdpServer(zone), (host or "", 53), None, allow_broadcast=False,
            reuse_port=False,
        )  # fmt: skip
        server = await serve_on_b(pair, lambda: TcpServer(zone), 53, host)
        return transport, server

    transport, server = run(pair, start())
    yield zone
    transport.close()
    server.close()


def _zone() -> Zone:
    return Zone(
        [
            Record("web.test", TYPE_A, CLASS_IN, 300, "192.0.2.10"),
            Record("web.test", TYPE_A, CLASS_IN, 60, "192.0.2.11"),
            Record("web.test", TYPE_AAAA, CLASS_IN, 300, "2001:db8::10"),
            Record("www.test", TYPE_CNAME, CLASS_IN, 120, "web.test"),
            Record("alias.test", TYPE_CNAME, CLASS_IN, 120, "www.test"),
            Record("v4only.test", TYPE_A, CLASS_IN, 300, "192.0.2.12"),
        ]
    )


@pytest.fixture
def zone(pair: Pair) -> Iterator[Zone]:
    yield from _serve(pair, _zone(), None)


@pytest.fixture
def pair6(loop_kind: str) -> Iterator[Pair]:
    with make_pair(loop_kind, ipv6=True) as made:
        yield made


@pytest.fixture
def zone6(pair6: Pair) -> Iterator[Zone]:
    """The zone served on host B's IPv6 addresses only (its global and its link-local one)."""
    yield from _serve(pair6, _zone(), "::")


def run(pair: Pair, coro: Coroutine[Any, Any, T]) -> T:
    """`pair.run`, typed: the coroutine's result within 10 s."""
    return pair.loop.run_until_complete(asyncio.wait_for(coro, 10))


def resolver(**options: Any) -> Resolver:
    return Resolver([B_IP], **options)


def test_a_aaaa_and_the_cname_chain(pair: Pair, zone: Zone) -> None:
    r = resolver()
    answer = run(pair, r.lookup("alias.test", TYPE_A))
    assert answer.addresses == ("192.0.2.10", "192.0.2.11") and answer.canonical == "web.test"
    assert answer.ttl == 60  # the least TTL along the chain
    assert run(pair, r.lookup("WEB.test", TYPE_AAAA)).addresses == ("2001:db8::10",)
    assert zone.udp_queries == 2 and r.stats.udp_queries == 2


def test_answers_come_from_the_cache_until_their_ttl(pair: Pair, zone: Zone) -> None:
    r = resolver()
    run(pair, r.lookup("web.test", TYPE_A))
    again = run(pair, r.lookup("Web.Test", TYPE_A))
    assert again.addresses == ("192.0.2.10", "192.0.2.11") and 0 < again.ttl <= 60
    assert zone.udp_queries == 1 and r.stats.cache_hits == 1


def test_nxdomain_and_nodata_are_cached_for_the_soa_minimum(pair: Pair, zone: Zone) -> None:
    r = resolver()
    missing = run(pair, r.lookup("nothing.test", TYPE_A))
    assert missing.addresses == () and missing.rcode == RCODE_NXDOMAIN and missing.ttl == 30
    nodata = run(pair, r.lookup("v4only.test", TYPE_AAAA))
    assert nodata.addresses == () and nodata.rcode == 0 and nodata.ttl == 30
    run(pair, r.lookup("nothing.test", TYPE_A))
    run(pair, r.lookup("v4only.test", TYPE_AAAA))
    assert zone.udp_queries == 2 and r.stats.negative_hits == 2


def test_a_chain_the_answer_leaves_open_is_asked_for_in_turn(pair: Pair, zone: Zone) -> None:
    zone.records.append(Record("far.test", TYPE_CNAME, CLASS_IN, 100, "elsewhere.example"))
    zone.records.append(Record("elsewhere.example", TYPE_A, CLASS_IN, 500, "198.51.100.7"))
    # A server that does not follow the chain itself: answer only the CNAME for far.test.
    zone.records.append(Record("open.test", TYPE_CNAME, CLASS_IN, 100, "far.test"))
    r = resolver()
    answer = run(pair, r.lookup("open.test", TYPE_A))
    assert answer.addresses == ("198.51.100.7",) and answer.canonical == "elsewhere.example"


def test_silence_is_retried_and_a_wrong_id_ignored(pair: Pair, zone: Zone) -> None:
    zone.silent = 1
    zone.wrong_id_first = True
    r = resolver(timeout=0.2, attempts=2)
    assert run(pair, r.lookup("web.test", TYPE_A)).addresses == ("192.0.2.10", "192.0.2.11")
    assert zone.udp_queries == 2 and r.stats.timeouts == 1 and r.stats.ignored_replies == 1


def test_no_answer_at_all_is_a_temporary_failure(pair: Pair, zone: Zone) -> None:
    zone.silent = 10
    r = resolver(timeout=0.1, attempts=2)
    with pytest.raises(socket.gaierror) as info:
        run(pair, r.lookup("web.test", TYPE_A))
    assert info.value.errno == socket.EAI_AGAIN and zone.udp_queries == 2
    assert f"last: {B_IP} did not answer within 0.1 s" in str(info.value)


@pytest.mark.parametrize("name", ["x." * 130, "a" * 64 + ".test", "a..test"])
def test_a_name_dns_cannot_carry_fails_as_getaddrinfo_does(pair: Pair, zone: Zone, name: str) -> None:
    """socket.gaierror (an OSError, what callers of getaddrinfo catch), not the encoder's ValueError."""
    r = resolver()
    with pytest.raises(socket.gaierror) as info:
        run(pair, r.getaddrinfo(name, 80))
    assert info.value.errno == socket.EAI_NONAME and zone.udp_queries == 0


def test_a_server_usernet_cannot_reach_and_no_server_say_so(pair: Pair) -> None:
    with pytest.raises(socket.gaierror) as info:
        run(pair, Resolver(["198.51.100.53"]).lookup("web.test", TYPE_A))  # off-link, and no gateway
    assert info.value.errno == socket.EAI_AGAIN and "last: 198.51.100.53: " in str(info.value)
    with pytest.raises(socket.gaierror, match="no DNS server is configured, give one with --dns ADDR"):
        run(pair, Resolver([]).lookup("web.test", TYPE_A))


def test_a_truncated_udp_answer_is_asked_again_over_tcp(pair: Pair, zone: Zone) -> None:
    zone.truncate = True
    r = resolver()
    assert run(pair, r.lookup("www.test", TYPE_A)).addresses == ("192.0.2.10", "192.0.2.11")
    assert (zone.udp_queries, zone.tcp_queries) == (1, 1) and r.stats.truncated == 1


def test_the_loop_getaddrinfo_uses_the_resolver(pair: Pair, zone: Zone) -> None:
    pair.loop.usernet_resolver = resolver(hosts=parse_hosts("192.0.2.99 printer.lan\n"))  # type: ignore[attr-defined]
    infos = run(pair, pair.loop.getaddrinfo("alias.test", 80, type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME))
    assert [(i[0], i[4]) for i in infos] == [
        (socket.AF_INET, ("192.0.2.10", 80)),
        (socket.AF_INET, ("192.0.2.11", 80)),
        (socket.AF_INET6, ("2001:db8::10", 80, 0, 0)),
    ]
    assert infos[0][3] == "web.test"
    v4 = run(pair, pair.loop.getaddrinfo("alias.test", "http", family=socket.AF_INET, type=socket.SOCK_STREAM))
    assert [i[4] for i in v4] == [("192.0.2.10", 80), ("192.0.2.11", 80)]
    printer = run(pair, pair.loop.getaddrinfo("printer.lan", 9100, type=socket.SOCK_STREAM))
    assert [i[4] for i in printer] == [("192.0.2.99", 9100)]
    for name, code in (("nothing.test", socket.EAI_NONAME), ("v4only.test", socket.EAI_NODATA)):
        with pytest.raises(socket.gaierror) as info:
            run(pair, pair.loop.getaddrinfo(name, 80, family=socket.AF_INET6))
        assert info.value.errno == code and "asked through usernet" in str(info.value)


def test_addrconfig_asks_for_aaaa_only_when_usernet_has_ipv6(pair: Pair, zone: Zone) -> None:
    for ipv6, families in ((False, [socket.AF_INET, socket.AF_INET]), (True, [socket.AF_INET] * 2 + [socket.AF_INET6])):
        r = resolver(ipv6=ipv6)
        infos = run(pair, r.getaddrinfo("alias.test", 80, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG))
        assert [i[0] for i in infos] == families


def test_a_program_connects_by_name(pair: Pair, zone: Zone) -> None:
    zone.records.append(Record("peer.test", TYPE_A, CLASS_IN, 300, B_IP))
    pair.loop.usernet_resolver = resolver()  # type: ignore[attr-defined]

    async def main() -> bytes:
        server = await serve_on_b(pair, _Hello, 8080)
        reader, writer = await asyncio.open_connection("peer.test", 8080)
        data = await reader.read(100)
        writer.close()
        server.close()
        return data

    assert run(pair, main()) == b"hello by name\n"


class _Hello(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        transport.write(b"hello by name\n")
        transport.close()


# -- the parts that need no network -----------------------------------------------------------


def test_cache_counts_ttls_down_and_forgets() -> None:
    cache = DnsCache(max_entries=2)
    cache.put(Answer("a.test", "a.test", TYPE_A, ("192.0.2.1",), ttl=10), now=100.0)
    hit = cache.get("A.TEST", TYPE_A, now=104.5)
    assert hit is not None and hit.addresses == ("192.0.2.1",) and hit.ttl == 5
    assert cache.get("a.test", TYPE_AAAA, now=104.5) is None
    assert cache.get("a.test", TYPE_A, now=110.0) is None and len(cache) == 0
    cache.put(Answer("zero.test", "zero.test", TYPE_A, ("192.0.2.1",), ttl=0), now=0.0)
    assert len(cache) == 0  # TTL 0: use once, keep never (RFC 1035 section 3.2.1)
    for i in range(3):
        cache.put(Answer(f"{i}.test", f"{i}.test", TYPE_A, (), ttl=10), now=0.0)
    assert len(cache) == 2 and cache.get("0.test", TYPE_A, now=1.0) is None


def test_hosts_and_resolv_conf_files() -> None:
    hosts = parse_hosts(
        "127.0.0.1 localhost\n# comment\n::1 localhost ip6-localhost # trailing\n"
        "192.0.2.5 Box.LAN box\nnot-an-address name\nfe80::1%eth0 link\n\n"
    )
    assert hosts["localhost"] == ("127.0.0.1", "::1")
    assert hosts["box.lan"] == ("192.0.2.5",) and hosts["box"] == ("192.0.2.5",)
    assert hosts["link"] == ("fe80::1",) and "name" not in hosts
    conf = "search example\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver junk\nnameserver 10.0.0.1\n"
    assert parse_resolv_conf(conf + "nameserver fe80::1%eth0\n") == [
        "192.0.2.53",
        "2001:db8::53",
        "10.0.0.1",
        "fe80::1",
    ]


def test_servers_are_ip_addresses() -> None:
    with pytest.raises(ValueError, match="not an IPv4 or IPv6 address"):
        Resolver(["ns.example"])
    with pytest.raises(ValueError, match="at least one attempt"):
        Resolver(["192.0.2.53"], attempts=0)
    assert Resolver(["2001:db8::53"]).current_servers() == ["2001:db8::53"]


def test_explicit_then_dhcp_then_advertised_servers_else_the_fallback() -> None:
    """systemd-networkd's order; each server once; resolv.conf's only when nobody else names one."""
    named: list[str] = []
    r = Resolver(["192.0.2.53"], network=lambda: named, fallback=["203.0.113.53"])
    assert r.current_servers() == ["192.0.2.53"] and r.active
    named[:] = ["192.0.2.1", "192.0.2.53", "2001:db8::1"]
    assert r.current_servers() == ["192.0.2.53", "192.0.2.1", "2001:db8::1"]
    network_only = Resolver([], network=lambda: named, fallback=["203.0.113.53"])
    named.clear()
    assert network_only.current_servers() == ["203.0.113.53"]
    bare = Resolver([], network=lambda: named)
    assert not bare.active and Resolver([], network=lambda: named, only=True).active


def router_advert_with_dns(servers: tuple[bytes, ...], lifetime: int, domains: tuple[str, ...] = ()) -> bytes:
    """An RA from ROUTER naming `servers` and search `domains` (RFC 8106 RDNSS and DNSSL) and nothing
    else: no prefix, no default router."""
    message = bytearray(200)
    n = emit_router_advert(message, 0, ROUTER, ALL_NODES, 0, None, dns=servers, dns_lifetime=lifetime, domains=domains)
    return frame(ROUTER, ALL_NODES, IPPROTO_ICMPV6, bytes(message[:n]), hop_limit=255, dst_mac=multicast_mac(ALL_NODES))


def test_advertised_servers_last_their_lifetime_on_a_virtual_clock() -> None:
    i = settled(iface())
    assert i.ipv6 is not None
    first, second = bytes.fromhex("20010db8000000000000000000000053"), bytes.fromhex("20010db8000000000000000000000054")
    i.receive(router_advert_with_dns((first, second), 30, ("lan", "corp.example")), 5.0)
    assert i.ipv6.dns_servers == (first, second) and i.ipv6.dns_search == ("lan", "corp.example")
    deadline = i.next_deadline()
    assert deadline is not None and deadline <= 35.0
    i.poll(34.9)
    assert i.ipv6.dns_servers == (first, second)
    i.receive(router_advert_with_dns((second,), 600, ("corp.example",)), 20.0)  # refreshed: these live on
    i.poll(35.0)
    assert i.ipv6.dns_servers == (second,) and i.ipv6.dns_search == ("corp.example",)
    i.receive(router_advert_with_dns((second,), 0, ("corp.example",)), 40.0)  # lifetime 0: withdrawn (RFC 8106 §5.1)
    assert i.ipv6.dns_servers == () and i.ipv6.dns_search == ()


def test_a_name_without_a_dot_is_asked_with_each_search_domain_then_as_it_is(pair: Pair, zone: Zone) -> None:
    domains = ["nowhere.example", "test"]
    r = resolver(search=lambda: domains, hosts=parse_hosts("192.0.2.99 printer\n"))
    infos = run(pair, r.getaddrinfo("www", 80, type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME))
    assert [i[4] for i in infos] == [("192.0.2.10", 80), ("192.0.2.11", 80), ("2001:db8::10", 80, 0, 0)]
    assert infos[0][3] == "web.test" and zone.udp_queries == 4  # A and AAAA of www.nowhere.example, then www.test
    assert [i[4] for i in run(pair, r.getaddrinfo("printer", 9100, type=socket.SOCK_STREAM))] == [("192.0.2.99", 9100)]
    asked = zone.udp_queries
    with pytest.raises(socket.gaierror) as info:
        run(pair, r.getaddrinfo("web.nowhere", 80))  # a dot: asked as it is only
    assert info.value.errno == socket.EAI_NONAME and zone.udp_queries == asked + 2


def test_when_every_search_name_fails_a_server_failure_wins_over_nxdomain_and_each_is_named(
    pair: Pair, zone: Zone
) -> None:
    zone.failing = "broken.example"
    r = resolver(search=lambda: ["nowhere.example", "broken.example"], attempts=1)
    with pytest.raises(socket.gaierror) as info:
        run(pair, r.getaddrinfo("nothing", 80, socket.AF_INET))
    assert info.value.errno == socket.EAI_AGAIN, "not the last name's NXDOMAIN: the answer is unknown"
    assert info.value.strerror == (
        "Temporary failure in name resolution (nothing, asked through usernet, as nothing.nowhere.example: "
        f"no such name; nothing.broken.example: temporary failure (last: {B_IP} answered with error code 2); "
        "nothing: no such name)"
    )


def test_when_every_search_name_fails_a_name_without_an_address_wins(pair: Pair, zone: Zone) -> None:
    """glibc's res_search: NODATA from any name tried before a failure, both before NXDOMAIN."""
    zone.failing = "broken.example"
    r = resolver(search=lambda: ["broken.example", "test", "nowhere.example"], attempts=1)
    with pytest.raises(socket.gaierror) as info:
        run(pair, r.getaddrinfo("v4only", 80, socket.AF_INET6))
    assert info.value.errno == EAI_NODATA
    assert info.value.strerror.startswith("No address associated with hostname (v4only, asked through usernet, as ")
    for said in ("v4only.broken.example: temporary failure", "v4only.test: no address", "v4only: no such name"):
        assert said in info.value.strerror
    with pytest.raises(socket.gaierror) as info:
        run(pair, resolver(search=lambda: ["nowhere.example"]).getaddrinfo("nothing", 80))
    assert info.value.errno == socket.EAI_NONAME and info.value.strerror == (
        "Name or service not known (nothing, asked through usernet, as nothing.nowhere.example: no such name; "
        "nothing: no such name)"
    )


def test_servers_are_asked_once_each_whatever_the_spelling_of_their_address() -> None:
    named = ["2001:DB8:0::1", "192.0.2.1", "fe80::1%eth0", "FE80:0::1%eth0", "fe80::1%eth1", "2001:db8::1%eth0"]
    r = Resolver(["2001:db8::1"], network=lambda: named)
    assert r.current_servers() == ["2001:db8::1", "192.0.2.1", "fe80::1%eth0", "fe80::1%eth1"]
    fallback = Resolver([], network=lambda: [], fallback=["2001:db8::53", "2001:0db8::0053", "192.0.2.53"])
    assert fallback.current_servers() == ["2001:db8::53", "192.0.2.53"]


@pytest.mark.parametrize("scope", ["global", "link-local"])  # routers often advertise a link-local server
def test_dns_over_ipv6_with_cname_and_truncation_to_tcp(pair6: Pair, zone6: Zone, scope: str) -> None:
    ipv6 = pair6.b.iface.ipv6
    assert ipv6 is not None
    link_local = next(str(ipaddress.IPv6Address(a)) for a, _, _ in ipv6.addresses() if a[:2] == b"\xfe\x80")
    r = Resolver([B_IP6 if scope == "global" else link_local])
    answer = run(pair6, r.lookup("alias.test", TYPE_A))
    assert answer.addresses == ("192.0.2.10", "192.0.2.11") and answer.canonical == "web.test"
    zone6.truncate = True
    assert run(pair6, r.lookup("web.test", TYPE_AAAA)).addresses == ("2001:db8::10",)
    assert (zone6.udp_queries, zone6.tcp_queries) == (2, 1) and r.stats.truncated == 1


def test_the_loop_asks_the_server_a_router_advertised_until_it_is_withdrawn(pair6: Pair, zone6: Zone) -> None:
    loop = pair6.loop
    resolver = Resolver([], network=functools.partial(network_servers, pair6.a), ipv6=True)
    loop.usernet_resolver = resolver  # type: ignore[attr-defined]
    assert not resolver.active  # no server yet: names would go to the C library
    server = ipaddress.IPv6Address(B_IP6).packed
    pair6.a.iface.receive(router_advert_with_dns((server,), 600), loop.time())
    assert resolver.current_servers() == [B_IP6] and resolver.active
    infos = run(pair6, loop.getaddrinfo("www.test", 80, type=socket.SOCK_STREAM))
    assert [i[4] for i in infos] == [("192.0.2.10", 80), ("192.0.2.11", 80), ("2001:db8::10", 80, 0, 0)]
    pair6.a.dns_servers = (B_IP,)  # a DHCP lease's server comes before the advertised one
    assert resolver.current_servers() == [B_IP, B_IP6]
    pair6.a.dns_servers = ()
    pair6.a.iface.receive(router_advert_with_dns((server,), 0), loop.time())
    assert resolver.current_servers() == [] and not resolver.active
