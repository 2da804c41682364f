"""usernet.socket over two simulated stacks on one loop (host A the loop's, host B a second driver),
and the kernel backend on loopback: every call with a timeout, with NOWAIT, from coroutines and threads."""

from __future__ import annotations

import asyncio
import errno
import gc
import socket
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

import usernet.socket as us
from tests.aio.conftest import A_IP, B_IP, Pair
from tests.aio.socket_checks import check_flags, check_options
from usernet.aio import use_backend
from usernet.aio.loop import UsernetSelectorEventLoop
from usernet.drivers.host import Host
from usernet.link.memory import MemoryWire
from usernet.socket import NOWAIT, SelectInfo, Socket, Stack
from usernet.socket.options import Backend
from usernet.stack import Interface, InterfaceConfig

T = TypeVar("T")


@pytest.fixture
def stacks(pair: Pair) -> tuple[Stack, Stack]:
    """The loop's own stack (host A) and a stack on host B's driver, both on the pair's loop."""
    holder: list[tuple[Stack, Stack]] = []

    async def make() -> None:
        holder.append((Stack.current(), Stack(pair.loop, driver=pair.b_driver)))

    pair.run(make())
    return holder[0]


def _done(result: T | SelectInfo) -> T:
    """The result of a call made with a timeout: never a SelectInfo."""
    assert not isinstance(result, SelectInfo)
    return result


async def _listen_on_b(b: Stack, backlog: int = 16) -> tuple[Socket, int]:
    server = b.open(socket.AF_INET, socket.SOCK_STREAM)
    server.bind((B_IP, 0))
    server.listen(backlog)
    return server, server.sockname()[1]


async def _connected(a: Stack, b: Stack) -> tuple[Socket, Socket, Socket]:
    server, port = await _listen_on_b(b)
    client = a.open()
    await client.aconnect((B_IP, port), timeout=5)
    accepted = await server.aaccept(timeout=5)
    assert isinstance(accepted, Socket)
    return server, client, accepted


def test_tcp_calls_with_timeouts_from_a_coroutine(pair: Pair, stacks: tuple[Stack, Stack]) -> None:
    a, b = stacks

    async def main() -> None:
        server, client, peer = await _connected(a, b)
        assert client.peername() == (B_IP, server.sockname()[1])
        assert peer.peername() == client.sockname() and client.sockname()[0] == A_IP
        assert await client.asend(b"hello world", timeout=5) == 11
        assert await peer.arecv(5, timeout=5) == b"hello"  # exactly n
        assert await peer.arecv(0, timeout=5) == b" world"  # what is there
        with pytest.raises(TimeoutError) as info:
            await peer.arecv(1, timeout=0.01)
        assert info.value.errno == errno.ETIMEDOUT
        with pytest.raises(TimeoutError):
            await server.aaccept(timeout=0.01)
        assert await peer.asendmsg([b"ab", b"cd"], timeout=5) == 4
        data, anc, flags, _ = _done(await client.arecvmsg(4, timeout=5))
        assert (data, anc, flags) == (b"abcd", [], 0)
        client.shutdown(socket.SHUT_WR)
        assert await peer.arecv(0, timeout=5) == b""  # EOF
        peer.send(b"bye", timeout=NOWAIT)
        assert await client.arecv(3, timeout=5) == b"bye"
        for s in (client, peer, server):
            s.close()

    pair.run(main())


def test_exact_recv_keeps_partial_bytes_across_a_timeout(pair: Pair, stacks: tuple[Stack, Stack]) -> None:
    a, b = stacks

    async def main() -> None:
        server, client, peer = await _connected(a, b)
        await client.asend(b"abc", timeout=5)
        with pytest.raises(TimeoutError):
            await peer.arecv(6, timeout=0.05)
        await client.asend(b"def", timeout=5)
        assert await peer.arecv(6, timeout=5) == b"abcdef"
        client.close()
        assert await peer.arecv(10, timeout=5) == b""
        peer.close()
        server.close()

    pair.run(main())


def test_nowait_accept_connect_recv_send_and_cancel(pair: Pair, stacks: tuple[Stack, Stack]) -> None:
    a, b = stacks

    async def main() -> None:
        server, port = await _listen_on_b(b)
        pending = server.accept(timeout=NOWAIT)
        assert isinstance(pending, SelectInfo) and pending.tag == "accept" and not pending.done()
        called: list[SelectInfo] = []
        pending.add_done_callback(called.append)
        client = a.open()
        connecting = client.connect((B_IP, port), timeout=NOWAIT)
        assert isinstance(connecting, SelectInfo)
        assert await _retry(lambda: client.connect((B_IP, port), timeout=NOWAIT), connecting) is None
        await pending
        assert called == [pending]
        peer = server.accept(timeout=NOWAIT)
        assert isinstance(peer, Socket)
        waiting = peer.recv(0, timeout=NOWAIT)
        assert isinstance(waiting, SelectInfo)
        assert peer.info()["num_selects"] == 1
        assert waiting.cancel() is True and waiting.cancelled()
        assert peer.cancel(waiting) is False  # already settled
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert client.send(b"x" * 10, timeout=NOWAIT) == 10
        ready = peer.recv(0, timeout=NOWAIT)
        if isinstance(ready, SelectInfo):
            await ready
            ready = peer.recv(0, timeout=NOWAIT)
        assert ready == b"x" * 10
        with pytest.raises(BlockingIOError):
            peer.recv(0, socket.MSG_DONTWAIT)
        # a full send buffer: NOWAIT sends what fits, then a SelectInfo
        total = 0
        while True:
            sent = client.send(b"y" * 65536, timeout=NOWAIT)
            if isinstance(sent, SelectInfo):
                break
            total += sent
        assert total > 0
        assert isinstance(await peer.arecv(total, timeout=5), bytes)
        await sent
        with a.open() as other, pytest.raises(OSError) as info:
            other.cancel(sent)
        assert info.value.errno == errno.EINVAL
        closed = peer.recv(0, timeout=NOWAIT)
        while not isinstance(closed, SelectInfo):
            closed = peer.recv(0, timeout=NOWAIT)
        peer.close()
        await closed  # closing completes pending handles
        with pytest.raises(OSError) as info:
            peer.recv(0, timeout=NOWAIT)
        assert info.value.errno == errno.EBADF
        client.close()
        server.close()

    pair.run(main())


async def _retry(call: Callable[[], Any], pending: SelectInfo) -> Any:
    """Erlang's pattern: wait for the notification, try again, until the call has a result."""
    result: Any = pending
    while isinstance(result, SelectInfo):
        await result
        result = call()
    return result


def test_blocking_calls_from_a_thread(pair: Pair, stacks: tuple[Stack, Stack]) -> None:
    a, b = stacks

    def client_thread(port: int) -> bytes:
        with a.open() as client:
            assert client.connect((B_IP, port), timeout=5) is None
            client.send(b"from a thread", timeout=5)
            reply = client.recv(5, timeout=5)
            assert isinstance(reply, bytes)
            with pytest.raises(TimeoutError):
                client.recv(1, timeout=0.01)
            info = client.recv(0, timeout=NOWAIT)
            assert isinstance(info, SelectInfo)
            assert info.wait(5) is True  # the peer sends more
            more = client.recv(0, timeout=NOWAIT)
            assert isinstance(more, bytes)
            return reply + more

    async def main() -> None:
        server, port = await _listen_on_b(b)
        job = pair.loop.run_in_executor(None, client_thread, port)
        peer = await server.aaccept(timeout=5)
        assert isinstance(peer, Socket)
        assert await peer.arecv(13, timeout=5) == b"from a thread"
        await peer.asend(b"reply", timeout=5)
        await asyncio.sleep(0.05)  # the thread waits on its SelectInfo meanwhile (or finds the data already)
        await peer.asend(b"!", timeout=5)
        assert await job == b"reply!"
        with pytest.raises(RuntimeError, match="would stop the loop"):
            peer.recv(1, timeout=1)  # blocking on the loop's own thread is refused
        peer.close()
        server.close()

    pair.run(main())


def test_udp_calls(pair: Pair, stacks: tuple[Stack, Stack]) -> None:
    a, b = stacks

    async def main() -> None:
        rx = b.open(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("", 5353))
        tx = a.open(socket.AF_INET, socket.SOCK_DGRAM)
        assert await tx.asendto(b"datagram one", (B_IP, 5353), timeout=5) == 12
        data, source = _done(await rx.arecvfrom(0, timeout=5))
        assert data == b"datagram one" and source == (A_IP, tx.sockname()[1])
        await tx.asendto(b"0123456789", (B_IP, 5353), timeout=5)
        data, _, flags, source = _done(await rx.arecvmsg(4, 0, socket.MSG_TRUNC, timeout=5))
        assert data == b"0123" and flags & socket.MSG_TRUNC
        with pytest.raises(TimeoutError):
            await rx.arecvfrom(0, timeout=0.01)
        await tx.aconnect((B_IP, 5353), timeout=5)
        assert tx.peername() == (B_IP, 5353)
        tx.send(b"connected", timeout=NOWAIT)
        assert await rx.arecv(0, timeout=5) == b"connected"
        rx.close()
        await tx.asend(b"to a closed port", timeout=5)  # B answers with ICMP port unreachable
        with pytest.raises(ConnectionRefusedError):
            await tx.arecv(0, timeout=5)
        with pytest.raises(OSError) as info:
            tx.listen(1)
        assert info.value.errno == errno.EOPNOTSUPP
        tx.close()

    pair.run(main())


def test_errors_are_the_kernels(pair: Pair, stacks: tuple[Stack, Stack]) -> None:
    a, b = stacks

    async def main() -> None:
        s = a.open()
        calls: list[tuple[Callable[[], object], int]] = [
            (lambda: s.recv(0, timeout=NOWAIT), errno.ENOTCONN),
            (lambda: s.peername(), errno.ENOTCONN),
            (lambda: s.accept(timeout=NOWAIT), errno.EINVAL),
            (lambda: s.bind(("203.0.113.9", 0)), errno.EADDRNOTAVAIL),
            (lambda: s.getopt(("socket", "nonsense")), errno.ENOPROTOOPT),
            (lambda: s.setopt(("socket", "type"), 1), errno.ENOPROTOOPT),
            (lambda: a.open(socket.AF_INET6), errno.EAFNOSUPPORT),
            (lambda: a.open(socket.AF_INET, socket.SOCK_RAW), errno.EPROTONOSUPPORT),
        ]
        for call, code in calls:
            with pytest.raises(OSError) as info:
                call()
            assert info.value.errno == code, (call, info.value)
        with pytest.raises(ConnectionRefusedError):
            await s.aconnect((B_IP, 9), timeout=5)  # nothing listens on B: a RST
        s.close()
        s.close()
        with pytest.raises(OSError) as info:
            s.sockname()
        assert info.value.errno == errno.EBADF
        server, client, peer = await _connected(a, b)
        with pytest.raises(OSError) as info:
            await client.arecv(0, socket.MSG_PEEK, timeout=1)
        assert info.value.errno == errno.EOPNOTSUPP and not us.is_supported("msg_flags", "peek", protocol="tcp")
        peer.close()
        client.close()
        server.close()

    pair.run(main())


def test_info_which_sockets_number_of(pair: Pair, stacks: tuple[Stack, Stack]) -> None:
    a, b = stacks

    async def main() -> None:
        before = us.number_of()
        server, client, peer = await _connected(a, b)
        udp = a.open(socket.AF_INET, socket.SOCK_DGRAM)
        assert us.number_of() == before + 2  # server and peer live on B's stack
        assert set(us.which_sockets("tcp")) >= {client} and udp in us.which_sockets("udp")
        assert us.which_sockets(lambda i: i["type"] == "dgram") == [udp]
        await client.asend(b"12345", timeout=5)
        await peer.arecv(5, timeout=5)
        facts = us.info(client)
        assert facts["backend"] == "usernet" and facts["state"] == "established"
        assert facts["counters"]["write_bytes"] == 5 and facts["peername"] == (B_IP, server.sockname()[1])
        assert facts["tcp"]["rtt"] is not None and facts["tcp"]["segs_out"] >= 2
        assert b.which_sockets("tcp") == [server, peer]
        assert us.info(server)["state"] == "listening"
        for s in (udp, client, peer, server):
            s.close()
        assert us.number_of() == before and us.info(client)["state"] == "closed"

    pair.run(main())


@pytest.mark.parametrize("backend", ["usernet", "kernel"])
def test_supports_agrees_with_what_the_calls_do(pair: Pair, stacks: tuple[Stack, Stack], backend: Backend) -> None:
    a, b = stacks
    host = B_IP if backend == "usernet" else "127.0.0.1"
    server_stack = b if backend == "usernet" else a

    def in_thread() -> None:
        server = server_stack.open(backend=backend)
        server.bind((host, 0))
        server.listen(4)
        client = a.open(backend=backend)
        check_options(client, backend, "tcp")
        client.connect((host, server.sockname()[1]), timeout=5)
        peer = server.accept(timeout=5)
        assert isinstance(peer, Socket)
        check_options(peer, backend, "tcp")
        client.setopt(("tcp", "nodelay"), True)
        check_flags(client, peer, backend, "tcp")
        udp_rx = server_stack.open(socket.AF_INET, socket.SOCK_DGRAM, backend=backend)
        udp_rx.bind((host, 0))
        udp_tx = a.open(socket.AF_INET, socket.SOCK_DGRAM, backend=backend)
        check_options(udp_tx, backend, "udp")
        check_flags(udp_tx, udp_rx, backend, "udp", udp_rx.sockname())
        for s in (udp_tx, udp_rx, peer, client, server):
            s.close()

    async def main() -> None:
        await pair.loop.run_in_executor(None, in_thread)

    pair.run(main())
    assert us.supports(backend="usernet")["inet6"] is False and us.supports(backend="kernel")["inet6"] is True


def test_kernel_backend_nowait_and_timeouts(pair: Pair, stacks: tuple[Stack, Stack]) -> None:
    a, _ = stacks

    async def main() -> None:
        server = a.open(backend="kernel")
        server.setopt(("socket", "reuseaddr"), True)
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        pending = server.accept(timeout=NOWAIT)
        assert isinstance(pending, SelectInfo)
        client = a.open(backend="kernel")
        await client.aconnect(server.sockname(), timeout=5)
        await pending
        peer = server.accept(timeout=NOWAIT)
        assert isinstance(peer, Socket)
        with pytest.raises(TimeoutError):
            await peer.arecv(1, timeout=0.01)
        waiting = peer.recv(0, timeout=NOWAIT)
        assert isinstance(waiting, SelectInfo)
        await client.asend(b"kernel", timeout=5)
        await waiting
        assert peer.recv(6, timeout=NOWAIT) == b"kernel"
        facts = us.info(peer)
        assert facts["backend"] == "kernel" and facts["state"] == "connected"
        assert facts["tcp"]["state"] == "ESTABLISHED" and facts["tcp"]["mss"] > 0  # the kernel's TCP_INFO
        assert 0 < facts["tcp"]["rto"] < 10 and facts["tcp"]["cwnd"] >= facts["tcp"]["mss"]
        refused = a.open(backend="kernel")
        port = server.sockname()[1]
        server.close()
        with pytest.raises(ConnectionRefusedError):
            await refused.aconnect(("127.0.0.1", port), timeout=5)
        for s in (refused, peer, client):
            s.close()

    pair.run(main())


def test_use_backend_picks_the_default_backend(pair: Pair, stacks: tuple[Stack, Stack]) -> None:
    a, _ = stacks

    async def main() -> None:
        with use_backend("kernel"):
            kernel = a.open()
        usernet = a.open()
        assert (kernel.backend, usernet.backend) == ("kernel", "usernet")
        with use_backend("kernel"):
            assert a.open(backend="usernet").backend == "usernet"  # an explicit backend= wins
        for s in a.which_sockets():
            s.close()

    pair.run(main())


def test_module_functions_need_a_stack_outside_a_loop() -> None:
    with pytest.raises(RuntimeError, match=r"Stack\.start"):
        us.open()
    loop = asyncio.new_event_loop()
    with pytest.raises(RuntimeError, match="running on that loop"):
        Stack.of(loop)
    loop.close()
    assert us.is_supported("options", ("tcp", "nodelay"), protocol="tcp")
    assert not us.is_supported("options", ("tcp", "nodelay"), protocol="udp")
    assert us.is_supported("inet") and not us.is_supported("local")


@pytest.mark.parametrize("backend", ["usernet", "kernel"])
def test_timed_out_waits_are_not_kept(pair: Pair, stacks: tuple[Stack, Stack], backend: Backend) -> None:
    """A socket polled with short timeouts on which nothing arrives holds no future per timed-out call."""
    a, _ = stacks

    def futures() -> int:
        gc.collect()
        return sum(isinstance(o, asyncio.Future) for o in gc.get_objects())

    async def main() -> None:
        rx = a.open(socket.AF_INET, socket.SOCK_DGRAM, backend=backend)
        rx.bind(("127.0.0.1" if backend == "kernel" else A_IP, 0))
        for _ in range(10):
            with pytest.raises(TimeoutError):
                await rx.arecv(0, timeout=0)
        before = futures()
        for _ in range(300):
            with pytest.raises(TimeoutError):
                await rx.arecv(0, timeout=0)
        assert futures() - before < 10
        rx.close()

    pair.run(main())


def test_a_closed_loop_is_not_kept_alive_by_its_stack() -> None:
    """Stack.of registers a stack per loop; the registry must let a closed loop (and its sockets' driver) go."""
    import weakref

    async def use() -> None:
        with Stack.current().open(socket.AF_INET, socket.SOCK_DGRAM, backend="kernel") as sock:
            sock.bind(("127.0.0.1", 0))

    for make in (asyncio.new_event_loop, lambda: UsernetSelectorEventLoop()):
        loop = make()
        loop.run_until_complete(use())
        loop.close()
        gone = weakref.ref(loop)
        del loop
        gc.collect()
        assert gone() is None


def test_closing_again_after_the_stack_stopped_is_harmless() -> None:
    wire = MemoryWire(time.monotonic)
    host = Host(wire.a, Interface(InterfaceConfig.from_strings(wire.a.mac, [f"{A_IP}/24"])))
    stack = Stack.start(host=host)
    sockets = [stack.open(socket.AF_INET, socket.SOCK_DGRAM, backend=b) for b in ("usernet", "kernel")]
    stack.close()
    for sock in sockets:
        sock.close()  # already closed by the stack, whose loop is gone now
    stack.close()
    gc.collect()  # what earlier tests left to the GC warns now, not in the block
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(RuntimeError, match="closed"):
            stack.open(backend="kernel")  # the kernel socket it made is closed, not left to the GC
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_calls_from_threads_refuse_a_loop_that_is_not_running() -> None:
    """A stopped (not closed) loop would hold a thread's call forever: it is refused instead,
    both up front and when the loop stops with the call queued, and the abandoned call never runs."""
    import threading

    queued = threading.Event()

    class Loop(asyncio.SelectorEventLoop):
        def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> asyncio.Handle:
            handle = super().call_soon_threadsafe(*args, **kwargs)
            queued.set()
            return handle

    loop = Loop()
    ran: list[str] = []
    errors: list[RuntimeError] = []

    async def make() -> Stack:
        return Stack.current()

    stack = loop.run_until_complete(make())

    def call_from_thread(tag: str) -> threading.Thread:
        def body() -> None:
            try:
                stack.call(ran.append, tag)
            except RuntimeError as exc:
                errors.append(exc)

        thread = threading.Thread(target=body)
        thread.start()
        return thread

    worker = call_from_thread("stopped")
    worker.join(10)
    assert not worker.is_alive() and "not running" in str(errors.pop())

    workers: list[threading.Thread] = []

    def busy_then_stop() -> None:
        """The loop's thread is busy while the worker queues its call, then the loop stops."""
        workers.append(call_from_thread("late"))
        assert queued.wait(10)
        loop.stop()

    loop.call_soon(busy_then_stop)
    loop.run_forever()
    workers[0].join(10)
    assert not workers[0].is_alive() and "not running" in str(errors.pop())
    loop.run_until_complete(asyncio.sleep(0))  # the abandoned call's turn comes: it must not run
    assert ran == []
    loop.close()
