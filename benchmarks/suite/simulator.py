"""The simulator itself (usernet.sim): how fast simulated TCP runs, and how fast virtual time goes by.

Two cases, each a fresh `Network` in this process (no root, no sandbox): `bulk` echoes
a payload between two hosts over a 1 ms link; `idle-1000` opens 1,000 keepalive-enabled
connections and lets 10 virtual minutes pass (one keepalive probe a minute per
connection, answered). Figures per wall-clock second: simulated TCP segments (sent by
both hosts) and virtual seconds. There is no kernel column: the kernel has no virtual time.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.harness import Benchmark, Measure, Metric, Settings, variant
from usernet import sim

CONNECTIONS = 1_000
IDLE = 600.0


def _segments(net: sim.Network) -> int:
    return net.stats("server")["tcp_tx_segments"] + net.stats("client")["tcp_tx_segments"]


async def _server() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    await (await asyncio.start_server(echo, "0.0.0.0", 7, backlog=CONNECTIONS)).serve_forever()


def bulk(size: int) -> dict[str, float]:
    payload = random.Random(0).randbytes(size)

    async def client() -> None:
        reader, writer = await asyncio.open_connection("server", 7)
        writer.write(payload)
        assert await reader.readexactly(size) == payload

    net = sim.Network(seed=0, latency=0.001)
    net.host("server", _server, address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    wall = time.perf_counter()
    net.run(timeout=3600)
    wall = time.perf_counter() - wall
    return {"segments": _segments(net) / wall, "virtual": net.now / wall}


def idle(connections: int) -> dict[str, float]:
    marks: dict[str, float] = {}

    async def client() -> None:
        writers = []
        for _ in range(connections):
            _, writer = await asyncio.open_connection("server", 7)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
            writers.append(writer)
        marks["segments"], marks["virtual"], marks["wall"] = _segments(net), net.now, time.perf_counter()
        await asyncio.sleep(IDLE)
        marks["wall"] = time.perf_counter() - marks["wall"]

    net = sim.Network(seed=0, latency=0.001)
    net.host("server", _server, address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    net.run(timeout=IDLE * 2)
    wall = marks["wall"]
    return {"segments": (_segments(net) - marks["segments"]) / wall, "virtual": (net.now - marks["virtual"]) / wall}


@contextmanager
def _setup(settings: Settings) -> Iterator[Measure]:
    size = 2_000_000 if settings.quick else 10_000_000

    def measure(case: str) -> dict[str, float]:
        return bulk(size) if case == "bulk" else idle(CONNECTIONS)

    yield measure


BENCHMARKS = (
    Benchmark(
        name="simulator",
        title="usernet.sim: simulated TCP per wall-clock second",
        order=50,
        meaning="Per wall-clock second: TCP segments the simulated hosts sent, and virtual seconds that passed. "
        "`bulk`: one connection echoing 10 MB (2 MB with --quick) over a 1 ms link; `idle-1000`: 1,000 "
        "established keepalive connections idle for 10 virtual minutes (one probe a minute each, answered).",
        metrics=(
            Metric("segments", "segments / wall s"),
            Metric("virtual", "virtual s / wall s", digits=1),
        ),
        cases=("bulk", "idle-1000"),
        variants=(variant("usernet-sim", _setup, label="usernet.sim (stdlib loop, virtual clock)"),),
    ),
)
