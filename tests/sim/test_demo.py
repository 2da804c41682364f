"""`usernet demo` as an ordinary user: no TAP, no root, the demo on a simulated network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from usernet.programs import find

NOBODY = ["--reuid=65534", "--regid=65534", "--clear-groups"]


def test_demo_runs_as_an_ordinary_user() -> None:
    command = [str(Path(sys.executable).with_name("usernet")), "demo"]  # the installed command
    if os.geteuid() == 0:  # root: become nobody, as a user without privileges would run it
        command = [find("setpriv"), *NOBODY, *command]
    env = dict(os.environ, HOME="/tmp", PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(command, cwd="/", env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "not root, so no TAP: running the demo on a simulated network" in out
    for line in (
        "got b'hello from the simulated client' back from 192.0.2.2:7",
        "got 1,000,000 identical bytes back",
        "the link now loses 10% of the frames each way",
        "the echo finished, identical",
    ):
        assert line in out, out
