"""What `usernet up` tells its user: whether anyone can reach it, and what it sent."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from usernet.link.sandbox import Sandbox

pytestmark = pytest.mark.network

UP = [sys.executable, "-m", "usernet.cli", "up", "--duration", "0.5"]


def test_the_gratuitous_arp_shows_in_the_link_counters():
    """The stack counts IPv4; its ARP announcement used to leave `counters: none` as the only report."""
    result = subprocess.run([*UP, "--sandbox"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    link = re.search(r"^link counters: (.*)$", result.stdout, re.M)
    assert link is not None, result.stdout
    assert "tx_frames=1" in link.group(1).split(", ") and "tx_bytes=42" in link.group(1).split(", "), result.stdout


def test_a_tap_created_with_nothing_on_the_kernel_side_says_how_to_configure_it(sandbox: Sandbox):
    # Run inside the sandbox, so the TAP `usernet up` creates is made there.
    result = sandbox.run([*UP, "--tap", "fresh0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (
        "TAP fresh0 is down and has no IPv4 address on the kernel side, so nothing can reach usernet at "
        "192.0.2.2 yet: configure it with `ip addr add 192.0.2.1/24 dev fresh0 && ip link set fresh0 up` "
        "(or start with --host-address 192.0.2.1/24, or use --sandbox)"
    ) in result.stdout, result.stdout


def test_a_tap_configured_on_the_kernel_side_gets_no_warning(sandbox: Sandbox):
    for cmd in (
        ["ip", "tuntap", "add", "mode", "tap", "name", "ready0"],
        ["ip", "addr", "add", "192.0.2.1/24", "dev", "ready0"],
        ["ip", "link", "set", "ready0", "up"],
    ):
        sandbox.run(cmd, check=True)
    result = sandbox.run([*UP, "--tap", "ready0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usernet up: 192.0.2.2 on tap:ready0" in result.stdout and "nothing can reach" not in result.stdout
