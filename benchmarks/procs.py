"""Starting servers and load generators inside a sandbox, and reading back what they report.

Every child is started in a session of its own, so Ctrl-C reaches only the runner, which
then tears the sandboxes down and with them every child, by PID. Servers announce
themselves with a `ready` line on stdout; load generators print one JSON object and exit
by themselves, and are killed if they overrun their bound anyway.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from usernet.link.sandbox import Sandbox

REPO = Path(__file__).resolve().parent.parent
READY = "ready"


def python_module(module: str, *args: str) -> list[str]:
    """The command that runs `python -m module args` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def program_command(program: tuple[str, ...], usernet_options: tuple[str, ...] | None = None) -> list[str]:
    """`python -m program...` on kernel sockets, or, given `usernet_options`, the same program
    unchanged on usernet: `python -m usernet OPTIONS -m program...`."""
    if usernet_options is None:
        return python_module(*program)
    return python_module("usernet", *usernet_options, "-m", *program)


def child_env() -> dict[str, str]:
    """The environment of every child: this checkout importable, output unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def start_server(sandbox: Sandbox, cmd: list[str], *, timeout: float = 15.0) -> subprocess.Popen[bytes]:
    """Start `cmd` in `sandbox` and wait for its `ready` line; the sandbox stops it on close."""
    # The child holds its own descriptor of the file: ours closes when this returns.
    with tempfile.TemporaryFile() as errors:
        process = sandbox.popen(
            cmd, stdout=subprocess.PIPE, stderr=errors, cwd=REPO, env=child_env(), start_new_session=True
        )
        assert process.stdout is not None
        seen = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(process.stdout, selectors.EVENT_READ)
            while READY.encode() not in seen:
                left = deadline - time.monotonic()
                if left <= 0 or process.poll() is not None:
                    process.kill()
                    process.wait()
                    errors.seek(0)
                    why = (
                        f"did not say ready within {timeout:.0f} s"
                        if left <= 0
                        else f"exited with {process.returncode}"
                    )
                    raise RuntimeError(
                        f"server {' '.join(cmd[-6:])} {why}: {_tail(errors.read().decode(errors='replace'))}"
                    )
                if sel.select(min(left, 0.2)):
                    chunk = os.read(process.stdout.fileno(), 4096)
                    if not chunk:
                        process.wait(timeout=2)
                    seen += chunk
        return process


def run_json(sandbox: Sandbox, cmd: list[str], *, timeout: float) -> dict[str, Any]:
    """Run a load generator in `sandbox` to its end and return the JSON object it printed last."""
    process = sandbox.popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=child_env(),
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise RuntimeError(f"{cmd[0]} {' '.join(cmd[1:4])}… overran its {timeout:.0f} s bound and was killed") from None
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}… exited with {process.returncode}: {_tail(err)}")
    lines = out.strip().splitlines()
    if not lines:
        raise RuntimeError(f"{' '.join(cmd[:4])}… printed nothing: {_tail(err)}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def check(cmd: list[str]) -> None:
    """Run a setup command (`ip ...`), raising with its output when it fails."""
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
