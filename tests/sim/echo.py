"""The TCP echo server the simulation tests run on their server hosts."""

from __future__ import annotations

import asyncio


async def echo_server(port: int = 7) -> None:
    """Echo every byte back on `port` until the peer closes, forever (a host's main)."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    await (await asyncio.start_server(echo, "0.0.0.0", port)).serve_forever()
