"""Unmodified applications on usernet: aiohttp under wrk, aiomcache against memcached (registered, not yet runnable)."""

from __future__ import annotations

from benchmarks.harness import NOT_WRITTEN, Benchmark, Metric, placeholders

STANDARD = ("usernet-asyncio", "usernet-uvloop", "kernel-asyncio", "kernel-uvloop")

BENCHMARKS = (
    Benchmark(
        name="aiohttp",
        title="aiohttp \"hello world\" under wrk",
        order=60,
        meaning="Requests/s wrk gets from an unmodified aiohttp server.",
        metrics=(Metric("rate", "requests/s"),),
        cases=("wrk",),
        variants=placeholders(NOT_WRITTEN, STANDARD),
        reference="kernel-asyncio",
    ),
    Benchmark(
        name="aiomcache",
        title="aiomcache get/set against memcached",
        order=61,
        meaning="Operations/s of an aiomcache client against a memcached started in the namespace.",
        metrics=(Metric("rate", "ops/s"),),
        cases=("get", "set"),
        variants=placeholders(NOT_WRITTEN, STANDARD),
        reference="kernel-asyncio",
    ),
)
