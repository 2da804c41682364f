"""What idle endpoints on a usernet Interface cost in memory, measured in a fresh process.

`--kind udp`: `--count` bound UDP sockets. `--kind tcp`: `--count` established TCP
connections between two interfaces on an in-memory wire (virtual clock, no network), so
2 x count connection ends; the figure is per end. `--kind descriptor`: `--count` of the
descriptors a usernet socket gets on its first `fileno()` (usernet/aio/descriptor.py),
set to "writable", as an idle connection's is: what they add to an idle connection.
Each kind is opened twice: once watching the resident set (/proc/self/statm, without
tracemalloc's own overhead inflating it), once under tracemalloc (Python allocations
only, exact). Prints one JSON object: bytes per 1,000 endpoints by each measure, and the
growth of the kernel's slab memory (system-wide, so other processes add noise; a
descriptor's cost is mostly there).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tracemalloc
from collections.abc import Callable, Sequence

from benchmarks.programs.lifetime import raise_open_files
from usernet.aio.descriptor import Readiness
from usernet.drivers.host import Host
from usernet.drivers.virtual import Simulation
from usernet.link.clock import VirtualClock
from usernet.link.memory import MemoryWire
from usernet.stack import Interface, InterfaceConfig
from usernet.stack.tcp.connection import TcpConnection
from usernet.stack.udp import ANY

SERVER = bytes([192, 0, 2, 2])

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def slab() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("Slab:"):
                return int(line.split()[1]) * 1024
    return 0


def descriptor_opener(count: int) -> Callable[[], Sequence[object]]:
    """Calling the result makes `count` descriptors and asks each for its fd, as a library would."""

    def open_all() -> list[object]:
        made: list[object] = []
        for _ in range(count):
            readiness = Readiness()
            readiness.set(False, True)
            readiness.fileno()
            made.append(readiness)
        return made

    return open_all


def interface() -> Interface:
    return Interface(InterfaceConfig.from_strings(b"\x02\x00\x00\x00\x00\x02", ["192.0.2.2/24"]))


def udp_opener(count: int) -> Callable[[], Sequence[object]]:
    """Ready-made interface; calling the result opens `count` bound UDP sockets."""
    iface = interface()
    return lambda: [iface.open_udp((ANY, 1024 + i)) for i in range(count)]


def tcp_opener(count: int) -> Callable[[], Sequence[object]]:
    """Two interfaces on a MemoryWire, a listener ready; calling the result establishes `count` connections."""
    clock = VirtualClock()
    wire = MemoryWire(clock, latency=0.0001, queue_limit=100_000)
    sim = Simulation(clock)
    client = sim.add(Host(wire.a, Interface(InterfaceConfig.from_strings(wire.a.mac, ["192.0.2.1/24"]))))
    server = sim.add(Host(wire.b, Interface(InterfaceConfig.from_strings(wire.b.mac, ["192.0.2.2/24"]))))
    listener = server.iface.tcp.listen((ANY, 80), backlog=4096)
    sim.run(0.01)

    def accept_all(ends: list[TcpConnection]) -> None:
        while (conn := listener.accept()) is not None:
            ends.append(conn)

    def open_all() -> list[TcpConnection]:
        ends: list[TcpConnection] = []
        for i in range(count):
            ends.append(client.iface.tcp.connect((SERVER, 80), clock()))
            if i % 100 == 99:
                sim.run(0.01)
                accept_all(ends)
        sim.run(1.0)
        accept_all(ends)
        sim.run(1.0)  # delayed ACKs and the like settle: the connections are idle
        if len(ends) != 2 * count or not all(e.state.name == "ESTABLISHED" for e in ends):
            raise RuntimeError(f"only {len(ends)} of {2 * count} connection ends established")
        return ends

    return open_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--kind", choices=("udp", "tcp", "descriptor"), default="udp")
    args = parser.parse_args(argv)
    if not 0 < args.count <= 20_000:
        parser.error("--count must be 1-20000 (one port each, within the ephemeral range)")
    make = {"udp": udp_opener, "tcp": tcp_opener, "descriptor": descriptor_opener}[args.kind]
    if args.kind == "descriptor":  # two descriptors each
        raise_open_files(2 * args.count + 256)

    open_all = make(args.count)
    gc.collect()
    before, slab_before = rss(), slab()
    kept = open_all()
    gc.collect()
    resident, kernel = rss() - before, slab() - slab_before

    open_all = make(args.count)
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    kept2 = open_all()
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    ends = len(kept)
    assert ends == len(kept2)
    print(
        json.dumps(
            {
                "rss_per_1000": resident * 1000 / ends,
                "traced_per_1000": traced * 1000 / ends,
                "kernel_per_1000": kernel * 1000 / ends,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
