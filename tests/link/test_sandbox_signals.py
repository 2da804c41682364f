"""A sandboxed program's namespace is deleted whatever SIGTERMs arrive while it cleans up.

`timeout(1)` sends SIGTERM to the program, then to its whole process group a few
milliseconds later; a supervisor may send two SIGTERMs in a row. Either used to catch
the sandbox between marking itself closed and deleting its namespace (or kill the
`ip netns delete` it ran), and leak the namespace. Each sequence is repeated with
delays spread over the window, for both ways a program gets a sandbox.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.network

#: Opens its link, prints `ready`, waits.
PROGRAM = Path(__file__).resolve().parents[1] / "aio" / "apps" / "udp_idle.py"

#: Seconds between the first SIGTERM and the second: across the cleanup window.
DELAYS = [0.0, 0.002, 0.005, 0.01, 0.02]


def _launchers() -> dict[str, list[str]]:
    return {
        "python -m usernet": [sys.executable, "-m", "usernet", "--sandbox", str(PROGRAM)],
        "usernet run": [sys.executable, "-m", "usernet.cli", "run", "--sandbox", "--", sys.executable, str(PROGRAM)],
    }


def _start(cmd: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start `cmd` in its own process group; return it and its namespace once it serves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERNET_")}
    process = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    assert process.stderr is not None and process.stdout is not None
    announce = process.stderr.readline()
    name = re.search(r"sandbox: namespace (usernet-[0-9a-z-]+),", announce)
    if name is None or process.stdout.readline() != "ready\n":
        process.terminate()  # not kill: the program's own clean-up deletes its namespace
        pytest.fail(f"{cmd} did not start: {announce}{process.communicate(timeout=30)[1]}")
    return process, name.group(1)


def _namespaces() -> set[str]:
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


@pytest.mark.parametrize("launcher", ["python -m usernet", "usernet run"])
@pytest.mark.parametrize("second", ["process", "group"])
def test_a_second_sigterm_during_cleanup_does_not_leak_the_namespace(launcher: str, second: str) -> None:
    cmd = _launchers()[launcher]
    for delay in DELAYS:
        process, name = _start(cmd)
        assert name in _namespaces()
        process.send_signal(signal.SIGTERM)
        time.sleep(delay)
        if second == "group":
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.send_signal(signal.SIGTERM)
        err = _finished(process, name, delay)
        assert process.returncode == -signal.SIGTERM, err
        assert "Traceback" not in err, err


def _finished(process: subprocess.Popen[str], name: str, delay: float) -> str:
    """The process's stderr once it ended; fails (and deletes it) if its namespace is still there."""
    _, err = process.communicate(timeout=30)
    if name in _namespaces():
        subprocess.run(["ip", "netns", "delete", name], check=True)
        pytest.fail(f"delay {delay}: {name} leaked; stderr: {err}")
    return err


@pytest.mark.parametrize("launcher", ["python -m usernet", "usernet run"])
def test_ctrl_c_twice_does_not_leak_the_namespace(launcher: str) -> None:
    """The terminal sends SIGINT to the whole foreground group; an impatient user sends it twice."""
    cmd = _launchers()[launcher]
    for delay in DELAYS:
        process, name = _start(cmd)
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGINT)
        _finished(process, name, delay)
        assert process.returncode != 0
