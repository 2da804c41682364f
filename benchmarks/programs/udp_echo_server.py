"""The asyncio UDP echo server of the UDP echo benchmark, the same program on every variant.

On kernel sockets it runs as is; `python -m usernet [options] -m
benchmarks.programs.udp_echo_server` runs it unchanged on usernet. It binds the wildcard
address (which usernet's routing sends to usernet), prints `ready`, and serves until
SIGTERM or `--max-seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from benchmarks.programs.lifetime import add_options, run_on, until_stopped


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]  # an endpoint's is one

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.transport.sendto(data, addr)


async def serve(port: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", port))
    try:
        await until_stopped(seconds)
    finally:
        transport.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7)
    add_options(parser, server=True)
    args = parser.parse_args(argv)
    run_on(args.loop, serve(args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
