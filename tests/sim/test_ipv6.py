"""IPv6 in the simulator: IPv6-only and dual-stack hosts on one segment, and a router that
forwards IPv6, advertises itself, and answers what it cannot forward."""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
from pathlib import Path

import pytest

from tests.sim.echo import connect_failure, echo_server, traceroute
from usernet import sim
from usernet.link.pcap import PcapReader
from usernet.sim.loop import SimulationDeadlock
from usernet.wire import parse_ethernet
from usernet.wire.ethernet import ETHERTYPE_IPV6
from usernet.wire.icmpv6 import parse_icmpv6
from usernet.wire.ipv6 import IPPROTO_ICMPV6, parse_ipv6
from usernet.wire.ndp import ND_NEIGHBOR_ADVERT, ND_ROUTER_ADVERT, parse_neighbor_advert

_ANY_FAMILY_ECHO = functools.partial(echo_server, host=None)


async def _echo_once(host: str, payload: bytes) -> tuple[bytes, tuple[object, ...]]:
    """Connect to `host`'s echo port, send `payload`, read it back; what came back and the peer address."""
    reader, writer = await asyncio.open_connection(host, 7)
    writer.write(payload)
    got = await reader.readexactly(len(payload))
    peer = writer.get_extra_info("peername")
    writer.close()
    return got, peer


def test_ipv6_only_hosts_talk_tcp_and_udp_by_name() -> None:
    seen: dict[str, object] = {}

    async def server() -> None:
        loop = asyncio.get_running_loop()

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                self.transport.sendto(data, addr)  # type: ignore[attr-defined]

        await loop.create_datagram_endpoint(Echo, local_addr=("::", 9))
        await _ANY_FAMILY_ECHO()

    async def client() -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo("server", 7, type=socket.SOCK_STREAM)
        seen["families"] = {info[0] for info in infos}
        seen["tcp"] = await _echo_once("server", b"x" * 100_000)
        answered: asyncio.Future[bytes] = loop.create_future()

        class Ask(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                answered.set_result(data)

        transport, _ = await loop.create_datagram_endpoint(Ask, remote_addr=("server", 9))
        transport.sendto(b"ping6")
        seen["udp"] = await asyncio.wait_for(answered, 5)
        transport.close()

    net = sim.Network(seed=1)
    net.host("server", server, address="fd00::1/64")
    net.client("client", client, address="fd00::2/64")
    net.run(timeout=60)
    assert net.address("server") == "fd00::1" and net.address("server", 6) == "fd00::1"
    with pytest.raises(LookupError, match="no IPv4 address"):
        net.address("server", 4)
    assert seen["families"] == {socket.AF_INET6}
    got, peer = seen["tcp"]  # type: ignore[misc]
    assert got == b"x" * 100_000 and peer[0] == "fd00::1"
    assert seen["udp"] == b"ping6"


def test_a_dual_stack_host_resolves_to_both_families_in_the_order_given() -> None:
    seen: dict[str, object] = {}

    async def client() -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo("server", 7, type=socket.SOCK_STREAM)
        seen["order"] = [info[4][0] for info in infos]
        v6 = await loop.getaddrinfo("server", 7, family=socket.AF_INET6, type=socket.SOCK_STREAM)
        seen["v6"] = [info[4][0] for info in v6]
        seen["by name"] = (await _echo_once("server", b"first"))[1][0]
        seen["v6 literal"] = (await _echo_once("fd00::1", b"six"))[1][0]

    net = sim.Network(seed=2)
    net.host("server", _ANY_FAMILY_ECHO, address=["10.0.0.1/24", "fd00::1/64"])
    net.client("client", client, address=("10.0.0.2/24", "fd00::2/64"))
    net.run(timeout=60)
    assert seen["order"] == ["10.0.0.1", "fd00::1"]
    assert seen["v6"] == ["fd00::1"]
    assert seen["by name"] == "10.0.0.1"  # the first address answers first
    assert seen["v6 literal"] == "fd00::1"
    assert net.address("server", 4) == "10.0.0.1" and net.address("server", 6) == "fd00::1"


def test_host_and_router_addresses_are_checked() -> None:
    net = sim.Network()
    with pytest.raises(ValueError, match="CIDR like"):
        net.host("a", _ANY_FAMILY_ECHO, address="fd00::zz/64")
    with pytest.raises(ValueError, match="give an address"):
        net.host("b", _ANY_FAMILY_ECHO, address=[])
    with pytest.raises(ValueError, match="on none of its networks"):
        net.host("c", _ANY_FAMILY_ECHO, address="fd00::1/64", gateway6="fd00:1::1")
    with pytest.raises(ValueError, match="gateway6 IPv6"):
        net.host("d", _ANY_FAMILY_ECHO, address="fd00::1/64", gateway6="10.0.0.1")
    with pytest.raises(ValueError, match="at most one IPv4 and one IPv6"):
        net.router("r", {"lan": ["fd00::fe/64", "fd00:9::fe/64"]})


def _routed6(client: sim.network.Main, tmp_path: Path | None = None) -> sim.Network:
    """lan fd00:0::/64 and dmz fd00:1::/64 joined by a dual-stack router; the hosts are given no
    IPv6 gateway: they take the router from its advertisements."""
    net = sim.Network(seed=5, latency=0.002)
    net.segment("dmz")
    net.router("r", {"lan": ["10.0.0.254/24", "fd00::fe/64"], "dmz": ["10.0.1.254/24", "fd00:1::fe/64"]})
    net.host("server", _ANY_FAMILY_ECHO, address="fd00:1::1/64", segment="dmz")
    net.client("client", client, address=("fd00::2/64", "10.0.0.2/24"), gateway="10.0.0.254")
    if tmp_path is not None:
        net.capture(tmp_path)
    return net


def test_tcp_across_the_router_over_ipv6_with_the_route_from_its_advertisement(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 400
    seen: dict[str, object] = {}

    async def client() -> None:
        await asyncio.sleep(1)  # the router's advertisement, or its answer to our solicitation, arrives
        seen["echo"] = await _echo_once("server", payload)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=("fd00::fe", 9))
        # The router's own address: its MAC is known from its solicitation (a STALE entry), so
        # the datagram goes at once and the neighbour's reachability is probed 5 s later.
        transport.sendto(b"to the router itself")
        await asyncio.sleep(7)
        transport.close()

    net = _routed6(client, tmp_path)
    net.link("client", "r", loss=0.05)
    net.run(timeout=120)
    got, peer = seen["echo"]  # type: ignore[misc]
    assert got == payload and peer[0] == "fd00:1::1"
    with PcapReader(tmp_path / "server.pcap") as capture:
        hops = {
            (ip.src, ip.hop_limit)
            for _, frame in capture
            if (eth := parse_ethernet(frame)).ethertype == ETHERTYPE_IPV6
            and (ip := parse_ipv6(eth.payload)).src == socket.inet_pton(socket.AF_INET6, "fd00::2")
        }
    assert hops == {(socket.inet_pton(socket.AF_INET6, "fd00::2"), 63)}  # one router on the way
    with PcapReader(tmp_path / "client.pcap") as capture:
        adverts = [
            ip
            for _, frame in capture
            if (eth := parse_ethernet(frame)).ethertype == ETHERTYPE_IPV6
            and (ip := parse_ipv6(eth.payload)).next_header == IPPROTO_ICMPV6
            and ip.payload[0] == ND_ROUTER_ADVERT
        ]
    assert adverts and all(ip.src[:2] == b"\xfe\x80" and ip.hop_limit == 255 for ip in adverts)
    router_lan = socket.inet_pton(socket.AF_INET6, "fd00::fe")
    with PcapReader(tmp_path / "r-lan.pcap") as capture:
        answers = [
            parse_neighbor_advert(parse_icmpv6(ip.payload, ip.src, ip.dst))
            for _, frame in capture
            if (eth := parse_ethernet(frame)).ethertype == ETHERTYPE_IPV6
            and (ip := parse_ipv6(eth.payload)).next_header == IPPROTO_ICMPV6
            and ip.payload[0] == ND_NEIGHBOR_ADVERT
            and ip.src == router_lan
        ]
    assert answers and all(na.router for na in answers)  # its NAs say it routes (RFC 4861 §4.4)
    counts = net.stats("r")
    assert counts["adverts_sent"] >= 2 and counts["forwarded"] > 0 and counts["nd_solicits_answered"] >= 1


def test_the_router_answers_an_absent_ipv6_host_and_a_network_it_lacks() -> None:
    seen: dict[str, tuple[int | None, float]] = {}

    async def client() -> None:
        await asyncio.sleep(1)
        seen["absent"] = await connect_failure("fd00:1::99")
        seen["no network"] = await connect_failure("2001:db8::1")

    net = _routed6(client)
    net.run(timeout=120)
    # the router's neighbour discovery gives up
    assert seen["absent"][0] == errno.EHOSTUNREACH and seen["absent"][1] < 5, seen
    assert seen["no network"][0] == errno.ENETUNREACH and seen["no network"][1] < 1, seen
    counts = net.stats("r")
    # one per held datagram: the SYN's retransmission waited for the neighbour too
    assert counts["icmp_errors_sent"] >= 2 and counts["nd_unresolved"] >= 1, counts


def test_traceroute_with_ipv6_hop_limit_through_the_router() -> None:
    heard: list[tuple[int, int]] = []

    async def client() -> None:
        await asyncio.sleep(1)  # the router's advertisement
        heard.extend(await traceroute("fd00:1::1", socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS))

    net = _routed6(client)
    net.run(timeout=60)
    assert heard == [(1, errno.EHOSTUNREACH), (2, errno.ECONNREFUSED)], heard


def test_an_ipv4_only_host_cannot_reach_an_ipv6_address() -> None:
    seen: dict[str, int | None] = {}

    async def client() -> None:
        with pytest.raises(OSError) as failed:
            await asyncio.open_connection("fd00::1", 7)
        seen["errno"] = failed.value.errno

    net = sim.Network()
    net.host("server", _ANY_FAMILY_ECHO, address=["10.0.0.1/24", "fd00::1/64"])
    net.client("client", client, address="10.0.0.2/24")
    net.run(timeout=10)
    assert seen["errno"] == errno.ENETUNREACH


def test_hosts_keep_the_route_through_a_long_run_and_hosts_restarted_together_all_get_one() -> None:
    """Five hosts restart at once and solicit together: the router's 3 s gap between
    advertisements delays the answer, it loses none; and 40 virtual minutes in, every host
    still has its route (the lifetime outlasts the run; traffic brings fresh advertisements)."""
    seen: dict[str, str] = {}

    def member(name: str) -> sim.network.Main:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            if loop.time() < 50:
                await asyncio.sleep(10**6)  # the first life waits to be restarted
            await asyncio.sleep(30)  # every solicitation of this life has long gone out
            for label in ("after restart", "40 minutes in"):
                try:
                    _, writer = await asyncio.wait_for(asyncio.open_connection("fd00:1::1", 7), 10)
                    writer.close()
                    seen[f"{name} {label}"] = "ok"
                except OSError as exc:
                    seen[f"{name} {label}"] = f"errno {exc.errno}"
                await asyncio.sleep(2400 - loop.time())

        return main

    async def watcher() -> None:
        await asyncio.sleep(2500)

    net = sim.Network(seed=5, latency=0.002)
    net.segment("dmz")
    net.router("r", {"lan": "fd00::fe/64", "dmz": "fd00:1::fe/64"})
    net.host("server", _ANY_FAMILY_ECHO, address="fd00:1::1/64", segment="dmz")
    for i in range(5):
        net.host(f"h{i}", member(f"h{i}"), address=f"fd00::{i + 10}/64")
        net.at(100, net.restart, f"h{i}")
    net.client("watcher", watcher, address="fd00::99/64")
    net.run(timeout=3000)
    assert seen == {f"h{i} {label}": "ok" for i in range(5) for label in ("after restart", "40 minutes in")}
    assert net.stats("r")["adverts_sent"] > 6  # three at start-up per port, then answers and refreshes


def test_a_network_with_an_ipv6_router_still_ends_in_a_deadlock() -> None:
    """The router's periodic advertisements ride on traffic: no timer of theirs keeps a
    simulation where every task waits running through virtual time."""

    async def stuck() -> None:
        await asyncio.get_running_loop().create_future()

    net = sim.Network()
    net.segment("dmz")
    net.router("r", {"lan": "fd00::fe/64", "dmz": "fd00:1::fe/64"})
    net.client("client", stuck, address="fd00::2/64")
    with pytest.raises(SimulationDeadlock):
        net.run()


def test_a_link_local_gateway6_is_accepted_and_a_zone_is_refused() -> None:
    seen: dict[str, str] = {}

    async def client() -> None:
        with pytest.raises(socket.gaierror) as refused:
            await asyncio.get_running_loop().getaddrinfo("fe80::1%eth0", 7)
        seen["zone"] = str(refused.value)

    net = sim.Network()
    net.client("client", client, address="fd00::2/64", gateway6="fe80::1")
    net.run(timeout=10)
    assert "give the address without it" in seen["zone"]
