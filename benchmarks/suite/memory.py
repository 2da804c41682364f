"""Memory per idle endpoint: what 1,000 sockets that do nothing cost usernet's Python process.

Each repetition is a fresh process (`programs/idle_sockets`) so earlier allocations do not
hide in the figures. It touches no network, so it needs no sandbox. A kernel socket's
memory lives in the kernel, not in the process, so there is no kernel column.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.harness import Benchmark, Measure, Metric, Settings, Setup, variant
from benchmarks.procs import REPO, child_env, python_module

COUNT = 10_000
#: Established TCP connections per process (each has two ends, both counted).
TCP_COUNT = 2_000


def idle(kind: str, count: int) -> Setup:
    @contextmanager
    def setup(settings: Settings) -> Iterator[Measure]:
        def measure(case: str) -> dict[str, float]:
            command = python_module("benchmarks.programs.idle_sockets", "--kind", kind, "--count", str(count))
            result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=child_env(), timeout=120)
            if result.returncode != 0:
                raise RuntimeError(f"idle_sockets exited with {result.returncode}: {result.stderr.strip()[-500:]}")
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            return {
                "rss": figures["rss_per_1000"] / 1024,
                "traced": figures["traced_per_1000"] / 1024,
                "kernel": figures["kernel_per_1000"] / 1024,
            }

        yield measure

    return setup


BENCHMARKS = (
    Benchmark(
        name="memory",
        title="Memory per 1,000 idle endpoints",
        order=40,
        meaning=f"KiB per 1,000 idle endpoints ({COUNT:,} UDP sockets, or {TCP_COUNT:,} established TCP connections "
        "between two interfaces on an in-memory wire, counted per end, per process): the growth "
        "of the resident set, and what tracemalloc counts of Python allocations (exact, no allocator slack). "
        "The issue's target is at most 4 KB per idle established TCP connection. The descriptor row is what "
        "a connection adds once a library asks for its fileno() (a socketpair: mostly kernel slab memory, "
        "measured system-wide, so noisy).",
        metrics=(
            Metric("rss", "RSS KiB / 1,000", higher_is_better=False),
            Metric("traced", "tracemalloc KiB / 1,000", higher_is_better=False),
            Metric("kernel", "kernel slab KiB / 1,000", higher_is_better=False),
        ),
        cases=("idle",),
        variants=(
            variant("usernet-udp", idle("udp", COUNT), label="usernet UDP socket"),
            variant("usernet-tcp", idle("tcp", TCP_COUNT), label="usernet established TCP connection (per end)"),
            variant("descriptor", idle("descriptor", TCP_COUNT), label="the descriptor of one connection (fileno())"),
        ),
    ),
)
