"""ICMP echo round trips, flood-ping style but bounded: usernet's stack answering, against the kernel.

The client is iputils `ping -f -q` (C, one request in flight: the next leaves when the
reply is in), bounded by `-c` and by the `-w` deadline. usernet answers from its select
loop on a TAP; the kernel answers across a veth pair (a network hop, the fair comparison
for a stack behind a device) and on loopback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.harness import Benchmark, Measure, Metric, Settings, variant
from benchmarks.netns import USERNET_IP, VETH_B_IP, usernet_select_server, veth_pair
from usernet.link.sandbox import Sandbox
from usernet.programs import find

MAX_COUNT = 1_000_000
_TOTALS = re.compile(r"(\d+) packets transmitted, (\d+) received.*time (\d+)ms")
_RTT = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")


def pinger(sandbox: Sandbox, target: str, settings: Settings) -> Measure:
    find("ping")  # MissingProgram names the package
    deadline = max(1, round(settings.seconds))

    def measure(case: str) -> dict[str, float]:
        cmd = ["ping", "-f", "-q", "-c", str(MAX_COUNT), "-w", str(deadline), target]
        result = sandbox.run(cmd, capture_output=True, text=True, timeout=deadline + 10)
        totals, rtt = _TOTALS.search(result.stdout), _RTT.search(result.stdout)
        if totals is None or rtt is None:
            raise RuntimeError(
                f"ping gave no summary (exit {result.returncode}): {result.stdout} {result.stderr}".strip()
            )
        received, millis = int(totals.group(2)), int(totals.group(3))
        return {
            "rate": received / (millis / 1000),
            "avg": float(rtt.group(2)) * 1000,
            "mdev": float(rtt.group(4)) * 1000,
        }

    return measure


@contextmanager
def usernet_select(settings: Settings) -> Iterator[Measure]:
    with usernet_select_server("bench-icmp", settings) as sandbox:
        yield pinger(sandbox, USERNET_IP, settings)


@contextmanager
def kernel_loopback(settings: Settings) -> Iterator[Measure]:
    with Sandbox("bench-icmp") as sandbox:
        yield pinger(sandbox, "127.0.0.1", settings)


@contextmanager
def kernel_veth(settings: Settings) -> Iterator[Measure]:
    with veth_pair("bench-icmp") as (near, _):
        yield pinger(near, VETH_B_IP, settings)


BENCHMARKS = (
    Benchmark(
        name="icmp_echo",
        title="ICMP echo (ping -f, 56-byte payload)",
        order=20,
        meaning="Echo requests answered per second with one in flight, and their mean round trip "
        "(mdev: ping's spread). usernet answers inside `Interface.receive`, with no socket or loop callback.",
        metrics=(
            Metric("rate", "round trips/s"),
            Metric("avg", "avg µs", higher_is_better=False),
            Metric("mdev", "mdev µs", higher_is_better=False),
        ),
        cases=("one in flight",),
        variants=(
            variant("usernet-select", usernet_select),
            variant("kernel-loopback", kernel_loopback, label="kernel, loopback"),
            variant("kernel-veth", kernel_veth),
        ),
        reference="kernel-veth",
    ),
)
