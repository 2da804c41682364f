"""`usernet drill` runs scripts and says so in its exit status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent / "tcp" / "nagle.pkt"


def _drill(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "usernet.cli", "drill", *args], capture_output=True, text=True, timeout=60
    )


def test_a_passing_script_exits_zero():
    result = _drill(str(SCRIPT))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok"), result.stdout


def test_a_script_with_a_wrong_expectation_fails(tmp_path):
    text = SCRIPT.read_text()
    broken = tmp_path / "broken.pkt"
    # The peer's SYN-ACK now acknowledges a byte never sent: usernet resets, not the ACK expected.
    broken.write_text(text.replace("ack 1 ", "ack 2 ", 1))
    assert broken.read_text() != text
    result = _drill(str(broken))
    assert result.returncode != 0, result.stdout
