"""Two usernet hosts on one in-memory wire inside one event loop, on either base loop.

Host A is the loop's own stack (driven through the loop's lazy driver); host B has a
Driver of its own on the same loop and plays the peer. A MemoryWire has no fd: each
side's link nudges the other's driver when it puts a frame on the wire, and the
drivers' timers do the rest — the path a link without fd takes in production.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from usernet.aio.driver import Driver
from usernet.aio.loop import UsernetSelectorEventLoop
from usernet.aio.server import Server, listen
from usernet.aio.stream import connect, open_stream
from usernet.aio.uv import UsernetUvloop
from usernet.drivers.host import Host
from usernet.link import LinkWrapper, MemoryWire
from usernet.link.base import BytesLike, Link
from usernet.stack import Interface, InterfaceConfig, TcpConfig

A_IP = "192.0.2.2"
B_IP = "192.0.2.1"
A_IP6 = "2001:db8::2"
B_IP6 = "2001:db8::1"
LOOPS = {"asyncio": UsernetSelectorEventLoop, "uvloop": UsernetUvloop}


class Nudging(LinkWrapper):
    """Tells the far end's driver that a frame is on its way."""

    __slots__ = ("nudge",)

    def __init__(self, inner: Link) -> None:
        super().__init__(inner)
        self.nudge: Callable[[], None] = lambda: None

    def send(self, frame: BytesLike) -> None:
        self.tx_frames += 1
        self.inner.send(frame)
        self.nudge()

    def receive(self, max_frames: int = 64) -> list[memoryview | bytes]:
        return self.inner.receive(max_frames)


@dataclass
class Pair:
    loop: asyncio.AbstractEventLoop
    a: Host
    b: Host
    b_driver: Driver

    def run(self, coro: object) -> object:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 10))  # type: ignore[arg-type]  # coro is a coroutine


@pytest.fixture(params=sorted(LOOPS))
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.contextmanager
def make_pair(loop_kind: str, tcp: TcpConfig | None = None, ipv6: bool = False) -> Iterator[Pair]:
    """The two hosts on one loop of `loop_kind` (a context manager, for tests that make many: hypothesis),
    both with the TCP config `tcp` (the default one when None); with `ipv6`, A also has A_IP6/64 and
    B B_IP6/64."""
    tcp = tcp or TcpConfig()
    holder: list[asyncio.AbstractEventLoop] = []  # the wire reads the clock of the loop made below
    wire = MemoryWire(lambda: holder[0].time(), latency=0.0005)
    link_a, link_b = Nudging(wire.a), Nudging(wire.b)
    a_addresses = [f"{A_IP}/24", *([f"{A_IP6}/64"] if ipv6 else [])]
    b_addresses = [f"{B_IP}/24", *([f"{B_IP6}/64"] if ipv6 else [])]
    host_a = Host(link_a, Interface(InterfaceConfig.from_strings(link_a.mac, a_addresses, tcp=tcp)))
    host_b = Host(link_b, Interface(InterfaceConfig.from_strings(link_b.mac, b_addresses, tcp=tcp)))
    loop = LOOPS[loop_kind](host=host_a)
    holder.append(loop)
    b_driver = Driver(loop, host_b)
    b_driver.attach()
    a_driver = loop.usernet_driver()  # type: ignore[attr-defined]  # a usernet loop, typed as any loop
    link_a.nudge = b_driver.wake
    link_b.nudge = a_driver.wake
    try:
        yield Pair(loop, host_a, host_b, b_driver)
    finally:
        loop.close()
        b_driver.detach()


@pytest.fixture
def pair(loop_kind: str) -> Iterator[Pair]:
    with make_pair(loop_kind) as made:
        yield made


async def serve_on_b(
    pair: Pair, factory: Callable[[], asyncio.BaseProtocol], port: int = 0, host: str | None = None, **options: object
) -> Server:
    """A server on host B (the peer) on `host` (None: any IPv4 address), through the same Server class the loop uses."""
    listeners = listen(pair.b_driver, [host], port, 100)
    server = Server(pair.loop, pair.b_driver, listeners, factory, **options)  # type: ignore[arg-type]  # keywords from a dict
    await server.start_serving()
    return server


async def connect_from_b(
    pair: Pair, factory: Callable[[], asyncio.BaseProtocol], port: int, **options: object
) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """A connection from host B to host A's `port`, with the transport the loop would make."""
    conn = await connect(pair.loop, pair.b_driver, (A_IP, port), None)
    return await open_stream(pair.loop, pair.b_driver, conn, factory, **options)  # type: ignore[arg-type]  # keywords from a dict
