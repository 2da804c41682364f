"""What every usernet transport shares: lifecycle and callback order, extra info, the pseudo-socket.

asyncio promises protocols that `connection_made` comes first, `connection_lost`
exactly once and nothing after it; this base keeps that promise for every transport
kind, so the datagram transport and the stream transports only add their I/O.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from abc import ABCMeta, abstractmethod
from asyncio import transports
from typing import TYPE_CHECKING, Any, Protocol

from usernet.aio.addresses import SockAddr, family_of, name
from usernet.aio.descriptor import Readiness
from usernet.aio.driver import Driver
from usernet.stack.interface import Socket

__all__ = ["PseudoSocket", "SocketOwner", "UsernetTransport"]

Address = tuple[str, int]

_MISSING = object()


class SocketOwner(Protocol):
    """What a PseudoSocket asks of whoever holds the stack socket (a transport, a listener, a socket-level holder)."""

    def sockname(self) -> Address:
        """The stack socket's local address, as `getsockname` reports it."""
        ...

    def peername(self) -> Address | None:
        """The peer's address, or None when the socket is not connected (`getpeername` raises ENOTCONN)."""
        ...

    def apply_option(self, level: int, optname: int, value: int | bytes) -> bool:
        """Apply an option that changes the stack socket; False when the pseudo-socket is only to remember it."""
        ...

    def live_option(self, level: int, optname: int) -> int | None:
        """The live value of an option the owner knows, or None (the pseudo-socket answers from what it remembers)."""
        ...

    def readiness(self) -> tuple[bool, bool]:
        """(readable, writable) as a kernel socket in the same state would poll."""
        ...

    def close(self) -> None:
        """The program closed the socket object: close what stands behind it."""
        ...


class PseudoSocket:
    """Stands in for the kernel socket in `get_extra_info('socket')` and in the socket-level loop methods.

    Libraries read `family`/`type`, call `getsockname`/`getpeername`, and set options
    (keepalive, buffer sizes) expecting success: options the owner understands change
    the connection; the rest are remembered and read back, as a kernel would. Its
    `fileno()` is a real descriptor (made on first use, see usernet/aio/descriptor.py)
    that select/poll/selectors see readable and writable as the stack socket is; it is
    -1 only once the socket is closed. `owner` is whoever holds the stack socket now: a
    transport, a server's listener, or the loop's socket-level methods. A transport makes
    its own on the first `get_extra_info("socket")` (`UsernetTransport._pseudo_socket`).
    """

    __slots__ = ("_options", "closed", "descriptor", "family", "owner", "proto", "type")

    def __init__(self, owner: SocketOwner, type: int, proto: int, family: int = socket.AF_INET) -> None:
        self.owner = owner
        self.family = family
        self.type = type
        self.proto = proto
        self.closed = False
        self.descriptor: Readiness | None = None
        self._options: dict[tuple[int, int], int | bytes] | None = None  # made on the first option only remembered

    def fileno(self) -> int:
        if self.closed:
            return -1
        if self.descriptor is None:
            self.descriptor = Readiness()
            self.sync()
        return self.descriptor.fileno()

    def sync(self) -> None:
        """Bring the descriptor's readiness up to date with the stack socket (callers check `descriptor` first)."""
        self.descriptor.set(*self.owner.readiness())  # type: ignore[union-attr]

    def release(self) -> None:
        """The stack socket is gone: drop the descriptor; `fileno()` is -1 from now on."""
        self.closed = True
        if self.descriptor is not None:
            self.descriptor.close()
            self.descriptor = None

    def close(self) -> None:
        if not self.closed:
            self.owner.close()

    def getsockname(self) -> Any:
        return self._as_family(self.owner.sockname())

    def getpeername(self) -> Any:
        peer = self.owner.peername()
        if peer is None:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return self._as_family(peer)

    def _as_family(self, address: Address) -> Any:
        """An AF_INET6 socket (accepted on a dual-stack listener) names IPv4 peers as mapped addresses."""
        if self.family == socket.AF_INET6 and len(address) == 2:
            return ("::ffff:" + address[0], address[1], 0, 0)
        return address

    def setsockopt(self, level: int, optname: int, value: int | bytes | None, optlen: int | None = None) -> None:
        stored = value if value is not None else b"\x00" * (optlen or 0)
        if not self.owner.apply_option(level, optname, stored):
            if self._options is None:
                self._options = {}
            self._options[(level, optname)] = stored

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        if level == socket.SOL_SOCKET and optname == socket.SO_TYPE:
            return self.type
        if level == socket.SOL_SOCKET and optname == socket.SO_ERROR:
            return 0
        value: int | bytes | None = self.owner.live_option(level, optname)
        if value is None:
            value = 0 if self._options is None else self._options.get((level, optname), 0)
        if buflen is not None and isinstance(value, int):
            return value.to_bytes(4, "little", signed=True)[:buflen]
        return value

    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, flag: bool) -> None:
        if flag:
            raise OSError(errno.EOPNOTSUPP, "a usernet socket is non-blocking: use the event loop's sock_* methods")

    def __enter__(self) -> PseudoSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "SOCK_STREAM" if self.type == socket.SOCK_STREAM else "SOCK_DGRAM"
        try:
            name = self.getsockname()
        except OSError:
            name = None
        return f"<usernet pseudo-socket fd={self.fileno() if self.descriptor else '-'} {kind} laddr={name}>"


class UsernetTransport(transports._FlowControlMixin, metaclass=ABCMeta):
    """The base of usernet's transports: a stack socket, a protocol, and the promised callback order.

    Subclasses implement the abstract `stack_ready` (news from the stack, the driver's
    StackOwner side) and `readiness` (the pseudo-socket's poll state); instantiating one
    that lacks either raises TypeError. `close`/`abort` end in exactly one `connection_lost`.

    A server holds thousands of idle transports, so each costs what it must: slots,
    no instance dict, and the extra info ("socket", "sockname", "peername") answered
    from the objects that hold it, the pseudo-socket and the names made on the first
    request and kept (most programs never ask for the socket: asyncio's streams do not).
    """

    __slots__ = (
        "__weakref__",
        "_closing",
        "_driver",
        "_ending",
        "_kernel_sock",
        "_lost",
        "_protocol",
        "_pseudo",
        "_sock",
        "_started",
    )

    _sock_type = socket.SOCK_STREAM

    # Set by asyncio's BaseTransport and _FlowControlMixin, whose stubs name them only in __slots__.
    _extra: dict[str, Any]
    _loop: asyncio.AbstractEventLoop
    _protocol_paused: bool
    if TYPE_CHECKING:

        def _maybe_pause_protocol(self) -> None: ...

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        driver: Driver,
        sock: Socket,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[None] | None,
        pseudo: PseudoSocket | None = None,
        kernel_sock: socket.socket | None = None,
        *,
        scheduled: bool = True,
    ) -> None:
        super().__init__(None, loop)
        self._kernel_sock = kernel_sock  # a kernel socket object the program made for this one: closed with it
        self._driver = driver
        self._sock = sock
        self._protocol = protocol
        self._closing = False
        self._ending = False  # connection_lost is scheduled: nothing more reaches the protocol
        self._started = False
        self._lost = False
        if pseudo is not None:  # the program's socket object (from sock_accept): this transport holds it now
            pseudo.owner = self
        self._pseudo = pseudo  # else made on the first ask (`_pseudo_socket`)
        driver.register(sock, self)
        if scheduled:
            loop.call_soon(self._start, waiter)

    # -- asyncio.BaseTransport -------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        value = self._extra.get(name, _MISSING)
        if value is not _MISSING:
            return value
        if name == "socket":
            return self._pseudo_socket()
        if name == "sockname":
            value = self._extra[name] = self.sockname()
        elif name == "peername":
            value = self._extra[name] = self.peername()
        else:
            return default
        return value

    def _pseudo_socket(self) -> PseudoSocket:
        """The pseudo-socket standing for the stack socket: made on the first ask, the same object afterwards.

        One asked for after the close is closed already, as the transport's socket is by then.
        """
        pseudo = self._pseudo
        if pseudo is None:
            family = family_of(self._sock.local[0])  # type: ignore[union-attr]  # UDP or TCP: never a listener or ping
            pseudo = self._pseudo = PseudoSocket(self, self._sock_type, 0, family)
            if self._ending:
                pseudo.release()
        return pseudo

    def is_closing(self) -> bool:
        return self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def close(self) -> None:
        self._force_close(None)

    def abort(self) -> None:
        self._force_close(None)

    def _force_close(self, exc: BaseException | None) -> None:
        """Close now and tell the protocol `exc` (asyncio's sslproto calls this too)."""
        if self._ending:
            return
        self._driver.check_thread()
        self._closing = self._ending = True
        self._release()
        self._loop.call_soon(self._call_connection_lost, exc)

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        """Close with `exc`, as asyncio's transports do when a write fails: an OSError is the
        network's and only reaches connection_lost; anything else is a bug the exception handler
        is told of too."""
        if not isinstance(exc, OSError):
            self._loop.call_exception_handler(
                {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
            )
        self._force_close(exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        if self._started:
            self._protocol.connection_lost(exc)  # type: ignore[arg-type]  # as asyncio passes it: maybe a CancelledError

    # -- driver side -----------------------------------------------------------------------

    def start(self) -> None:
        """`connection_made` now, then what the stack already holds, for a transport made with
        `scheduled=False`: a server's accept inside the driver's pump, which is a loop callback of
        its own (never inside a call of the program's), so the handshake's ACK, the request that
        came with it and the answer the protocol writes leave in that one pump, not two loop
        iterations later."""
        self._start(None)

    def _start(self, waiter: asyncio.Future[None] | None) -> None:
        if self._closing and self._lost:
            return
        self._started = True
        self._protocol.connection_made(self)
        if waiter is not None and not waiter.cancelled():
            waiter.set_result(None)
        if not self._closing:
            self.stack_ready()

    @abstractmethod
    def stack_ready(self) -> None:
        """News from the stack for this socket: hand the protocol what arrived, push what waits, report an error.

        The driver calls it once per wake-up from its pump (and `_start` once, after
        `connection_made`), so it is the hot path: no call layers. It must not call the
        protocol before `_started` or once `_closing` (asyncio's callback order), and must
        `sync()` a pseudo-socket whose descriptor exists, so select/poll on its fileno stay true.
        """

    def stack_detached(self) -> None:
        """The loop stopped driving the stack (it was closed): the socket goes, the protocol hears nothing more."""
        self._closing = self._ending = self._lost = True
        self._close_socket()
        self._let_go()

    def _release(self) -> None:
        """Give the stack socket back."""
        self._driver.unregister(self._sock)
        self._close_socket()
        self._let_go()

    def _let_go(self) -> None:
        """The stack socket is closed: so are the objects that stood for it."""
        if self._pseudo is not None:
            self._pseudo.release()
        if self._kernel_sock is not None:
            self._kernel_sock.close()

    def _close_socket(self) -> None:
        self._sock.close()  # type: ignore[call-arg]  # a UDP socket's; StreamTransport passes TCP's time

    # -- names and options -----------------------------------------------------------------

    def sockname(self) -> SockAddr:
        """The local address (SocketOwner; the "sockname" extra info)."""
        return name(self._sock.local)  # type: ignore[union-attr]  # UDP or TCP: never a listener or ping

    def peername(self) -> SockAddr | None:
        """The peer's address, None while unconnected (SocketOwner; the "peername" extra info)."""
        remote = self._sock.remote  # type: ignore[union-attr]  # UDP or TCP: never a listener or ping
        return None if remote is None else name(remote)

    def apply_option(self, level: int, optname: int, value: int | bytes) -> bool:
        """Apply an option that changes the connection; False when it is only to be remembered."""
        return False

    def live_option(self, level: int, optname: int) -> int | None:
        """The live value of an option the transport knows, or None."""
        return None

    @abstractmethod
    def readiness(self) -> tuple[bool, bool]:
        """(readable, writable) as a kernel socket of this kind in the same state would poll.

        The pseudo-socket's descriptor shows it (`PseudoSocket.sync`): a subclass answers
        from the stack socket alone, cheaply, since it is asked after every write and wake-up
        while a program polls the fileno.
        """

    def __repr__(self) -> str:
        state = "closed" if self._lost else "closing" if self._closing else "open"
        names = f"sockname={self.get_extra_info('sockname')} peername={self.get_extra_info('peername')}"
        return f"<{type(self).__name__} {state} {names}>"
