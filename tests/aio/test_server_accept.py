"""A usernet server starts each accepted connection inside the driver's pump that completed its handshake.

`connection_made` then runs in that pump, so what the protocol writes there (a banner) or
in answer to a request that came with the handshake's ACK leaves with the pump's own
flush, instead of two loop iterations later. These tests pin the behaviour that makes
that safe: the writes do leave, an exception from one protocol is reported and the
other connections of the same wake-up are still accepted, and connections accepted from
`start_serving` (inside the program's own call) are started by a scheduled callback.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.aio.conftest import Pair, connect_from_b
from usernet.aio.driver import Driver

BANNER = b"220 usernet ready\r\n"


class Collect(asyncio.Protocol):
    """The client side: gathers what arrives."""

    def __init__(self) -> None:
        self.got = bytearray()
        self.arrived = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.got += data
        self.arrived.set()


def banner_protocol(driver: Driver, in_pump: list[bool], fail_first: bool = False) -> type[asyncio.Protocol]:
    """A server protocol that writes BANNER in connection_made and notes whether a pump was running
    (the first one raises instead, with `fail_first`)."""

    class Banner(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            in_pump.append(driver.pump_time is not None)
            if fail_first and len(in_pump) == 1:
                raise RuntimeError("the first connection_made fails")
            transport.write(BANNER)  # type: ignore[attr-defined]  # a stream transport

    return Banner


def a_driver(pair: Pair) -> Driver:
    return pair.loop.usernet_driver()  # type: ignore[attr-defined, no-any-return]  # a usernet loop


def test_connection_made_runs_in_the_pump_and_its_write_leaves(pair: Pair) -> None:
    async def main() -> None:
        in_pump: list[bool] = []
        server = await pair.loop.create_server(banner_protocol(a_driver(pair), in_pump), port=0)
        port = server.sockets[0].getsockname()[1]
        _, client = await connect_from_b(pair, Collect, port)
        assert isinstance(client, Collect)
        while bytes(client.got) != BANNER:
            await client.arrived.wait()
            client.arrived.clear()
        assert in_pump == [True]
        server.close()

    pair.run(main())


def test_a_failing_connection_made_is_reported_and_the_others_are_still_served(pair: Pair) -> None:
    async def main() -> None:
        reported: list[dict[str, Any]] = []
        pair.loop.set_exception_handler(lambda loop, context: reported.append(context))
        in_pump: list[bool] = []
        server = await pair.loop.create_server(banner_protocol(a_driver(pair), in_pump, fail_first=True), port=0)
        port = server.sockets[0].getsockname()[1]
        opened = await asyncio.gather(*(connect_from_b(pair, Collect, port) for _ in range(3)))
        clients = [protocol for _, protocol in opened]
        while sum(bytes(c.got) == BANNER for c in clients) < 2:  # type: ignore[attr-defined]  # Collects
            await asyncio.sleep(0.001)
        assert len(in_pump) == 3 and all(in_pump)
        (context,) = reported
        assert isinstance(context["exception"], RuntimeError)
        assert "connection_made" in context["message"]
        server.close()

    pair.run(main())


def test_connections_accepted_by_start_serving_are_started_by_a_callback(pair: Pair) -> None:
    async def main() -> None:
        in_pump: list[bool] = []
        server = await pair.loop.create_server(banner_protocol(a_driver(pair), in_pump), port=0, start_serving=False)
        port = server.sockets[0].getsockname()[1]
        _, client = await connect_from_b(pair, Collect, port)
        assert isinstance(client, Collect)
        await asyncio.sleep(0.01)  # the handshake's last ACK reaches A: the connection waits in the queue
        await server.start_serving()
        while bytes(client.got) != BANNER:
            await client.arrived.wait()
            client.arrived.clear()
        assert in_pump == [False]
        server.close()

    pair.run(main())
