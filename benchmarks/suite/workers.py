"""More than one core: the aiohttp "hello" server under wrk on one usernet process and on `--workers 2`.

Both columns run the same unmodified program (`programs/aiohttp_hello`, uvloop) under
`python -m usernet`: one process on a TAP, or a supervisor with two workers on the two
queues of a multi-queue TAP (docs/workers.md). wrk runs in the namespace on kernel
sockets, so on a 2-core machine it takes CPU from the server: each measurement also
reports the cores wrk used (its user+system time over the run) and the cores the server's
processes used, the requests per server core (the figure that says how well the workers
scale whatever the load generator took), and the cores everything else on the machine
took meanwhile (a shared machine: what the workers could not have).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.harness import Benchmark, Metric, Settings, Setup, variant
from benchmarks.netns import TAP_OPTIONS, USERNET_IP, server_lifetime
from benchmarks.procs import program_command, start_server
from benchmarks.suite.apps import HTTP_PORT, WRK_OPTIONS, parse_wrk, require
from usernet.link.sandbox import Sandbox

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(root: int) -> float:
    """User+system CPU seconds of process `root` and its children (the workers), from /proc."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        pid, ppid = int(entry), int(fields[1])
        if pid == root or ppid == root:
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def _busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores, every process and the kernel), from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / _TICKS  # user..steal; guest time is inside user already


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def hello_on_workers(workers: int) -> Setup:
    @contextmanager
    def setup(settings: Settings) -> Iterator[object]:
        require("wrk", "wrk")
        seconds = max(1, round(settings.seconds))
        options = (*TAP_OPTIONS, "--workers", str(workers)) if workers > 1 else TAP_OPTIONS
        program = ("benchmarks.programs.aiohttp_hello", str(HTTP_PORT), "--loop", "uvloop")
        lifetime = ("--max-seconds", str(server_lifetime(settings)))
        with Sandbox(f"bench-workers{workers}") as sandbox:
            server = start_server(sandbox, program_command((*program, *lifetime), (*options, "--loop", "uvloop")))
            cmd = ["wrk", *WRK_OPTIONS, "--duration", f"{seconds}s", f"http://{USERNET_IP}:{HTTP_PORT}/"]
            # Once untimed: every worker up (start_server waits for the first `ready` only), ARP learned.
            sandbox.run([*cmd[:-3], "--duration", "1s", cmd[-1]], capture_output=True, timeout=30)

            def measure(case: str) -> dict[str, float]:
                wrk_before, server_before, busy_before = _children_cpu(), _cpu_seconds(server.pid), _busy_seconds()
                result = sandbox.run(cmd, capture_output=True, text=True, timeout=seconds + 20)
                wrk_cpu, server_cpu = _children_cpu() - wrk_before, _cpu_seconds(server.pid) - server_before
                busy = _busy_seconds() - busy_before
                if result.returncode != 0:
                    why = (result.stderr or result.stdout).strip()
                    raise RuntimeError(f"wrk exited with {result.returncode}: {why}")
                figures = parse_wrk(result.stdout)
                figures["wrk_cores"] = wrk_cpu / seconds
                figures["server_cores"] = server_cpu / seconds
                figures["per_core"] = figures["rate"] / max(figures["server_cores"], 1e-3)
                # What the rest of the machine took meanwhile (other programs, the kernel's own threads).
                figures["other_cores"] = max(0.0, busy - wrk_cpu - server_cpu) / seconds
                return figures

            yield measure

    return setup


BENCHMARKS = (
    Benchmark(
        name="workers",
        title='aiohttp "hello world" under wrk: 1 usernet process vs --workers 2',
        order=62,
        meaning="Requests/s wrk (8 keep-alive connections, one thread) gets from the unmodified aiohttp server on "
        "usernet + uvloop, as one process and as two workers on a multi-queue TAP; with the cores wrk and the "
        "server used (wrk shares the machine's 2 cores), requests per server core, and the cores other "
        "processes took meanwhile.",
        metrics=(
            Metric("rate", "requests/s"),
            Metric("wrk_cores", "wrk's cores", higher_is_better=False, digits=2),
            Metric("server_cores", "server's cores", higher_is_better=False, digits=2),
            Metric("per_core", "requests per server core"),
            Metric("other_cores", "other processes' cores", higher_is_better=False, digits=2),
        ),
        cases=("wrk",),
        variants=(
            variant("workers-1", hello_on_workers(1), label="usernet + uvloop, 1 process"),
            variant("workers-2", hello_on_workers(2), label="usernet + uvloop, --workers 2", vs="workers-1"),
        ),
        reference="workers-1",
    ),
)
