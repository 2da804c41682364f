"""Where an asyncio program's time goes on usernet: the transport, the driver and the loop, counted.

Run `python -m benchmarks.profile_aio {rr,send,receive} [--loop asyncio|uvloop|select] [--seconds 3]
[--connections 1] [--mtu 1500] [--offloads] [--top 20] [--no-profile]` (root). The server
is the TCP benchmarks' asyncio program (`programs/tcp_server`'s echo, discard and chargen
protocols) on usernet's loop in this process, on a TAP in a throwaway namespace (`--loop
select`: usernet's own services on its select loop, as `programs/usernet_services` runs
them); the load generator is the benchmarks' `programs/tcp_client` (kernel sockets, its own
process).

Under cProfile it prints the Python calls per unit of work (round trip or MB), split into
the stack (`usernet/stack`, `usernet/wire`, `usernet/native`), usernet's asyncio face and
drivers (`usernet/aio`, `usernet/drivers`, `usernet/link`), asyncio itself, and the
program, and the top functions. With `--no-profile` it reports the rate and this process's
CPU time per unit of work instead. Either way it counts what the link saw (a wrapper
around the Host's link): receive calls and the frames and bytes each returned, sends and
their sizes, pumps (wake-ups of the driver) and the frames written per pump, the windows
the pure ACKs advertised, how often this process slept (voluntary context switches) and
took a minor page fault (fresh memory from the kernel: big buffers made and freed), and the
kernel's own view of its connection halfway through (`ss -ti`: cwnd, what limited the
sender) — the figures that tell one steady state of a bulk transfer from another.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import resource
import subprocess
import threading
import time
from collections import Counter
from typing import Any, NamedTuple

from benchmarks.netns import KERNEL_IP, USERNET_IP
from benchmarks.procs import REPO, child_env, python_module
from benchmarks.programs.tcp_server import CHARGEN_PORT, DISCARD_PORT, ECHO_PORT, Chargen, Discard, Echo
from usernet.aio.loop import UsernetSelectorEventLoop
from usernet.apps.services import Services
from usernet.drivers import selectloop
from usernet.drivers.host import Host, offload_options
from usernet.link.base import Link
from usernet.link.sandbox import Sandbox
from usernet.stack import Interface, InterfaceConfig

#: Where a profiled function lives, by the start of its file's path inside the repository.
AREAS = (
    ("stack", ("usernet/stack", "usernet/wire", "usernet/native")),
    ("aio + drivers", ("usernet/aio", "usernet/drivers", "usernet/link")),
    ("this script's counters", ("benchmarks/profile_aio",)),
    ("program", ("benchmarks/",)),
)


class CountingLink:
    """The Host's link, with every receive and send counted on the way through."""

    def __init__(self, link: Link) -> None:
        self.inner = link
        self.receives = 0
        self.frames_in: Counter[int] = Counter()  # frames per receive call -> calls
        self.bytes_in = 0
        self.sends = 0
        self.bytes_out = 0
        self.small_out = 0  # frames of at most 100 bytes: pure ACKs (and other control)
        self.windows: Counter[int] = Counter()  # KiB advertised by the pure ACKs (scaled by 2**7) -> count
        self.polls = 0

    def receive(self, limit: int) -> list[Any]:
        frames = self.inner.receive(limit)
        self.receives += 1
        self.frames_in[len(frames)] += 1
        self.bytes_in += sum(len(f) for f in frames)
        return frames

    def send(self, frame: Any) -> None:
        self.sends += 1
        self.bytes_out += len(frame)
        if len(frame) <= 100:
            self.small_out += 1
            if len(frame) >= 50:  # Ethernet, IPv4 without options, TCP: the window at bytes 48-49
                self.windows[(frame[48] << 8 | frame[49]) * 128 // 1024] += 1
        self.inner.send(frame)

    def poll(self, now: float) -> None:
        self.polls += 1
        self.inner.poll(now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def voluntary_switches() -> int:
    """How often this process has blocked so far: each is one sleep of the loop (or a page fault's wait)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    return 0


def kernel_view(sandbox: Sandbox, seconds: float, into: list[str]) -> threading.Thread:
    """`ss -ti` of the kernel's connections to usernet, taken once, `seconds` from now, into `into`."""

    def look() -> None:
        time.sleep(seconds)
        done = sandbox.run(["ss", "-tin", "dst", USERNET_IP], capture_output=True, text=True, timeout=10)
        into.append(done.stdout.strip())

    thread = threading.Thread(target=look, daemon=True)
    thread.start()
    return thread


class Served(NamedTuple):
    """What serving the load generator's run cost this process, and what the generator printed."""

    cpu: float  # seconds of CPU, user and system
    user: float
    system: float
    switches: int  # voluntary context switches: how often the process slept
    faults: int  # minor page faults
    output: str


def serve(
    loop: asyncio.AbstractEventLoop | None,
    host: Host,
    iface: Interface,
    client: subprocess.Popen[str],
    deadline: float,
    profile: cProfile.Profile | None,
) -> Served:
    """Serve until the load generator `client` exits (killed at `deadline`): on `loop`, or with
    None on usernet's select loop with its own services; under `profile` when one is given."""

    async def wait_client() -> None:
        while client.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    cpu = time.process_time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    switches = voluntary_switches()
    if profile is not None:
        profile.enable()
    try:
        if loop is None:
            services = Services(iface)
            selectloop.run(
                host, services.handle, until=lambda now: client.poll() is not None or time.monotonic() > deadline
            )
        else:
            loop.run_until_complete(wait_client())
    finally:
        if profile is not None:
            profile.disable()
        cpu = time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_SELF)
        switches = voluntary_switches() - switches
        if client.poll() is None:
            client.kill()
        out, _ = client.communicate()
    return Served(
        cpu,
        after.ru_utime - usage.ru_utime,
        after.ru_stime - usage.ru_stime,
        switches,
        after.ru_minflt - usage.ru_minflt,
        out,
    )


def make_loop(kind: str, host: Host) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        from usernet.aio.uv import UsernetUvloop

        return UsernetUvloop(host=host)
    return UsernetSelectorEventLoop(host=host)


#: Builtins that are system calls (the TAP's read and write, the loop's wait): their own area.
SYSTEM_CALLS = ("posix.read", "posix.write", "posix.readv", "posix.writev", "'poll' of", "'control' of", "'run' of")


def area(filename: str) -> str:
    path = filename.replace("\\", "/")
    for name, prefixes in AREAS:
        if any(prefix in path for prefix in prefixes):
            return name
    if "asyncio/" in path or "uvloop" in path:
        return "asyncio"
    return "other (builtins, C)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("rr", "send", "receive"))
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "select"), default="asyncio")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=1, help="rr only")
    parser.add_argument("--mtu", type=int, default=1500)
    parser.add_argument("--offloads", action="store_true")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--no-profile", action="store_true", help="measure CPU per unit of work instead")
    options = parser.parse_args(argv)
    extra = ["--connections", str(options.connections)] if options.mode == "rr" else []
    profile = cProfile.Profile()
    with Sandbox("bench-aio") as sandbox:
        tap = sandbox.create_tap("usernet0", host_address=f"{KERNEL_IP}/24", mtu=options.mtu, offloads=options.offloads)
        link = CountingLink(tap)
        iface = Interface(
            InterfaceConfig.from_strings(tap.mac, [f"{USERNET_IP}/24"], mtu=options.mtu, **offload_options(tap))
        )
        host = Host(link, iface)  # type: ignore[arg-type]  # the wrapper passes everything on
        loop = make_loop("asyncio" if options.loop == "select" else options.loop, host)
        asyncio.set_event_loop(loop)
        if options.loop != "select":
            for protocol, port in ((Echo, ECHO_PORT), (Discard, DISCARD_PORT), (Chargen, CHARGEN_PORT)):
                loop.run_until_complete(loop.create_server(protocol, USERNET_IP, port, backlog=1024))
        client = sandbox.popen(
            python_module(
                "benchmarks.programs.tcp_client", options.mode, "--host", USERNET_IP, "--seconds",
                str(options.seconds), *extra,
            ),
            stdout=subprocess.PIPE, text=True, cwd=REPO, env=child_env(), start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + options.seconds + 30
        kernel: list[str] = []
        looking = kernel_view(sandbox, 1.0 + options.seconds / 2, kernel)
        try:
            served = serve(
                None if options.loop == "select" else loop, host, iface, client, deadline,
                None if options.no_profile else profile,
            )  # fmt: skip
        finally:
            looking.join(10)
            loop.close()
            tap.close()
    out, cpu, switches, faults = served.output, served.cpu, served.switches, served.faults
    if client.returncode != 0:
        raise SystemExit(f"the load generator failed ({client.returncode}); its output: {out.strip()[-400:]}")
    result = json.loads(out.strip().splitlines()[-1])
    if options.mode == "rr":
        work, unit = float(result["round_trips"]), "round trip"
        print(f"rr, {options.loop}, {options.connections} connection(s): {result['rate']:,.0f} round trips/s")
    else:
        work, unit = result["bytes"] / 1e6, "MB"
        print(f"{options.mode}, {options.loop}, MTU {options.mtu}: {result['mbytes']:.1f} MB/s")
    print(
        f"server CPU: {cpu:.2f} s, {cpu / work * 1e6:.1f} µs per {unit}"
        + ("" if options.no_profile else " (under cProfile)")
    )
    frames = sum(n * c for n, c in link.frames_in.items())
    print(
        f"link: {link.polls} pumps, {link.receives} receives ({frames} frames, "
        f"{link.bytes_in / max(frames, 1):.0f} B each; "
        f"{link.receives / max(link.polls, 1):.2f} receives per pump), {link.sends} sends "
        f"({link.bytes_out / max(link.sends, 1):.0f} B each, {link.small_out} of ≤100 B; "
        f"{link.sends / max(link.polls, 1):.2f} per pump)"
    )
    print("frames per receive call:", dict(sorted(link.frames_in.items())))
    print(
        f"slept {switches} times ({switches / max(link.polls, 1):.2f} per pump); "
        f"{faults} minor page faults ({faults / max(link.polls, 1):.1f} per pump)"
    )
    if link.windows:
        print("KiB advertised by pure ACKs:", dict(sorted(link.windows.items())))
    print("the kernel's connection halfway:", " ".join(kernel[0].split()) if kernel else "-")
    if options.no_profile:
        return
    stats = pstats.Stats(profile)
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    calls: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    stack: Counter[str] = Counter()  # the stack's functions, builtins named with their caller
    for (filename, line, function), (_, ncalls, tottime, _, callers) in table.items():
        if filename == "~" and any(name in function for name in SYSTEM_CALLS):
            calls["system calls"] += ncalls
            seconds["system calls"] += tottime
            continue
        if filename == "~" and callers:
            # A builtin counts where it was called from, shared out by its callers' calls.
            total = sum(c[1] for c in callers.values()) or 1
            for (caller_file, caller_line, caller_function), caller in callers.items():
                calls[area(caller_file)] += caller[1]
                seconds[area(caller_file)] += tottime * caller[1] / total
                if area(caller_file) == "stack":
                    where_from = f"{caller_file.rsplit('/', 2)[-1]}:{caller_line}({caller_function})"
                    stack[f"{function} <- {where_from}"] += caller[1]
            continue
        where = area(filename)
        calls[where] += ncalls
        seconds[where] += tottime
        if where in ("aio + drivers", "asyncio"):
            functions[f"{filename.rsplit('/', 2)[-1]}:{line}({function})"] += ncalls
        elif where == "stack":
            stack[f"{filename.rsplit('/', 2)[-1]}:{line}({function})"] += ncalls
    for name in sorted(calls, key=lambda k: -calls[k]):
        print(
            f"  {name:<24} {calls[name] / work:8.1f} calls per {unit}, {seconds[name] / work * 1e6:8.1f} µs (profiled)"
        )
    print(f"usernet's asyncio face, drivers and asyncio, calls per {unit}:")
    for function, count in functions.most_common(40):
        print(f"  {count / work:8.2f}  {function}")
    print(f"the stack, calls per {unit} (a builtin with its caller):")
    for function, count in stack.most_common(options.top):
        print(f"  {count / work:8.2f}  {function}")
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(options.top)
    print(text.getvalue())


if __name__ == "__main__":
    main()
