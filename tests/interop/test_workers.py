"""`--workers 2`: an unmodified asyncio server on two worker processes sharing one multi-queue TAP,
against the kernel's clients; connections it accepts and ones it opens itself; a worker killed and
restarted; the supervisor stopped by SIGTERM."""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.programs import require
from usernet.link.sandbox import Sandbox

pytestmark = pytest.mark.network

PORT = 7200
KERNEL_PORT = 9000
SERVER = Path(__file__).with_name("workers_server.py")
ROOT = Path(__file__).resolve().parents[2]
#: Longer than the 3 s after which the kernel forgets which queue wrote a flow last.
SLOW = 4.5
OPTIONS = ["--workers", "2", "--host-address", "192.0.2.1/24"]


def _supervisor(sandbox: Sandbox, entry: str, log: Path) -> subprocess.Popen[str]:
    script = [str(SERVER), str(PORT)]
    if entry == "python -m usernet":
        command = [sys.executable, "-m", "usernet", *OPTIONS, *script]
    else:
        command = [sys.executable, "-m", "usernet.cli", "run", *OPTIONS, "--", sys.executable, *script]
    return sandbox.popen(
        command, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )


def _serving(process: subprocess.Popen[str]) -> int:
    """The PID of the next worker that says it serves."""
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("serving "), line
    return int(line.split()[1])


def _tap_exists(sandbox: Sandbox) -> bool:
    return sandbox.run(["ip", "link", "show", "usernet0"], capture_output=True).returncode == 0


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not: it ended and waits to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _ask(sandbox: Sandbox, request: bytes) -> str:
    def connect() -> socket.socket:
        return socket.create_connection(("192.0.2.2", PORT), timeout=10)

    with sandbox.in_namespace(connect) as conn:
        conn.sendall(request)
        return conn.makefile().readline().strip()


def _ask_many(sandbox: Sandbox, request: bytes, count: int, at_once: int = 4) -> collections.Counter[str]:
    """`count` short connections, `at_once` at a time (so from several source ports): the answers counted."""
    with ThreadPoolExecutor(at_once) as pool:
        return collections.Counter(pool.map(lambda _: _ask(sandbox, request), range(count)))


@pytest.fixture
def kernel_server(sandbox: Sandbox) -> Iterator[None]:
    """A kernel TCP server in the namespace answering `got LINE` to the first line of each connection."""
    listener = sandbox.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("", KERNEL_PORT))  # 192.0.2.1 exists once the supervisor made the TAP
    listener.listen(64)

    def answer(conn: socket.socket) -> None:
        with conn:
            line = conn.makefile("rb").readline()
            if line.startswith(b"slow"):
                time.sleep(SLOW)  # the worker's connection sits silent meanwhile
            conn.sendall(b"got " + line)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield
    listener.shutdown(socket.SHUT_RDWR)
    thread.join(5)


@pytest.mark.parametrize("entry", ["python -m usernet", "usernet run"])
def test_two_workers_share_the_connections_and_open_their_own(
    sandbox: Sandbox, kernel_server: None, tmp_path: Path, entry: str
) -> None:
    supervisor = _supervisor(sandbox, entry, tmp_path / "supervisor.log")
    workers = {_serving(supervisor), _serving(supervisor)}
    # Each worker leads a session of its own: Linux's autogroup scheduler gives each its own share of
    # a busy machine's CPU (in the supervisor's session the two would share one process's share).
    assert all(os.getsid(pid) == pid for pid in workers)
    answers = _ask_many(sandbox, b"pid\n", 200)
    assert sum(answers.values()) == 200
    assert set(answers) == {str(pid) for pid in workers}, answers  # every answer from a worker, both served
    outgoing = _ask_many(sandbox, b"out 192.0.2.1 9000\n", 40)
    assert {answer.split(" ", 1)[1] for answer in outgoing} == {"got hello"}, outgoing
    assert {int(answer.split()[0]) for answer in outgoing} == workers, outgoing  # both opened connections
    # Connections the workers opened and then wait on, silent, longer than the kernel's flow table remembers.
    slow = _ask_many(sandbox, b"out 192.0.2.1 9000 slow\n", 8, at_once=8)
    assert {answer.split(" ", 1)[1] for answer in slow} == {"got slow"}, slow
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(15) == 128 + signal.SIGTERM
    assert not any(map(_alive, workers))
    assert not _tap_exists(sandbox)  # the supervisor reaped its workers, so their queues are closed


def test_a_killed_worker_is_restarted_and_the_other_serves_on(
    sandbox: Sandbox, kernel_server: None, tmp_path: Path
) -> None:
    log = tmp_path / "supervisor.log"
    supervisor = _supervisor(sandbox, "python -m usernet", log)
    first, second = _serving(supervisor), _serving(supervisor)
    os.kill(first, signal.SIGKILL)  # a worker this test started (through its supervisor), by PID
    replacement = _serving(supervisor)
    assert replacement not in (first, second)
    assert os.getsid(replacement) == replacement
    answers = _ask_many(sandbox, b"pid\n", 100)
    assert set(answers) == {str(second), str(replacement)}, answers
    outgoing = _ask_many(sandbox, b"out 192.0.2.1 9000\n", 20)
    assert {answer.split(" ", 1)[1] for answer in outgoing} == {"got hello"}, outgoing
    assert "worker 0 (pid" in log.read_text() or "worker 1 (pid" in log.read_text()
    supervisor.send_signal(signal.SIGINT)
    assert supervisor.wait(15) == 128 + signal.SIGINT


def test_workers_do_not_outlive_a_supervisor_killed_outright(sandbox: Sandbox, tmp_path: Path) -> None:
    supervisor = _supervisor(sandbox, "python -m usernet", tmp_path / "supervisor.log")
    workers = {_serving(supervisor), _serving(supervisor)}
    supervisor.kill()  # our child, by PID: no clean-up of its own
    supervisor.wait(5)
    deadline = time.monotonic() + 10
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, workers))
    # A worker's main thread shows as a zombie while its other threads may still be closing the
    # descriptors they share; the kernel removes the TAP when the last queue closes, so wait for that.
    while _tap_exists(sandbox) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _tap_exists(sandbox)


def test_without_cap_net_admin_the_supervisor_says_what_it_needs(sandbox: Sandbox, tmp_path: Path) -> None:
    # Inside the sandbox, so that even a wrongly successful create could not touch the host.
    script = tmp_path / "never.py"
    script.write_text("raise SystemExit('a worker ran without its TAP')\n")
    drop = [require("setpriv"), "--inh-caps=-net_admin", "--bounding-set=-net_admin"]
    result = sandbox.run(
        [*drop, sys.executable, "-m", "usernet", "--workers", "2", str(script)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (
        77, "python -m usernet: cannot open the queues of TAP 'usernet0': creating a TAP needs CAP_NET_ADMIN; "
        "run as root\n",
    )  # fmt: skip
