"""Count what a connection's birth costs: a deterministic loop for callgrind and cProfile.

Two in-process `Interface`s (`engine_cpu.pair`), a listener on B; A connects `count` times,
the frames carried between them by `engine_cpu.step`, B accepts each connection; both ends
then close and the connection runs to CLOSED so the next birth starts from a clean table.
Connections are made in batches of `--batch` (SYNs in flight together, as a busy server
sees them). Public APIs only (`Interface.receive` / `take_output` / `poll`, `listen`,
`connect`, `accept`, `close`).

Instructions per birth (two counts, subtract, divide by the difference)::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cc.%p \\
        .venv/bin/python -m benchmarks.count_connect --count 200
    (and again with --count 400)

Python calls per birth: ``python -m benchmarks.count_connect --count 2000 --profile``.
The garbage collector's passes per birth (by generation, through `gc.callbacks`) are
printed on every run; a full collection before the measured loop makes them the same
from run to run of the same code.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats

from benchmarks.engine_cpu import pair, step


class _Births:
    """Two interfaces with a listener on B, making connections in batches."""

    def __init__(self) -> None:
        self.a, self.b = pair()
        self.listener = self.b.tcp.listen((bytes(4), 7))
        self.now = 0.0
        self.port = 20000

    def steps(self, count: int) -> None:
        for _ in range(count):
            self.now += 0.001
            step(self.a, self.b, self.now)
            self.a.take_ready()  # as a driver does: the sockets woken are let go of
            self.b.take_ready()

    def batch(self, n: int) -> None:
        """`n` SYNs in flight together, all accepted, then both ends closed."""
        clients = []
        for _ in range(n):
            self.port += 1
            clients.append(self.a.tcp.connect((bytes((192, 0, 2, 2)), 7), self.now, local=(bytes(4), self.port)))
        self.steps(3)
        servers = []
        while (conn := self.listener.accept()) is not None:
            servers.append(conn)
        assert len(servers) == n, f"{len(servers)} of {n} handshakes completed"
        for conn in clients:
            conn.close(self.now)
        for conn in servers:
            conn.close(self.now)
        self.steps(3)


def run(count: int, batch: int) -> list[int]:
    """Make, accept and close `count` connections; the garbage collector's passes by generation."""
    births = _Births()
    births.batch(1)  # ARP resolved before the measured loop (its queue holds only a few SYNs)
    # The collector's counts start from zero: otherwise where its passes fall in the loop
    # depends on what came before (compiling the modules or loading their cached bytecode),
    # and one gen-1 pass more or less between two counts moves the figure by ~20k a birth.
    gc.collect()
    passes = [0, 0, 0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes[info["generation"]] += 1

    gc.callbacks.append(on_gc)
    try:
        for done in range(0, count, batch):
            births.batch(min(batch, count - done))
    finally:
        gc.callbacks.remove(on_gc)
    return passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="connections to make")
    parser.add_argument("--batch", type=int, default=50, help="connections in flight together")
    parser.add_argument("--profile", action="store_true", help="count Python calls under cProfile")
    args = parser.parse_args()
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        passes = run(args.count, args.batch)
        profiler.disable()
        stats = pstats.Stats(profiler)
        calls = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
        print(f"python calls per connection: {calls / args.count:.1f}")
        stats.sort_stats("tottime").print_stats(25)
    else:
        passes = run(args.count, args.batch)
    per = ", ".join(f"gen{g} {p / args.count:.4f}" for g, p in enumerate(passes))
    print(f"{args.count} connections; gc passes per connection: {per}")


if __name__ == "__main__":
    main()
