"""The aiomcache load generator of the aiomcache benchmark, the same program on every variant.

`--tasks` asyncio tasks share one `aiomcache.Client` (one pooled connection each) and
each keeps one `set` or `get` of small keys and values in flight for `--seconds`; gets
read keys set beforehand and must hit. Prints one JSON object: operations per second.
On kernel sockets it runs as is; `python -m usernet [options] -m
benchmarks.programs.mcache_client` runs it unchanged on usernet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import aiomcache

from benchmarks.programs.lifetime import add_options, run_on

#: Round trips each task makes before the clock starts: connections opened, caches warm.
WARMUP = 20


def keys(task: int, count: int, size: int) -> list[bytes]:
    return [f"t{task}k{i}".encode().ljust(size, b"k") for i in range(count)]


async def worker(client: aiomcache.Client, op: str, names: list[bytes], value: bytes, stop_at: float) -> int:
    done = 0
    while time.perf_counter() < stop_at:
        key = names[done % len(names)]
        if op == "set":
            await client.set(key, value)
        elif await client.get(key) != value:
            raise SystemExit(f"get {key!r} missed: memcached lost a value it was just given")
        done += 1
    return done


async def warm_up(client: aiomcache.Client, names: list[bytes], value: bytes) -> None:
    """Sets every key of the task (so gets hit), then reads some back, opening this task's connection."""
    for key in names:
        await client.set(key, value)
    for i in range(WARMUP):
        await client.get(names[i % len(names)])


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    client = aiomcache.Client(args.host, args.port, pool_size=args.tasks)
    value = b"v" * args.size
    names = [keys(task, args.keys, args.size) for task in range(args.tasks)]
    try:
        await asyncio.gather(*(warm_up(client, task_keys, value) for task_keys in names))
        start = time.perf_counter()
        counts = await asyncio.gather(
            *(worker(client, args.op, task_keys, value, start + args.seconds) for task_keys in names)
        )
        elapsed = time.perf_counter() - start
    finally:
        await client.close()
    return {"rate": sum(counts) / elapsed, "ops": sum(counts), "seconds": elapsed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("op", choices=("get", "set"))
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=11211)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--tasks", type=int, default=8, help="operations in flight at once")
    parser.add_argument("--keys", type=int, default=16, help="distinct keys per task")
    parser.add_argument("--size", type=int, default=32, help="bytes per key and per value")
    add_options(parser, server=False)
    args = parser.parse_args(argv)
    print(json.dumps(run_on(args.loop, measure(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
