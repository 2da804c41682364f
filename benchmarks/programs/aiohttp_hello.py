"""The aiohttp "hello world" server of the aiohttp benchmark, the same program on every variant.

A plain `web.Application` with one `GET /` handler, served by `AppRunner` + `TCPSite`
(what `web.run_app` does, minus its banner: the benchmarks wait for a `ready` line).
On kernel sockets it runs as is; `python -m usernet [options] -m
benchmarks.programs.aiohttp_hello` runs it unchanged on usernet. It binds the wildcard
address, prints `ready`, and serves until SIGTERM or `--max-seconds`.
"""

from __future__ import annotations

import argparse
import sys

from aiohttp import web

from benchmarks.programs.lifetime import add_options, run_on, until_stopped


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello, world")


async def serve(port: int, seconds: float) -> None:
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port, backlog=1024).start()
    try:
        await until_stopped(seconds)
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    add_options(parser, server=True)
    args = parser.parse_args(argv)
    run_on(args.loop, serve(args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
