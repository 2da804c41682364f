"""Memory per idle endpoint: what sockets that do nothing cost, in the stack and in a whole program.

`memory`: usernet's own endpoints in a Python process (`programs/idle_sockets`), no
network, so no sandbox; a kernel socket's memory lives in the kernel, not in the process,
so there is no kernel column. `memory_server`: a whole asyncio streams program
(`programs/idle_streams`) holding 10,000 idle connections, on kernel sockets and
unchanged on usernet, the connections opened by the load generator in the same namespace.
Each repetition is a fresh process so earlier allocations do not hide in the figures.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.harness import Benchmark, Measure, Metric, Settings, Setup, variant
from benchmarks.netns import TAP_OPTIONS, USERNET_IP
from benchmarks.procs import REPO, child_env, program_command, python_module, run_json, start_server
from usernet.link.sandbox import Sandbox

COUNT = 10_000
#: Established TCP connections per process (each has two ends, both counted).
TCP_COUNT = 2_000
#: Idle connections the streams program holds.
SERVER_COUNT = 10_000
#: The bound on opening and holding them (usernet opens ~1-2 thousand a second on this machine).
SERVER_SECONDS = 150.0


def idle(kind: str, count: int) -> Setup:
    @contextmanager
    def setup(settings: Settings) -> Iterator[Measure]:
        def measure(case: str) -> dict[str, float]:
            command = python_module("benchmarks.programs.idle_sockets", "--kind", kind, "--count", str(count))
            result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=child_env(), timeout=120)
            if result.returncode != 0:
                raise RuntimeError(f"idle_sockets exited with {result.returncode}: {result.stderr.strip()[-500:]}")
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            return {
                "rss": figures["rss_per_1000"] / 1024,
                "traced": figures["traced_per_1000"] / 1024,
                "kernel": figures["kernel_per_1000"] / 1024,
            }

        yield measure

    return setup


def streams_server(on_usernet: bool) -> Setup:
    """The streams program on kernel sockets (loopback) or, `on_usernet`, unchanged on usernet over a TAP."""

    @contextmanager
    def setup(settings: Settings) -> Iterator[Measure]:
        def measure(case: str) -> dict[str, float]:
            program = (
                "benchmarks.programs.idle_streams",
                "--count",
                str(SERVER_COUNT),
                "--max-seconds",
                str(SERVER_SECONDS),
            )
            with Sandbox("bench-memory") as sandbox:
                server = start_server(sandbox, program_command(program, TAP_OPTIONS if on_usernet else None))
                client = python_module(
                    "benchmarks.programs.tcp_client",
                    "hold",
                    "--host",
                    USERNET_IP if on_usernet else "127.0.0.1",
                    "--connections",
                    str(SERVER_COUNT),
                    "--seconds",
                    str(SERVER_SECONDS),
                )
                run_json(sandbox, client, timeout=SERVER_SECONDS + 30)
                out, _ = server.communicate(timeout=60)
            if server.returncode != 0:
                raise RuntimeError(f"idle_streams exited with {server.returncode}")
            figures = json.loads(out.decode().strip().splitlines()[-1])
            return {"rss": figures["rss_per_1000"] / 1024}

        yield measure

    return setup


BENCHMARKS = (
    Benchmark(
        name="memory",
        title="Memory per 1,000 idle endpoints",
        order=40,
        meaning=f"KiB per 1,000 idle endpoints ({COUNT:,} UDP sockets, or {TCP_COUNT:,} established TCP connections "
        "between two interfaces on an in-memory wire, counted per end, per process): the growth "
        "of the resident set, and what tracemalloc counts of Python allocations (exact, no allocator slack). "
        "The issue's target is at most 4 KB per idle established TCP connection. The descriptor row is what "
        "a connection adds once a library asks for its fileno() (a socketpair: mostly kernel slab memory, "
        "measured system-wide, so noisy).",
        metrics=(
            Metric("rss", "RSS KiB / 1,000", higher_is_better=False),
            Metric("traced", "tracemalloc KiB / 1,000", higher_is_better=False),
            Metric("kernel", "kernel slab KiB / 1,000", higher_is_better=False),
        ),
        cases=("idle",),
        variants=(
            variant("usernet-udp", idle("udp", COUNT), label="usernet UDP socket"),
            variant("usernet-tcp", idle("tcp", TCP_COUNT), label="usernet established TCP connection (per end)"),
            variant("descriptor", idle("descriptor", TCP_COUNT), label="the descriptor of one connection (fileno())"),
        ),
    ),
    Benchmark(
        name="memory_server",
        title=f"Memory of an asyncio streams server per 1,000 of {SERVER_COUNT:,} idle connections",
        order=41,
        meaning=f"KiB the resident set of a whole program grew by per 1,000 idle connections: asyncio.start_server "
        f"with a handler awaiting reader.read(), holding {SERVER_COUNT:,} connections the load generator opened "
        "and keeps idle. On kernel sockets the kernel's own socket memory is not in the process (so usernet, "
        "whose TCP lives in the process, pays for more in the same figure). Issue 16's target: usernet at most "
        "1.25x the kernel program.",
        metrics=(Metric("rss", "RSS KiB / 1,000", higher_is_better=False),),
        cases=(f"{SERVER_COUNT:,} idle connections",),
        variants=(
            variant("kernel-asyncio", streams_server(on_usernet=False)),
            variant("usernet-asyncio", streams_server(on_usernet=True)),
        ),
        reference="kernel-asyncio",
    ),
)
