"""Two segments joined by a router host: TCP across it, TTLs decremented, its cables cut like any other."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest

from tests.sim.echo import echo_server
from usernet import sim
from usernet.link.pcap import PcapReader
from usernet.wire import ETHERTYPE_IPV4, parse_ethernet, parse_ipv4


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
