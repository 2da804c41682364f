"""Unmodified applications on usernet: an aiohttp server under wrk, an aiomcache client against memcached.

Each program (`programs/aiohttp_hello`, `programs/mcache_client`) runs unchanged: under
`python -m usernet` on a TAP for (a) and (b), as is on kernel sockets for (c) and (d),
with the stdlib loop or uvloop. Its peer is a C program on kernel sockets in the same
namespace — `wrk` against usernet's address (or loopback), `memcached` listening on
every address, so on the TAP's kernel side too. Both are Debian packages, installed
on first use when missing.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from benchmarks.harness import Benchmark, Measure, Metric, Settings, Setup, Variant, variant
from benchmarks.netns import KERNEL_IP, TAP_OPTIONS, USERNET_IP, server_lifetime
from benchmarks.procs import check, program_command, run_json, start_server
from benchmarks.suite.tcp import LATENCY
from usernet.link.sandbox import Sandbox

HTTP_PORT = 8080
MEMCACHED_PORT = 11211
#: wrk's load: few connections on one thread, as a small service sees it; wrk takes whole seconds only.
WRK_OPTIONS = ("--connections", "8", "--threads", "1", "--latency")
MEMCACHED_START = 10.0
#: In --quick, the share of a figure's time each aiomcache case gets: 24 client starts must fit in ~15 s.
QUICK_SHARE = 0.5
_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def require(tool: str, package: str) -> None:
    """Install the Debian package that provides `tool` unless it is on PATH already."""
    if shutil.which(tool) is not None:
        return
    try:
        check(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", package])
    except (RuntimeError, FileNotFoundError) as exc:
        raise RuntimeError(
            f"`{tool}` is missing and installing it failed ({exc}): run `apt-get install {package}` as root, then retry"
        ) from None


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s and p50/p99 latency in µs from wrk's report; refuses a run in which requests failed."""
    errors = [line.strip() for line in output.splitlines() if "Non-2xx" in line or "Socket errors" in line]
    if errors:
        raise RuntimeError(f"wrk saw failed requests: {'; '.join(errors)}")
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if rate is None:
        raise RuntimeError(f"wrk printed no Requests/sec line: {' '.join(output.split())[-300:]}")
    figures = {"rate": float(rate.group(1))}
    for key, share in (("p50", "50"), ("p99", "99")):
        found = re.search(rf"^\s+{share}%\s+([\d.]+)(us|ms|s)$", output, re.MULTILINE)
        if found is not None:
            figures[key] = float(found.group(1)) * _UNITS[found.group(2)]
    return figures


def wrk(sandbox: Sandbox, host: str, settings: Settings) -> Measure:
    """Runs wrk in `sandbox` against the hello server at `host`, bounded in time and killed if it overruns."""
    seconds = max(1, round(settings.seconds))
    cmd = ["wrk", *WRK_OPTIONS, "--duration", f"{seconds}s", f"http://{host}:{HTTP_PORT}/"]

    def measure(case: str) -> dict[str, float]:
        result = sandbox.run(cmd, capture_output=True, text=True, timeout=seconds + 20, start_new_session=True)
        if result.returncode != 0:
            raise RuntimeError(f"wrk exited with {result.returncode}: {(result.stderr or result.stdout).strip()}")
        return parse_wrk(result.stdout)

    return measure


def aiohttp_hello(loop: str, on_usernet: bool) -> Setup:
    @contextmanager
    def setup(settings: Settings) -> Iterator[Measure]:
        require("wrk", "wrk")
        with Sandbox("bench-aiohttp") as sandbox:
            start_server(
                sandbox,
                program_command(
                    (
                        "benchmarks.programs.aiohttp_hello",
                        str(HTTP_PORT),
                        "--loop",
                        loop,
                        "--max-seconds",
                        str(server_lifetime(settings)),
                    ),
                    TAP_OPTIONS if on_usernet else None,
                ),
            )
            yield wrk(sandbox, USERNET_IP if on_usernet else "127.0.0.1", settings)

    return setup


def start_memcached(sandbox: Sandbox) -> None:
    """memcached in `sandbox` on every address, stopped by PID with the sandbox; returns once it accepts."""
    process = sandbox.popen(
        ["memcached", "-u", "root", "-p", str(MEMCACHED_PORT), "-t", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + MEMCACHED_START
    while True:
        try:
            sandbox.in_namespace(lambda: socket.create_connection(("127.0.0.1", MEMCACHED_PORT), timeout=1)).close()
            return
        except ConnectionRefusedError:
            if process.poll() is not None:
                assert process.stderr is not None
                raise RuntimeError(
                    f"memcached exited with {process.returncode}: {process.stderr.read().strip()}"
                ) from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"memcached did not accept connections within {MEMCACHED_START:.0f} s") from None
            time.sleep(0.02)


def mcache_client(loop: str, on_usernet: bool) -> Setup:
    @contextmanager
    def setup(settings: Settings) -> Iterator[Measure]:
        require("memcached", "memcached")
        with Sandbox("bench-mcache") as sandbox:
            start_memcached(sandbox)
            host = KERNEL_IP if on_usernet else "127.0.0.1"
            seconds = settings.seconds * (QUICK_SHARE if settings.quick else 1.0)

            def measure(case: str) -> dict[str, float]:
                cmd = program_command(
                    (
                        "benchmarks.programs.mcache_client",
                        case,
                        "--host",
                        host,
                        "--port",
                        str(MEMCACHED_PORT),
                        "--seconds",
                        str(seconds),
                        "--loop",
                        loop,
                    ),
                    TAP_OPTIONS if on_usernet else None,
                )
                return {"rate": run_json(sandbox, cmd, timeout=seconds + 30)["rate"]}

            yield measure

    return setup


def columns(setup: Callable[[str, bool], Setup]) -> tuple[Variant, ...]:
    """(a)-(d): the program on usernet and on the kernel, each on both loops; usernet compared loop with loop."""
    return (
        variant("usernet-asyncio", setup("asyncio", True), vs="kernel-asyncio"),
        variant("usernet-uvloop", setup("uvloop", True), vs="kernel-uvloop"),
        variant("kernel-asyncio", setup("asyncio", False)),
        variant("kernel-uvloop", setup("uvloop", False)),
    )


BENCHMARKS = (
    Benchmark(
        name="aiohttp",
        title='aiohttp "hello world" under wrk',
        order=60,
        meaning="Requests/s and latency wrk (8 keep-alive connections, one thread) gets from an unmodified "
        'aiohttp server answering GET / with "Hello, world".',
        metrics=(Metric("rate", "requests/s"), *LATENCY),
        cases=("wrk",),
        variants=columns(aiohttp_hello),
        reference="kernel-asyncio",
    ),
    Benchmark(
        name="aiomcache",
        title="aiomcache get/set against memcached",
        order=61,
        meaning="Operations/s of an unmodified aiomcache client, 8 tasks each with one request in flight, "
        "32-byte keys and values, against a memcached started in the namespace.",
        metrics=(Metric("rate", "ops/s"),),
        cases=("get", "set"),
        variants=columns(mcache_client),
        reference="kernel-asyncio",
    ),
)
