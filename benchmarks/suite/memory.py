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

from benchmarks.harness import NEEDS_TCP, Benchmark, Measure, Metric, Settings, variant
from benchmarks.procs import REPO, child_env, python_module

COUNT = 10_000


@contextmanager
def usernet_udp(settings: Settings) -> Iterator[Measure]:
    def measure(case: str) -> dict[str, float]:
        result = subprocess.run(python_module("benchmarks.programs.idle_sockets", "--count", str(COUNT)),
                                capture_output=True, text=True, cwd=REPO, env=child_env(), timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"idle_sockets exited with {result.returncode}: {result.stderr.strip()[-500:]}")
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        return {"rss": figures["rss_per_1000"] / 1024, "traced": figures["traced_per_1000"] / 1024}

    yield measure


BENCHMARKS = (
    Benchmark(
        name="memory",
        title="Memory per 1,000 idle endpoints",
        order=40,
        meaning=f"KiB per 1,000 idle sockets on one usernet Interface ({COUNT:,} opened per process): the growth "
        "of the resident set, and what tracemalloc counts of Python allocations (exact, no allocator slack). "
        "The issue's target is at most 4 KB per idle established TCP connection.",
        metrics=(Metric("rss", "RSS KiB / 1,000", higher_is_better=False),
                 Metric("traced", "tracemalloc KiB / 1,000", higher_is_better=False)),
        cases=("idle",),
        variants=(
            variant("usernet-udp", usernet_udp, label="usernet UDP socket"),
            variant("usernet-tcp", pending=NEEDS_TCP, label="usernet established TCP connection"),
        ),
    ),
)
