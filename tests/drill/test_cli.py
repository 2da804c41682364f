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


def test_a_folder_runs_every_script_below_it_and_sums_them_up(tmp_path):
    """A suite kept outside the repository reruns with one command: a folder per category."""
    text = SCRIPT.read_text()
    (tmp_path / "nagle").mkdir()
    (tmp_path / "nagle" / "good.pkt").write_text(text)
    (tmp_path / "nagle" / "broken.pkt").write_text(text.replace("ack 1 ", "ack 2 ", 1))
    (tmp_path / "fast_open").mkdir()
    # A cookie word nobody defined: reported for that script, the run goes on.
    (tmp_path / "fast_open" / "cookie.pkt").write_text(
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
        "+0 bind(3, ..., ...) = 0\n+0 listen(3, 1) = 0\n"
        "+0 < S 0:10(10) win 32792 <mss 1460,FO TFO_COOKIE,nop,nop>\n"
    )
    result = _drill("--summary", str(tmp_path))
    assert result.returncode != 0
    assert "| nagle | 2 | 1 | broken.pkt:" in result.stdout, result.stdout
    assert "| fast_open | 1 | 0 | cookie.pkt:" in result.stdout and "-D TFO_COOKIE=" in result.stdout
