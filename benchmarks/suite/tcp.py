"""TCP against the kernel: registered now so the report shows the gap, runnable once the TCP engine is.

Each becomes runnable by giving its variants a `setup` (see `udp_echo` for the pattern:
one asyncio server program, run as is on kernel sockets and under `python -m usernet`).
Targets from issue 6 are in each meaning.
"""

from __future__ import annotations

from benchmarks.harness import NEEDS_TCP, Benchmark, Metric, placeholders

LATENCY = (Metric("p50", "p50 µs", higher_is_better=False), Metric("p99", "p99 µs", higher_is_better=False))

BENCHMARKS = (
    Benchmark(
        name="tcp_bulk",
        title="TCP bulk, one stream",
        order=50,
        meaning="MB/s of one stream each way. Target: ≥150 MB/s at MTU 1500, ≥500 MB/s with offloads "
        "or jumbo MTU; stated as a ratio to kernel-over-veth.",
        metrics=(Metric("mbytes", "MB/s"),),
        cases=("kernel → usernet", "usernet → kernel"),
        variants=placeholders(NEEDS_TCP),
        reference="kernel-veth",
    ),
    Benchmark(
        name="tcp_rr",
        title="TCP request/response, 64 bytes",
        order=51,
        meaning="Round trips/s and latency on 1 and on 50 concurrent connections. Target (usernet on "
        "uvloop against the kernel on uvloop): ≥60% on 1 connection, ≥80% on 50.",
        metrics=(Metric("rate", "round trips/s"), *LATENCY),
        cases=("1 connection", "50 connections"),
        variants=placeholders(NEEDS_TCP),
        reference="kernel-asyncio",
    ),
    Benchmark(
        name="tcp_connect",
        title="TCP connection setup + one request + close",
        order=52,
        meaning="Connections per second. Target: ≥40% of the kernel's.",
        metrics=(Metric("rate", "connections/s"),),
        cases=("sequential",),
        variants=placeholders(NEEDS_TCP),
        reference="kernel-asyncio",
    ),
)
