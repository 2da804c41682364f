"""Two segments joined by a router host: TCP across it, TTLs decremented, its cables cut like any
other, and the ICMP errors it answers with."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from pathlib import Path

import pytest

from tests.sim.echo import connect_failure, echo_server, traceroute
from usernet import sim
from usernet.link.pcap import PcapReader
from usernet.link.switch import Switch
from usernet.sim.router import RouterPort, SimRouter
from usernet.wire import (
    ARP_REPLY,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    ICMP_TIME_EXCEEDED,
    IPPROTO_ICMP,
    IPPROTO_UDP,
    emit_arp,
    emit_ethernet,
    emit_icmp,
    emit_ipv4_header,
    parse_arp,
    parse_ethernet,
    parse_icmp,
    parse_ipv4,
    parse_quoted,
)


def _routed(client: sim.network.Main) -> sim.Network:
    net = sim.Network(seed=3, latency=0.002)
    net.segment("dmz")
    net.router("r", {"lan": "10.0.0.254/24", "dmz": "10.0.1.254/24"})
    net.host("server", echo_server, address="10.0.1.1/24", gateway="10.0.1.254", segment="dmz")
    net.client("client", client, address="10.0.0.2/24", gateway="10.0.0.254")
    return net


def test_tcp_across_the_router(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 400
    seen: dict[str, object] = {}

    async def client() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        reader, writer = await asyncio.open_connection("server", 7)
        seen["connect"] = loop.time() - start
        writer.write(payload)
        seen["echo"] = await reader.readexactly(len(payload)) == payload

    net = _routed(client)
    net.link("client", "r", loss=0.05)  # faults on one leg of the path
    net.capture(tmp_path)
    net.run(timeout=120)
    assert seen["echo"] is True
    assert isinstance(seen["connect"], float) and seen["connect"] >= 0.008  # two cables each way
    with PcapReader(tmp_path / "server.pcap") as capture:
        ttls = {
            (parse_ipv4(eth.payload).src, parse_ipv4(eth.payload).ttl)
            for _, frame in capture
            if (eth := parse_ethernet(frame)).ethertype == ETHERTYPE_IPV4
        }
    assert (bytes([10, 0, 0, 2]), 63) in ttls  # the client's packets came through one router
    assert (tmp_path / "r-lan.pcap").exists() and (tmp_path / "r-dmz.pcap").exists()
    assert net.faults("client", "r")["lost"] > 0


def test_a_cut_between_client_and_router_and_no_cable_across_segments() -> None:
    async def client() -> None:
        net.partition("client", "r")
        with pytest.raises(OSError) as failed:  # the router never answers ARP: no route to host, as Linux says
            await asyncio.wait_for(asyncio.open_connection("server", 7), 5)
        assert failed.value.errno == errno.EHOSTUNREACH, failed.value
        net.repair("client", "r")
        _, writer = await asyncio.open_connection("server", 7)
        writer.close()

    net = _routed(client)
    with pytest.raises(ValueError, match="share no segment"):
        net.link("client", "server", loss=0.1)
    net.run(timeout=60)


def test_the_router_answers_an_absent_host_and_a_network_it_lacks() -> None:
    """Host unreachable when the far host never answers ARP, net unreachable for a network the
    router has no port on: the connects fail as they would through a Linux router."""
    seen: dict[str, tuple[int | None, float]] = {}

    async def client() -> None:
        seen["absent"] = await connect_failure("10.0.1.99")
        seen["no network"] = await connect_failure("192.0.2.1")

    net = _routed(client)
    net.run(timeout=120)
    # the router's ARP gives up after ~2.2 s
    assert seen["absent"][0] == errno.EHOSTUNREACH and seen["absent"][1] < 5, seen
    assert seen["no network"][0] == errno.ENETUNREACH and seen["no network"][1] < 1, seen
    counts = net.stats("r")
    assert counts["icmp_errors_sent"] == 2 and counts["arp_unresolved"] >= 1, counts


class _Bench:
    """A router between two switches on a real-time loop, and one hand-driven host on "lan"
    (10.0.0.1) that writes raw frames and answers the router's ARP questions."""

    ME = bytes([10, 0, 0, 1])

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        lan = Switch(loop.time, seed=1)
        dmz = Switch(loop.time, seed=2)
        self.router = SimRouter(
            "r",
            [
                RouterPort(lan.add_port("r"), ipaddress.IPv4Interface("10.0.0.254/24")),
                RouterPort(dmz.add_port("r"), ipaddress.IPv4Interface("10.0.1.254/24")),
            ],
        )
        self.host = lan.add_port("h")
        self.router_mac = lan.port("r").mac
        self.router.start(loop)

    def send_ip(self, dst: bytes, ttl: int, protocol: int, payload: bytes) -> None:
        frame = bytearray(34 + len(payload))
        emit_ethernet(frame, 0, self.router_mac, self.host.mac, ETHERTYPE_IPV4)
        emit_ipv4_header(frame, 14, self.ME, dst, protocol, len(payload), ttl=ttl)
        frame[34:] = payload
        self.host.send(frame)

    def answered(self) -> list[bytes]:
        """What reached the host in two short turns of the loop, the router's ARP questions answered."""
        got = []
        for _ in range(2):
            self.loop.run_until_complete(asyncio.sleep(0.01))
            for frame in self.host.receive(64):
                eth = parse_ethernet(frame)
                if eth.ethertype == ETHERTYPE_ARP:
                    reply = bytearray(42)
                    emit_ethernet(reply, 0, eth.src, self.host.mac, ETHERTYPE_ARP)
                    emit_arp(reply, 14, ARP_REPLY, self.host.mac, self.ME, eth.src, parse_arp(eth.payload).spa)
                    self.host.send(reply)
                else:
                    got.append(bytes(frame))
        return got


def test_a_datagram_whose_ttl_runs_out_is_answered_with_time_exceeded() -> None:
    """What traceroute relies on; and no ICMP error about an ICMP error."""
    loop = asyncio.new_event_loop()
    try:
        bench = _Bench(loop)
        far = bytes([10, 0, 1, 1])
        udp = b"\x30\x39\x82\x9a\x00\x10\x00\x00" + b"traceroute"  # ports 12345 -> 33434
        bench.send_ip(far, 1, IPPROTO_UDP, udp)
        frames = bench.answered()
        assert len(frames) == 1, frames
        ip = parse_ipv4(parse_ethernet(frames[0]).payload)
        assert ip.src == bytes([10, 0, 0, 254]) and ip.dst == bench.ME and ip.protocol == IPPROTO_ICMP
        msg = parse_icmp(ip.payload)
        assert (msg.type, msg.code) == (ICMP_TIME_EXCEEDED, 0)
        quoted, sport, dport = parse_quoted(msg)
        assert (quoted.src, quoted.dst, sport, dport) == (bench.ME, far, 12345, 33434)
        assert bench.router.icmp_errors_sent == 1 and bench.router.dropped == 1
        # An ICMP error whose TTL runs out is dropped without one about it.
        bench.send_ip(far, 1, IPPROTO_ICMP, bytes(ip.payload))
        assert bench.answered() == []
        assert bench.router.icmp_errors_sent == 1 and bench.router.dropped == 2
        bench.router.stop()
    finally:
        loop.close()


def test_the_router_answers_pings_to_each_of_its_addresses() -> None:
    loop = asyncio.new_event_loop()
    try:
        bench = _Bench(loop)
        for address in (bytes([10, 0, 0, 254]), bytes([10, 0, 1, 254])):  # the far port's address too
            request = bytearray(8 + 16)
            emit_icmp(request, 0, ICMP_ECHO_REQUEST, 0, (0x1234 << 16) | 7, b"sixteen bytes..!")
            bench.send_ip(address, 64, IPPROTO_ICMP, bytes(request))
            [frame] = bench.answered()
            ip = parse_ipv4(parse_ethernet(frame).payload)
            reply = parse_icmp(ip.payload)
            assert (ip.src, ip.dst) == (address, bench.ME)
            assert (reply.type, reply.ident, reply.sequence, bytes(reply.payload)) == (
                ICMP_ECHO_REPLY, 0x1234, 7, b"sixteen bytes..!",
            )  # fmt: skip
        bench.send_ip(bytes([10, 0, 0, 254]), 64, IPPROTO_UDP, b"\x30\x39\x00\x07\x00\x08\x00\x00")
        assert bench.answered() == []  # the router serves nothing else
        assert bench.router.echo_answered == 2 and bench.router.dropped == 1
        bench.router.stop()
    finally:
        loop.close()


def test_traceroute_with_ip_ttl_through_the_router() -> None:
    """A UDP program sets IP_TTL as traceroute does: TTL 1 dies at the router (time exceeded,
    EHOSTUNREACH for a connected socket), TTL 2 reaches the closed port behind it (ECONNREFUSED)."""
    heard: list[tuple[int, int]] = []

    async def client() -> None:
        heard.extend(await traceroute("10.0.1.1", socket.IPPROTO_IP, socket.IP_TTL))

    net = _routed(client)
    net.run(timeout=60)
    assert heard == [(1, errno.EHOSTUNREACH), (2, errno.ECONNREFUSED)], heard
