"""Where usernet's time goes when it echoes UDP: CPU per datagram, and a cProfile of the server.

Run `python -m benchmarks.profile_udp_echo [--loop select|asyncio|uvloop] [--seconds 5]
[--window 32] [--runs 1] [--no-profile]` (root). It runs the server of one UDP echo
benchmark variant under the benchmark's windowed load (`programs/udp_client`), in a
throwaway namespace: `select` is usernet's `UdpEcho` on its own select loop
(`programs/usernet_server`); `asyncio` and `uvloop` are the benchmark's asyncio program
(`programs/udp_echo_server`), unchanged, under `python -m usernet` on that loop.

First `--runs` plain runs, each giving the server's CPU µs per datagram: the user +
system time of the server process while the client ran (read from /proc before and
after) over the datagrams the client got back. Then one run under cProfile (the select
server's own `--profile`; the asyncio program run as `python -m cProfile -o FILE -m
usernet ...`, since it has no such option), giving the calls per datagram by area (the
stack, usernet's asyncio face and drivers, asyncio, the program) and the top functions
with their calls per datagram. The asyncio program's profile includes its start-up
(imports, the loop's creation), which adds calls that are not per datagram but no
function that is.
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.netns import TAP_OPTIONS, USERNET_IP
from benchmarks.procs import python_module, run_json, start_server
from usernet.link.sandbox import Sandbox

PORT = 7
#: Where a profiled function lives, by a part of its file's path.
AREAS = (
    ("stack", ("usernet/stack", "usernet/wire", "usernet/native")),
    ("aio + drivers + link", ("usernet/aio", "usernet/drivers", "usernet/link")),
    ("program", ("benchmarks/",)),
    ("asyncio", ("asyncio/", "uvloop")),
)
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) time so far of process `pid` (all its threads), from /proc/PID/stat.

    `ip netns exec` execs the command in place, so the PID the sandbox started is the server's.
    """
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK  # utime, stime: fields 14 and 15 of proc(5)


def server_command(loop: str, lifetime: float, profile: Path | None) -> list[str]:
    """The server of the benchmark variant `loop`, as the benchmark starts it (plus cProfile)."""
    if loop == "select":
        extra = ("--profile", str(profile)) if profile else ()
        return python_module("benchmarks.programs.usernet_server", *TAP_OPTIONS, "--max-seconds", str(lifetime), *extra)
    lifetime_option = ("--max-seconds", str(lifetime))
    program = ("benchmarks.programs.udp_echo_server", "--port", str(PORT), "--loop", loop, *lifetime_option)
    usernet = ("usernet", *TAP_OPTIONS, "-m", *program)
    if profile is None:
        return python_module(*usernet)
    return python_module("cProfile", "-o", str(profile), "-m", *usernet)


def serve_under_load(
    loop: str, seconds: float, window: int, profile: Path | None
) -> tuple[float, float, dict[str, Any]]:
    """(server user and system CPU seconds while the client ran, the client's report) of one run."""
    with Sandbox("bench-profile") as sandbox:
        server = start_server(sandbox, server_command(loop, seconds + 30, profile))
        before = cpu_seconds(server.pid)
        client = run_json(
            sandbox,
            python_module(
                "benchmarks.programs.udp_client",
                "--host",
                USERNET_IP,
                "--port",
                str(PORT),
                "--window",
                str(window),
                "--seconds",
                str(seconds),
            ),
            timeout=seconds + 20,
        )
        after = cpu_seconds(server.pid)
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=30)  # cProfile writes its file on the way out
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
            raise RuntimeError("the server did not stop within 30 s of SIGTERM") from None
        return after[0] - before[0], after[1] - before[1], client


def area(filename: str) -> str:
    path = filename.replace("\\", "/")
    for name, parts in AREAS:
        if any(part in path for part in parts):
            return name
    return "other (builtins, C)"


def where(filename: str, line: int, function: str) -> str:
    return function if filename == "~" else f"{filename.rsplit('/', 2)[-1]}:{line}({function})"


def report_profile(path: Path, datagrams: int, top: int) -> None:
    """Calls per datagram by area, and the top functions by own time with their calls per datagram."""
    stats = pstats.Stats(str(path))
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]  # set at run time, not in the stub
    calls: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    for (filename, _, _), (_, ncalls, tottime, _, callers) in table.items():
        if filename == "~" and callers:  # a builtin counts where it was called from
            total = sum(c[1] for c in callers.values()) or 1
            for (caller_file, _, _), caller in callers.items():
                calls[area(caller_file)] += caller[1]
                seconds[area(caller_file)] += tottime * caller[1] / total
            continue
        calls[area(filename)] += ncalls
        seconds[area(filename)] += tottime
    total_tt = sum(seconds.values())
    print(
        f"under cProfile: {total_tt:.2f} s profiled, {sum(calls.values()) / datagrams:.1f} Python calls and "
        f"{total_tt / datagrams * 1e6:.1f} µs (profiler overhead included) per datagram; by area (a builtin "
        "counts with its caller):"
    )
    for name in sorted(calls, key=lambda k: -calls[k]):
        print(f"  {name:<24} {calls[name] / datagrams:7.2f} calls, {seconds[name] / datagrams * 1e6:6.2f} µs")
    ranked = sorted(table.items(), key=lambda item: -item[1][2])[:top]
    print(f"top {top} functions by own time: calls per datagram, own µs per datagram, cumulative µs per datagram")
    for (filename, line, function), (_, ncalls, tottime, cumtime, _) in ranked:
        print(
            f"  {ncalls / datagrams:7.2f}  {tottime / datagrams * 1e6:6.2f}  {cumtime / datagrams * 1e6:6.2f}  "
            f"{where(filename, line, function)}"
        )
    text = io.StringIO()
    pstats.Stats(str(path), stream=text).sort_stats("tottime").print_stats(top)
    print(text.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=("select", "asyncio", "uvloop"), default="select")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--runs", type=int, default=1, help="plain runs, each measuring CPU per datagram")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true", help="skip the run under cProfile")
    parser.add_argument("--save", type=Path, help="keep the cProfile stats in this file (for pstats)")
    args = parser.parse_args(argv)

    for _ in range(args.runs):
        user, system, client = serve_under_load(args.loop, args.seconds, args.window, None)
        n = client["received"]
        print(
            f"{args.loop}, {args.window} in flight: {client['rate']:,.0f} datagrams/s seen by the client; the "
            f"server used {user + system:.2f} CPU s for {n:,} datagrams: {(user + system) / n * 1e6:.2f} µs per "
            f"datagram ({user / n * 1e6:.2f} user, {system / n * 1e6:.2f} system)",
            flush=True,
        )
    if args.no_profile:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = args.save.resolve() if args.save else Path(tmp) / "server.prof"
        user, system, client = serve_under_load(args.loop, args.seconds, args.window, path)
        n = client["received"]
        print(
            f"profiled: {client['rate']:,.0f} datagrams/s; {n:,} datagrams; {(user + system) / n * 1e6:.2f} CPU µs "
            "per datagram"
        )
        report_profile(path, n, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
