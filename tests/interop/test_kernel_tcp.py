"""TCP between usernet and the Linux kernel over a real TAP: bulk both ways, half-close, short
connections, resets, loss on the kernel side, a capture tshark must find clean, and `usernet up`.

Kernel sockets live in the test's namespace (`sandbox.socket()`) and are driven by
threads of this process; usernet runs on its select loop thread (`LoopThread`), and
usernet-side clients run there as socket handlers. Every wait is bounded.
"""

from __future__ import annotations

import errno
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.conftest import KERNEL_IP, PEER_IP, USERNET_IP, Running, routed_peer, usernet_on_tap
from tests.interop.streams import (
    CHUNK,
    KERNEL_PORT,
    MB,
    TIMEOUT,
    Pattern,
    StreamCheck,
    UsernetClient,
    counters,
    finished,
    kernel_echo_roundtrip,
    kernel_echo_server,
    kernel_socket,
    report,
    usernet_connect,
    wait_for,
)
from tests.programs import require
from usernet.apps.services import CHARGEN_PORT, DISCARD_PORT, ECHO_PORT
from usernet.link.sandbox import Sandbox
from usernet.stack import TcpConnection, TcpListener
from usernet.stack.interface import Socket
from usernet.stack.tcp.states import State

pytestmark = pytest.mark.network

BULK = 100 * MB


@pytest.fixture
def kernel_listener(sandbox: Sandbox) -> Iterator[socket.socket]:
    sock = kernel_socket(sandbox)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((KERNEL_IP, KERNEL_PORT))
    sock.listen(128)
    yield sock
    sock.close()


# -- bulk -----------------------------------------------------------------------------------


def test_kernel_client_100mb_through_usernet_echo(running: Running):
    pattern = Pattern(1)
    before = counters(running)
    with kernel_socket(running.sandbox) as sock:
        sock.connect((USERNET_IP, ECHO_PORT))
        start = time.monotonic()
        check = kernel_echo_roundtrip(sock, BULK, pattern)
        elapsed = time.monotonic() - start
    check.assert_complete(BULK)
    wait_for(lambda: bool(finished(running, "echo")), "the echo connection to finish")
    [record] = finished(running, "echo")
    after = counters(running)
    assert record.error is None and record.info["bytes_received"] == record.info["bytes_sent"] == BULK
    report(
        "kernel->usernet echo 100 MB",
        f"{BULK / MB / elapsed:.1f} MB/s each way ({elapsed:.1f} s); "
        f"usernet retransmits {record.info['retransmits']}, rtt {record.info['rtt']}, "
        f"cwnd {record.info['cwnd']}, stack delta {_delta(before, after)}",
    )


def test_usernet_client_100mb_through_kernel_echo(running: Running, kernel_listener: socket.socket):
    pattern = Pattern(2)
    check = StreamCheck(pattern)
    server = threading.Thread(target=kernel_echo_server, args=(kernel_listener,), daemon=True)
    server.start()
    start = time.monotonic()
    client = usernet_connect(running.loop, KERNEL_PORT, pattern, BULK, check)
    assert client.done.wait(TIMEOUT), f"transfer stuck: {running.loop.call(lambda now: client.conn.info())}"
    elapsed = time.monotonic() - start
    server.join(10)
    info = running.loop.call(lambda now: client.conn.info())
    assert client.conn.error is None
    check.assert_complete(BULK)
    report(
        "usernet->kernel echo 100 MB",
        f"{BULK / MB / elapsed:.1f} MB/s each way ({elapsed:.1f} s); "
        f"retransmits {info['retransmits']}, rtt {info['rtt']}, cwnd {info['cwnd']}",
    )


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    keys = (
        "tcp_retransmits",
        "tcp_fast_retransmits",
        "tcp_timeouts",
        "tcp_rcv_overflow",
        "tcp_out_of_window",
        "tcp_ofo_segments",
        "tcp_bad_checksum",
    )
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys if after.get(k, 0) - before.get(k, 0)}


# -- half-close ----------------------------------------------------------------------------------


def test_kernel_half_close_usernet_still_sends(running: Running):
    """Kernel SHUT_WR: usernet reads to EOF, then answers with 2 MB, then closes."""
    pattern = Pattern(3)
    seen: dict[str, object] = {}

    def on_conn(sock: Socket, now: float) -> None:
        conn = sock
        assert isinstance(conn, TcpConnection)
        while data := conn.receive():
            seen["request"] = seen.get("request", b"") + data  # type: ignore[operator]  # seen holds bytes under this key
        if conn.at_eof and "eof_state" not in seen:
            seen["eof_state"] = conn.state
            client = UsernetClient(running.loop, conn, pattern, 2 * MB)
            running.loop.handlers[conn] = client.pump
            client.pump(conn, now)

    def on_listener(sock: Socket, now: float) -> None:
        assert isinstance(sock, TcpListener)
        while (conn := sock.accept()) is not None:
            running.loop.handlers[conn] = on_conn
            on_conn(conn, now)

    def listen(now: float) -> None:
        running.loop.handlers[running.host.iface.tcp.listen((b"\0\0\0\0", 5001))] = on_listener

    running.loop.call(listen)
    check = StreamCheck(pattern)
    with kernel_socket(running.sandbox) as sock:
        sock.connect((USERNET_IP, 5001))
        sock.sendall(b"request")
        sock.shutdown(socket.SHUT_WR)
        buf = bytearray(CHUNK)
        while n := sock.recv_into(buf):
            check.feed(memoryview(buf)[:n])
    check.assert_complete(2 * MB)
    assert seen["request"] == b"request" and seen["eof_state"] == State.CLOSE_WAIT


def test_usernet_half_close_kernel_still_sends(running: Running, kernel_listener: socket.socket):
    """usernet shutdown: the kernel's recv() returns b"", and the kernel then sends 2 MB."""
    pattern = Pattern(4)
    got: dict[str, bytes] = {}

    def serve() -> None:
        conn, _ = kernel_listener.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            request = b""
            while data := conn.recv(65536):
                request += data
            got["request"] = request
            sent = 0
            while sent < 2 * MB:
                chunk = pattern.at(sent, 2 * MB - sent)
                conn.sendall(chunk)
                sent += len(chunk)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    request = Pattern(5)
    check = StreamCheck(pattern)
    client = usernet_connect(running.loop, KERNEL_PORT, request, 1000, check)
    assert client.done.wait(30), running.loop.call(lambda now: client.conn.info())
    server.join(10)
    assert got["request"] == bytes(request.at(0, 1000))
    check.assert_complete(2 * MB)
    assert client.eof_state == State.TIME_WAIT or client.eof_state == State.FIN_WAIT_2, client.eof_state


# -- many short connections ---------------------------------------------------------------------


def test_1000_short_connections_kernel_to_usernet(running: Running):
    count = 1000
    before = counters(running)
    message = b"x" * 64
    # One trip into the namespace for all sockets: a thread per socket would be what gets measured.
    sockets = running.sandbox.in_namespace(
        lambda: [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    )
    try:
        start = time.monotonic()
        for i, sock in enumerate(sockets):
            with sock:
                sock.settimeout(10)
                sock.connect((USERNET_IP, ECHO_PORT))
                sock.sendall(message)
                reply = b""
                while len(reply) < len(message):
                    data = sock.recv(4096)
                    assert data, f"connection {i}: EOF after {len(reply)} bytes"
                    reply += data
                assert reply == message, f"connection {i}"
        elapsed = time.monotonic() - start
    finally:
        for sock in sockets:
            sock.close()
    wait_for(lambda: running.loop.call(lambda now: not running.services.echo.sessions), "echo sessions to end")
    after = counters(running)
    assert running.loop.call(lambda now: running.services.echo.accepted) == count
    assert after["tcp_passive_opens"] - before["tcp_passive_opens"] == count
    assert not [r for r in finished(running, "echo") if r.error is not None]
    report(f"{count} kernel->usernet connections", f"{count / elapsed:.0f} connections/s; {_delta(before, after)}")


def test_1000_short_connections_usernet_to_kernel(running: Running, kernel_listener: socket.socket):
    count = 1000

    def serve() -> None:
        for _ in range(count):
            conn, _ = kernel_listener.accept()
            with conn:
                conn.settimeout(10)
                request = conn.recv(4096)
                conn.sendall(request)
                while conn.recv(4096):
                    pass

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    pattern = Pattern(6)
    start = time.monotonic()
    for i in range(count):
        check = StreamCheck(pattern)
        client = usernet_connect(running.loop, KERNEL_PORT, pattern, 64, check)
        info = running.loop.call(lambda now, client=client: client.conn.info())
        assert client.done.wait(10), f"connection {i}: {info}"
        check.assert_complete(64)
    elapsed = time.monotonic() - start
    server.join(10)
    assert not server.is_alive()
    report(
        f"{count} usernet->kernel connections",
        f"{count / elapsed:.0f} connections/s (one at a time, each started from the test thread)",
    )


# -- resets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("port", [CHARGEN_PORT, DISCARD_PORT], ids=["usernet-sending", "usernet-receiving"])
def test_kernel_reset_mid_transfer_is_econnreset(running: Running, port: int):
    with kernel_socket(running.sandbox) as sock:
        sock.connect((USERNET_IP, port))
        if port == CHARGEN_PORT:
            got = 0
            while got < 500_000:
                got += len(sock.recv(65536))
        else:
            for _ in range(50):
                sock.sendall(bytes(65536))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    service = "chargen" if port == CHARGEN_PORT else "discard"
    wait_for(lambda: bool(finished(running, service)), f"the {service} connection to end")
    [record] = finished(running, service)
    assert record.error is not None and record.error.errno == errno.ECONNRESET, record
    assert record.info["state"] == "CLOSED"
    assert counters(running)["tcp_rst_received"] >= 1


# -- loss ------------------------------------------------------------------------------------------


def test_transfer_survives_random_drops_on_the_kernel_side(sandbox: Sandbox):
    """3% of what the kernel forwards toward usernet (data and ACKs) is dropped; 20 MB each way still arrive."""
    size = 20 * MB
    with routed_peer(sandbox) as peer, usernet_on_tap(sandbox, gateway=KERNEL_IP) as running:
        sandbox.drop_rate(3, "usernet0")
        before = counters(running)
        kernel_before = _kernel_retransmits(peer)
        with kernel_socket(peer) as sock:
            sock.connect((USERNET_IP, ECHO_PORT))
            start = time.monotonic()
            check = kernel_echo_roundtrip(sock, size, Pattern(7))
            elapsed_in = time.monotonic() - start
        check.assert_complete(size)

        with kernel_socket(peer) as listener:
            listener.bind((PEER_IP, KERNEL_PORT))
            listener.listen(8)
            server = threading.Thread(target=kernel_echo_server, args=(listener,), daemon=True)
            server.start()
            pattern = Pattern(8)
            back = StreamCheck(pattern)
            start = time.monotonic()
            client = usernet_connect(running.loop, KERNEL_PORT, pattern, size, back, PEER_IP)
            assert client.done.wait(TIMEOUT), running.loop.call(lambda now: client.conn.info())
            elapsed_out = time.monotonic() - start
            server.join(10)
        back.assert_complete(size)
        after = counters(running)
        delta = _delta(before, after)
        kernel = _kernel_retransmits(peer) - kernel_before
    assert delta.get("tcp_ofo_segments", 0) > 0 and kernel > 0, f"3% loss left no trace: {delta}, kernel {kernel}"
    report(
        "3% kernel-side drop, 20 MB echo",
        f"kernel client {size / MB / elapsed_in:.1f} MB/s, "
        f"usernet client {size / MB / elapsed_out:.1f} MB/s; usernet {delta}, kernel retransmits {kernel}",
    )


def _kernel_retransmits(sandbox: Sandbox) -> int:
    """The namespace's TcpRetransSegs: how many segments the kernel sent again."""
    out = sandbox.run(["nstat", "-az", "TcpRetransSegs"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"TcpRetransSegs\s+(\d+)", out)
    assert match, out
    return int(match.group(1))


# -- capture ---------------------------------------------------------------------------------------


def test_capture_has_no_bad_checksums_or_malformed_frames(sandbox: Sandbox, tmp_path: Path):
    pcap = tmp_path / "tcp.pcap"
    with usernet_on_tap(sandbox, pcap) as running:
        with kernel_socket(sandbox) as sock:
            sock.connect((USERNET_IP, ECHO_PORT))
            kernel_echo_roundtrip(sock, 3 * MB, Pattern(9)).assert_complete(3 * MB)
        for _ in range(20):
            with kernel_socket(sandbox) as sock:
                sock.connect((USERNET_IP, DISCARD_PORT))
                sock.sendall(b"d" * 3000)
        with kernel_socket(sandbox) as sock:
            sock.connect((USERNET_IP, CHARGEN_PORT))
            sock.recv(65536)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        wait_for(
            lambda: len(finished(running, "discard")) == 20 and bool(finished(running, "chargen")),
            "the connections to end",
        )
    checked = ["-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]
    lines = subprocess.run(
        [
            require("tshark"),
            "-r",
            str(pcap),
            *checked,
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "frame.number",
            "-e",
            "ip.checksum.status",
            "-e",
            "ip.src",
            "-e",
            "tcp.checksum.status",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert.severity",
            "-e",
            "_ws.expert.message",
            "-Y",
            "tcp",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()
    rows = [line.split("|") for line in lines]
    assert len(rows) > 2000, "the capture holds too few TCP frames to mean anything"
    # Linux's skb_checksum_help writes a computed checksum of 0 as 0xffff (CSUM_MANGLED_0, the
    # other ones'-complement zero, which verifies alike); tshark calls that "0xffff instead of
    # 0x0000". The kernel's frames may carry it, about one in 65,536; usernet's may not.
    mangled_zero = "0xffff instead of 0x0000"
    rows = [r for r in rows if not (r[2] == KERNEL_IP and mangled_zero in r[6] and r[3] == "0")]
    bad = [r for r in rows if r[1] != "1" or r[3] != "1" or r[4]]  # 1 = "Good" once validation is on
    errors = [r for r in rows if "malformed" in r[6].lower() or "checksum" in r[6].lower()]
    assert not bad and not errors, (bad + errors)[:10]


# -- usernet up ------------------------------------------------------------------------------------


class LineReader:
    """A child's stdout, line by line, with timeouts: a thread reads so the test never blocks on a pipe."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(target=lambda: [self.lines.put(line) for line in stream], daemon=True).start()

    def until(self, pattern: str, timeout: float = 20.0) -> list[str]:
        """Lines up to and including the first one matching `pattern`."""
        got: list[str] = []
        end = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {timeout} s: {self.seen}") from None
            got.append(line)
            self.seen.append(line)
            if re.search(pattern, line):
                return got


_CLIENT = """
import socket, sys
ip = sys.argv[1]
with socket.create_connection((ip, 7), timeout=10) as s:
    s.sendall(b"hello usernet" * 1000)
    s.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    assert data == b"hello usernet" * 1000, len(data)
with socket.create_connection((ip, 9), timeout=10) as s:
    s.sendall(bytes(500000))
    s.shutdown(socket.SHUT_WR)
    assert s.recv(10) == b""
with socket.create_connection((ip, 19), timeout=10) as s:
    data = b""
    while len(data) < 100000:
        data += s.recv(65536)
    assert data.startswith(bytes(range(32, 104)) + b"\\r\\n"), data[:80]
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
print("client ok")
"""


def test_usernet_up_serves_tcp_and_reports_connections():
    proc = subprocess.Popen(
        [sys.executable, "-m", "usernet.cli", "up", "--sandbox", "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    output = LineReader(proc)
    try:
        banner = output.until(r"^usernet up:")
        name = re.search(r"namespace (usernet-up-\w+),", "".join(banner))
        assert name, banner
        client = subprocess.run(
            ["ip", "netns", "exec", name.group(1), sys.executable, "-c", _CLIENT, USERNET_IP],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert client.returncode == 0 and "client ok" in client.stdout, client.stderr
        os.kill(proc.pid, signal.SIGUSR1)
        report_lines = output.until(r"^tcp connections:")
        assert "3 finished" in report_lines[-1], report_lines
        listed = output.until(r"^\s+chargen ")
        text = "".join(listed)
        assert re.search(
            r"echo\s+192\.0\.2\.1:\d+ -> 192\.0\.2\.2:7 CLOSED .*bytes_sent=13000 bytes_received=13000", text
        ), text
        assert re.search(r"discard\s+.*-> 192\.0\.2\.2:9 .*bytes_received=500000", text), text
        assert re.search(r"chargen\s+.*-> 192\.0\.2\.2:19 .*rtt=[\d.]+ms cwnd=\d+ .*retransmits=\d+", text), text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    output.until(r"^counters: ")
    out = "".join(output.seen)
    assert re.search(r"^tcp connections: 0 live, 3 finished", out, re.M), out
    assert "counters: " in out and "tcp_passive_opens=3" in out, out
