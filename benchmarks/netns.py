"""The worlds the benchmarks run in: a TAP namespace for usernet, a veth pair for kernel-to-kernel.

Addresses follow the project's conventions: the kernel's side of a TAP 192.0.2.1/24 and
usernet 192.0.2.2/24; the two ends of a veth pair 198.51.100.1/24 and .2/24. Over IPv6
(documentation prefix 2001:db8::/32): the TAP's 2001:db8::1/64 and ::2, the veth pair's
2001:db8:100::1/64 and ::2. Everything is inside namespaces that `Sandbox` creates and deletes.
"""

from __future__ import annotations

import subprocess
import time
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
KERNEL_IP6 = "2001:db8::1"
USERNET_IP6 = "2001:db8::2"
VETH_A_IP6 = "2001:db8:100::1"
VETH_B_IP6 = "2001:db8:100::2"
#: usernet on the TAP `dual_stack_tap` made, both families: the kernel's side is configured already.
TAP6_OPTIONS = ("--tap", TAP, "--address", f"{USERNET_IP}/24", "--address", f"{USERNET_IP6}/64")


def server_lifetime(settings: Settings) -> float:
    """How long a server may live before it stops by itself: well past any benchmark's span."""
    return 30.0 + 40.0 * settings.repeats * settings.seconds


@contextmanager
def veth_pair(purpose: str, mtu: int = 1500) -> Iterator[tuple[Sandbox, Sandbox]]:
    """Two namespaces joined by a veth pair, 198.51.100.1 and 2001:db8:100::1 in the first, .2 and ::2
    in the second (without DAD, so both are usable at once)."""
    with Sandbox(f"{purpose}-a") as a, Sandbox(f"{purpose}-b") as b:
        check(["ip", "-n", a.name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", b.name])
        for sandbox, dev, ip, ip6 in ((a, "veth0", VETH_A_IP, VETH_A_IP6), (b, "veth1", VETH_B_IP, VETH_B_IP6)):
            check(["ip", "-n", sandbox.name, "addr", "add", f"{ip}/24", "dev", dev])
            check(["ip", "-n", sandbox.name, "-6", "addr", "add", f"{ip6}/64", "dev", dev, "nodad"])
            check(["ip", "-n", sandbox.name, "link", "set", dev, "mtu", str(mtu), "up"])
        yield a, b


def dual_stack_tap(sandbox: Sandbox) -> None:
    """A persistent TAP in `sandbox` whose kernel side has 192.0.2.1/24 and 2001:db8::1/64 (no DAD),
    up, for usernet to attach to with TAP6_OPTIONS."""
    for cmd in (
        ["ip", "tuntap", "add", "mode", "tap", "name", TAP],
        ["ip", "addr", "add", f"{KERNEL_IP}/24", "dev", TAP],
        ["ip", "-6", "addr", "add", f"{KERNEL_IP6}/64", "dev", TAP, "nodad"],
        ["ip", "link", "set", TAP, "up"],
    ):
        check(["ip", "netns", "exec", sandbox.name, *cmd])


def wait_for_ipv6(sandbox: Sandbox, address: str = USERNET_IP6, attempts: int = 20) -> None:
    """Wait until `address` answers ping -6 from `sandbox`: usernet's address is usable once its
    duplicate address detection (1 s) is over, and until then it answers no neighbour solicitation."""
    for _ in range(attempts):
        ping = ["ip", "netns", "exec", sandbox.name, "ping", "-6", "-c", "1", "-W", "1", address]
        if subprocess.run(ping, capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{address} never answered ping -6 in namespace {sandbox.name}")


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
