"""`usernet ss` and `usernet stats` against running usernet processes on a TAP in a namespace."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from usernet.link.sandbox import Sandbox

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]
USERNET_IP = "192.0.2.2"
KERNEL_IP = "192.0.2.1"


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    """The environment of the usernet process and of the `usernet ss` client: one private runtime dir."""
    with tempfile.TemporaryDirectory(prefix="usernet-ss-") as runtime:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("USERNET_")}
        yield {**clean, "XDG_RUNTIME_DIR": runtime}


def _tap(sandbox: Sandbox) -> None:
    sandbox.run(["ip", "tuntap", "add", "mode", "tap", "name", "usernet0"], check=True)
    sandbox.run(["ip", "addr", "add", f"{KERNEL_IP}/24", "dev", "usernet0"], check=True)
    sandbox.run(["ip", "link", "set", "usernet0", "up"], check=True)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "usernet.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_ss_shows_100_connections_with_plausible_rtts(sandbox: Sandbox, env: dict[str, str]) -> None:
    _tap(sandbox)
    server = sandbox.popen(
        [sys.executable, "-m", "usernet.cli", "up", "--tap", "usernet0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip  # the subprocess options on one line
    assert server.stdout is not None
    banner = server.stdout.readline()
    assert server.stderr is not None
    assert "usernet up" in banner, banner + server.stderr.read()
    clients = []
    for i in range(100):
        client = sandbox.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.settimeout(10)
        client.connect((USERNET_IP, 7))
        for _ in range(3):  # a few round trips give each connection RTT samples
            client.sendall(b"ping %d\n" % i)
            assert client.recv(100) == b"ping %d\n" % i
        clients.append(client)
    result = _cli(env, "ss", "-t", "-i", "-p", str(server.pid))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    established = [line for line in lines if line.startswith("tcp") and "ESTAB" in line]
    assert len(established) == 100, result.stdout
    ports = {c.getsockname()[1] for c in clients}
    assert {int(m.group(1)) for line in established if (m := re.search(rf"{KERNEL_IP}:(\d+)", line))} == ports
    rtts = [float(m.group(1)) for m in re.finditer(r" rtt:([\d.]+)/", result.stdout)]
    assert len(rtts) == 100 and all(0 < rtt < 1000 for rtt in rtts), rtts  # milliseconds, over a local TAP
    assert all("cwnd:" in line and "retrans:" in line for line in lines if line.startswith("\t"))
    listening = _cli(env, "ss", "-l", "-p", str(server.pid)).stdout
    assert re.search(r"tcp\s+LISTEN\s+0\s+\d+\s+0\.0\.0\.0:7 ", listening), listening
    assert re.search(r"udp\s+UNCONN.*0\.0\.0\.0:7 ", listening), listening
    stats = _cli(env, "stats")
    assert f"pid {server.pid}" in stats.stdout and re.search(r"tcp_passive_opens\s+100\b", stats.stdout), stats.stdout
    for client in clients:
        client.close()
    server.terminate()
    server.wait(30)
    assert _cli(env, "ss").stdout.splitlines()[1:] == []  # the socket went with the process


def test_ss_shows_a_program_under_python_m_usernet(sandbox: Sandbox, env: dict[str, str]) -> None:
    _tap(sandbox)
    server = sandbox.popen(
        [sys.executable, "-m", "usernet", "--tap", "usernet0", str(ROOT / "examples" / "udp_echo_server.py")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip  # the subprocess options on one line
    assert server.stdout is not None
    assert "listening" in server.stdout.readline()
    udp = sandbox.socket()
    udp.settimeout(5)
    udp.sendto(b"hi", (USERNET_IP, 7))
    assert udp.recvfrom(100)[0] == b"hi"
    result = _cli(env, "ss", "-u", "-a", "-p", str(server.pid))
    assert result.returncode == 0, result.stderr
    assert re.search(r"udp\s+UNCONN\s+0\s+0\s+0\.0\.0\.0:7 ", result.stdout), result.stdout
    stats = _cli(env, "stats", "-p", str(server.pid)).stdout
    assert re.search(r"udp_delivered\s+1\b", stats) or re.search(r"udp_rx_predicted\s+1\b", stats), stats
    server.terminate()
    server.wait(30)
