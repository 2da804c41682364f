"""`create_server` on usernet: listeners, accepting, and asyncio's Server interface.

Listening starts when the server is made, so connections that complete their
handshake before `start_serving` wait in the listener's accept queue (up to
`backlog`), as they would in a kernel's. `wait_closed` has the Python 3.12+ meaning on
every Python: the server is closed and every connection it accepted has ended.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl as ssl_module
from collections.abc import Callable, Iterable

from usernet.aio import stream, tls
from usernet.aio.addresses import SockAddr, family_of, name, pack
from usernet.aio.driver import Driver
from usernet.aio.stream import StreamTransport
from usernet.aio.transport import Address, PseudoSocket
from usernet.stack.tcp.layer import ANY, TcpListener

__all__ = ["Server", "get_listener_option", "kernel_fastopen", "listen", "set_listener_option"]


class _Listening:
    """One listener as the driver's owner and as the owner of the pseudo-socket in `Server.sockets`."""

    __slots__ = ("listener", "server", "socket")

    def __init__(self, server: Server, listener: TcpListener) -> None:
        self.server = server
        self.listener = listener
        self.socket = PseudoSocket(self, socket.SOCK_STREAM, socket.IPPROTO_TCP, family_of(listener.local[0]))

    def stack_ready(self) -> None:
        self.server.accept(self.listener)
        if self.socket.descriptor is not None:
            self.socket.sync()

    def stack_detached(self) -> None:
        self.server.stack_detached()

    def sockname(self) -> SockAddr:
        return name(self.listener.local)

    def peername(self) -> Address | None:
        return None

    def apply_option(self, level: int, optname: int, value: int | bytes) -> bool:
        return set_listener_option(self.listener, level, optname, value)

    def live_option(self, level: int, optname: int) -> int | None:
        return get_listener_option(self.listener, level, optname)

    def readiness(self) -> tuple[bool, bool]:
        return self.listener.pending > 0, False

    def close(self) -> None:
        """The program closed a socket of `Server.sockets`: the server closes, as asyncio's does."""
        self.server.close()


class Server(asyncio.AbstractServer):
    """What `loop.create_server` returns for servers on usernet."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        driver: Driver,
        listeners: Iterable[TcpListener],
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        *,
        ssl: ssl_module.SSLContext | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        keep_alive: bool | None = None,
        kernel_sockets: Iterable[socket.socket] = (),
    ) -> None:
        self._loop = loop
        self._driver = driver
        self._listening = [_Listening(self, listener) for listener in listeners]
        self._protocol_factory = protocol_factory
        self._ssl = ssl
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._keep_alive = keep_alive
        self._kernel_sockets = list(kernel_sockets)
        self._clients: dict[StreamTransport, None] = {}
        self._serving = False
        self._closed = False
        self._waiters: list[asyncio.Future[None]] = []
        self._serving_forever: asyncio.Future[None] | None = None
        for entry in self._listening:
            driver.register(entry.listener, entry)

    def __repr__(self) -> str:
        return f"<usernet Server sockets={self.sockets!r}>"

    # -- asyncio.AbstractServer --------------------------------------------------------------

    @property
    def sockets(self) -> tuple[PseudoSocket, ...]:
        if self._closed:
            return ()
        return tuple(entry.socket for entry in self._listening)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving and not self._closed

    async def start_serving(self) -> None:
        self._start_serving()
        await asyncio.sleep(0)

    async def serve_forever(self) -> None:
        if self._serving_forever is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._closed:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever = self._loop.create_future()
        try:
            await self._serving_forever
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._serving = False
        now = self._loop.time()
        for entry in self._listening:
            self._driver.unregister(entry.listener)
            entry.listener.close(now)
            entry.socket.release()
        self._driver.request_flush()
        for sock in self._kernel_sockets:
            sock.close()
        if self._serving_forever is not None and not self._serving_forever.done():
            self._serving_forever.cancel()
        self._wake_if_done()

    async def wait_closed(self) -> None:
        if self._closed and not self._clients:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def close_clients(self) -> None:
        for transport in list(self._clients):
            transport.close()

    def abort_clients(self) -> None:
        for transport in list(self._clients):
            transport.abort()

    # -- accepting -----------------------------------------------------------------------------

    def _start_serving(self) -> None:
        if self._serving or self._closed:
            return
        self._serving = True
        for entry in self._listening:
            self.accept(entry.listener)

    def accept(self, listener: TcpListener) -> None:
        """Take every connection waiting on `listener` (one of this server's): a transport each.

        Called when the listener has news (its `_Listening` owner) and at `start_serving`;
        while not serving, connections stay in the listener's accept queue. Inside the
        driver's pump (the listener's news) each protocol hears `connection_made` at once,
        and the request that came with the handshake's ACK, so its answer leaves with the
        pump's flush: two loop iterations (a `call_soon` for the start, another for the
        flush its write asked for) less per connection. From `start_serving`, inside the
        program's own code, it is scheduled, as asyncio's transports do it.
        """
        if not self._serving:
            return
        loop = self._loop
        driver = self._driver
        in_pump = driver.pump_time is not None
        while self._serving and (conn := listener.accept()) is not None:
            if self._keep_alive:
                conn.set_option("keepalive", True)
            try:
                protocol = self._protocol_factory()
                if self._ssl is not None:
                    protocol = tls.protocol(
                        loop, protocol, self._ssl, None, server_side=True, server_hostname=None,
                        handshake_timeout=self._ssl_handshake_timeout, shutdown_timeout=self._ssl_shutdown_timeout,
                    )  # fmt: skip  # argument groups a line, as SSLProtocol's signature reads
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                conn.abort(loop.time())
                loop.call_exception_handler(
                    {
                        "message": "Error in the protocol factory of a usernet server",
                        "exception": exc,
                        "socket": self.sockets[0] if self.sockets else None,
                    }
                )
                continue
            transport = StreamTransport(loop, driver, conn, protocol, None, server=self, scheduled=not in_pump)
            if in_pump:
                try:
                    transport.start()
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:  # as a callback's exception: reported, the others still accepted
                    loop.call_exception_handler(
                        {
                            "message": "Exception in connection_made of a usernet server's protocol",
                            "exception": exc,
                            "transport": transport,
                            "protocol": protocol,
                        }
                    )
        driver.request_flush()

    def attach(self, transport: StreamTransport) -> None:
        """A transport of a connection this server accepted starts: `wait_closed` waits for it."""
        self._clients[transport] = None

    def detach(self, transport: StreamTransport) -> None:
        """That transport's connection_lost ran: `wait_closed` may return once none is left."""
        self._clients.pop(transport, None)
        self._wake_if_done()

    def stack_detached(self) -> None:
        """The loop stopped driving the stack: the listeners are gone."""
        self._closed = True
        self._serving = False
        self._clients.clear()
        self._wake_if_done()

    def _wake_if_done(self) -> None:
        if not self._closed or self._clients:
            return
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


def set_listener_option(listener: TcpListener, level: int, optname: int, value: int | bytes) -> bool:
    """TCP_FASTOPEN on a listener: the Fast Open queue length (0 serves none); an option that
    changes a connection (IP_TTL, TCP_NODELAY, SO_KEEPALIVE, SO_RCVBUF...): for the connections it
    accepts from now on, as Linux's inherit it. False for other options."""
    if (level, optname) != (socket.IPPROTO_TCP, socket.TCP_FASTOPEN):
        setting = stream.connection_option(level, optname, value)
        if setting is None:
            return False
        try:
            listener.set_option(*setting)
        except ValueError as exc:
            raise OSError(errno.EINVAL, str(exc)) from None
        return True
    number = int.from_bytes(value[:4], "little", signed=True) if isinstance(value, bytes) else int(value)
    if number < 0:
        raise OSError(errno.EINVAL, "TCP_FASTOPEN is a queue length and cannot be negative")
    listener.fastopen = number
    return True


def get_listener_option(listener: TcpListener, level: int, optname: int) -> int | None:
    """The live value of a listener's option (SO_ACCEPTCONN, TCP_FASTOPEN, one set for its
    connections), or None."""
    if (level, optname) == (socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        return 1
    if (level, optname) == (socket.IPPROTO_TCP, socket.TCP_FASTOPEN):
        return listener.fastopen
    return stream.option_value(level, optname, listener.options)


def kernel_fastopen(sock: socket.socket) -> int:
    """The TCP_FASTOPEN queue length a program set on a kernel socket that usernet's listener replaces."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN)
    except OSError:
        return 0


def listen(driver: Driver, hosts: list[str | None], port: int, backlog: int, fastopen: int = 0) -> list[TcpListener]:
    """One listener per host (None: any), on `port` or, with 0, on one ephemeral port they all share;
    `fastopen` is their TCP_FASTOPEN queue length."""
    tcp = driver.host.iface.tcp
    listeners: list[TcpListener] = []
    try:
        for host in hosts:
            addr = ANY if host is None else pack(host)
            adopted = driver.host.adopted.pop((addr, port), None) if port else None
            if adopted is not None:  # handed over by the process this one replaced (drivers/handover.py)
                listeners.append(adopted)
                continue
            try:
                listener = tcp.listen((addr, port), backlog)
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"error while attempting to bind on address {(host or '0.0.0.0', port)!r}: {exc.strerror}",
                ) from None
            port = listener.local[1]
            listener.fastopen = fastopen
            listeners.append(listener)
    except BaseException:
        now = driver.loop.time()
        for listener in listeners:
            listener.close(now)
        raise
    return listeners
