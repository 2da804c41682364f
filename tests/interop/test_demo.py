"""The README's main command: `usernet demo` talks to the kernel and leaves nothing behind,
and when a step fails it says which, what it ran and what it saw."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.programs import require

pytestmark = pytest.mark.network


def _demo(**kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "usernet.cli", "demo"], capture_output=True, text=True, timeout=120, **kwargs
    )


def _deleted(stdout: str) -> None:
    name = re.search(r"namespace (usernet-demo-[0-9a-f]+) deleted", stdout)
    assert name, stdout
    assert name.group(1) not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_demo_runs_and_cleans_up():
    require("ping")
    result = _demo()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 packets transmitted, 3 received" in result.stdout
    assert "sent b'hello from the kernel side', got b'hello from the kernel side'" in result.stdout
    _deleted(result.stdout)


def test_without_ping_the_demo_names_its_package_and_runs_the_other_steps(tmp_path: Path):
    """PATH holds only `ip` (which the sandbox runs): the ping step fails, saying what to install."""
    (tmp_path / "ip").symlink_to(require("ip"))
    result = _demo(env=dict(os.environ, PATH=str(tmp_path)))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED: `ping` is not installed: install the Debian package iputils-ping" in result.stdout
    assert "sent b'hello from the kernel side', got b'hello from the kernel side'" in result.stdout
    assert result.stdout.rstrip().endswith("1 of 4 steps failed: ping -c 3 -i 0.2 192.0.2.2   (kernel → usernet)")
    _deleted(result.stdout)


def test_a_failing_command_shows_its_exit_status_and_stderr(tmp_path: Path):
    """A `ping` that fails: the demo prints the command, its status and what it wrote to stderr."""
    (tmp_path / "ip").symlink_to(require("ip"))
    fake = tmp_path / "ping"
    fake.write_text("#!/bin/sh\necho 'ping: socket: Operation not permitted' >&2\nexit 2\n")
    fake.chmod(0o755)
    result = _demo(env=dict(os.environ, PATH=str(tmp_path)))
    assert result.returncode == 1
    assert f"FAILED: `{fake} -c 3 -i 0.2 -W 2 192.0.2.2` in namespace usernet-demo-" in result.stdout
    assert "exited with status 2" in result.stdout
    assert "stderr: ping: socket: Operation not permitted" in result.stdout, result.stdout


def test_a_set_up_step_that_fails_says_which_and_why(tmp_path: Path):
    """No `ip` on PATH: the namespace cannot be made, and the demo says so in one line."""
    result = _demo(env=dict(os.environ, PATH=str(tmp_path)))
    assert result.returncode == 1 and not result.stderr, result.stderr
    assert result.stdout == (
        "usernet demo: creating a network namespace failed: `ip` is not installed: install the Debian "
        "package iproute2 (apt-get install iproute2, or run ./setup.sh as root)\n"
    )
