"""TCP for asyncio programs: the stream transport (with its sendfile) and opening a connection.

The stack's send buffer (`TcpConfig.sndbuf`) plays the kernel socket buffer: a write
goes straight into it, and only what it cannot take waits in the transport. So
`get_write_buffer_size()` counts what the stack refused, as on the stdlib's transports,
and `pause_writing` comes when the stack is full and that backlog passes the high-water
mark; the stack wakes the transport when its buffer has room again. Reading is the
mirror image: while reading is paused nothing is taken from the stack, its receive
buffer fills and the window advertised to the peer closes.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from asyncio import constants
from asyncio.sslproto import SSLProtocol
from collections import deque
from collections.abc import Callable
from threading import get_ident
from typing import IO, TYPE_CHECKING, Any

from usernet.aio import tls
from usernet.aio.addresses import pack, pack_local
from usernet.aio.driver import Driver
from usernet.aio.transport import Address, PseudoSocket, UsernetTransport
from usernet.stack.tcp.connection import TcpConnection
from usernet.stack.tcp.states import State

if TYPE_CHECKING:
    from usernet.aio.server import Server

__all__ = [
    "TCP_FASTOPEN_CONNECT",
    "StreamTransport",
    "connect",
    "get_option",
    "kernel_fastopen_connect",
    "news",
    "open_stream",
    "readiness",
    "set_option",
]

TCP_FASTOPEN_CONNECT = getattr(socket, "TCP_FASTOPEN_CONNECT", 30)  # linux/tcp.h; Python's socket lacks it

_CLOSED = State.CLOSED
_OPENING = frozenset((State.SYN_SENT, State.SYN_RECEIVED))
_SENDFILE_BLOCK = 262144
#: The most bytes one `data_received` call gets. A bigger bytes object is above glibc's mmap
#: threshold (128 KiB): made fresh from the kernel and given back at every call, ~60 page
#: faults per 256 KiB, which cost a bulk receiver half its throughput (docs/performance.md,
#: "Bulk that does not depend on luck"); pieces this size are reused from the heap.
DELIVERY = 65536

#: Socket options that change the connection: (level, name) -> TcpConnection option and scale.
_OPTIONS: dict[tuple[int, int], tuple[str, float]] = {
    (socket.IPPROTO_TCP, socket.TCP_NODELAY): ("nodelay", 1),
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE): ("keepalive", 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE): ("keepidle", 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL): ("keepintvl", 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT): ("keepcnt", 1),
    (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT): ("user_timeout", 1000),  # the kernel counts milliseconds
    (socket.SOL_SOCKET, socket.SO_RCVBUF): ("rcvbuf", 1),
    (socket.SOL_SOCKET, socket.SO_SNDBUF): ("sndbuf", 1),
    (socket.IPPROTO_IP, socket.IP_TTL): ("ttl", 1),
    (socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS): ("ttl", 1),
}


class _Waker:
    """A driver owner that resolves one future at the stack socket's next news."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future

    def stack_ready(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    def stack_detached(self) -> None:
        if not self.future.done():
            self.future.set_exception(
                ConnectionAbortedError(errno.ECONNABORTED, "the event loop driving usernet was closed")
            )


async def news(loop: asyncio.AbstractEventLoop, driver: Driver, sock: TcpConnection) -> None:
    """Wait until the stack marks `sock` ready (data, room, a state change)."""
    future = loop.create_future()
    driver.register(sock, _Waker(future))
    try:
        await future
    finally:
        driver.unregister(sock)


async def connect(
    loop: asyncio.AbstractEventLoop, driver: Driver, remote: Address, local: Address | None, fastopen: bool = False
) -> TcpConnection:
    """Open a usernet TCP connection (IPv4 or IPv6 literals; local "" is any) and wait for the handshake.

    With `fastopen` (TCP_FASTOPEN_CONNECT) and a Fast Open cookie from that server, it returns at
    once, as Linux's connect() does: the SYN leaves with the first data written.
    """
    tcp = driver.host.iface.tcp
    dst = pack(remote[0])
    if len(dst) == 16:
        await driver.ipv6_settled()
    bind = None if local is None else (pack_local(local[0], dst), local[1])
    try:
        conn = tcp.connect((dst, remote[1]), loop.time(), bind, fastopen=fastopen)
    except OSError as exc:
        raise OSError(exc.errno, f"Connect call failed {remote}: {exc.strerror}") from None
    driver.request_flush()
    try:
        while conn.state in _OPENING and not conn.fastopen_deferred:
            await news(loop, driver, conn)
    except BaseException:
        conn.abort(loop.time())
        driver.request_flush()
        raise
    if conn.state == _CLOSED:
        code = conn.error.errno if conn.error is not None and conn.error.errno else errno.ECONNREFUSED
        raise OSError(code, f"Connect call failed {remote}")
    return conn


class StreamTransport(UsernetTransport):
    """A usernet TCP connection behind asyncio's Transport interface, for Protocols and BufferedProtocols.

    `close()` sends what is buffered, then a FIN. `abort()` drops what the transport
    buffered and closes the stack socket at once, as asyncio's transports close their
    kernel socket: what the stack already took still leaves, then a FIN, unless
    received bytes were left unread, which makes it a RST (Linux's rule). anyio's
    `aclose` (write_eof, close, abort) relies on that. Received bytes go to the protocol as the stack delivers them,
    at most once per loop iteration per connection.
    """

    __slots__ = (
        "_buffered",
        "_eof_delivered",
        "_eof_requested",
        "_paused",
        "_pending",
        "_pending_size",
        "_server",
        "_writable_waiters",
    )

    _sock: TcpConnection
    _start_tls_compatible = True
    _sendfile_compatible = constants._SendfileMode.FALLBACK

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        driver: Driver,
        conn: TcpConnection,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[None] | None,
        *,
        server: Server | None = None,
        kernel_sock: socket.socket | None = None,
        pseudo: PseudoSocket | None = None,
        scheduled: bool = True,
    ) -> None:
        # What the stack refused, and the writers waiting for room: made when first needed and
        # dropped again once empty, so an idle connection carries neither.
        self._pending: deque[memoryview] | None = None
        self._pending_size = 0
        self._paused = False
        self._eof_requested = False
        self._eof_delivered = False
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)
        self._writable_waiters: list[asyncio.Future[None]] | None = None
        self._server = server
        super().__init__(loop, driver, conn, protocol, waiter, pseudo, kernel_sock, scheduled=scheduled)
        if server is not None:
            server.attach(self)

    # -- asyncio.Transport -----------------------------------------------------------------

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def pause_reading(self) -> None:
        if self._closing or self._paused:
            return
        self._paused = True

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        self._loop.call_soon(self.stack_ready)

    def get_write_buffer_size(self) -> int:
        return self._pending_size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        kind = type(data)  # bytes, the common case, is known without an isinstance call
        if kind is not bytes and not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {kind.__name__!r}")
        if self._eof_requested:
            raise RuntimeError("Cannot call write() after write_eof()")
        if kind is memoryview and (data.itemsize != 1 or data.ndim != 1):  # type: ignore[union-attr]  # a memoryview
            data = data.cast("B")  # type: ignore[union-attr]  # as above
        if not data or self._closing:
            return  # like asyncio's transports: writes after close are dropped
        driver = self._driver
        if get_ident() != driver.thread:
            driver.check_thread()  # raises, saying what to do instead
        if self._pending:
            self._queue(data)
        else:
            # A write from a pump's callback (an answer to what just arrived) takes the pump's
            # time and leaves with its flush: no clock read, no flush request.
            now = driver.pump_time
            try:
                taken = self._sock.send(data, self._loop.time() if now is None else now)
            except OSError as exc:
                self._fatal_error(exc, "Fatal write error on a usernet TCP connection")
                return
            if taken and not driver.flush_pending:
                driver.request_flush()
            if taken < len(data):
                self._queue(memoryview(data)[taken:])
            pseudo = self._pseudo
            if pseudo is not None and pseudo.descriptor is not None:
                pseudo.sync()
        if self._pending:
            self._maybe_pause_protocol()  # only a backlog counts toward the high-water mark

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        if self._closing or self._eof_requested:
            return
        self._driver.check_thread()
        self._eof_requested = True
        if not self._pending:
            self._sock.shutdown(self._loop.time())
            self._driver.request_flush()

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        if self._closing:
            return
        self._driver.check_thread()
        self._closing = True
        if not self._pending:
            self._force_close(None)

    def abort(self) -> None:
        if self._ending:
            return
        self._driver.check_thread()
        self._force_close(None)

    def _force_close(self, exc: BaseException | None) -> None:
        if self._ending:
            return
        self._drop_pending()
        super()._force_close(exc)
        self._wake_writers()

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            super()._call_connection_lost(exc)
        finally:
            server, self._server = self._server, None
            if server is not None:
                server.detach(self)

    def _close_socket(self) -> None:
        self._sock.close(self._loop.time())
        self._driver.request_flush()

    def _maybe_resume_protocol(self) -> None:
        super()._maybe_resume_protocol()  # type: ignore[misc]  # the stub declares it untyped
        if not self._protocol_paused:
            self._wake_writers()

    def handover_unsent(self) -> bytes | None:
        """For a handover: the bytes written that the stack has not taken yet, or None when this
        connection cannot move to a new program (it is not a server's, it is closing, or TLS
        runs over it: the TLS session lives in this program)."""
        if self._server is None or self._closing or self._eof_requested or isinstance(self._protocol, SSLProtocol):
            return None
        return b"".join(self._pending) if self._pending else b""

    async def sendfile(self, file: IO[bytes], offset: int, count: int | None) -> int:
        """`loop.sendfile` for this transport: read in the executor, write with flow control.

        As with the stdlib's fallback, the file position ends after what was sent, also on error.
        """
        if self.is_closing():
            raise ConnectionResetError(errno.ECONNRESET, "the connection is closing: nothing more can be sent")
        if count is not None and count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
        if offset < 0:
            raise ValueError(f"offset must be a non-negative integer (got {offset!r})")
        loop = self._loop
        if offset:
            file.seek(offset)
        buf = bytearray(_SENDFILE_BLOCK)
        total = 0
        try:
            while True:
                block = _SENDFILE_BLOCK if count is None else min(_SENDFILE_BLOCK, count - total)
                if block <= 0:
                    return total
                view = memoryview(buf)[:block]
                read = await loop.run_in_executor(None, file.readinto, view)  # type: ignore[attr-defined]  # binary files have it; IO's stub not
                if not read:
                    return total
                await self._writable()
                self.write(view[:read])
                total += read
        finally:
            if total and hasattr(file, "seek"):
                file.seek(offset + total)

    # -- the stack's side ------------------------------------------------------------------

    def stack_ready(self) -> None:
        """News from the stack: push the backlog, hand the protocol what arrived, report an error.

        Received bytes go to the protocol here, in the driver's pump, with no `call_soon` hop
        between: a pump is a loop callback of its own, never inside a transport method, so
        asyncio's rule that no protocol callback runs inside `write` still holds.
        """
        if not self._started or self._ending:
            return
        if self._pending:
            self._push()
        conn = self._sock
        if not self._paused and not self._closing:
            try:
                # Bytes reach the stack only in the driver's pump, before its owners hear of
                # them, never during a protocol callback: what waits after a read is what
                # waited less what the read took, and `readable` is asked once a wake-up.
                waiting = conn.readable
                while waiting and not self._paused and not self._closing:
                    protocol = self._protocol
                    if self._buffered:
                        buf = protocol.get_buffer(-1)  # type: ignore[attr-defined]  # a BufferedProtocol (_buffered)
                        if not len(buf):
                            raise RuntimeError("get_buffer() returned an empty buffer")
                        taken = conn.receive_into(buf)
                        waiting -= taken
                        protocol.buffer_updated(taken)  # type: ignore[attr-defined]  # as above
                    else:
                        waiting = waiting - DELIVERY if waiting > DELIVERY else 0  # the read takes up to DELIVERY
                        protocol.data_received(conn.receive(DELIVERY))  # type: ignore[attr-defined]  # a stream Protocol
                if not self._driver.flush_pending:
                    self._driver.request_flush()  # the reads may open the receive window: tell the peer
                if conn.at_eof and not self._eof_delivered and not self._paused and not self._closing:
                    self._eof_delivered = True
                    if not self._protocol.eof_received():  # type: ignore[attr-defined]  # a stream protocol's
                        self.close()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: a protocol callback of a usernet TCP transport failed")
        if not self._ending and conn.state == _CLOSED and conn.error is not None:
            self._force_close(conn.error)
        pseudo = self._pseudo
        if pseudo is not None and pseudo.descriptor is not None:
            pseudo.sync()

    def _queue(self, data: bytes | bytearray | memoryview) -> None:
        """Keep a copy of what the stack did not take (the caller may reuse its buffer)."""
        if self._pending is None:
            self._pending = deque()
        self._pending.append(memoryview(bytes(data)))
        self._pending_size += len(data)

    def _drop_pending(self) -> None:
        self._pending = None
        self._pending_size = 0

    def _push(self) -> None:
        """Move waiting bytes into the stack as its send buffer frees up."""
        pending = self._pending
        if pending is None:
            return
        conn = self._sock
        now = self._loop.time()
        try:
            while pending:
                chunk = pending[0]
                taken = conn.send(chunk, now)
                self._pending_size -= taken
                if taken < len(chunk):
                    pending[0] = chunk[taken:]
                    break
                pending.popleft()
        except OSError as exc:
            self._fatal_error(exc, "Fatal write error on a usernet TCP connection")
            return
        self._driver.request_flush()
        self._maybe_resume_protocol()
        if pending or self._ending:
            return
        self._pending = None
        if self._closing:
            self._force_close(None)
        elif self._eof_requested:
            conn.shutdown(now)

    async def _writable(self) -> None:
        """Return once the protocol would not be paused for writing; raise if the connection is closing."""
        while True:
            if self._closing:
                raise ConnectionError("Connection closed by peer")
            if not self._protocol_paused:
                return
            waiter = self._loop.create_future()
            if self._writable_waiters is None:
                self._writable_waiters = []
            self._writable_waiters.append(waiter)
            await waiter

    def _wake_writers(self) -> None:
        waiters = self._writable_waiters
        if waiters is None:
            return
        self._writable_waiters = None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- options and readiness ----------------------------------------------------------------

    def apply_option(self, level: int, optname: int, value: int | bytes) -> bool:
        return set_option(self._sock, level, optname, value)

    def live_option(self, level: int, optname: int) -> int | None:
        return get_option(self._sock, level, optname)

    def readiness(self) -> tuple[bool, bool]:
        return readiness(self._sock)


def connection_option(level: int, optname: int, value: int | bytes) -> tuple[str, float] | None:
    """The `TcpConnection.set_option` name and value of a socket option that changes the
    connection; None when it is not one of those."""
    option = _OPTIONS.get((level, optname))
    if option is None:
        return None
    number = int.from_bytes(value[:4], "little", signed=True) if isinstance(value, bytes) else int(value)
    name, scale = option
    return name, number / scale if scale != 1 else number


def option_value(level: int, optname: int, options: dict[str, Any]) -> int | None:
    """What getsockopt reads for a socket option that changes the connection, from `options`
    (a connection's, or a listener's for its connections); None when not one of those or unset."""
    option = _OPTIONS.get((level, optname))
    if option is None or option[0] not in options:
        return None
    name, scale = option
    return int(options[name] * scale)


def set_option(conn: TcpConnection, level: int, optname: int, value: int | bytes) -> bool:
    """Apply a socket option that changes the connection; False when it is not one of those."""
    setting = connection_option(level, optname, value)
    if setting is None:
        return False
    try:
        conn.set_option(*setting)
    except ValueError as exc:  # what the kernel's setsockopt says of a value out of range
        raise OSError(errno.EINVAL, str(exc)) from None
    return True


def kernel_fastopen_connect(sock: socket.socket) -> bool:
    """Whether a program set TCP_FASTOPEN_CONNECT on a kernel socket whose connection usernet makes."""
    try:
        return bool(sock.getsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT))
    except OSError:
        return False


def get_option(conn: TcpConnection, level: int, optname: int) -> int | None:
    """The live value of a socket option that changes the connection, or None."""
    return option_value(level, optname, conn.options)


def readiness(conn: TcpConnection) -> tuple[bool, bool]:
    """(readable, writable) as Linux polls a TCP socket: bytes, a FIN or an error to read; room to write
    (also before the handshake, when the SYN waits for data: TCP_FASTOPEN_CONNECT)."""
    state = conn.state
    if state == _CLOSED:
        return True, True
    if state in _OPENING:
        return bool(conn.readable), conn.fastopen_deferred
    return bool(conn.readable) or conn.at_eof, conn.send_space() > 0


async def open_stream(
    loop: asyncio.AbstractEventLoop,
    driver: Driver,
    conn: TcpConnection,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    *,
    ssl: Any = None,
    server_hostname: str | None = None,
    handshake_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    kernel_sock: socket.socket | None = None,
    pseudo: PseudoSocket | None = None,
    server_side: bool = False,
) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """Put a transport (and TLS, when `ssl` is true) on an open connection; return once the protocol has it.

    `pseudo` is the socket object the program already holds for `conn` (from
    `sock_accept`); the transport takes it over, descriptor and all.
    """
    try:
        protocol = protocol_factory()
    except BaseException:
        conn.abort(loop.time())
        driver.request_flush()
        raise
    waiter = loop.create_future()
    transport: asyncio.Transport
    if ssl:
        ssl_protocol = tls.protocol(
            loop, protocol, None if isinstance(ssl, bool) else ssl, waiter, server_side=server_side,
            server_hostname=server_hostname, handshake_timeout=handshake_timeout, shutdown_timeout=shutdown_timeout,
        )  # fmt: skip  # argument groups a line, as SSLProtocol's signature reads
        raw = StreamTransport(loop, driver, conn, ssl_protocol, None, kernel_sock=kernel_sock, pseudo=pseudo)
        transport = tls.app_transport(ssl_protocol)
    else:
        raw = transport = StreamTransport(loop, driver, conn, protocol, waiter, kernel_sock=kernel_sock, pseudo=pseudo)
    try:
        await waiter
    except BaseException:
        raw.close()
        raise
    return transport, protocol
