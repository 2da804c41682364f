"""A server replaced twice while a kernel client streams through it: live connection migration
between processes over a real TAP (docs/migration.md)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.interop.streams import Pattern
from usernet.drivers.handover import HandoverPoint, freeze_host
from usernet.drivers.host import Host, offload_options
from usernet.link.sandbox import Sandbox
from usernet.stack import Interface, InterfaceConfig
from usernet.stack.tcp.frozen import encode_blob

pytestmark = pytest.mark.network

PORT = 7100
TOTAL = 100 * 1024 * 1024
ECHO = Path(__file__).with_name("migrating_echo.py")
ROOT = Path(__file__).resolve().parents[2]


def _server(
    sandbox: Sandbox, path: Path, address: str = "192.0.2.2/24", loop: str = "asyncio", api: str = "protocol"
) -> subprocess.Popen[str]:
    """A server process, started and waiting for the word to take over (its first line of stdin)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    options = ["--handover", str(path), "--address", address, "--loop", loop]
    return sandbox.popen(
        [sys.executable, "-m", "usernet", *options, str(ECHO), str(PORT), api],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip


def _take_over(server: subprocess.Popen[str]) -> None:
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write("go\n")
    server.stdin.flush()
    line = server.stdout.readline()
    assert line == "serving\n", f"the server did not start: {line!r} {server.stderr.read() if server.stderr else ''}"


def _first_owner(sandbox: Sandbox, path: Path, server: subprocess.Popen[str]) -> None:
    """This process makes the TAP, so it is the first owner: it hands an empty stack to `server`.

    The TAP has vnet_hdr offloads (checksums, TSO), which belong to the open file: the
    handover carries them, and 100 MB each way then take about two seconds."""
    link = sandbox.create_tap("usernet0", host_address="192.0.2.1/24", offloads=True)
    host = Host(link, Interface(InterfaceConfig.from_strings(link.mac, ["192.0.2.2/24"], **offload_options(link))))
    point = HandoverPoint(str(path))
    feeder = threading.Thread(target=_take_over, args=(server,))
    feeder.start()
    conn = point.accept()
    assert conn is not None
    assert point.offer(conn, link.fileno(), encode_blob(freeze_host(host, time.monotonic(), {}).payload)) is None
    point.close()
    feeder.join(30)


@pytest.mark.parametrize(("loop", "api"), [("asyncio", "protocol"), ("asyncio", "streams"), ("uvloop", "protocol")])
def test_a_server_replaced_twice_keeps_a_kernel_clients_100_mb_each_way(
    sandbox: Sandbox, tmp_path: Path, loop: str, api: str
) -> None:
    """`streams` is asyncio.start_server: its StreamReader holds bytes the program has not read
    yet, which must move too."""
    path = tmp_path / "handover.sock"
    servers = [_server(sandbox, path, loop=loop, api=api) for _ in range(3)]
    _first_owner(sandbox, path, servers[0])

    client = sandbox.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(30)
    client.connect(("192.0.2.2", PORT))
    pattern = Pattern(18)
    sent_hash = hashlib.sha256()
    got_hash = hashlib.sha256()
    errors: list[BaseException] = []
    received = 0
    swaps = [TOTAL // 3, 2 * TOTAL // 3]
    swapped: list[float] = []

    def send() -> None:
        try:
            position = 0
            while position < TOTAL:
                chunk = pattern.at(position, min(1 << 20, TOTAL - position))
                client.sendall(chunk)
                sent_hash.update(chunk)
                position += len(chunk)
            client.shutdown(socket.SHUT_WR)
        except BaseException as exc:
            errors.append(exc)

    sender = threading.Thread(target=send)
    start = time.monotonic()
    sender.start()
    buf = bytearray(1 << 20)
    old = 0
    last = time.monotonic()
    longest_gap = 0.0  # the longest the client waited for a byte: what a handover costs it
    while received < TOTAL:
        n = client.recv_into(buf)
        now = time.monotonic()
        longest_gap, last = max(longest_gap, now - last), now
        if not n:
            break
        got_hash.update(memoryview(buf)[:n])
        received += n
        if swaps and received >= swaps[0]:
            swaps.pop(0)
            _take_over(servers[old + 1])  # the next server takes over ...
            assert servers[old].wait(30) == 0  # ... and the old one exits, with success
            old += 1
            swapped.append(received)
    sender.join(60)
    elapsed = time.monotonic() - start
    assert not errors, errors
    assert received == TOTAL and len(swapped) == 2, (received, swapped)
    assert got_hash.hexdigest() == sent_hash.hexdigest()
    for server in servers[:2]:
        assert server.stderr is not None
        said = server.stderr.read()
        assert "handed over 1 connections and 1 listeners" in said, said
    print(
        f"100 MB each way through 3 server processes in {elapsed:.2f} s; swapped at {swapped}; "
        f"longest wait for data {longest_gap * 1000:.0f} ms"
    )


def test_a_successor_that_refuses_leaves_the_old_server_serving(sandbox: Sandbox, tmp_path: Path) -> None:
    """A successor started with another address refuses the stack: it exits with the reason, and
    the old server carries on with its connection as if nothing had happened."""
    path = tmp_path / "handover.sock"
    first, wrong = _server(sandbox, path), _server(sandbox, path, address="192.0.2.3/24")
    _first_owner(sandbox, path, first)
    client = sandbox.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(30)
    client.connect(("192.0.2.2", PORT))
    client.sendall(b"before")
    assert client.recv(100) == b"before"
    assert wrong.stdin is not None and wrong.stderr is not None
    wrong.stdin.write("go\n")
    wrong.stdin.flush()
    assert wrong.wait(30) != 0
    assert "start the new one with --address as the old" in wrong.stderr.read()
    client.sendall(b"after")
    assert client.recv(100) == b"after"
    assert first.poll() is None


def test_the_interface_is_frozen_with_the_mtu_it_runs_with_not_the_one_it_was_made_with(sandbox: Sandbox) -> None:
    """A DHCP renewal may change the MTU of a running interface (`Interface.set_mtu`); a successor
    made with the configured one would offer a larger MSS than the link carries."""
    link = sandbox.create_tap("usernet0", host_address="192.0.2.1/24")
    host = Host(link, Interface(InterfaceConfig.from_strings(link.mac, ["192.0.2.2/24"], **offload_options(link))))
    host.iface.set_mtu(1400, time.monotonic())
    interface = freeze_host(host, time.monotonic(), {}).payload["interface"]
    assert (interface["mtu"], host.iface.config.mtu) == (1400, 1500)
