"""The socket-level loop methods on usernet: who holds a stack socket when no transport does.

Programs and libraries (anyio's listeners, aiohttp's connector) make socket objects and
drive them with `loop.sock_accept`, `sock_connect`, `sock_recv`, `sock_sendall`,
`sock_recvfrom`, `sock_sendto`, then often hand them to `connect_accepted_socket` or
`create_connection(sock=)`. Two kinds of socket object reach usernet here:

- a kernel socket the router sends to usernet (bound to usernet's address or to the
  wildcard): it stays a kernel socket, unconnected, and the stack socket that does its
  work is remembered against it (`Held.of`), so the later calls find it; it is closed
  with the transport or holder that takes the work over;
- a PseudoSocket that `sock_accept` returned for an accepted connection, held by a
  `Held` until a transport takes it over (and with it the socket's descriptor).

A `Held` is the driver's owner of its stack socket: the stack's news wakes whoever
waits in a `sock_*` call and keeps the PseudoSocket's descriptor true.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import weakref
from collections.abc import Collection
from typing import Any

from usernet.aio import addresses, datagram, server, stream
from usernet.aio.addresses import SockAddr, name
from usernet.aio.driver import Driver
from usernet.aio.transport import Address, PseudoSocket
from usernet.stack.tcp.connection import TcpConnection
from usernet.stack.tcp.layer import TcpListener
from usernet.stack.tcp.states import State
from usernet.stack.udp import UdpSocket

__all__ = ["IP_FREEBIND", "Held", "Holders", "bind_anywhere"]

StackSocket = TcpConnection | TcpListener | UdpSocket


def _address(addr: tuple[bytes, int] | None) -> SockAddr | None:
    return None if addr is None else name(addr)


class Held:
    """One stack socket driven by the socket-level methods, with the PseudoSocket that stands for it."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        driver: Driver,
        sock: StackSocket,
        family: int = socket.AF_INET,
        also: TcpListener | None = None,
    ) -> None:
        self.loop = loop
        self.driver = driver
        self.sock = sock
        self.also = also  # the IPv6 half of a dual-stack listener whose `sock` is the IPv4 wildcard
        self.kernel: weakref.ref[socket.socket] | None = None
        self._finalizer: Any = None  # a weakref.finalize while a kernel socket object is watched
        kind = socket.SOCK_DGRAM if isinstance(sock, UdpSocket) else socket.SOCK_STREAM
        proto = socket.IPPROTO_UDP if kind == socket.SOCK_DGRAM else socket.IPPROTO_TCP
        # Made at once, unlike a transport's: it is what sock_accept returns, and the holder's
        # closed state. family AF_INET6: behind a dual-stack listener ("::", IPV6_V6ONLY off).
        self.pseudo = PseudoSocket(self, kind, proto, family)
        self._waiters: list[asyncio.Future[None]] = []
        driver.register(sock, self)
        if also is not None:
            driver.register(also, self)

    # -- the driver's owner ----------------------------------------------------------------

    def stack_ready(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self.pseudo.descriptor is not None:
            self.pseudo.sync()

    def stack_detached(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(
                    ConnectionAbortedError(errno.ECONNABORTED, "the event loop driving usernet was closed")
                )
        self.pseudo.release()

    async def news(self) -> None:
        """Wait until the stack marks the socket ready (data, room, a connection, a state change)."""
        if self.pseudo.closed:
            raise OSError(errno.EBADF, "Bad file descriptor: the socket is closed")
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter.cancelled():  # a cancelled call (a timeout) leaves nothing behind
                with contextlib.suppress(ValueError):  # stack_ready may have taken the list already
                    self._waiters.remove(waiter)

    def changed(self) -> None:
        """The program read or wrote: the descriptor may have to say so."""
        self.driver.request_flush()
        if self.pseudo.descriptor is not None:
            self.pseudo.sync()

    def hand_over(self) -> None:
        """A transport takes the stack socket (and the PseudoSocket) over: stop driving it from here."""
        self.driver.unregister(self.sock)
        self.forget_kernel()

    def watch(self, kernel: socket.socket) -> None:
        """Work for `kernel`: close with its object when it is collected (its close() is seen at the next call)."""
        self.kernel = weakref.ref(kernel)
        self._finalizer = weakref.finalize(kernel, self.close)

    def forget_kernel(self) -> None:
        """The kernel socket object is no longer this holder's to close."""
        self.kernel = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None

    def udp(self) -> UdpSocket:
        """The stack socket, which the caller knows is a UDP one."""
        assert isinstance(self.sock, UdpSocket)
        return self.sock

    # -- the PseudoSocket's owner ------------------------------------------------------------

    def sockname(self) -> SockAddr:
        return name(self.sock.local if self.also is None else self.also.local)

    def peername(self) -> Address | None:
        return _address(getattr(self.sock, "remote", None))

    def apply_option(self, level: int, optname: int, value: int | bytes) -> bool:
        sock = self.sock
        if isinstance(sock, TcpConnection):
            return stream.set_option(sock, level, optname, value)
        if isinstance(sock, UdpSocket):
            return datagram.set_option(sock, level, optname, value)
        return server.set_listener_option(sock, level, optname, value)

    def live_option(self, level: int, optname: int) -> int | None:
        sock = self.sock
        if isinstance(sock, TcpConnection):
            return stream.get_option(sock, level, optname)
        if isinstance(sock, UdpSocket):
            return datagram.get_option(sock, level, optname)
        return server.get_listener_option(sock, level, optname)

    def readiness(self) -> tuple[bool, bool]:
        sock = self.sock
        if isinstance(sock, TcpConnection):
            return stream.readiness(sock)
        if isinstance(sock, UdpSocket):
            return datagram.readiness(sock)
        return sock.pending > 0 or (self.also is not None and self.also.pending > 0), False

    def close(self) -> None:
        """Close as a kernel socket closes: a connection sends its FIN (a reset with unread data)."""
        if self.pseudo.closed:
            return
        self.driver.unregister(self.sock)
        sock = self.sock
        if isinstance(sock, UdpSocket):
            sock.close()
        else:
            sock.close(self.loop.time())
        if self.also is not None:
            self.driver.unregister(self.also)
            self.also.close(self.loop.time())
        self.driver.request_flush()
        kernel = self.kernel() if self.kernel is not None else None
        self.forget_kernel()
        if kernel is not None:
            kernel.close()
        self.stack_detached()


class Holders:
    """The Held stack sockets of one loop, keyed by the kernel socket objects they work for."""

    def __init__(self) -> None:
        self._held: weakref.WeakKeyDictionary[socket.socket, Held] = weakref.WeakKeyDictionary()

    def add(self, kernel: socket.socket, held: Held) -> Held:
        """Remember `held` for `kernel`; it is closed with the kernel socket's object (at the latest when collected)."""
        held.watch(kernel)
        self._held[kernel] = held
        return held

    def find(self, sock: object) -> Held | None:
        """The Held behind `sock` (a PseudoSocket from sock_accept, or a kernel socket routed to usernet), or None."""
        if isinstance(sock, PseudoSocket):
            owner = sock.owner
            if isinstance(owner, Held):
                return owner
            raise OSError(errno.EBUSY, "this usernet socket belongs to a transport or server: use that instead")
        held = self._held.get(sock)  # type: ignore[call-overload]
        if held is not None and (held.pseudo.closed or sock.fileno() == -1):  # type: ignore[attr-defined]
            held.close()  # the program closed the kernel socket object
            del self._held[sock]  # type: ignore[arg-type]
            return None
        return held

    def take(self, sock: object) -> Held | None:
        """Hand the stack socket over to a transport: `sock` no longer reaches it."""
        held = self.find(sock)
        if held is not None:
            if not isinstance(sock, PseudoSocket):
                del self._held[sock]  # type: ignore[arg-type]
            held.hand_over()
        return held


async def recv_into(held: Held, buf: memoryview) -> int:
    """Wait for bytes (or EOF, which gives 0) and copy them into `buf`."""
    conn = held.sock
    assert isinstance(conn, TcpConnection)
    while True:
        if conn.readable:
            n = conn.receive_into(buf)
            held.changed()  # the read may open the window
            return n
        if conn.error is not None:
            raise conn.error
        if conn.at_eof or conn.state == State.CLOSED:
            return 0
        await held.news()


async def sendall(held: Held, data: memoryview) -> None:
    """Put all of `data` into the stack, waiting for room as the peer acknowledges."""
    conn = held.sock
    assert isinstance(conn, TcpConnection)
    now = held.loop.time
    while data:
        taken = conn.send(data, now())
        if taken:
            data = data[taken:]
            held.changed()
        if data:
            await held.news()


async def accept(held: Held) -> tuple[PseudoSocket, Address]:
    """Wait for an established connection on a listener; it comes back held, as `sock_accept` returns it."""
    listener = held.sock
    assert isinstance(listener, TcpListener)
    also = held.also
    while (conn := listener.accept() or (also.accept() if also is not None else None)) is None:
        await held.news()
    held.changed()
    accepted = Held(held.loop, held.driver, conn, held.pseudo.family)
    return accepted.pseudo, accepted.pseudo.getpeername()


async def recvfrom(held: Held, size: int) -> tuple[bytes, Address]:
    """Wait for a datagram (or an ICMP error, raised as the kernel raises it) and return up to `size` bytes of it."""
    sock = held.sock
    assert isinstance(sock, UdpSocket)
    while True:
        if sock.errors:
            error = sock.errors.popleft()
            held.changed()
            raise error
        if sock.queue:
            data, source = sock.queue.popleft()
            held.changed()
            return data[:size], _address(source)  # type: ignore[return-value]
        await held.news()


def sendto(held: Held, data: bytes | bytearray | memoryview, address: Address | None) -> int:
    """Send one datagram (to the connected peer when `address` is None); returns its size."""
    sock = held.sock
    assert isinstance(sock, UdpSocket)
    remote = None if address is None else (addresses.pack(address[0]), address[1])
    sock.sendto(data, remote, held.loop.time())
    held.changed()
    return len(data)


#: Linux's IP_FREEBIND (Python has the name only from 3.12).
IP_FREEBIND: int = getattr(socket, "IP_FREEBIND", 15)


def bind_anywhere(addresses: Collection[str]) -> type[socket.socket]:
    """A `socket.socket` subclass whose `bind` also takes usernet's addresses, for `install()` to put in place.

    The kernel refuses to bind an address it does not own (EADDRNOTAVAIL), and
    libraries (asyncssh's port forwarding, servers that bind before `create_server(sock=)`)
    bind their own socket first. When that happens for one of usernet's addresses, the
    bind is retried with IP_FREEBIND: the kernel then reserves the port for the
    address without owning it, and the socket is usernet's when the loop gets it. Only
    the loop makes such a socket carry traffic; blocking calls on it go to the kernel,
    which has nothing at that address.
    """

    class UsernetBindableSocket(socket.socket):
        __slots__ = ()

        def bind(self, address: Any, /) -> None:
            try:
                super().bind(address)
            except OSError as exc:
                if exc.errno != errno.EADDRNOTAVAIL or self.family != socket.AF_INET or not _usernet_address(address):
                    raise
                self.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
                super().bind(address)

    def _usernet_address(address: Any) -> bool:
        return isinstance(address, tuple) and len(address) == 2 and address[0] in own

    own = frozenset(addresses)

    UsernetBindableSocket.__qualname__ = UsernetBindableSocket.__name__ = "socket"
    UsernetBindableSocket.__module__ = "socket"
    return UsernetBindableSocket
