"""The `usernet` command behaves as a Unix tool where no network is needed."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from usernet.link import PcapWriter


def test_decode_into_a_pipe_closed_early_exits_quietly(tmp_path: Path) -> None:
    """`usernet decode big.pcap | head -1`: no BrokenPipeError, no message, the status of SIGPIPE."""
    pcap = tmp_path / "big.pcap"
    with PcapWriter(pcap) as writer:
        for i in range(20_000):
            writer.write(bytes(14) + i.to_bytes(4, "big") * 12, float(i))
    decode = subprocess.Popen(
        [sys.executable, "-m", "usernet.cli", "decode", str(pcap)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert decode.stdout is not None and decode.stderr is not None
    assert decode.stdout.readline().startswith(b"    1 0.000000 ")
    decode.stdout.close()  # what `head` does once it has its lines
    err = decode.stderr.read()
    assert decode.wait(timeout=60) == 128 + signal.SIGPIPE
    assert err == b""


def test_a_missing_program_is_one_line_naming_its_package(tmp_path: Path) -> None:
    """`ip` is not on PATH: `usernet up --sandbox` says which package to install, with no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "usernet.cli", "up", "--sandbox"],
        capture_output=True, text=True, timeout=60, env={"PATH": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 127
    assert result.stderr == (
        "usernet: `ip` is not installed: install the Debian package iproute2 "
        "(apt-get install iproute2, or run ./setup.sh as root)\n"
    )


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_up_names_the_link_it_runs_on() -> None:
    """`usernet up --link udp://...` says it is on that link, not on the default TAP's name (no root needed)."""
    url = f"udp://127.0.0.1:{_free_udp_port()}?peer=127.0.0.1:{_free_udp_port()}"
    up = subprocess.run(
        [sys.executable, "-m", "usernet.cli", "up", "--link", url, "--duration", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert up.returncode == 0, up.stderr
    first = up.stdout.splitlines()[0]
    assert f"on {url}," in first, first
