"""create_server on usernet and its Server: the stdlib's interface, on both base loops."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from tests.aio.conftest import A_IP, Pair, connect_from_b
from usernet.aio.server import Server


class Hold(asyncio.Protocol):
    """Keeps the connection open and says when it ends."""

    def __init__(self) -> None:
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


def test_port_zero_sockets_and_serving_state(pair: Pair) -> None:
    async def main() -> None:
        server = await pair.loop.create_server(Hold, host=A_IP, port=0, backlog=5, reuse_address=True, reuse_port=True)
        assert isinstance(server, Server) and server.get_loop() is pair.loop and server.is_serving()
        (sock,) = server.sockets
        host, port = sock.getsockname()
        assert host == A_IP and port > 0
        assert (sock.family, sock.type) == (socket.AF_INET, socket.SOCK_STREAM)
        with pytest.raises(OSError) as info:
            await pair.loop.create_server(Hold, host=A_IP, port=port)
        assert info.value.errno == errno.EADDRINUSE
        server.close()
        assert not server.is_serving() and server.sockets == ()
        await server.wait_closed()
        again = await pair.loop.create_server(Hold, host=[A_IP], port=port)
        assert again.sockets[0].getsockname() == (A_IP, port)
        again.close()

    pair.run(main())


def test_connections_wait_in_the_backlog_until_start_serving(pair: Pair) -> None:
    async def main() -> None:
        made: list[asyncio.BaseTransport] = []

        class Note(Hold):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                made.append(transport)

        server = await pair.loop.create_server(Note, port=0, start_serving=False)
        assert not server.is_serving()
        port = server.sockets[0].getsockname()[1]
        await connect_from_b(pair, Hold, port)  # the handshake completes: the listener queues it
        for _ in range(5):
            await asyncio.sleep(0.001)
        assert made == []
        await server.start_serving()
        assert server.is_serving()
        while not made:
            await asyncio.sleep(0.001)
        server.close()

    pair.run(main())


def test_wait_closed_waits_for_clients_and_close_clients_ends_them(pair: Pair) -> None:
    async def main() -> None:
        server = await pair.loop.create_server(Hold, port=0)
        port = server.sockets[0].getsockname()[1]
        _, first = await connect_from_b(pair, Hold, port)
        _, second = await connect_from_b(pair, Hold, port)
        while len(server._clients) < 2:  # type: ignore[attr-defined]  # the test looks inside on purpose
            await asyncio.sleep(0.001)
        server.close()
        waiting = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        server.close_clients()  # type: ignore[attr-defined]  # usernet's Server, typed as AbstractServer
        assert await first.lost is None and await second.lost is None  # type: ignore[attr-defined]  # the test's own protocol or server class
        await waiting

    pair.run(main())


def test_abort_clients_closes_them_at_once(pair: Pair) -> None:
    async def main() -> None:
        async with await pair.loop.create_server(Hold, port=0) as server:
            port = server.sockets[0].getsockname()[1]
            _, client = await connect_from_b(pair, Hold, port)
            while not server._clients:  # type: ignore[attr-defined]  # the test looks inside on purpose
                await asyncio.sleep(0.001)
            server.abort_clients()  # type: ignore[attr-defined]  # usernet's Server, typed as AbstractServer
            # As asyncio's transports close a kernel socket: a FIN (a RST only with unread bytes).
            assert await client.lost is None  # type: ignore[attr-defined]  # the test's own protocol or server class
        assert not server.is_serving()

    pair.run(main())


def test_serve_forever_ends_with_cancel(pair: Pair) -> None:
    async def main() -> None:
        server = await pair.loop.create_server(Hold, port=0, start_serving=False)
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        assert server.is_serving()
        with pytest.raises(RuntimeError, match="already being awaited"):
            await server.serve_forever()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()
        with pytest.raises(RuntimeError, match="is closed"):
            await server.serve_forever()

    pair.run(main())


def test_a_bound_kernel_socket_is_translated_to_a_usernet_listener(pair: Pair) -> None:
    async def main() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("0.0.0.0", 0))
        port = sock.getsockname()[1]
        server = await pair.loop.create_server(Hold, sock=sock)
        assert isinstance(server, Server) and server.sockets[0].getsockname() == ("0.0.0.0", port)
        _, _client = await connect_from_b(pair, Hold, port)
        server.close()
        assert sock.fileno() == -1
        with pytest.raises(OSError):
            await pair.loop.create_server(Hold, host=["127.0.0.1", A_IP], port=0)
        with pytest.raises(TypeError):
            await pair.loop.create_server(Hold, port=0, ssl=True)  # type: ignore[arg-type]  # wrong on purpose: the error is tested

    pair.run(main())
