"""UDP echo, 64-byte datagrams: usernet against the kernel, lockstep and with a window in flight.

The client is always the same process on kernel sockets (`programs/udp_client`); the
servers differ: usernet's `UdpEcho` on its select loop on a TAP; one asyncio echo
program, unchanged, on usernet (`python -m usernet`) and on kernel sockets over loopback,
each with the stdlib loop and uvloop; and that program across a veth pair.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.harness import Benchmark, Measure, Metric, Settings, Setup, variant
from benchmarks.netns import (
    KERNEL_IP,
    TAP_OPTIONS,
    USERNET_IP,
    VETH_B_IP,
    server_lifetime,
    usernet_select_server,
    veth_pair,
)
from benchmarks.procs import program_command, python_module, run_json, start_server
from usernet.link.packet import prepare_veth
from usernet.link.sandbox import Sandbox

WINDOWS = {"lockstep": 1, "32 in flight": 32}
PORT = 7


def client(sandbox: Sandbox, host: str, settings: Settings) -> Measure:
    """Runs the load generator in `sandbox` against `host`, one case (window) per call."""

    def measure(case: str) -> dict[str, float]:
        cmd = python_module(
            "benchmarks.programs.udp_client",
            "--host",
            host,
            "--port",
            str(PORT),
            "--window",
            str(WINDOWS[case]),
            "--seconds",
            str(settings.seconds),
        )
        result = run_json(sandbox, cmd, timeout=settings.seconds + 20)
        return {"rate": result["rate"], "p50": result["p50_us"], "p99": result["p99_us"]}

    return measure


def echo_server(sandbox: Sandbox, loop: str, settings: Settings, *, on_usernet: bool = False) -> None:
    """The asyncio echo program in `sandbox`; `on_usernet` runs it unchanged under `python -m usernet`."""
    program = (
        "benchmarks.programs.udp_echo_server",
        "--port",
        str(PORT),
        "--loop",
        loop,
        "--max-seconds",
        str(server_lifetime(settings)),
    )
    start_server(sandbox, program_command(program, TAP_OPTIONS if on_usernet else None))


@contextmanager
def usernet_select(settings: Settings) -> Iterator[Measure]:
    with usernet_select_server("bench-udp", settings) as sandbox:
        yield client(sandbox, USERNET_IP, settings)


def usernet_asyncio(loop: str) -> Setup:
    @contextmanager
    def setup(settings: Settings) -> Iterator[Measure]:
        with Sandbox("bench-udp") as sandbox:
            echo_server(sandbox, loop, settings, on_usernet=True)
            yield client(sandbox, USERNET_IP, settings)

    return setup


def kernel_loopback(loop: str) -> Setup:
    @contextmanager
    def setup(settings: Settings) -> Iterator[Measure]:
        with Sandbox("bench-udp") as sandbox:
            echo_server(sandbox, loop, settings)
            yield client(sandbox, "127.0.0.1", settings)

    return setup


@contextmanager
def usernet_packet(settings: Settings) -> Iterator[Measure]:
    """usernet's select loop on an AF_PACKET link on a veth pair instead of a TAP."""
    with Sandbox("bench-udp") as sandbox:
        prepare_veth(sandbox, "usernet0", "usernet0p", host_address=f"{KERNEL_IP}/24")
        program = (f"{USERNET_IP}/24", "--max-seconds", str(server_lifetime(settings)))
        cmd = python_module("benchmarks.programs.usernet_server", "--packet", "usernet0p", "--address", *program)
        start_server(sandbox, cmd)
        yield client(sandbox, USERNET_IP, settings)


@contextmanager
def kernel_veth(settings: Settings) -> Iterator[Measure]:
    with veth_pair("bench-udp") as (near, far):
        echo_server(far, "asyncio", settings)
        yield client(near, VETH_B_IP, settings)


BENCHMARKS = (
    Benchmark(
        name="udp_echo",
        title="UDP echo, 64-byte datagrams",
        order=10,
        meaning="Datagrams echoed per second by one client socket, and their round-trip times; "
        "with 32 in flight the round trip includes waiting behind the other 31.",
        metrics=(
            Metric("rate", "datagrams/s"),
            Metric("p50", "p50 µs", higher_is_better=False),
            Metric("p99", "p99 µs", higher_is_better=False),
        ),
        cases=tuple(WINDOWS),
        variants=(
            variant("usernet-select", usernet_select),
            variant("usernet-packet", usernet_packet, label="usernet, select loop, AF_PACKET on veth"),
            variant("usernet-asyncio", usernet_asyncio("asyncio")),
            variant("usernet-uvloop", usernet_asyncio("uvloop"), vs="kernel-uvloop"),
            variant("kernel-asyncio", kernel_loopback("asyncio")),
            variant("kernel-uvloop", kernel_loopback("uvloop")),
            variant("kernel-veth", kernel_veth, label="(e) kernel over veth, asyncio"),
        ),
        reference="kernel-asyncio",
    ),
)
