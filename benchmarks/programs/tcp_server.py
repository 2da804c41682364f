"""The asyncio TCP server of the TCP benchmarks, the same program on every variant: echo, discard, chargen.

Like usernet's own services (usernet/apps/services.py) it serves RFC 862 echo on port 7,
RFC 863 discard on 9 and RFC 864-style chargen on 19, so the load generators meet the
same ports whichever server answers. On kernel sockets it runs as is; `python -m usernet
[options] -m benchmarks.programs.tcp_server` runs it unchanged on usernet. Plain
`asyncio.Protocol`s, the cheapest face of asyncio streams: what is measured is the
transport under them. It binds the wildcard address (IPv4's, or `--host ::` for IPv6's),
prints `ready`, and serves until SIGTERM or `--max-seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from benchmarks.programs.lifetime import add_options, run_on, until_stopped

ECHO_PORT, DISCARD_PORT, CHARGEN_PORT = 7, 9, 19
BLOCK = bytes(range(32, 127)) * 690  # ~64 KiB of printable characters per write


class Echo(asyncio.Protocol):
    """Everything received goes back; the peer's EOF closes the connection once the echo is written."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]  # a stream's is one

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class Discard(asyncio.Protocol):
    """Everything received is dropped; the peer's EOF closes the connection (the sender's end of a transfer)."""

    def data_received(self, data: bytes) -> None:
        pass


class Chargen(asyncio.Protocol):
    """Writes until the transport pushes back, resumes when it drains, stops when the peer goes away."""

    def __init__(self) -> None:
        self.paused = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream's is one
        self._generate()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._generate()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        pass

    def _generate(self) -> None:
        while not self.paused and self.transport is not None and not self.transport.is_closing():
            self.transport.write(BLOCK)


async def serve(seconds: float, host: str) -> None:
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(protocol, host, port, backlog=1024)
        for protocol, port in ((Echo, ECHO_PORT), (Discard, DISCARD_PORT), (Chargen, CHARGEN_PORT))
    ]
    try:
        await until_stopped(seconds)
    finally:
        for server in servers:
            server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser, server=True)
    parser.add_argument("--host", default="0.0.0.0", help="the address to bind: 0.0.0.0 or :: (default 0.0.0.0)")
    args = parser.parse_args(argv)
    run_on(args.loop, serve(args.max_seconds, args.host))
    return 0


if __name__ == "__main__":
    sys.exit(main())
