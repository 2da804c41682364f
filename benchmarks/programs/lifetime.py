"""What every benchmark program shares: the loop it runs on, how long a server lives, how many descriptors it may hold.

The programs stay plain asyncio (none imports usernet), so they run unchanged on kernel
sockets and under `python -m usernet`.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def add_options(parser: argparse.ArgumentParser, *, server: bool) -> None:
    """`--loop`, and for a server `--max-seconds`: the options the harness passes every program."""
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    if server:
        parser.add_argument("--max-seconds", type=float, required=True, help="stop by itself after this long")


def run_on(kind: str, coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to the end on the loop `kind` names, as `asyncio.run` would."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(coro)


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The `loop_factory` for asyncio.Runner: uvloop's, or None for the stdlib loop."""
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


async def until_stopped(seconds: float) -> None:
    """Say `ready` (the harness waits for that line), then wait for SIGTERM or `seconds`, whichever comes first."""
    loop = asyncio.get_running_loop()
    stopped = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stopped.set_result, None)
    print("ready", flush=True)
    try:
        await asyncio.wait_for(stopped, seconds)
    except TimeoutError:
        pass


def raise_open_files(wanted: int) -> None:
    """Raise this process's soft limit on open descriptors towards `wanted` (up to the hard limit).

    A program holding thousands of kernel sockets needs more than the usual 1,024; a
    process may raise its own soft limit, never past the hard one.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
