"""Helpers for TCP streams between the kernel and usernet over a TAP, shared by the interop tests."""

from __future__ import annotations

import hashlib
import ipaddress
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.interop.conftest import KERNEL_IP, LoopThread, Running
from usernet.apps.services import ConnectionRecord
from usernet.link.sandbox import Sandbox
from usernet.stack import TcpConnection
from usernet.stack.interface import Socket
from usernet.stack.tcp.states import State

MB = 1_000_000
KERNEL_PORT = 6000
TIMEOUT = 120.0  # the longest any single transfer may take before the test fails
CHUNK = 1 << 20


class Pattern:
    """A reproducible byte stream: a random block of prime length, repeated, so no segment or
    chunk boundary lines up with a repetition and a misplaced segment changes the bytes."""

    SIZE = 1_000_003

    def __init__(self, seed: int) -> None:
        block = random.Random(seed).randbytes(self.SIZE)
        self.data = block + block[:CHUNK]
        self.view = memoryview(self.data)

    def at(self, position: int, n: int) -> memoryview:
        """Up to min(n, CHUNK) bytes of the stream starting at `position`."""
        offset = position % self.SIZE
        return self.view[offset : offset + min(n, CHUNK)]


class StreamCheck:
    """Compares received bytes with the expected stream as they arrive, and hashes both sides."""

    def __init__(self, pattern: Pattern) -> None:
        self.pattern = pattern
        self.received = 0
        self.first_mismatch: int | None = None
        self.got = hashlib.sha256()
        self.expected = hashlib.sha256()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        data = memoryview(data)
        self.got.update(data)
        while data:
            want = self.pattern.at(self.received, len(data))
            n = len(want)
            self.expected.update(want)
            if self.first_mismatch is None and bytes(data[:n]) != bytes(want):
                self.first_mismatch = self.received
            self.received += n
            data = data[n:]

    def assert_complete(self, total: int) -> None:
        assert self.first_mismatch is None, f"bytes differ from offset {self.first_mismatch}"
        assert self.received == total, f"received {self.received} of {total} bytes"
        assert self.got.hexdigest() == self.expected.hexdigest()


def kernel_socket(sandbox: Sandbox, family: int = socket.AF_INET) -> socket.socket:
    sock = sandbox.socket(family, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    return sock


def run_threads(*targets: Callable[[], None], timeout: float = TIMEOUT) -> None:
    """Run each target on its own thread; re-raise the first failure; fail if one hangs."""
    errors: list[BaseException] = []

    def wrap(target: Callable[[], None]) -> Callable[[], None]:
        def body() -> None:
            try:
                target()
            except BaseException as exc:
                errors.append(exc)

        return body

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    end = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in threads), f"a transfer thread did not finish within {timeout} s"


def kernel_echo_roundtrip(sock: socket.socket, total: int, pattern: Pattern) -> StreamCheck:
    """Send `total` bytes on a connected kernel socket while reading the echo on another thread."""
    check = StreamCheck(pattern)

    def send() -> None:
        sent = 0
        while sent < total:
            chunk = pattern.at(sent, total - sent)
            sock.sendall(chunk)
            sent += len(chunk)
        sock.shutdown(socket.SHUT_WR)

    def receive() -> None:
        buf = bytearray(CHUNK)
        while n := sock.recv_into(buf):
            check.feed(memoryview(buf)[:n])

    run_threads(send, receive)
    return check


def counters(running: Running) -> dict[str, int]:
    return running.loop.call(lambda now: running.host.iface.stats())


def wait_for(probe: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


def finished(running: Running, service: str) -> list[ConnectionRecord]:
    return running.loop.call(lambda now: list(getattr(running.services, service).finished))


def report(label: str, text: str) -> None:
    """Measurements for whoever runs with -s; the assertions do not depend on them."""
    print(f"\n[{label}] {text}")


@dataclass
class UsernetClient:
    """A client on the usernet side, run by the loop thread: sends `outgoing` bytes of `pattern`
    (then shuts down), checks what comes back against `expect`, closes at the peer's EOF."""

    loop: LoopThread
    conn: TcpConnection
    pattern: Pattern
    outgoing: int
    expect: StreamCheck | None = None
    received: bytearray = field(default_factory=bytearray)
    sent: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    eof_state: State | None = None

    def pump(self, sock: Socket, now: float) -> None:
        conn = self.conn
        if conn.state == State.SYN_SENT:
            return
        if conn.state == State.CLOSED and conn.error is not None:
            self.done.set()
            return
        while self.sent < self.outgoing:
            chunk = self.pattern.at(self.sent, self.outgoing - self.sent)
            n = conn.send(chunk, now)
            self.sent += n
            if n < len(chunk):
                break
        if self.sent == self.outgoing:
            conn.shutdown(now)
        while data := conn.receive():
            if self.expect is not None:
                self.expect.feed(data)
            else:
                self.received += data
        if conn.at_eof and self.sent == self.outgoing and not self.done.is_set():
            self.eof_state = conn.state
            conn.close(now)
            self.loop.handlers.pop(conn, None)
            self.done.set()


def usernet_connect(
    loop: LoopThread,
    port: int,
    pattern: Pattern,
    outgoing: int,
    expect: StreamCheck | None = None,
    address: str = KERNEL_IP,
) -> UsernetClient:
    def start(now: float) -> UsernetClient:
        iface = loop.host.iface
        conn = iface.tcp.connect((ipaddress.ip_address(address).packed, port), now)
        client = UsernetClient(loop, conn, pattern, outgoing, expect)
        loop.handlers[conn] = client.pump
        return client

    return loop.call(start)


def kernel_echo_server(listener: socket.socket) -> None:
    """Echo everything on one accepted connection; one thread is enough since usernet reads while it sends."""
    buf = bytearray(CHUNK)
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(TIMEOUT)
        while n := conn.recv_into(buf):
            conn.sendall(memoryview(buf)[:n])
