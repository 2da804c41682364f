"""A host's driver is woken straight from its port (one hop, not two): what that must not change."""

from __future__ import annotations

import asyncio
import contextvars

from usernet import sim


def test_zero_latency_bursts_arrive_in_order_with_eof_after_the_data() -> None:
    """Many writes in one iteration leave as a burst that reaches the peer in one wake-up: the
    bytes keep their order and the EOF comes after the last of them."""
    heard: list[object] = []

    async def server() -> None:
        async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            heard.append(await reader.read())  # to EOF
            heard.append(reader.at_eof())
            writer.close()

        await (await asyncio.start_server(take, None, 7)).serve_forever()

    async def client() -> None:
        _, writer = await asyncio.open_connection("server", 7)
        for i in range(200):
            writer.write(i.to_bytes(2, "big") * 300)  # 600 bytes each: several segments per iteration
        writer.write_eof()
        await writer.drain()
        while not heard:
            await asyncio.sleep(0.01)
        writer.close()

    net = sim.Network(seed=3, latency=0.0)
    net.host("server", server, address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    net.run(timeout=60)
    assert heard == [b"".join(i.to_bytes(2, "big") * 300 for i in range(200)), True]


def test_frames_for_a_crashed_host_wake_nothing() -> None:
    """A crashed host's port goes dark: what its peer sends afterwards neither reaches it nor
    wakes its (detached) driver, and its restarted life serves again."""
    answers: list[bytes] = []

    async def echo() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(100):
                writer.write(data)

        await (await asyncio.start_server(handle, None, 7)).serve_forever()

    async def client() -> None:
        reader, writer = await asyncio.open_connection("server", 7)
        writer.write(b"one")
        answers.append(await reader.readexactly(3))
        net.crash("server")
        writer.write(b"lost")  # retransmitted into a dark port
        await asyncio.sleep(1)
        net.restart("server")
        await asyncio.sleep(1)
        reader2, writer2 = await asyncio.open_connection("server", 7)
        writer2.write(b"two")
        answers.append(await reader2.readexactly(3))
        writer.close()
        writer2.close()

    net = sim.Network(seed=4, latency=0.0)
    net.host("server", echo, address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    net.run(timeout=60)
    assert answers == [b"one", b"two"]


def test_a_woken_pump_runs_on_its_own_host_and_leaves_no_mark_on_it() -> None:
    """The pump a frame wakes runs in a copy of its host's context: the protocol callbacks it
    makes are on that host, and what they set there stays out of the host's next pump."""
    seen: list[tuple[str, object]] = []
    mark: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="clean")

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            here = sim.current()
            seen.append((here.name if here is not None else "", mark.get()))
            mark.set("dirty")
            self.transport.write(data)  # type: ignore[attr-defined]  # a stream transport

    async def server() -> None:
        loop = asyncio.get_running_loop()
        await (await loop.create_server(Echo, None, 7)).serve_forever()

    async def client() -> None:
        reader, writer = await asyncio.open_connection("server", 7)
        for part in (b"one", b"two", b"three"):
            writer.write(part)
            await reader.readexactly(len(part))
        writer.close()

    net = sim.Network(seed=4)
    net.host("server", server, address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    net.run(timeout=60)
    assert seen == [("server", "clean")] * 3
