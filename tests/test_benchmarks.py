"""The benchmark harness runs end to end and writes a table with figures in it (never how fast they are)."""

from __future__ import annotations

import re
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest

from benchmarks.harness import Benchmark, Metric, variant
from benchmarks.runner import discover, select
from benchmarks.suite.apps import parse_wrk

REPO = Path(__file__).resolve().parent.parent


def test_every_benchmark_the_issue_names_is_registered_with_runnable_variants() -> None:
    benchmarks = discover()
    assert {
        "udp_echo",
        "icmp_echo",
        "tap_capacity",
        "memory",
        "memory_server",
        "tcp_bulk",
        "tcp_rr",
        "tcp_connect",
        "tcp6_bulk",
        "tcp6_rr",
        "aiohttp",
        "aiomcache",
    } <= {b.name for b in benchmarks}
    for b in benchmarks:
        for v in b.variants:
            assert callable(v.setup), (b.name, v.key)


def test_select_names_the_known_benchmarks_when_given_an_unknown_one() -> None:
    with pytest.raises(ValueError, match=r"known: .*udp_echo"):
        select(discover(), ["udp_echo", "nope"])


def test_a_benchmark_refuses_a_reference_it_does_not_have() -> None:
    with pytest.raises(ValueError, match="reference"):
        Benchmark(
            "x",
            "x",
            0,
            "",
            (Metric("m", "m"),),
            ("c",),
            (variant("kernel-asyncio", lambda settings: nullcontext(lambda case: {})),),
            reference="kernel-veth",
        )


@pytest.mark.network
def test_quick_run_writes_a_table_with_numbers(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--repeats",
            "1",  # proves the harness end to end; three 10,000-connection servers took half a minute
            "--only",
            "icmp_echo,memory,memory_server",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "latest.md").read_text()
    rows = {line.split("|")[2].strip(): line for line in table.splitlines() if line.startswith("| one in flight")}
    assert set(rows) == {"usernet, select loop", "kernel, loopback", "(e) kernel over veth"}
    for line in rows.values():
        assert re.search(r"\| [\d,.]+ \([\d,.]+–[\d,.]+\) \|", line), line
    assert re.search(r"\| usernet, select loop \|.*\| [\d.]+ × \(e\) \|", rows["usernet, select loop"])
    memory = [line for line in table.splitlines() if line.startswith("| idle |")]
    assert len(memory) == 3 and all(re.search(r"\| [\d,.]+ \([\d,.]+–[\d,.]+\) \|", line) for line in memory), memory
    server = {
        line.split("|")[2].strip(): line for line in table.splitlines() if line.startswith("| 10,000 idle connections")
    }
    assert set(server) == {"(c) kernel + asyncio", "(a) usernet + asyncio"}, server
    assert all(re.search(r"\| [\d,.]+ \([\d,.]+–[\d,.]+\) \|", line) for line in server.values()), server
    assert re.search(r"\| [\d.]+ × \(c\) \|$", server["(a) usernet + asyncio"]), server
    assert "failed" not in table


def test_quick_mode_leaves_out_full_only_benchmarks_unless_named():
    from benchmarks.runner import discover, select

    benchmarks = discover()
    quick = {b.name for b in select(benchmarks, None, quick=True)}
    full = {b.name for b in select(benchmarks, None, quick=False)}
    assert {"tcp_bulk_jumbo", "tcp_bulk_tso"} <= full - quick
    assert [b.name for b in select(benchmarks, ["tcp_bulk_tso"], quick=True)] == ["tcp_bulk_tso"]


WRK_REPORT = """Running 1s test @ http://192.0.2.2:8080/
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   661.23us  210.40us   5.12ms   91.20%
    Req/Sec    11.42k   512.33    12.10k    70.00%
  Latency Distribution
     50%  590.00us
     75%  702.00us
     90%  850.00us
     99%    1.10ms
  11421 requests in 1.00s, 1.70MB read
Requests/sec:  11421.37
Transfer/sec:      1.70MB
"""


def test_wrk_report_gives_rate_and_latency_in_microseconds() -> None:
    assert parse_wrk(WRK_REPORT) == {"rate": 11421.37, "p50": 590.0, "p99": 1100.0}


def test_wrk_report_with_failed_requests_is_refused() -> None:
    with pytest.raises(RuntimeError, match="Non-2xx"):
        parse_wrk(WRK_REPORT + "  Non-2xx or 3xx responses: 12\n")
    with pytest.raises(RuntimeError, match="Requests/sec"):
        parse_wrk("wrk: connection refused\n")


def test_engine_cpu_runs_both_workloads_to_the_end() -> None:
    from benchmarks import engine_cpu

    assert engine_cpu.request_response(20) >= 0.0
    assert engine_cpu.bulk(300_000) >= 0.0
    assert engine_cpu.udp_echo(20) >= 0.0
    assert engine_cpu.request_response(20, ipv6=True) >= 0.0  # and over IPv6
    assert engine_cpu.bulk(300_000, ipv6=True) >= 0.0
    assert engine_cpu.udp_echo(20, ipv6=True) >= 0.0


def test_count_engine_lists_bytecodes_per_function_or_says_what_it_needs(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import count_engine

    if sys.version_info < (3, 12):
        with pytest.raises(SystemExit, match=r"Python 3\.12"):
            count_engine.bytecodes("rr", 20, False, 5)
        return
    count_engine.bytecodes("rr", 20, False, 5)
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"TCP 64-byte request/response over IPv4: [\d,]+ bytecode instructions", lines[0]), lines
    assert len(lines) == 6 and all(re.match(r" +[\d.]+ +[\d.]+%  \S+:\d+ \w+$", line) for line in lines[1:]), lines


def test_aio_face_round_trips_run_to_the_end_over_both_families() -> None:
    from benchmarks import aio_face

    assert aio_face.request_response(20) >= 0.0
    assert aio_face.request_response(20, ipv6=True) >= 0.0


def test_count_engine_splits_the_aio_case_by_area_or_says_what_it_needs(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import count_engine

    if sys.version_info < (3, 12):
        with pytest.raises(SystemExit, match=r"Python 3\.12"):
            count_engine.bytecodes("aio", 30, False, 5, small=10)
        return
    count_engine.bytecodes("aio", 30, False, 5, small=10)
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"TCP 64-byte request/response through the asyncio face over IPv4: [\d,]+ bytecode", lines[0])
    assert "(20 round trips)" in lines[0], lines
    areas = {re.sub(r" [\d,]+$", "", part.strip()) for part in lines[1].split(", ")}  # "engine 5,264, face 988"
    assert {"engine", "face", "asyncio", "simulated link"} <= areas, lines
    assert len(lines) == 7 and all(re.match(r" +[\d.]+ +[\d.]+%  \S+:\d+ \w+$", line) for line in lines[2:]), lines


def test_count_engine_areas_name_the_face_and_the_engine() -> None:
    from benchmarks.count_engine import area

    assert area("/x/usernet/aio/stream.py") == "face"
    assert area("/x/usernet/drivers/host.py") == "face"
    assert area("/x/usernet/stack/tcp/input.py") == "engine"
    assert area("/usr/lib/python3.12/asyncio/base_events.py") == "asyncio"
    assert area("/usr/lib/python3.12/selectors.py") == "other"
