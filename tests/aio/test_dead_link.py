"""A link that fails for good ends the program with one line; a passing error is retried, a bounded number of times.

When the TAP under a running program is deleted, every read fails with EBADFD. The
asyncio reader callback used to raise on each loop iteration, forever: a core at 100%
and a traceback per iteration.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from usernet.drivers.host import MAX_RECEIVE_ERRORS, Host
from usernet.link import LinkWrapper, MemoryWire, VirtualClock
from usernet.link.base import BytesLike, LinkFailed
from usernet.stack import Interface, InterfaceConfig

#: Opens its link, prints `ready`, waits.
PROGRAM = Path(__file__).resolve().parents[1] / "aio" / "apps" / "udp_idle.py"


class FailingReads(LinkWrapper):
    """A memory link whose next `errors` receives fail with EIO, as a device in trouble would."""

    def __init__(self, errors: int) -> None:
        super().__init__(MemoryWire(VirtualClock()).a)
        self.errors = errors
        self.calls = 0

    def receive(self, max_frames: int = 64) -> list[memoryview | bytes]:
        self.calls += 1
        if self.errors:
            self.errors -= 1
            raise OSError(errno.EIO, "Input/output error")
        return self.inner.receive(max_frames)

    def send(self, frame: BytesLike) -> None:
        self.inner.send(frame)


def _host(link: FailingReads) -> Host:
    return Host(link, Interface(InterfaceConfig.from_strings(link.mac, ["192.0.2.2/24"])))


def test_a_passing_receive_error_is_retried_at_the_next_pump() -> None:
    link = FailingReads(errors=MAX_RECEIVE_ERRORS - 1)
    host = _host(link)
    for now in range(MAX_RECEIVE_ERRORS):
        assert host.pump(float(now)) == []
    assert host.failed is None and link.calls == MAX_RECEIVE_ERRORS


def test_a_link_that_keeps_failing_is_given_up_and_not_called_again() -> None:
    link = FailingReads(errors=10 * MAX_RECEIVE_ERRORS)
    host = _host(link)
    for now in range(MAX_RECEIVE_ERRORS - 1):
        host.pump(float(now))
    with pytest.raises(LinkFailed, match=f"failed {MAX_RECEIVE_ERRORS} receives in a row"):
        host.pump(100.0)
    calls = link.calls
    with pytest.raises(LinkFailed):
        host.pump(101.0)
    with pytest.raises(LinkFailed):
        host.flush(101.0)
    assert link.calls == calls and host.deadline() is None


def _launchers() -> dict[str, list[str]]:
    usernet = [sys.executable, "-m", "usernet", "--sandbox"]
    return {
        "asyncio": [*usernet, str(PROGRAM)],
        "uvloop": [*usernet, "--loop", "uvloop", str(PROGRAM)],
        "usernet up": [sys.executable, "-m", "usernet.cli", "up", "--sandbox"],
    }


@pytest.mark.network
@pytest.mark.parametrize("launcher", ["asyncio", "uvloop", "usernet up"])
def test_deleting_the_tap_under_a_program_ends_it_with_one_error_line(launcher: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERNET_")}
    process = subprocess.Popen(
        _launchers()[launcher], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        announce = process.stderr.readline() if launcher != "usernet up" else process.stdout.readline()
        found = re.search(r"namespace (usernet-[0-9a-z-]+),", announce)
        assert found is not None, announce
        assert process.stdout.readline().startswith(("ready", "usernet up:"))
        subprocess.run(["ip", "-n", found.group(1), "link", "delete", "usernet0"], check=True)
        _, err = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait()
    lines = [line for line in err.splitlines() if "sandbox: namespace" not in line]
    assert len(lines) == 1, err
    # Reading or writing, whichever the program tried first once the device was gone.
    assert re.fullmatch(
        r"usernet: TAP usernet0 is gone \((reading|writing) it: File descriptor in bad state\): its device "
        r"was deleted or its network namespace removed",
        lines[0],
    ), err
    assert process.returncode == 1
