"""The worlds the benchmarks run in: a TAP namespace for usernet, a veth pair for kernel-to-kernel.

Addresses follow the project's conventions: the kernel's side of a TAP 192.0.2.1/24 and
usernet 192.0.2.2/24; the two ends of a veth pair 198.51.100.1/24 and .2/24. Everything
is inside namespaces that `Sandbox` creates and deletes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.harness import Settings
from benchmarks.procs import check, python_module, start_server
from usernet.link.sandbox import Sandbox

TAP = "usernet0"
KERNEL_IP = "192.0.2.1"
USERNET_IP = "192.0.2.2"
VETH_A_IP = "198.51.100.1"
VETH_B_IP = "198.51.100.2"
TAP_OPTIONS = ("--tap", TAP, "--address", f"{USERNET_IP}/24", "--host-address", f"{KERNEL_IP}/24")


def server_lifetime(settings: Settings) -> float:
    """How long a server may live before it stops by itself: well past any benchmark's span."""
    return 30.0 + 40.0 * settings.repeats * settings.seconds


@contextmanager
def veth_pair(purpose: str, mtu: int = 1500) -> Iterator[tuple[Sandbox, Sandbox]]:
    """Two namespaces joined by a veth pair, 198.51.100.1 in the first and .2 in the second."""
    with Sandbox(f"{purpose}-a") as a, Sandbox(f"{purpose}-b") as b:
        check(["ip", "-n", a.name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", b.name])
        for sandbox, dev, ip in ((a, "veth0", VETH_A_IP), (b, "veth1", VETH_B_IP)):
            check(["ip", "-n", sandbox.name, "addr", "add", f"{ip}/24", "dev", dev])
            check(["ip", "-n", sandbox.name, "link", "set", dev, "mtu", str(mtu), "up"])
        yield a, b


@contextmanager
def usernet_select_server(purpose: str, settings: Settings) -> Iterator[Sandbox]:
    """A namespace where usernet's select loop serves UDP echo and answers ping at 192.0.2.2."""
    with Sandbox(purpose) as sandbox:
        start_server(
            sandbox,
            python_module(
                "benchmarks.programs.usernet_server", *TAP_OPTIONS, "--max-seconds", str(server_lifetime(settings))
            ),
        )
        yield sandbox
