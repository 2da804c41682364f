"""An asyncio streams server holding idle connections, which reports what they grew its resident set by.

The whole program is measured, not only the stack: `asyncio.start_server` with a handler
that awaits `reader.read()` (a discard service on port 9), as a typical program holds a
connection it expects data on. It records its resident set once listening, prints
`ready`, waits until `--count` connections are open, lets them settle (delayed ACKs,
timers), and prints one JSON object: the growth per 1,000 connections. Then it closes
them all and exits, so each measurement is a fresh process whose earlier allocations
hide nothing. Plain asyncio (it imports nothing of usernet): it runs as is on kernel
sockets and unchanged under `python -m usernet`.

`--trace FILE` also runs tracemalloc (which inflates the resident set, so use it to find
where the bytes go, not for the figure) and writes the allocations the connections
added to FILE, grouped by traceback, biggest first.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tracemalloc

from benchmarks.programs.lifetime import add_options, raise_open_files, run_on

PORT = 9
#: How long the connections sit idle before the measurement: past delayed ACKs and the handshake's timers.
SETTLE_SECONDS = 1.0
#: How long closing every connection at the end may take.
CLOSE_SECONDS = 30.0
TRACE_FRAMES = 12
TRACE_TOP = 100

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def write_trace(path: str, before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, count: int) -> None:
    """The allocations between the snapshots, in bytes per connection, biggest first: by line, then by traceback."""
    grown = after.compare_to(before, "traceback")
    total = sum(stat.size_diff for stat in grown)
    with open(path, "w") as out:
        out.write(f"{total / count:.0f} bytes per connection traced in all, {count} connections\n\nBy line:\n")
        for stat in after.compare_to(before, "lineno")[:TRACE_TOP]:
            out.write(f"{stat.size_diff / count:8.1f} B/conn  {stat.count_diff / count:6.2f} blocks/conn  ")
            out.write(f"{stat.traceback[0].filename}:{stat.traceback[0].lineno}\n")
        out.write("\nBy traceback:\n")
        for stat in grown[:TRACE_TOP]:
            out.write(f"\n{stat.size_diff / count:8.1f} B/conn  {stat.count_diff / count:6.2f} blocks/conn\n")
            for line in stat.traceback.format(most_recent_first=True)[: 2 * TRACE_FRAMES]:
                out.write(f"    {line}\n")


async def serve(count: int, seconds: float, trace: str | None) -> None:
    held: set[asyncio.StreamWriter] = set()
    full = asyncio.Event()

    async def discard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.add(writer)
        if len(held) >= count:
            full.set()
        try:
            await reader.read()
        finally:
            held.discard(writer)
            writer.close()

    server = await asyncio.start_server(discard, "0.0.0.0", PORT, backlog=1024)
    gc.collect()
    before = tracemalloc.take_snapshot() if trace else None
    start = rss()
    print("ready", flush=True)
    await asyncio.wait_for(full.wait(), seconds)
    await asyncio.sleep(SETTLE_SECONDS)
    gc.collect()
    grown = rss() - start
    if trace and before is not None:
        write_trace(trace, before, tracemalloc.take_snapshot(), len(held))
    print(json.dumps({"rss_per_1000": grown * 1000 / count, "connections": len(held)}), flush=True)
    server.close()
    for writer in list(held):
        writer.close()
    async with asyncio.timeout(CLOSE_SECONDS):
        while held:
            await asyncio.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser, server=True)
    parser.add_argument("--count", type=int, required=True, help="connections to wait for")
    parser.add_argument("--trace", help="also write where the bytes went (tracemalloc) to this file")
    args = parser.parse_args(argv)
    raise_open_files(args.count + 256)  # on kernel sockets each connection is a descriptor
    if args.trace:
        tracemalloc.start(TRACE_FRAMES)
    run_on(args.loop, serve(args.count, args.max_seconds, args.trace))
    return 0


if __name__ == "__main__":
    sys.exit(main())
