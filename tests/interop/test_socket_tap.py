"""usernet.socket against the Linux kernel over a TAP in a throwaway namespace: every call with a
timeout and with NOWAIT, from threads (the test's own) and from coroutines (run on the stack's loop)."""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.aio.socket_checks import check_options
from usernet.drivers.host import Host
from usernet.link.sandbox import Sandbox
from usernet.socket import NOWAIT, SelectInfo, Socket, Stack, is_supported
from usernet.socket.options import FLAGS
from usernet.stack import Interface, InterfaceConfig

pytestmark = pytest.mark.network

USERNET_IP = "192.0.2.2"
KERNEL_IP = "192.0.2.1"


@pytest.fixture
def stack(sandbox: Sandbox) -> Iterator[Stack]:
    """A usernet loop on its own thread, on a TAP whose other side is the namespace's kernel."""
    tap = sandbox.create_tap("usernet0", host_address=f"{KERNEL_IP}/24")
    host = Host(tap, Interface(InterfaceConfig.from_strings(tap.mac, [f"{USERNET_IP}/24"])))
    with Stack.start(host=host) as running:
        yield running


def _kernel_listener(sandbox: Sandbox) -> socket.socket:
    server = sandbox.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind((KERNEL_IP, 0))
    server.listen(8)
    server.settimeout(5)
    return server


def test_usernet_server_kernel_client_from_threads(sandbox: Sandbox, stack: Stack) -> None:
    server = stack.open()
    server.bind((USERNET_IP, 0))
    server.listen(8)
    port = server.sockname()[1]
    with pytest.raises(TimeoutError):
        server.accept(timeout=0.05)
    pending = server.accept(timeout=NOWAIT)
    assert isinstance(pending, SelectInfo)
    client = sandbox.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(5)
    client.connect((USERNET_IP, port))
    assert pending.wait(5)
    peer = server.accept(timeout=NOWAIT)
    if isinstance(peer, SelectInfo):  # news other than the connection woke it: wait again
        peer = server.accept(timeout=5)
    assert isinstance(peer, Socket)
    assert peer.peername() == client.getsockname()
    client.sendall(b"0123456789" * 1000)
    assert peer.recv(10000, timeout=5) == b"0123456789" * 1000  # exactly n, across segments
    with pytest.raises(TimeoutError) as info:
        peer.recv(1, timeout=0.05)
    assert info.value.errno == errno.ETIMEDOUT
    waiting = peer.recv(0, timeout=NOWAIT)
    assert isinstance(waiting, SelectInfo) and waiting.cancel() and waiting.cancelled()
    big = bytes(range(256)) * 4096  # 1 MiB: send() waits for room as the kernel reads
    reader = threading.Thread(target=lambda: received.extend(_read_all(client, len(big))))
    received = bytearray()
    reader.start()
    assert peer.send(big, timeout=10) == len(big)
    reader.join(10)
    assert bytes(received) == big
    assert peer.sendmsg([b"a", b"b"], timeout=5) == 2
    assert client.recv(2) == b"ab"
    assert peer.send(b"cd", timeout=NOWAIT) == 2 and peer.sendmsg([b"e"], timeout=NOWAIT) == 1
    assert _read_all(client, 3) == b"cde"
    peer.shutdown(socket.SHUT_WR)
    assert client.recv(1) == b""  # the kernel saw our FIN
    client.close()
    assert peer.recv(0, timeout=5) == b""
    info_peer = peer.info()
    assert info_peer["tcp"]["rtt"] is not None and info_peer["counters"]["write_bytes"] == len(big) + 5
    peer.close()
    server.close()
    assert stack.number_of() == 0


def _read_all(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(65536)
        assert chunk
        out += chunk
    return bytes(out)


def test_usernet_client_kernel_server_nowait_connect(sandbox: Sandbox, stack: Stack) -> None:
    listener = _kernel_listener(sandbox)
    client = stack.open()
    info = client.connect(listener.getsockname(), timeout=NOWAIT)
    assert isinstance(info, SelectInfo)
    result: object = info
    while isinstance(result, SelectInfo):
        assert result.wait(5)
        result = client.connect(listener.getsockname(), timeout=NOWAIT)
    assert result is None
    conn, addr = listener.accept()
    assert addr == client.sockname()
    conn.sendall(b"hello from the kernel")
    assert client.recv(21, timeout=5) == b"hello from the kernel"
    conn.close()
    assert client.recv(0, timeout=5) == b""
    client.close()
    refused = stack.open()
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(ConnectionRefusedError):
        refused.connect((KERNEL_IP, port), timeout=5)
    refused.close()


def test_calls_from_a_coroutine_on_the_stack_loop(sandbox: Sandbox, stack: Stack) -> None:
    listener = _kernel_listener(sandbox)
    accepted: list[socket.socket] = []

    def serve() -> None:
        conn, _ = listener.accept()
        conn.settimeout(5)
        conn.sendall(conn.recv(100).upper())
        accepted.append(conn)

    kernel = threading.Thread(target=serve)
    kernel.start()

    async def main() -> bytes:
        client = stack.open()
        await client.aconnect(listener.getsockname(), timeout=5)
        assert await client.asend(b"shout", timeout=5) == 5
        reply = await client.arecv(5, timeout=5)
        with pytest.raises(TimeoutError):
            await client.arecv(1, timeout=0.05)
        pending = await client.arecv(0, timeout=NOWAIT)
        assert isinstance(pending, SelectInfo)
        assert client.cancel(pending)
        client.close()
        assert isinstance(reply, bytes)
        return reply

    assert stack.run(main()) == b"SHOUT"
    kernel.join(5)
    accepted[0].close()
    listener.close()


def test_udp_against_the_kernel(sandbox: Sandbox, stack: Stack) -> None:
    kernel = sandbox.socket(socket.AF_INET, socket.SOCK_DGRAM)
    kernel.bind((KERNEL_IP, 0))
    kernel.settimeout(5)
    udp = stack.open(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((USERNET_IP, 0))
    with pytest.raises(TimeoutError):
        udp.recvfrom(0, timeout=0.05)
    pending = udp.recvfrom(0, timeout=NOWAIT)
    assert isinstance(pending, SelectInfo)
    kernel.sendto(b"datagram", udp.sockname())
    assert pending.wait(5)
    assert udp.recvfrom(0, timeout=NOWAIT) == (b"datagram", kernel.getsockname())
    assert udp.sendto(b"reply", kernel.getsockname(), timeout=5) == 5
    assert kernel.recvfrom(100) == (b"reply", udp.sockname())
    kernel.sendto(b"x" * 100, udp.sockname())
    received = udp.recvmsg(10, timeout=5)
    assert not isinstance(received, SelectInfo)
    data, _, flags, source = received
    assert data == b"x" * 10 and flags & socket.MSG_TRUNC and source == kernel.getsockname()
    assert udp.sendmsg([b"to ", b"kernel"], address=kernel.getsockname(), timeout=5) == 9
    assert kernel.recv(100) == b"to kernel"
    assert udp.sendto(b"now", kernel.getsockname(), timeout=NOWAIT) == 3  # UDP never waits for room
    assert udp.sendmsg([b"n", b"ow"], address=kernel.getsockname(), timeout=NOWAIT) == 3
    assert kernel.recv(100) == b"now" and kernel.recv(100) == b"now"
    waiting = udp.recvmsg(0, timeout=NOWAIT)
    assert isinstance(waiting, SelectInfo)
    kernel.sendto(b"late", udp.sockname())
    assert waiting.wait(5)
    assert udp.recvmsg(0, timeout=NOWAIT) == (b"late", [], 0, kernel.getsockname())
    closed_port = kernel.getsockname()
    kernel.close()
    udp.connect(closed_port, timeout=5)
    udp.send(b"anyone?", timeout=5)
    with pytest.raises(ConnectionRefusedError):  # the kernel's ICMP port unreachable
        udp.recv(0, timeout=5)
    udp.close()


def test_supports_agrees_with_the_calls_against_the_kernel(sandbox: Sandbox, stack: Stack) -> None:
    listener = _kernel_listener(sandbox)
    client = stack.open()
    check_options(client, "usernet", "tcp")
    client.connect(listener.getsockname(), timeout=5)
    conn, _ = listener.accept()
    check_options(client, "usernet", "tcp")
    server = stack.open()
    server.bind((USERNET_IP, 0))
    server.listen(2)
    kernel_client = sandbox.socket(socket.AF_INET, socket.SOCK_STREAM)
    kernel_client.connect(server.sockname())
    peer = server.accept(timeout=5)
    assert isinstance(peer, Socket)
    for name, flag in FLAGS.items():  # each flag usernet reports works against the kernel; the others fail
        if not is_supported("msg_flags", name, protocol="tcp"):
            with pytest.raises(OSError) as info:
                client.send(b"f", flag.value, timeout=5)
            assert info.value.errno == errno.EOPNOTSUPP
            continue
        if "send" in flag.calls:
            assert client.send(b"f", flag.value, timeout=5) == 1
            assert conn.recv(1) == b"f"
        if "recv" in flag.calls:
            conn.sendall(b"r")
            if flag.value == socket.MSG_DONTWAIT:
                assert _poll(client, flag.value) == b"r"
            else:
                assert client.recv(1, flag.value, timeout=5) == b"r"
    udp = stack.open(socket.AF_INET, socket.SOCK_DGRAM)
    check_options(udp, "usernet", "udp")
    for s in (udp, peer, server, client):
        s.close()
    for k in (kernel_client, conn, listener):
        k.close()


def _poll(sock: Socket, flags: int) -> bytes:
    """recv with MSG_DONTWAIT until data comes (BlockingIOError until then), for at most 5 s."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            data = sock.recv(0, flags)
        except BlockingIOError:
            time.sleep(0.001)
            continue
        assert isinstance(data, bytes)
        return data
    raise AssertionError("no data within 5 s")


def test_a_coroutine_on_another_loop_can_use_the_stack(sandbox: Sandbox, stack: Stack) -> None:
    listener = _kernel_listener(sandbox)

    async def elsewhere() -> tuple[int, int]:
        client = stack.open()
        await client.aconnect(listener.getsockname(), timeout=5)
        port = client.sockname()[1]
        client.close()
        return port, asyncio.get_running_loop() is not stack.loop

    port, other_loop = asyncio.run(elsewhere())
    conn, addr = listener.accept()
    assert other_loop and addr[1] == port
    conn.close()
    listener.close()
