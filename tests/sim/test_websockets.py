"""A websockets echo between two simulated hosts while the network reorders frames."""

from __future__ import annotations

import asyncio
import random

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from usernet import sim


def test_echo_under_reordering() -> None:
    ready = asyncio.Event()
    answers: list[bytes] = []
    rng = random.Random(2)  # incompressible: permessage-deflate must not shrink the traffic away
    messages = [rng.randbytes(i * 37) for i in range(200)]

    async def server() -> None:
        async def echo(ws: ServerConnection) -> None:
            async for message in ws:
                await ws.send(message)

        async with serve(echo, "10.0.0.1", 8765):
            ready.set()
            await asyncio.Event().wait()

    async def client() -> None:
        await ready.wait()
        async with connect("ws://10.0.0.1:8765") as ws:
            for message in messages:
                await ws.send(message)
            for _ in messages:
                answer = await ws.recv()
                assert isinstance(answer, bytes)
                answers.append(answer)

    net = sim.Network(seed=11)
    net.host("server", server, address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    net.link("server", "client", latency=0.005, jitter=0.004, reorder=0.2)
    net.run(timeout=300)
    assert answers == messages
    reordered = net.faults("client", "server")["reordered"] + net.faults("server", "client")["reordered"]
    assert reordered > 50
