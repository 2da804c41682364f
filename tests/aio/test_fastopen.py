"""TCP Fast Open through the asyncio face: TCP_FASTOPEN on a listener, TCP_FASTOPEN_CONNECT on a
client's socket, as Linux programs set them; data in the SYN both ways."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from tests.aio.conftest import A_IP, B_IP, Pair, make_pair, serve_on_b
from usernet.aio.stream import TCP_FASTOPEN_CONNECT, connect, open_stream
from usernet.stack import TcpConfig
from usernet.stack.tcp.states import State


@pytest.fixture
def tfo(loop_kind: str) -> Iterator[Pair]:
    with make_pair(loop_kind, TcpConfig(fastopen=3)) as made:
        yield made


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]  # a stream transport


class Collect(asyncio.Protocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def data_received(self, data: bytes) -> None:
        self.received.put_nowait(data)


def test_a_client_socket_with_tcp_fastopen_connect_sends_its_first_data_in_the_syn(tfo: Pair) -> None:
    async def main() -> None:
        server = await serve_on_b(tfo, Echo)
        listening = server.sockets[0]
        listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 8)
        assert listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN) == 8
        port = listening.getsockname()[1]
        for attempt in range(2):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
                await tfo.loop.sock_connect(sock, (B_IP, port))
                [conn] = [c for c in tfo.a.iface.tcp.connections() if c.state in (State.SYN_SENT, State.ESTABLISHED)]
                # the first connects at once and asks for a cookie; the second waits for data, as Linux's
                assert conn.fastopen_deferred == (attempt == 1)
                await tfo.loop.sock_sendall(sock, b"ping %d" % attempt)
                assert await tfo.loop.sock_recv(sock, 100) == b"ping %d" % attempt
                assert conn.state == State.ESTABLISHED
            await asyncio.sleep(0.01)
        counters = tfo.a.iface.counters
        assert counters.tcp_fastopen_active == 1 and counters.tcp_fastopen_active_fail == 0
        assert tfo.b.iface.counters.tcp_fastopen_passive == 1
        assert tfo.b.iface.counters.tcp_fastopen_cookie_requests == 1
        server.close()

    tfo.run(main())


def test_a_listening_socket_with_tcp_fastopen_takes_data_from_the_syn(tfo: Pair) -> None:
    async def main() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("0.0.0.0", 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 4)  # before create_server(sock=), as servers do
        port = sock.getsockname()[1]
        protocols: list[Collect] = []

        def factory() -> Collect:
            protocols.append(Collect())
            return protocols[-1]

        server = await tfo.loop.create_server(factory, sock=sock)
        assert server.sockets[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN) == 4
        for attempt in range(2):
            conn = await connect(tfo.loop, tfo.b_driver, (A_IP, port), None, fastopen=True)
            transport, _ = await open_stream(tfo.loop, tfo.b_driver, conn, asyncio.Protocol)
            transport.write(b"hello %d" % attempt)  # type: ignore[attr-defined]  # a stream transport
            while len(protocols) <= attempt:
                await asyncio.sleep(0.001)
            assert await protocols[-1].received.get() == b"hello %d" % attempt
            while conn.state != State.ESTABLISHED:  # the server had the data before the client its SYN-ACK
                await asyncio.sleep(0.001)
            transport.close()
        assert tfo.a.iface.counters.tcp_fastopen_passive == 1
        assert tfo.b.iface.counters.tcp_fastopen_active == 1
        server.close()

    tfo.run(main())


def test_fast_open_off_in_the_config_leaves_the_socket_options_harmless(pair: Pair) -> None:
    async def main() -> None:
        server = await serve_on_b(pair, Echo)
        server.sockets[0].setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 8)
        port = server.sockets[0].getsockname()[1]
        for _ in range(2):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
                await pair.loop.sock_connect(sock, (B_IP, port))
                await pair.loop.sock_sendall(sock, b"plain")
                assert await pair.loop.sock_recv(sock, 100) == b"plain"
        assert pair.a.iface.counters.tcp_fastopen_active == pair.b.iface.counters.tcp_fastopen_passive == 0
        server.close()

    pair.run(main())
