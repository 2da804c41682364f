"""Virtual time: long idle periods cost no wall time; a crashed peer is found by keepalive; restart."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from tests.sim.echo import echo_server
from usernet import sim
from usernet.sim.timepatch import EPOCH


def _keepalive(writer: asyncio.StreamWriter, idle: int, interval: int, count: int) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)


def test_ten_idle_minutes_with_keepalive() -> None:
    seen: dict[str, object] = {}

    async def client() -> None:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("server", 7)
        _keepalive(writer, idle=60, interval=10, count=3)
        start = loop.time()
        await asyncio.sleep(600)
        writer.write(b"still there?")
        seen["answer"] = await reader.readexactly(12)
        seen["idle"] = loop.time() - start

    net = sim.Network(seed=1)
    net.host("server", echo_server, address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    wall = time.perf_counter()
    net.run(timeout=1000)
    wall = time.perf_counter() - wall
    assert seen["answer"] == b"still there?"
    assert isinstance(seen["idle"], float) and seen["idle"] >= 600
    # one probe a minute, each answered: the connection was kept, not just left alone
    assert net.stats("client")["tcp_keepalive_probes"] >= 9
    print(f"600 virtual seconds of an idle keepalive connection took {wall:.3f} s of wall time")


def test_a_crashed_server_is_found_by_keepalive_and_a_restart_serves_again() -> None:
    seen: dict[str, object] = {}

    async def client() -> None:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("server", 7)
        _keepalive(writer, idle=5, interval=1, count=3)
        net.after(10, net.crash, "server")
        net.after(20, net.restart, "server")
        with pytest.raises(OSError) as failure:
            await reader.read(100)  # nothing comes: the server is gone, silently
        seen["error"] = failure.value
        seen["failed_at"] = loop.time()
        await asyncio.sleep(25 - loop.time())
        reader, writer = await asyncio.open_connection("server", 7)  # the restarted server
        writer.write(b"hello again")
        seen["again"] = await reader.readexactly(11)

    net = sim.Network(seed=2)
    net.host("server", echo_server, address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    net.run(timeout=100)
    error = seen["error"]
    assert isinstance(error, TimeoutError), error  # ETIMEDOUT: keepalive gave up
    assert isinstance(seen["failed_at"], float) and 10 < seen["failed_at"] < 20
    assert seen["again"] == b"hello again"


def test_user_timeout_fails_a_write_into_a_partition() -> None:
    seen: dict[str, object] = {}

    async def client() -> None:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("server", 7)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 30_000)
        net.partition("client", "server")
        writer.write(b"x" * 1000)
        with pytest.raises(OSError) as failure:
            await reader.read(100)
        seen["error"], seen["at"] = failure.value, loop.time()

    net = sim.Network(seed=2)
    net.host("server", echo_server, address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    net.run(timeout=600)
    assert isinstance(seen["error"], TimeoutError)
    assert isinstance(seen["at"], float) and 30 <= seen["at"] < 60


def test_sleeping_an_hour_and_patched_clocks() -> None:
    seen: dict[str, float] = {}

    async def client() -> None:
        seen["mono0"], seen["wall0"] = time.monotonic(), time.time()
        await asyncio.sleep(3600)
        seen["mono1"], seen["wall1"] = time.monotonic(), time.time()

    net = sim.Network(seed=0, patch_time=True)
    net.client("client", client, address="10.0.0.2/24")
    net.run()
    assert seen == {"mono0": 0.0, "wall0": EPOCH, "mono1": 3600.0, "wall1": EPOCH + 3600}
    assert time.time() > EPOCH + 3600 * 24 * 365  # restored after the run


def test_the_run_times_out_in_virtual_time() -> None:
    async def client() -> None:
        await asyncio.sleep(10_000)

    net = sim.Network()
    net.client("client", client, address="10.0.0.2/24")
    with pytest.raises(sim.SimulationTimeout, match="client"):
        net.run(timeout=50)
    assert net.now == 50


def test_a_deadlock_is_reported() -> None:
    async def client() -> None:
        await asyncio.Event().wait()

    net = sim.Network()
    net.client("client", client, address="10.0.0.2/24")
    with pytest.raises(sim.SimulationDeadlock):
        net.run()
