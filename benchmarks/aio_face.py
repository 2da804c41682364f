"""A 64-byte TCP request/response loop through usernet's asyncio face, in virtual time.

Two simulated hosts (`usernet.sim.Network`: one process, one `SimLoop` on a virtual clock,
an in-memory switch, no root, no TAP, no socket): the server is an unchanged asyncio
program (`asyncio.start_server` echoing what `read` returns), the client an
`asyncio.open_connection` that writes 64 bytes, `drain`s and `readexactly`s the answer. What
a round trip costs here is the engine's share (`usernet/stack`, `usernet/wire`) plus the
face's (`usernet/aio`, `usernet/drivers`), asyncio's own, and the simulated link's
(`usernet/sim`, `usernet/link`: the switch, its cable and its per-frame trace).
`benchmarks.count_engine aio` counts it as `rr` counts the engine alone.
"""

from __future__ import annotations

import asyncio
import time

from usernet import sim

PORT = 7
MESSAGE = b"x" * 64


async def echo_server() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    await (await asyncio.start_server(echo, None, PORT)).serve_forever()


def request_response(rounds: int, ipv6: bool = False) -> float:
    """CPU seconds for `rounds` 64-byte round trips through the asyncio face (after one uncounted)."""
    spent: list[float] = []
    server = "2001:db8::1" if ipv6 else "10.0.0.1"

    async def client() -> None:
        reader, writer = await asyncio.open_connection(server, PORT)
        for i in range(rounds + 1):
            if i == 1:
                start = time.process_time()
            writer.write(MESSAGE)
            await writer.drain()
            assert await reader.readexactly(len(MESSAGE)) == MESSAGE
        spent.append(time.process_time() - start)
        writer.close()
        await writer.wait_closed()

    net = sim.Network(seed=1, latency=0.0)
    net.host("server", echo_server, address="2001:db8::1/64" if ipv6 else "10.0.0.1/24")
    net.client("client", client, address="2001:db8::2/64" if ipv6 else "10.0.0.2/24")
    net.run(timeout=3600)
    return spent[0]
