"""Kernel socket objects whose connection lives on usernet: `sock_connect`, `sock_recv`, `sock_sendall`.

Some clients (aiohttp through aiohappyeyeballs) make a kernel socket, `await
loop.sock_connect(sock, addr)`, then `loop.create_connection(sock=sock)`. When `addr`
is on usernet, the kernel socket stays unconnected: the connection is made on usernet
and remembered against the socket object, so the `sock_*` methods and
`create_connection(sock=...)` find it. The kernel socket is closed with the transport
that takes the connection over.
"""

from __future__ import annotations

import asyncio
import socket
import weakref

from usernet.aio.driver import Driver
from usernet.aio.stream import news
from usernet.stack.tcp.connection import TcpConnection
from usernet.stack.tcp.states import State

__all__ = ["Connected", "recv_into", "sendall"]


class Connected:
    """The usernet connections of one loop, keyed by the kernel socket object they stand behind."""

    def __init__(self) -> None:
        self._conns: weakref.WeakKeyDictionary[socket.socket, TcpConnection] = weakref.WeakKeyDictionary()

    def add(self, sock: socket.socket, conn: TcpConnection) -> None:
        self._conns[sock] = conn

    def get(self, sock: socket.socket) -> TcpConnection | None:
        return self._conns.get(sock)

    def take(self, sock: socket.socket) -> TcpConnection | None:
        """Hand the connection over (to a transport): the socket no longer reaches it."""
        return self._conns.pop(sock, None)


async def recv_into(loop: asyncio.AbstractEventLoop, driver: Driver, conn: TcpConnection, buf: memoryview) -> int:
    """Wait for bytes (or EOF, which gives 0) and copy them into `buf`."""
    while True:
        if conn.readable:
            n = conn.receive_into(buf)
            driver.request_flush()  # the read may open the window
            return n
        if conn.error is not None:
            raise conn.error
        if conn.at_eof or conn.state == State.CLOSED:
            return 0
        await news(loop, driver, conn)


async def sendall(loop: asyncio.AbstractEventLoop, driver: Driver, conn: TcpConnection, data: memoryview) -> None:
    """Put all of `data` into the stack, waiting for room as the peer acknowledges."""
    while data:
        taken = conn.send(data, loop.time())
        if taken:
            driver.request_flush()
            data = data[taken:]
        if data:
            await news(loop, driver, conn)
