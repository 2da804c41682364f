"""More than one core: the aiohttp "hello" server under wrk on one usernet process and on `--workers 2`.

Both columns run the same unmodified program (`programs/aiohttp_hello`, uvloop) under
`python -m usernet`: one process on a TAP, or a supervisor with two workers on the two
queues of a multi-queue TAP (docs/workers.md). wrk runs in the namespace on kernel
sockets, so on a 2-core machine it takes CPU from the server: each measurement also
reports the cores wrk used (its user+system time over the run) and the cores the server's
processes used, the CPU time a request cost the server and wrk (the robust figures on a
shared machine: they say how well the workers scale whatever CPU share the run got), the
RSTs the server's stacks sent (a segment of a flow that reached a worker without that
connection is answered with one: 0 says no flow went astray), and the cores everything
else on the machine took meanwhile (what the workers could not have).
"""

from __future__ import annotations

import os
import re
import resource
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from benchmarks.harness import Benchmark, Measure, Metric, Settings, Setup, variant
from benchmarks.netns import TAP_OPTIONS, USERNET_IP, server_lifetime
from benchmarks.procs import program_command, start_server
from benchmarks.suite.apps import HTTP_PORT, WRK_OPTIONS, parse_wrk, require
from usernet.drivers.control import query
from usernet.link.sandbox import Sandbox

_TICKS = os.sysconf("SC_CLK_TCK")
_REQUESTS = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)


def _cpu_seconds(root: int) -> dict[int, float]:
    """User+system CPU seconds of process `root` and of each of its children (the workers), from /proc."""
    seconds = {}
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
            seconds[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
    return seconds


def _rsts_sent(pids: Iterable[int]) -> int:
    """The RSTs the stacks among `pids` sent so far (their control sockets' counters). Not those they
    received: wrk resets the connections it closes with a response still unread at its end."""
    return sum(answer.get("counters", {}).get("tcp_rst_sent", 0) for pid in pids for answer in query("stats", pid))


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
    def setup(settings: Settings) -> Iterator[Measure]:
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

            # The stacks: the one process, or the supervisor's children (the supervisor has none).
            stacks = [pid for pid in _cpu_seconds(server.pid) if pid != server.pid] or [server.pid]

            def measure(case: str) -> dict[str, float]:
                rsts_before = _rsts_sent(stacks)
                wrk_before, server_before, busy_before = _children_cpu(), _cpu_seconds(server.pid), _busy_seconds()
                result = sandbox.run(cmd, capture_output=True, text=True, timeout=seconds + 20)
                wrk_cpu, server_after = _children_cpu() - wrk_before, _cpu_seconds(server.pid)
                busy = _busy_seconds() - busy_before
                # A process that ended meanwhile (a worker restarted) counts from 0 in the run it ended in.
                server_cpu = sum(cpu - server_before.get(pid, 0.0) for pid, cpu in server_after.items())
                if result.returncode != 0:
                    why = (result.stderr or result.stdout).strip()
                    raise RuntimeError(f"wrk exited with {result.returncode}: {why}")
                figures = parse_wrk(result.stdout)
                figures["wrk_cores"] = wrk_cpu / seconds
                figures["server_cores"] = server_cpu / seconds
                figures["per_core"] = figures["rate"] / max(figures["server_cores"], 1e-3)
                counted = _REQUESTS.search(result.stdout)
                requests = max(int(counted.group(1)) if counted else figures["rate"] * seconds, 1.0)
                figures["server_us"] = server_cpu / requests * 1e6
                figures["wrk_us"] = wrk_cpu / requests * 1e6
                figures["rsts"] = _rsts_sent(stacks) - rsts_before
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
        "server used (wrk shares the machine's 2 cores), requests per server core, the CPU time a request cost "
        "the server and wrk, the RSTs the stacks sent (a flow on the wrong worker would be reset) "
        "and the cores other processes took meanwhile.",
        metrics=(
            Metric("rate", "requests/s"),
            Metric("wrk_cores", "wrk's cores", higher_is_better=False, digits=2),
            Metric("server_cores", "server's cores", higher_is_better=False, digits=2),
            Metric("per_core", "requests per server core"),
            Metric("server_us", "server's CPU µs per request", higher_is_better=False, digits=1),
            Metric("wrk_us", "wrk's CPU µs per request", higher_is_better=False, digits=1),
            Metric("rsts", "RSTs the stacks sent", higher_is_better=False),
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
