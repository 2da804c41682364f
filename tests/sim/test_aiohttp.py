"""Unmodified aiohttp on two simulated hosts: bulk both ways under loss, a partition, a repair."""

from __future__ import annotations

import asyncio
import hashlib
import random

import aiohttp
import pytest
from aiohttp import web

from usernet import sim

SIZE = 1_000_000


def _app(download: bytes) -> web.Application:
    async def upload(request: web.Request) -> web.Response:
        return web.Response(text=hashlib.sha256(await request.read()).hexdigest())

    async def fetch(request: web.Request) -> web.Response:
        return web.Response(body=download)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application(client_max_size=2 * SIZE)
    app.add_routes([web.post("/upload", upload), web.get("/download", fetch), web.get("/", hello)])
    return app


def _server(download: bytes, ready: asyncio.Event):  # type: ignore[no-untyped-def]
    async def main() -> None:
        runner = web.AppRunner(_app(download))
        await runner.setup()
        await web.TCPSite(runner, "10.0.0.1", 8080).start()
        ready.set()
        await asyncio.Event().wait()

    return main


def test_megabyte_up_and_down_under_loss() -> None:
    rng = random.Random(1)
    up, down = rng.randbytes(SIZE), rng.randbytes(SIZE)
    ready = asyncio.Event()
    seen: dict[str, str] = {}

    async def client() -> None:
        await ready.wait()
        async with aiohttp.ClientSession() as session:
            async with session.post("http://10.0.0.1:8080/upload", data=up) as response:
                seen["up"] = await response.text()
            async with session.get("http://10.0.0.1:8080/download") as response:
                seen["down"] = hashlib.sha256(await response.read()).hexdigest()

    net = sim.Network(seed=5)
    net.host("server", _server(down, ready), address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    net.link("server", "client", latency=0.02, loss=0.05)
    net.run(timeout=600)
    assert seen == {"up": hashlib.sha256(up).hexdigest(), "down": hashlib.sha256(down).hexdigest()}
    faults = net.faults("client", "server"), net.faults("server", "client")
    assert all(f["lost"] > 0 for f in faults), faults  # the loss did happen, both ways
    assert net.stats("client")["tcp_retransmits"] > 0 or net.stats("server")["tcp_retransmits"] > 0


def test_partition_longer_than_the_timeout_then_repair() -> None:
    ready = asyncio.Event()
    events: list[tuple[str, float]] = []

    async def client() -> None:
        loop = asyncio.get_running_loop()
        await ready.wait()
        async with aiohttp.ClientSession() as session, session.get("http://server:8080/") as response:
            assert await response.text() == "hello"
        net.partition("client", "server")
        net.after(30, net.repair, "client", "server")
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            with pytest.raises(TimeoutError):  # aiohttp's own timeout, as on a real network
                await session.get("http://server:8080/")
            events.append(("timed out", loop.time()))
        await asyncio.sleep(30)  # the partition is repaired meanwhile
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get("http://server:8080/") as response:
            assert await response.text() == "hello"
            events.append(("answered", loop.time()))

    net = sim.Network(seed=3)
    net.host("server", _server(b"", ready), address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    net.link("server", "client", latency=0.01)
    net.run(timeout=120)
    (first, t1), (second, t2) = events
    assert (first, second) == ("timed out", "answered")
    assert 5 <= t1 <= 6 and t2 > t1 + 30  # aiohttp rounds timeouts of 5 s and more up to a whole second
    assert net.faults("client", "server")["cut"] > 0  # the SYNs retried into the cut cable
