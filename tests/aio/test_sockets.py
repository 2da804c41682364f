"""Socket objects on usernet: the real descriptor's readiness, and the socket-level loop methods.

Two stacks on an in-memory wire in one loop (tests/aio/conftest.py). The descriptor is
checked against the stack socket at the same instant, after every step of
hypothesis-generated sequences of data, pauses, FIN and RST, so no timing is assumed.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import select
import selectors
import socket
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.aio.conftest import A_IP, B_IP, LOOPS, Pair, connect_from_b, make_pair, serve_on_b
from usernet.aio.sockets import IP_FREEBIND, bind_anywhere
from usernet.link.sandbox import Sandbox
from usernet.stack.tcp.config import TcpConfig
from usernet.stack.tcp.connection import TcpConnection
from usernet.stack.tcp.states import State

PEER_ACTIONS = [
    st.tuples(st.just("peer_send"), st.integers(1, 200_000)),
    st.tuples(st.sampled_from(["peer_pause", "peer_resume", "peer_fin", "peer_rst"])),
]
TRANSPORT_ACTIONS = st.lists(
    st.one_of(
        *PEER_ACTIONS,
        st.tuples(st.sampled_from(["pause", "resume"])),
        st.tuples(st.just("write"), st.integers(1, 400_000)),
    ),
    max_size=12,
)
HELD_ACTIONS = st.lists(
    st.one_of(*PEER_ACTIONS, st.tuples(st.just("recv"), st.integers(1, 100_000))),
    max_size=12,
)


class Peer(asyncio.Protocol):
    """Host B's end: keeps its transport, ignores what it gets; `fin_sent` once the steps wrote its EOF."""

    transport: asyncio.Transport
    fin_sent = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return True


class Keeper(asyncio.Protocol):
    """Host A's end under test: stays open after a FIN, as anyio's StreamProtocol does."""

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return True


def polled(fd: int) -> tuple[bool, bool]:
    """(readable, writable) by select.select and by the default selector; they must agree."""
    readable, writable, _ = select.select([fd], [fd], [], 0)
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ | selectors.EVENT_WRITE)
        events = selector.select(0)
    mask = events[0][1] if events else 0
    assert (bool(mask & selectors.EVENT_READ), bool(mask & selectors.EVENT_WRITE)) == (bool(readable), bool(writable))
    return bool(readable), bool(writable)


def expected(conn: TcpConnection) -> tuple[bool, bool]:
    """What Linux's poll says of a TCP socket in this state (tcp_poll): data, FIN or error; room to send."""
    if conn.state == State.CLOSED:
        return True, True
    return conn.readable > 0 or conn.at_eof, conn.send_space() > 0


def only_connection(pair: Pair) -> TcpConnection:
    (conn,) = pair.a.iface.tcp.connections()
    return conn


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0.002)


async def peer_step(pair: Pair, protocol: Peer, action: tuple[Any, ...]) -> None:
    kind = action[0]
    peer = protocol.transport
    if peer.is_closing() or (kind in ("peer_send", "peer_fin") and protocol.fin_sent):
        return
    if kind == "peer_send":
        peer.write(os.urandom(action[1]))
    elif kind == "peer_pause":
        peer.pause_reading()
    elif kind == "peer_resume":
        peer.resume_reading()
    elif kind == "peer_fin":
        peer.write_eof()
        protocol.fin_sent = True  # a second FIN or data after it: skipped
    elif kind == "peer_rst":
        for conn in pair.b.iface.tcp.connections():  # the one connection, unless it has ended already
            conn.abort(pair.loop.time())
        pair.b_driver.request_flush()


async def transport_sequence(pair: Pair, actions: list[tuple[Any, ...]]) -> None:
    peers: list[Peer] = []

    def factory() -> Peer:
        peers.append(Peer())
        return peers[-1]

    server = await serve_on_b(pair, factory)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await pair.loop.create_connection(Keeper, B_IP, port)
    sock = transport.get_extra_info("socket")
    fd = sock.fileno()
    assert fd >= 0
    await settle()
    conn = only_connection(pair)
    for action in actions:
        if action[0] == "pause":
            transport.pause_reading()
        elif action[0] == "resume":
            transport.resume_reading()
        elif action[0] == "write":
            transport.write(b"x" * action[1])
        else:
            await peer_step(pair, peers[0], action)
        await settle()
        if transport.is_closing():  # a reset: the transport closed its socket, as asyncio's do
            assert sock.fileno() == -1
            return
        assert polled(fd) == expected(conn), action
    transport.abort()
    server.close()


@pytest.mark.parametrize("loop_kind", sorted(LOOPS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=TRANSPORT_ACTIONS)
def test_a_transports_descriptor_polls_as_its_connection(loop_kind: str, actions: list[tuple[Any, ...]]) -> None:
    with make_pair(loop_kind) as pair:
        pair.run(transport_sequence(pair, actions))


@pytest.mark.parametrize("loop_kind", sorted(LOOPS))
def test_a_write_that_exactly_fills_the_send_buffer_is_writable_again_once_acknowledged(loop_kind: str) -> None:
    """The write took every byte (no short write) but left no room: the ACKs that free room must
    still wake the socket, or its descriptor keeps polling unwritable (seen under load)."""

    async def scenario(pair: Pair) -> None:
        peers: list[Peer] = []
        server = await serve_on_b(pair, lambda: peers.append(Peer()) or peers[-1])
        transport, _ = await pair.loop.create_connection(Keeper, B_IP, server.sockets[0].getsockname()[1])
        fd = transport.get_extra_info("socket").fileno()
        await settle()
        conn = only_connection(pair)
        transport.write(b"x" * conn.send_space())
        assert polled(fd) == (False, False)  # full: taken whole, nothing left for the transport to queue
        for _ in range(500):  # until the peer has acknowledged it all (bounded: 1 s)
            if conn.send_space() == TcpConfig().sndbuf:
                break
            await asyncio.sleep(0.002)
        assert polled(fd) == expected(conn) == (False, True)
        transport.abort()
        server.close()

    with make_pair(loop_kind) as pair:
        pair.run(scenario(pair))


def freebound(kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A kernel socket bound to usernet's address (IP_FREEBIND: the kernel does not own it); it carries no traffic."""
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
    sock.bind((A_IP, 0))
    return sock


async def held_sequence(pair: Pair, actions: list[tuple[Any, ...]]) -> None:
    loop = pair.loop
    with freebound() as listening:
        listening.listen()
        port = listening.getsockname()[1]
        accepting = asyncio.ensure_future(loop.sock_accept(listening))
        _, peer = await connect_from_b(pair, Peer, port)
        sock, address = await accepting
        assert address[0] == B_IP and sock.getpeername() == address
        fd = sock.fileno()
        await settle()
        conn = only_connection(pair)
        for action in actions:
            if action[0] == "recv":
                if conn.readable or conn.at_eof or conn.state == State.CLOSED:
                    try:
                        await loop.sock_recv(sock, action[1])
                    except ConnectionError:
                        pass
            else:
                await peer_step(pair, peer, action)
            await settle()
            assert sock.fileno() == fd  # no transport: the socket stays open through FIN and RST
            assert polled(fd) == expected(conn), action
        sock.close()
        assert sock.fileno() == -1


@pytest.mark.parametrize("loop_kind", sorted(LOOPS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=HELD_ACTIONS)
def test_an_accepted_sockets_descriptor_polls_as_its_connection(loop_kind: str, actions: list[tuple[Any, ...]]) -> None:
    with make_pair(loop_kind) as pair:
        pair.run(held_sequence(pair, actions))


def test_socket_level_methods_then_a_transport_on_the_accepted_socket(pair: Pair) -> None:
    async def main() -> None:
        loop = pair.loop
        with freebound() as listening:
            listening.listen()
            port = listening.getsockname()[1]
            accepting = asyncio.ensure_future(loop.sock_accept(listening))
            got: list[bytes] = []

            class Collect(Peer):
                def data_received(self, data: bytes) -> None:
                    got.append(data)

            peer, _ = await connect_from_b(pair, Collect, port)
            sock, _ = await accepting
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as anyio does
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            peer.write(b"ping")
            assert await loop.sock_recv(sock, 100) == b"ping"
            await loop.sock_sendall(sock, b"pong" * 100_000)
            buf = bytearray(10)
            peer.write(b"0123456789")
            assert await loop.sock_recv_into(sock, buf) == 10 and buf == b"0123456789"
            reader = asyncio.StreamReader()
            transport, _ = await loop.connect_accepted_socket(lambda: asyncio.StreamReaderProtocol(reader), sock)
            assert transport.get_extra_info("socket") is sock  # the same object, descriptor and all
            peer.write(b"after")
            assert await reader.readexactly(5) == b"after"
            with pytest.raises(OSError) as info:
                await loop.sock_recv(sock, 1)  # the transport's now
            assert info.value.errno == errno.EBUSY
            transport.close()
            await settle()
            assert sock.fileno() == -1
            while sum(map(len, got)) < 400_000:
                await asyncio.sleep(0.01)
            assert b"".join(got) == b"pong" * 100_000

    pair.run(main())


def test_udp_socket_level_methods_and_datagram_endpoint_from_a_socket(pair: Pair) -> None:
    async def main() -> None:
        loop = pair.loop
        echo = pair.b.iface.open_udp((bytes(4), 7007))
        with freebound(socket.SOCK_DGRAM) as sock:
            assert await loop.sock_sendto(sock, b"hello", (B_IP, 7007)) == 5
            while (item := echo.recvfrom()) is None:
                await asyncio.sleep(0.002)
            data, source = item
            assert data == b"hello" and source == (socket.inet_aton(A_IP), sock.getsockname()[1])
            echo.sendto(b"back", source, loop.time())
            pair.b_driver.request_flush()
            assert await loop.sock_recvfrom(sock, 100) == (b"back", (B_IP, 7007))
        with freebound(socket.SOCK_DGRAM) as sock:
            port = sock.getsockname()[1]
            received: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()

            class Endpoint(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: Any) -> None:
                    received.put_nowait((data, addr))

            transport, _ = await loop.create_datagram_endpoint(Endpoint, sock=sock)
            assert transport.get_extra_info("sockname") == (A_IP, port)
            echo.sendto(b"to the endpoint", (socket.inet_aton(A_IP), port), loop.time())
            pair.b_driver.request_flush()
            assert await received.get() == (b"to the endpoint", (B_IP, 7007))
            transport.close()
            await settle()
            assert sock.fileno() == -1  # the kernel socket went with the transport

    pair.run(main())


def test_a_dual_stack_listener_on_the_wildcard_accepts_on_usernet(pair: Pair, sandbox: Sandbox) -> None:
    # anyio's create_tcp_listener() without local_host on a host with IPv6: "::", IPV6_V6ONLY off.
    # The kernel socket lives in a namespace of the test's own: nothing outside can reach it.
    async def main() -> None:
        listening = sandbox.socket(socket.AF_INET6, socket.SOCK_STREAM)
        listening.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        listening.bind(("::", 0))
        listening.listen()
        port = listening.getsockname()[1]
        accepting = asyncio.ensure_future(pair.loop.sock_accept(listening))
        peer, _ = await connect_from_b(pair, Peer, port)
        sock, address = await accepting
        assert sock.family == socket.AF_INET6
        assert address == ("::ffff:" + B_IP, peer.get_extra_info("sockname")[1], 0, 0) == sock.getpeername()
        assert sock.getsockname() == ("::ffff:" + A_IP, port, 0, 0)
        sock.close()
        listening.close()

    pair.run(main())


def test_the_runners_socket_class_binds_usernets_address_and_only_that() -> None:
    bindable = bind_anywhere([A_IP])
    with bindable(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((A_IP, 0))  # the kernel does not own it: bound with IP_FREEBIND
        assert sock.getsockname()[0] == A_IP
        assert isinstance(sock, socket.socket)
    with bindable(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(OSError) as info:
        sock.bind(("198.51.100.7", 0))  # not usernet's either: the kernel's refusal stands
    assert info.value.errno == errno.EADDRNOTAVAIL


def test_create_server_on_a_socket_bound_to_usernets_address(pair: Pair) -> None:
    # What asyncssh's forward_local_port does: bind, then create_server(sock=).
    async def main() -> None:
        sock = bind_anywhere([A_IP])(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((A_IP, 0))
        port = sock.getsockname()[1]
        received: asyncio.Queue[bytes] = asyncio.Queue()

        class Take(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                received.put_nowait(data)

        server = await pair.loop.create_server(Take, sock=sock)
        assert server.sockets[0].getsockname() == (A_IP, port)
        peer, _ = await connect_from_b(pair, Peer, port)
        peer.write(b"through the pre-bound socket")
        assert await received.get() == b"through the pre-bound socket"
        peer.close()
        server.close()
        await server.wait_closed()
        assert sock.fileno() == -1  # the kernel socket went with the server

    pair.run(main())


def test_cancelled_socket_level_calls_leave_no_waiter_behind(pair: Pair) -> None:
    """sock_recvfrom under a timeout, on a socket where nothing arrives, holds nothing per cancelled call."""

    def futures() -> int:
        gc.collect()
        return sum(isinstance(o, asyncio.Future) for o in gc.get_objects())

    async def main() -> None:
        with freebound(socket.SOCK_DGRAM) as sock:
            pair.b.iface.open_udp((bytes(4), 7007))  # no ICMP error comes back to end the waits
            await pair.loop.sock_sendto(sock, b"bind it", (B_IP, 7007))  # now held by usernet
            for _ in range(10):
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0):
                        await pair.loop.sock_recvfrom(sock, 100)
            before = futures()
            for _ in range(300):
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0):
                        await pair.loop.sock_recvfrom(sock, 100)
            assert futures() - before < 10

    pair.run(main())
