"""usernet's own sockets behind `usernet.socket.Socket`: TCP (a listener or a connection) and UDP.

They sit on the stack's synchronous sockets (TcpLayer, TcpConnection, UdpSocket) and
hear their news as the driver's owner of the stack socket: any news wakes every waiting
call, which tries again.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from abc import abstractmethod
from typing import Any

from usernet.aio.driver import Driver
from usernet.socket.base import Address, Impl, Received, add_waiter, no_option, would_block
from usernet.socket.options import Option, flag_mask, option_by_number
from usernet.stack.interface import Socket as StackSocket
from usernet.stack.tcp.connection import TcpConnection
from usernet.stack.tcp.layer import TcpListener
from usernet.stack.tcp.states import State
from usernet.stack.udp import ANY, UdpSocket

__all__ = ["UsernetTcp", "UsernetUdp"]

_OPENING = (State.SYN_SENT, State.SYN_RECEIVED)
#: TcpConfig's field for each TcpConnection option: the value a socket has before it connects.
_CONFIG_FIELD = {
    "nodelay": "nodelay", "keepalive": "keepalive", "keepidle": "keepalive_idle",
    "keepintvl": "keepalive_interval", "keepcnt": "keepalive_count", "user_timeout": "user_timeout",
    "rcvbuf": "rcvbuf", "sndbuf": "sndbuf",
}  # fmt: skip  # a table: several pairs a line


def _to_stack(address: Address, local: frozenset[bytes] | None = None) -> tuple[bytes, int]:
    host, port = address
    try:
        packed = socket.inet_aton(host or "0.0.0.0")
    except OSError:
        raise OSError(errno.EINVAL, f"{host!r} is not an IPv4 address (usernet sockets take literals)") from None
    if not 0 <= port < 65536:
        raise OSError(errno.EINVAL, f"port {port} is out of range")
    if local is not None and packed != ANY and packed not in local:
        raise OSError(errno.EADDRNOTAVAIL, f"{host} is not an address of this usernet interface")
    return packed, port


def _from_stack(address: tuple[bytes, int]) -> Address:
    return socket.inet_ntoa(address[0]), address[1]


class _UsernetBase(Impl):
    """What both usernet kinds share: the driver, waiters woken by the stack socket's news, flags."""

    backend = "usernet"
    family = socket.AF_INET

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._iface = driver.host.iface
        self._waiters: list[asyncio.Future[None]] = []
        self._registered: StackSocket | None = None
        self._closed = False
        self._shut_read = False
        self._kind = "tcp" if self.protocol == socket.IPPROTO_TCP else "udp"
        self._flags = flag_mask("usernet", self._kind)

    # the driver's StackOwner protocol
    def stack_ready(self) -> None:
        self._wake()

    def stack_detached(self) -> None:
        self._registered = None
        for future in self._take_waiters():
            future.set_exception(ConnectionAbortedError(errno.ECONNABORTED, "the event loop driving usernet closed"))

    def wait(self, write: bool) -> asyncio.Future[None]:
        return add_waiter(self._waiters, self._driver.loop)

    def _take_waiters(self) -> list[asyncio.Future[None]]:
        waiters = [f for f in self._waiters if not f.done()]
        self._waiters.clear()
        return waiters

    def _wake(self) -> None:
        for future in self._take_waiters():
            future.set_result(None)

    def _own(self, sock: StackSocket) -> None:
        self._registered = sock
        self._driver.register(sock, self)

    def _disown(self) -> None:
        if self._registered is not None:
            self._driver.unregister(self._registered)
            self._registered = None

    def _now(self) -> float:
        return self._driver.loop.time()

    def _check_flags(self, flags: int) -> None:
        if flags & ~self._flags:
            raise OSError(
                errno.EOPNOTSUPP, f"usernet does not support the message flags {flags & ~self._flags:#x} here"
            )

    def _option(self, level: int, name: int, writing: bool) -> Option:
        option = option_by_number(level, name)
        if option is None or self._kind not in option.usernet or (writing and not option.writable):
            raise no_option(option, f"({level}, {name})")
        return option

    def setopt(self, level: int, name: int, value: int | bytes) -> None:
        option = self._option(level, name, True)
        self._set(option, int.from_bytes(value, "little") if isinstance(value, bytes) else int(value))

    def getopt(self, level: int, name: int) -> int:
        option = self._option(level, name, False)
        if option.number[0] == socket.SOL_SOCKET:
            fixed = {
                socket.SO_TYPE: self.type, socket.SO_DOMAIN: self.family, socket.SO_PROTOCOL: self.protocol,
            }.get(name)  # fmt: skip  # three pairs read best on one line
            if fixed is not None:
                return fixed
            if name == socket.SO_ERROR:
                error = self._take_error()
                return (error.errno or 0) if error is not None else 0
        return self._get(option)

    @abstractmethod
    def _set(self, option: Option, value: int) -> None:
        """Apply a writable option this kind supports."""

    @abstractmethod
    def _get(self, option: Option) -> int:
        """Read an option this kind supports (other than type, domain, protocol and error)."""

    @abstractmethod
    def _take_error(self) -> OSError | None:
        """The pending error SO_ERROR reports."""

    def close(self) -> None:
        self._closed = True
        self._disown()
        self._driver.request_flush()
        self._wake()  # waiting calls retry and find the socket closed


class UsernetTcp(_UsernetBase):
    """A usernet TCP socket: nothing, then a listener or a connection."""

    type = socket.SOCK_STREAM
    protocol = socket.IPPROTO_TCP

    def __init__(self, driver: Driver, conn: TcpConnection | None = None, options: dict[str, Any] | None = None):
        super().__init__(driver)
        self._conn = conn
        self._listener: TcpListener | None = None
        self._bound: tuple[bytes, int] | None = None
        self._connecting = False
        self._options: dict[str, Any] = dict(options or {})
        self._reuseaddr = 0
        if conn is not None:
            self._own(conn)

    def bind(self, address: Address) -> None:
        if self._conn is not None or self._listener is not None or self._bound is not None:
            raise OSError(errno.EINVAL, "the socket is already bound")
        self._bound = _to_stack(address, self._iface.local_addresses)

    def listen(self, backlog: int) -> None:
        if self._conn is not None:
            raise OSError(errno.EINVAL, "a connected socket cannot listen")
        if self._listener is None:
            self._listener = self._iface.tcp.listen(self._bound or (ANY, 0), backlog)
            self._own(self._listener)

    def accept(self) -> tuple[Impl, Address]:
        if self._listener is None:
            raise OSError(errno.EINVAL, "accept needs a listening socket: call listen first")
        conn = self._listener.accept()
        if conn is None:
            raise would_block()
        for name, value in self._options.items():
            conn.set_option(name, value)  # accepted sockets inherit the listener's options, as on Linux
        self._driver.request_flush()
        return UsernetTcp(self._driver, conn, self._options), _from_stack(conn.remote)

    def connect(self, address: Address) -> None:
        conn = self._conn
        if conn is not None:
            if conn.state in _OPENING:
                raise would_block(errno.EALREADY)
            if self._connecting:  # the retry after EINPROGRESS: report how it went
                self._connecting = False
                if conn.state == State.CLOSED:
                    code = conn.error.errno if conn.error is not None and conn.error.errno else errno.ECONNREFUSED
                    raise OSError(code, f"connect to {address[0]}:{address[1]} failed: {errno.errorcode[code]}")
                return
            raise OSError(errno.EISCONN, "the socket is already connected")
        if self._listener is not None:
            raise OSError(errno.EINVAL, "a listening socket cannot connect")
        conn = self._iface.tcp.connect(_to_stack(address), self._now(), self._bound)
        for name, value in self._options.items():
            conn.set_option(name, value)
        self._conn = conn
        self._connecting = True
        self._own(conn)
        self._driver.request_flush()
        raise would_block(errno.EINPROGRESS)

    def _connected(self) -> TcpConnection:
        if self._conn is None or self._conn.state in _OPENING:
            raise OSError(errno.ENOTCONN, "the socket is not connected")
        return self._conn

    def receive(self, size: int, flags: int) -> Received:
        self._check_flags(flags)
        conn = self._connected()
        if self._shut_read:
            return b"", None, 0
        if conn.readable:
            data = conn.receive(size)
            self._driver.request_flush()  # the read may open the window
            return data, None, 0
        if conn.error is not None:
            raise conn.error
        if conn.at_eof or conn.state == State.CLOSED:
            return b"", None, 0
        raise would_block()

    def send(self, data: memoryview, address: Address | None, flags: int) -> int:
        self._check_flags(flags)
        if address is not None:
            raise OSError(errno.EISCONN, "a TCP socket sends to its peer: use send, not sendto")
        taken = self._connected().send(data, self._now())
        if not taken:
            raise would_block()
        self._driver.request_flush()
        return taken

    def shutdown(self, how: int) -> None:
        conn = self._connected()
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            self._shut_read = True
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            conn.shutdown(self._now())
            self._driver.request_flush()
        self._wake()

    def close(self) -> None:
        now = self._now()
        if self._conn is not None:
            self._conn.close(now)
        if self._listener is not None:
            self._listener.close(now)
        super().close()

    def sockname(self) -> Address:
        if self._conn is not None:
            return _from_stack(self._conn.local)
        if self._listener is not None:
            return _from_stack(self._listener.local)
        return _from_stack(self._bound or (ANY, 0))

    def peername(self) -> Address:
        return _from_stack(self._connected().remote)

    def _set(self, option: Option, value: int) -> None:
        if option.stack is None:  # reuseaddr: listeners never wait for TIME_WAIT here, so it is always on
            self._reuseaddr = value
            return
        converted: Any = bool(value) if option.kind == "bool" else value / option.scale
        if self._conn is not None:
            try:
                self._conn.set_option(option.stack, converted)
            except ValueError as exc:
                raise OSError(errno.EINVAL, str(exc)) from None
        self._options[option.stack] = converted

    def _get(self, option: Option) -> int:
        if option.name == "acceptconn":
            return int(self._listener is not None)
        if option.stack is None:
            return self._reuseaddr
        if self._conn is not None:
            value = self._conn.options[option.stack]
        else:
            value = self._options.get(option.stack, getattr(self._iface.config.tcp, _CONFIG_FIELD[option.stack]))
        return round(value * option.scale)

    def _take_error(self) -> OSError | None:
        return self._conn.error if self._conn is not None else None

    def state(self) -> str:
        if self._closed:
            return "closed"
        if self._listener is not None:
            return "listening"
        if self._conn is not None:
            return self._conn.state.name.lower()
        return "bound" if self._bound is not None else "open"

    def details(self) -> dict[str, Any]:
        if self._conn is not None:
            return {"tcp": self._conn.info()}
        if self._listener is not None:
            return {"accept_queue": self._listener.pending, "backlog": self._listener.backlog}
        return {}


class UsernetUdp(_UsernetBase):
    """A usernet UDP socket, bound on first use as a kernel socket is."""

    type = socket.SOCK_DGRAM
    protocol = socket.IPPROTO_UDP

    def __init__(self, driver: Driver) -> None:
        super().__init__(driver)
        self._sock: UdpSocket | None = None
        self._reuse = False
        self._broadcast = False

    def _bound_socket(self, local: tuple[bytes, int] | None = None) -> UdpSocket:
        if self._sock is None:
            self._sock = self._iface.open_udp(local, reuse_address=self._reuse)
            self._sock.broadcast = self._broadcast
            self._own(self._sock)
        return self._sock

    def bind(self, address: Address) -> None:
        if self._sock is not None:
            raise OSError(errno.EINVAL, "the socket is already bound")
        self._bound_socket(_to_stack(address, self._iface.local_addresses))

    def listen(self, backlog: int) -> None:
        raise OSError(errno.EOPNOTSUPP, "UDP sockets do not listen")

    def accept(self) -> tuple[Impl, Address]:
        raise OSError(errno.EOPNOTSUPP, "UDP sockets do not accept")

    def connect(self, address: Address) -> None:
        self._bound_socket().connect(_to_stack(address))

    def receive(self, size: int, flags: int) -> Received:
        self._check_flags(flags)
        sock = self._bound_socket()
        if self._shut_read:
            return b"", None, 0
        error = sock.take_error()
        if error is not None:
            raise error
        item = sock.recvfrom()
        if item is None:
            raise would_block()
        data, source = item
        truncated = 0 < size < len(data)
        return (data[:size] if truncated else data), _from_stack(source), socket.MSG_TRUNC if truncated else 0

    def send(self, data: memoryview, address: Address | None, flags: int) -> int:
        self._check_flags(flags)
        sock = self._bound_socket()
        sock.sendto(data, None if address is None else _to_stack(address), self._now())
        self._driver.request_flush()
        return len(data)

    def shutdown(self, how: int) -> None:
        if self._sock is None or self._sock.remote is None:
            raise OSError(errno.ENOTCONN, "the socket is not connected")
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            self._shut_read = True
        self._wake()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        super().close()

    def sockname(self) -> Address:
        return _from_stack(self._sock.local if self._sock is not None else (ANY, 0))

    def peername(self) -> Address:
        if self._sock is None or self._sock.remote is None:
            raise OSError(errno.ENOTCONN, "the socket is not connected")
        return _from_stack(self._sock.remote)

    def _set(self, option: Option, value: int) -> None:
        if option.name == "broadcast":
            self._broadcast = bool(value)
            if self._sock is not None:
                self._sock.broadcast = bool(value)
        else:
            self._reuse = bool(value)  # reuseaddr: takes effect at bind, as on Linux

    def _get(self, option: Option) -> int:
        if option.name == "acceptconn":
            return 0
        return int(self._broadcast if option.name == "broadcast" else self._reuse)

    def _take_error(self) -> OSError | None:
        return self._sock.take_error() if self._sock is not None else None

    def state(self) -> str:
        if self._closed:
            return "closed"
        if self._sock is None:
            return "open"
        return "connected" if self._sock.remote is not None else "bound"

    def details(self) -> dict[str, Any]:
        if self._sock is None:
            return {}
        return {"queued": len(self._sock.queue), "dropped": self._sock.dropped}
