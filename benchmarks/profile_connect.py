"""Where a short connection's time goes on usernet: setup, one 64-byte echo, close, one after the other.

Run `python -m benchmarks.profile_connect [--loop asyncio|uvloop|select] [--seconds 3]
[--top 25] [--no-profile]` (root). It is the `tcp_connect` benchmark's measurement with the
server in this process: the TCP benchmarks' asyncio echo protocol (`programs/tcp_server`)
on usernet's loop (`--loop select`: usernet's own echo service on its select loop, as
`programs/usernet_services` runs it), on a TAP in a throwaway namespace, against the
benchmarks' load generator (`programs/tcp_client connect`, kernel sockets, its own
process) with the benchmark's client sysctls.

The benchmark is sequential, so it is bound by latency: each connection waits for every
answer the server gives it. With `--no-profile` it prints connections/s and this process's
CPU µs per connection (the part of each connection's latency the server spends computing);
either way it counts per connection what the link saw (pumps, i.e. wake-ups of the driver;
frames in and out), how often this process slept, and the loop's own scheduling: the
`call_soon` and `call_at` calls usernet made (a timer armed per connection shows here).
It also times the cyclic garbage collector's passes (each generation's count and wall time
per connection: the objects a connection allocates are what starts them). Under cProfile it
prints the Python calls per connection by area and the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import pstats
import subprocess
import time
from collections import Counter
from typing import Any

from benchmarks.netns import KERNEL_IP, USERNET_IP
from benchmarks.procs import REPO, child_env, python_module
from benchmarks.profile_aio import SYSTEM_CALLS, CountingLink, area, make_loop, serve
from benchmarks.programs.tcp_server import ECHO_PORT, Echo
from benchmarks.suite.tcp import CLIENT_SYSCTLS
from usernet.drivers.host import Host
from usernet.link.sandbox import Sandbox
from usernet.stack import Interface, InterfaceConfig


def label(callback: Any) -> str:
    """A callback's qualified name (a bound method's or a function's), else its type's: never its repr,
    which for a transport reads its addresses and would be counted against usernet."""
    name = getattr(callback, "__qualname__", None)
    return name if isinstance(name, str) else type(callback).__qualname__


class CountingScheduler:
    """Counts the loop's `call_soon` and `call_at` calls by the callback's name, on the instance only.

    The loop's methods are wrapped by instance attributes, so the counts cost a Python call
    each; `--no-profile` leaves them off unless `--count-calls` asks (the CPU figure then
    includes the wrappers).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.soon: Counter[str] = Counter()
        self.at: Counter[str] = Counter()
        call_soon, call_at = loop.call_soon, loop.call_at

        def counted_soon(callback: Any, *args: Any, context: Any = None) -> asyncio.Handle:
            self.soon[label(callback)] += 1
            return call_soon(callback, *args, context=context)

        def counted_at(when: float, callback: Any, *args: Any, context: Any = None) -> asyncio.TimerHandle:
            self.at[label(callback)] += 1
            return call_at(when, callback, *args, context=context)

        loop.call_soon = counted_soon  # type: ignore[method-assign, assignment]  # counting, on this instance only
        loop.call_at = counted_at  # type: ignore[method-assign, assignment]  # as above


class GcClock:
    """The garbage collector's passes by generation, and their wall time, while installed
    (`gc.callbacks`: one call at each start and stop, nothing per allocation)."""

    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        self.passes[generation] += 1
        self.seconds[generation] += time.perf_counter() - self._started

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "select"), default="uvloop")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true", help="measure CPU per connection instead")
    parser.add_argument("--dump", help="also write the cProfile data to this file (for pstats or snakeviz)")
    parser.add_argument("--count-calls", action="store_true", help="count call_soon/call_at with --no-profile too")
    options = parser.parse_args(argv)
    profile = cProfile.Profile()
    with Sandbox("bench-conn") as sandbox:
        for setting in CLIENT_SYSCTLS:
            sandbox.run(["sysctl", "-q", "-w", setting], check=True)
        tap = sandbox.create_tap("usernet0", host_address=f"{KERNEL_IP}/24")
        link = CountingLink(tap)
        iface = Interface(InterfaceConfig.from_strings(tap.mac, [f"{USERNET_IP}/24"]))
        host = Host(link, iface)  # type: ignore[arg-type]  # the wrapper passes everything on
        loop = make_loop("asyncio" if options.loop == "select" else options.loop, host)
        asyncio.set_event_loop(loop)
        scheduler = CountingScheduler(loop) if options.loop != "select" and (
            options.count_calls or not options.no_profile
        ) else None  # fmt: skip
        if options.loop != "select":
            loop.run_until_complete(loop.create_server(Echo, USERNET_IP, ECHO_PORT, backlog=1024))
        if scheduler is not None:
            scheduler.soon.clear()
            scheduler.at.clear()
        client = sandbox.popen(
            python_module(
                "benchmarks.programs.tcp_client", "connect", "--host", USERNET_IP, "--seconds", str(options.seconds)
            ),
            stdout=subprocess.PIPE, text=True, cwd=REPO, env=child_env(), start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + options.seconds + 30

        try:
            with GcClock() as collector:
                served = serve(
                    None if options.loop == "select" else loop, host, iface, client, deadline,
                    None if options.no_profile else profile,
                )  # fmt: skip
        finally:
            loop.close()
            tap.close()
    out, cpu, user, system, switches = served.output, served.cpu, served.user, served.system, served.switches
    if client.returncode != 0:
        raise SystemExit(f"the load generator failed ({client.returncode}); its output: {out.strip()[-400:]}")
    result = json.loads(out.strip().splitlines()[-1])
    work = float(result["connections"])
    print(
        f"connect, {options.loop}: {result['rate']:,.0f} connections/s "
        f"({result['connections']} in {result['seconds']:.1f} s)"
    )
    print(
        f"server CPU: {cpu:.2f} s, {cpu / work * 1e6:.1f} µs per connection"
        + ("" if options.no_profile else " (under cProfile)")
        + f"; user {user / work * 1e6:.1f} µs, system {system / work * 1e6:.1f} µs (the TAP writes run the "
        "kernel's receive path of each frame, the client's TCP included)"
    )
    frames = sum(n * c for n, c in link.frames_in.items())
    print(
        f"per connection: {link.polls / work:.2f} pumps, {link.receives / work:.2f} receives, "
        f"{frames / work:.2f} frames in, {link.sends / work:.2f} frames out, slept {switches / work:.2f} times"
    )
    print(
        "garbage collector per connection: "
        + ", ".join(
            f"generation {g} {collector.passes[g] / work:.3f} passes, {collector.seconds[g] / work * 1e6:.1f} µs"
            for g in range(3)
        )
    )
    if scheduler is not None:
        print("call_soon per connection:", {k: round(v / work, 2) for k, v in scheduler.soon.most_common(8)})
        print("call_at per connection:", {k: round(v / work, 2) for k, v in scheduler.at.most_common(8)})
    if options.no_profile:
        return
    if options.dump:
        profile.dump_stats(options.dump)
    stats = pstats.Stats(profile)
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    calls: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for (filename, line, function), (_, ncalls, tottime, _, _) in table.items():
        where = "system calls" if filename == "~" and any(n in function for n in SYSTEM_CALLS) else area(filename)
        calls[where] += ncalls
        seconds[where] += tottime
        short = filename.rsplit("/", 2)[-1] if filename != "~" else ""
        functions[f"{short}:{line}({function})"] += ncalls
    for name in sorted(calls, key=lambda k: -calls[k]):
        print(f"  {name:<24} {calls[name] / work:8.1f} calls per connection, {seconds[name] / work * 1e6:8.1f} µs")
    print("calls per connection, most called first:")
    for function, count in functions.most_common(options.top):
        print(f"  {count / work:8.2f}  {function}")
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(options.top)
    print(text.getvalue())


if __name__ == "__main__":
    main()
