"""How much the C core buys over its pure-Python twins, per call, as a markdown table.

Run `python -m benchmarks.bench_wire [--quick]`. Each figure is the best of several
timed batches (time.perf_counter), the usual defence against a noisy shared machine;
compare the C and Python columns of one run, not figures across runs.

Aims (docs/performance.md): the C checksum at least half as fast as `bytes(buf)`
copying the same buffer, and C segment parse + build at least 10x the twins.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from usernet import native
from usernet._native import pure

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
IP_A, IP_B = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])
TS_OPTIONS = b"\x01\x01\x08\x0a" + (123456789).to_bytes(4, "big") + (987654321).to_bytes(4, "big")


def seconds_per_call(fn: Callable[..., Any], args: tuple[Any, ...], budget: float, repeats: int) -> float:
    """Best-of-`repeats` time of one call, batches sized to take about `budget` seconds each."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn(*args)
        elapsed = time.perf_counter() - start
        if elapsed >= budget / 4:
            break
        loops *= 4
    loops = max(1, int(loops * budget / elapsed))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn(*args)
        best = min(best, (time.perf_counter() - start) / loops)
    return best


def checksum_rows(c_impl: Any, budget: float, repeats: int) -> list[tuple[str, float, float, float]]:
    """(buffer, C GB/s, Python GB/s, copy GB/s) for a full-size frame payload and a 64 KiB TSO frame."""
    rows = []
    for label, size in (("1,480 B", 1480), ("64 KiB", 65536)):
        buf = bytearray((i * 7 + 3) & 0xFF for i in range(size))
        gbps = [
            size / seconds_per_call(fn, (buf,), budget, repeats) / 1e9
            for fn in (c_impl.internet_checksum, pure.internet_checksum, bytes)
        ]
        rows.append((label, gbps[0], gbps[1], gbps[2]))
    return rows


def segment_times(impl: Any, budget: float, repeats: int) -> tuple[float, float]:
    """Seconds per tcp_parse of a data segment with timestamps, and per build_ipv4_tcp of it."""
    payload = memoryview(bytearray(1448))
    frame = bytearray(1600)
    args = (frame, 0, MAC_A, MAC_B, IP_A, IP_B, 1, 64, 40000, 80, 1000, 2000, 0x10, 502, 0, TS_OPTIONS, payload)
    length = impl.build_ipv4_tcp(*args)
    assert length == 14 + 20 + 32 + 1448, length
    segment = memoryview(frame)[34:length]
    parse = seconds_per_call(impl.tcp_parse, (segment,), budget, repeats)
    build = seconds_per_call(impl.build_ipv4_tcp, args, budget, repeats)
    return parse, build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter batches and fewer repeats (noisier)")
    options = parser.parse_args(argv)
    budget, repeats = (0.02, 3) if options.quick else (0.1, 7)
    c_impl = native.c_impl
    if c_impl is None:
        print(
            "the C core is not loaded (USERNET_PURE set, or the extension failed to build): nothing to compare",
            file=sys.stderr,
        )
        return 1

    print("| checksum of | C GB/s | Python GB/s | `bytes(buf)` copy GB/s | C / copy |")
    print("|---|---:|---:|---:|---:|")
    checksum = checksum_rows(c_impl, budget, repeats)
    for label, c_gbps, py_gbps, copy_gbps in checksum:
        print(f"| {label} | {c_gbps:.2f} | {py_gbps:.2f} | {copy_gbps:.2f} | {c_gbps / copy_gbps:.2f} |")

    c_parse, c_build = segment_times(c_impl, budget, repeats)
    py_parse, py_build = segment_times(pure, budget, repeats)
    print()
    print("| per 1,448-byte data segment (TS option) | C per s | Python per s | C / Python |")
    print("|---|---:|---:|---:|")
    for label, c_s, py_s in (
        ("tcp_parse", c_parse, py_parse),
        ("build_ipv4_tcp", c_build, py_build),
        ("parse + build", c_parse + c_build, py_parse + py_build),
    ):
        print(f"| {label} | {1 / c_s:,.0f} | {1 / py_s:,.0f} | {py_s / c_s:.1f}x |")

    worst_copy_ratio = min(c / copy for _, c, _, copy in checksum)
    speedup = (py_parse + py_build) / (c_parse + c_build)
    print()
    print(
        f"aim C checksum >= 0.5 x copy: worst {worst_copy_ratio:.2f} x, "
        f"{'met' if worst_copy_ratio >= 0.5 else 'missed'}"
    )
    print(f"aim C parse + build >= 10 x twin: {speedup:.1f} x, {'met' if speedup >= 10 else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
