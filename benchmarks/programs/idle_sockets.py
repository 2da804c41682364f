"""What idle UDP sockets on a usernet Interface cost in memory, measured in a fresh process.

Opens `--count` sockets twice: once watching the resident set (/proc/self/statm, without
tracemalloc's own overhead inflating it), once under tracemalloc (Python allocations
only, exact). Prints one JSON object: bytes per 1,000 sockets by each measure.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tracemalloc

from usernet.stack import Interface, InterfaceConfig
from usernet.stack.udp import ANY, UdpSocket

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def interface() -> Interface:
    return Interface(InterfaceConfig.from_strings(b"\x02\x00\x00\x00\x00\x02", ["192.0.2.2/24"]))


def open_sockets(iface: Interface, count: int) -> list[UdpSocket]:
    return [iface.open_udp((ANY, 1024 + i)) for i in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args(argv)
    if not 0 < args.count <= 60_000:
        parser.error("--count must be 1-60000 (one port each)")

    iface = interface()
    gc.collect()
    before = rss()
    kept = open_sockets(iface, args.count)
    gc.collect()
    resident = rss() - before

    iface2 = interface()
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    kept2 = open_sockets(iface2, args.count)
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    assert len(kept) == len(kept2) == args.count
    print(json.dumps({"rss_per_1000": resident * 1000 / args.count, "traced_per_1000": traced * 1000 / args.count}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
