"""TCP against the kernel: bulk one stream each way, 64-byte request/response, connection setup.

The load generator is always the same process on kernel sockets (`programs/tcp_client`);
the servers differ: usernet's echo/discard/chargen services on its select loop on a TAP
(`programs/usernet_services`); one asyncio program (`programs/tcp_server`, the same ports),
unchanged, on usernet (`python -m usernet`) and on kernel sockets over loopback, each with
the stdlib loop and uvloop; and that program across a veth pair between two namespaces.
Targets from issue 6 are in each meaning. The `tcp6_*` benchmarks are bulk and
request/response again over IPv6 (issue 13), the asyncio program on every side.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.harness import Benchmark, Measure, Metric, Settings, Setup, Variant, variant
from benchmarks.netns import (
    TAP6_OPTIONS,
    TAP_OPTIONS,
    USERNET_IP,
    USERNET_IP6,
    VETH_B_IP,
    VETH_B_IP6,
    dual_stack_tap,
    server_lifetime,
    veth_pair,
    wait_for_ipv6,
)
from benchmarks.procs import check, program_command, python_module, run_json, start_server
from usernet.link.sandbox import Sandbox

LATENCY = (Metric("p50", "p50 µs", higher_is_better=False), Metric("p99", "p99 µs", higher_is_better=False))
BULK = {"kernel → usernet": "send", "usernet → kernel": "receive"}
RR = {"1 connection": 1, "50 connections": 50}
#: Metric key -> what the load generator calls it in its JSON.
FIELDS = {"mbytes": "mbytes", "rate": "rate", "p50": "p50_us", "p99": "p99_us"}
#: Many short connections from one client leave its ports in TIME_WAIT: let the client's namespace reuse them.
CLIENT_SYSCTLS = ("net.ipv4.ip_local_port_range=1024 65535", "net.ipv4.tcp_tw_reuse=1")
#: The jumbo MTU of the big-frame bulk benchmark: one TAP write moves ~43 standard frames' worth.
JUMBO = 65000


def tap_options(mtu: int, offloads: bool = False, software: bool = True, ipv6: bool = False) -> tuple[str, ...]:
    """usernet's TAP options; `software=False` turns off software GSO and GRO; `ipv6` attaches to
    the dual-stack TAP `dual_stack_tap` made, with an IPv6 address beside the IPv4 one."""
    return (
        *(TAP6_OPTIONS if ipv6 else TAP_OPTIONS),
        *(("--mtu", str(mtu)) if mtu != 1500 else ()),
        *(("--offloads",) if offloads else ()),
        *(() if software else ("--no-gso", "--no-gro")),
    )


def client(sandbox: Sandbox, host: str, settings: Settings) -> Measure:
    """Runs the load generator in `sandbox` against `host`; the case names the mode and its parameters."""
    for setting in CLIENT_SYSCTLS:
        check(["ip", "netns", "exec", sandbox.name, "sysctl", "-q", "-w", setting])

    def measure(case: str) -> dict[str, float]:
        if case in BULK:
            mode, extra = BULK[case], []
        elif case in RR:
            mode, extra = "rr", ["--connections", str(RR[case])]
        else:
            mode, extra = "connect", []
        cmd = python_module(
            "benchmarks.programs.tcp_client", mode, "--host", host, "--seconds", str(settings.seconds), *extra
        )
        result = run_json(sandbox, cmd, timeout=settings.seconds + 30)
        return {metric: result[field] for metric, field in FIELDS.items() if field in result}

    return measure


def asyncio_server(
    sandbox: Sandbox,
    loop: str,
    settings: Settings,
    *,
    on_usernet: bool = False,
    mtu: int = 1500,
    offloads: bool = False,
    software: bool = True,
    ipv6: bool = False,
) -> None:
    """The asyncio TCP program in `sandbox`; `on_usernet` runs it unchanged under `python -m usernet`;
    `ipv6` binds it to IPv6's wildcard address (on usernet, on the TAP `dual_stack_tap` made)."""
    program = (
        "benchmarks.programs.tcp_server", "--loop", loop, "--max-seconds", str(server_lifetime(settings)),
        *(("--host", "::") if ipv6 else ()),
    )  # fmt: skip
    options = tap_options(mtu, offloads, software, ipv6) if on_usernet else None
    start_server(sandbox, program_command(program, options))


def usernet_select(mtu: int = 1500, offloads: bool = False) -> Setup:
    @contextmanager
    def setup(settings: Settings) -> Iterator[Measure]:
        with Sandbox("bench-tcp") as sandbox:
            start_server(
                sandbox,
                python_module(
                    "benchmarks.programs.usernet_services",
                    *tap_options(mtu, offloads),
                    "--max-seconds",
                    str(server_lifetime(settings)),
                ),
            )
            yield client(sandbox, USERNET_IP, settings)

    return setup


def usernet_asyncio(
    loop: str, mtu: int = 1500, offloads: bool = False, software: bool = True, ipv6: bool = False
) -> Setup:
    @contextmanager
    def setup(settings: Settings) -> Iterator[Measure]:
        with Sandbox("bench-tcp") as sandbox:
            if ipv6:
                dual_stack_tap(sandbox)
            asyncio_server(
                sandbox, loop, settings, on_usernet=True, mtu=mtu, offloads=offloads, software=software, ipv6=ipv6
            )
            if ipv6:
                wait_for_ipv6(sandbox)
            yield client(sandbox, USERNET_IP6 if ipv6 else USERNET_IP, settings)

    return setup


def kernel_loopback(loop: str, ipv6: bool = False) -> Setup:
    @contextmanager
    def setup(settings: Settings) -> Iterator[Measure]:
        with Sandbox("bench-tcp") as sandbox:
            asyncio_server(sandbox, loop, settings, ipv6=ipv6)
            yield client(sandbox, "::1" if ipv6 else "127.0.0.1", settings)

    return setup


def kernel_veth(mtu: int = 1500, ipv6: bool = False) -> Setup:
    @contextmanager
    def setup(settings: Settings) -> Iterator[Measure]:
        with veth_pair("bench-tcp", mtu) as (near, far):
            asyncio_server(far, "asyncio", settings, ipv6=ipv6)
            yield client(near, VETH_B_IP6 if ipv6 else VETH_B_IP, settings)

    return setup


def columns(*, bulk: bool) -> tuple[Variant, ...]:
    """usernet on its select loop and on both loops, the kernel on both; bulk adds the kernel across veth.

    Bulk compares every column with the kernel across veth (one network hop, as the TAP
    is); the others compare usernet on a loop with the kernel on the same loop. Bulk also
    runs usernet on uvloop without software GSO and GRO, to show what those levers give.
    """
    same_loop = {} if bulk else {"usernet-asyncio": "kernel-asyncio", "usernet-uvloop": "kernel-uvloop"}
    standard = (
        variant("usernet-select", usernet_select()),
        variant("usernet-asyncio", usernet_asyncio("asyncio"), vs=same_loop.get("usernet-asyncio")),
        variant("usernet-uvloop", usernet_asyncio("uvloop"), vs=same_loop.get("usernet-uvloop")),
        variant("kernel-asyncio", kernel_loopback("asyncio")),
        variant("kernel-uvloop", kernel_loopback("uvloop")),
    )
    if not bulk:
        return standard
    return (
        *standard,
        variant(
            "usernet-uvloop-nosoftware",
            usernet_asyncio("uvloop", software=False),
            label="(b) usernet + uvloop, --no-gso --no-gro",
        ),
        variant("kernel-veth", kernel_veth(), label="(e) kernel over veth, asyncio"),
    )


def ipv6_columns(*, bulk: bool) -> tuple[Variant, ...]:
    """The asyncio program over IPv6: on usernet with both loops, on the kernel with both over
    loopback (::1), and for bulk across veth, compared as the IPv4 columns are."""
    same_loop = {} if bulk else {"usernet-asyncio": "kernel-asyncio", "usernet-uvloop": "kernel-uvloop"}
    return (
        variant("usernet-asyncio", usernet_asyncio("asyncio", ipv6=True), vs=same_loop.get("usernet-asyncio")),
        variant("usernet-uvloop", usernet_asyncio("uvloop", ipv6=True), vs=same_loop.get("usernet-uvloop")),
        variant("kernel-asyncio", kernel_loopback("asyncio", ipv6=True), label="(c) kernel + asyncio, ::1"),
        variant("kernel-uvloop", kernel_loopback("uvloop", ipv6=True), label="(d) kernel + uvloop, ::1"),
        *((variant("kernel-veth", kernel_veth(ipv6=True), label="(e) kernel over veth, asyncio"),) if bulk else ()),
    )


BENCHMARKS = (
    Benchmark(
        name="tcp_bulk",
        title="TCP bulk, one stream",
        order=50,
        meaning="MB/s of one stream each way, kernel sockets on the client side: to the discard service "
        "(timed until it has read everything) and from the chargen service; usernet cuts its 64 KB frames "
        "into MTU-sized ones by software GSO unless `--no-gso`, and joins received in-order segments by "
        "software GRO unless `--no-gro`. Target: ≥150 MB/s at MTU 1500, "
        "≥500 MB/s with offloads or jumbo MTU; stated as a ratio to kernel-over-veth.",
        metrics=(Metric("mbytes", "MB/s"),),
        cases=tuple(BULK),
        variants=columns(bulk=True),
        reference="kernel-veth",
    ),
    Benchmark(
        name="tcp_rr",
        title="TCP request/response, 64 bytes",
        order=51,
        meaning="Round trips/s and latency against the echo service on 1 and on 50 concurrent connections, "
        "one request in flight per connection. Target (usernet on uvloop against the kernel on uvloop): "
        "≥60% on 1 connection, ≥80% on 50.",
        metrics=(Metric("rate", "round trips/s"), *LATENCY),
        cases=tuple(RR),
        variants=columns(bulk=False),
        reference="kernel-asyncio",
    ),
    Benchmark(
        name="tcp_connect",
        title="TCP connection setup + one request + close",
        order=52,
        meaning="Connections per second, one after the other: connect, a 64-byte request to echo and its answer, "
        "close. Target: ≥40% of the kernel's.",
        metrics=(Metric("rate", "connections/s"),),
        cases=("sequential",),
        variants=columns(bulk=False),
        reference="kernel-asyncio",
    ),
    Benchmark(
        name="tcp_bulk_jumbo",
        title=f"TCP bulk, one stream, MTU {JUMBO}",
        order=53,
        meaning=f"The bulk benchmark with MTU {JUMBO} on the TAP (usernet) and on the veth pair (the reference): "
        "the same number of writes moves ~43 times the bytes. Target: ≥500 MB/s with offloads or jumbo MTU.",
        metrics=(Metric("mbytes", "MB/s"),),
        cases=tuple(BULK),
        variants=(
            variant("usernet-select", usernet_select(JUMBO)),
            variant("usernet-uvloop", usernet_asyncio("uvloop", JUMBO)),
            variant("kernel-veth", kernel_veth(JUMBO), label=f"(e) kernel over veth at MTU {JUMBO}, asyncio"),
        ),
        reference="kernel-veth",
        full_only=True,
    ),
    Benchmark(
        name="tcp_bulk_tso",
        title="TCP bulk, one stream, MTU 1500 with TAP offloads",
        order=54,
        meaning="The bulk benchmark at MTU 1500 with `--offloads`: vnet_hdr, checksum offload and TSO both "
        "ways, so the TAP carries 64 KB super-segments the kernel splits or merges. Target: ≥500 MB/s with "
        "offloads or jumbo MTU; against the kernel across veth at MTU 1500.",
        metrics=(Metric("mbytes", "MB/s"),),
        cases=tuple(BULK),
        variants=(
            variant("usernet-select", usernet_select(offloads=True)),
            variant("usernet-uvloop", usernet_asyncio("uvloop", offloads=True)),
            variant("kernel-veth", kernel_veth(), label="(e) kernel over veth, asyncio"),
        ),
        reference="kernel-veth",
        full_only=True,
    ),
    Benchmark(
        name="tcp6_bulk",
        title="TCP bulk over IPv6, one stream",
        order=55,
        meaning="The bulk benchmark over IPv6 (usernet at 2001:db8::2 on the TAP, MTU 1500, software GSO and "
        "GRO): header prediction and the offloads take IPv6 as they take IPv4. Stated as a ratio to the kernel "
        "across veth over IPv6; compare with TCP bulk's ratios for what IPv6 costs.",
        metrics=(Metric("mbytes", "MB/s"),),
        cases=tuple(BULK),
        variants=ipv6_columns(bulk=True),
        reference="kernel-veth",
    ),
    Benchmark(
        name="tcp6_rr",
        title="TCP request/response over IPv6, 64 bytes",
        order=56,
        meaning="The request/response benchmark over IPv6: round trips/s and latency on 1 and on 50 connections, "
        "usernet on a loop against the kernel on the same loop over ::1. Compare with TCP request/response's "
        "ratios for what IPv6 costs.",
        metrics=(Metric("rate", "round trips/s"), *LATENCY),
        cases=tuple(RR),
        variants=ipv6_columns(bulk=False),
        reference="kernel-asyncio",
    ),
)
