"""The Socket: calls with timeouts or NOWAIT, from coroutines and threads, over one single-threaded stack.

Every socket belongs to a `Stack`: an asyncio loop (a usernet loop, which also carries
kernel sockets) and the registry of its sockets. The stack is single-threaded: each
call runs on the loop's thread; from another thread, the call crosses over and the
thread blocks for the answer (with the call's timeout), from a coroutine it is awaited
(`a`-prefixed methods). NOWAIT calls never block, so they work from anywhere.

A blocking operation is one attempt (base.py) tried until it completes:

- `timeout=None` waits as long as it takes; `timeout=seconds` raises TimeoutError
  (errno ETIMEDOUT) when they pass;
- `timeout=NOWAIT` tries once and returns the result, or a `SelectInfo` when the
  operation would block. The SelectInfo is notified when the operation is worth
  retrying — the BSD API made asynchronous as in Erlang's `socket` module. Await it
  (from any loop), `wait()` for it (from a thread), or `add_done_callback`; `cancel()`
  it (or `sock.cancel(info)`) to stop waiting. Then call the operation again.

Stream `recv(n)` follows gen_tcp and Erlang: n > 0 is exactly n bytes (fewer only at
the end of the stream), n == 0 whatever is there. Bytes of an incomplete `recv(n)`
(one that timed out, or returned a SelectInfo) stay with the socket for the next call.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from usernet.socket.base import Impl
from usernet.socket.nowait import NoWait, SelectInfo, Timeout
from usernet.socket.options import Option, option_by_name

if TYPE_CHECKING:
    from usernet.socket.stack import Stack

__all__ = ["Socket"]

T = TypeVar("T")
Address = tuple[str, int]
CHUNK = 65536


_NAMES: dict[int, str] = {
    socket.AF_INET: "inet", socket.AF_INET6: "inet6", socket.AF_UNIX: "local",
    socket.SOCK_STREAM: "stream", socket.SOCK_DGRAM: "dgram",
}  # fmt: skip  # a table: several pairs a line
_PROTOCOLS: dict[int, str] = {socket.IPPROTO_TCP: "tcp", socket.IPPROTO_UDP: "udp", 0: "default"}


class Socket:
    """One socket: the calls of Erlang's `socket` module with Python's names and conventions.

    Blocking calls take `timeout` (seconds, None for no limit, or NOWAIT) and have an
    awaitable twin with an `a` prefix (`accept`/`aaccept`, `recv`/`arecv`...). Errors
    are OSErrors with the errno a kernel socket would give (EBADF once closed).
    """

    def __init__(self, stack: Stack, impl: Impl, owner: int) -> None:
        self.stack = stack
        self._impl = impl
        self._rest = bytearray()  # bytes of an incomplete exact recv(n)
        self._closed = False
        self._selects: dict[SelectInfo, None] = {}
        self.owner = owner  # the thread that opened it (or accepted it: the listener's owner)
        self.counters = {"read_bytes": 0, "read_packets": 0, "write_bytes": 0, "write_packets": 0}
        stack.register(self)

    def __repr__(self) -> str:
        kind = _PROTOCOLS.get(self._impl.protocol) or _NAMES.get(self._impl.type, "?")
        return f"<usernet.socket {self._impl.backend} {kind} {'closed' if self._closed else 'open'}>"

    @property
    def backend(self) -> str:
        return self._impl.backend

    @property
    def family(self) -> int:
        return self._impl.family

    @property
    def type(self) -> int:
        return self._impl.type

    # -- the machinery ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise OSError(errno.EBADF, "the socket is closed")

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        def checked() -> T:
            self._check_open()
            return fn(*args)

        return self.stack.call(checked)

    def _nowait(self, tag: str, attempt: Callable[[], T], write: bool) -> T | SelectInfo:
        try:
            return attempt()
        except BlockingIOError:
            info = SelectInfo(self, tag, self._impl.wait(write))
            self._selects[info] = None
            info.add_done_callback(lambda done: self._selects.pop(done, None))
            return info

    async def _blocking(self, tag: str, attempt: Callable[[], T], write: bool, timeout: float | None) -> T:
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                while True:
                    try:
                        return attempt()
                    except BlockingIOError:
                        await self._impl.wait(write)
        except TimeoutError:
            if scope.expired():
                raise TimeoutError(errno.ETIMEDOUT, f"{tag} timed out after {timeout} s") from None
            raise

    def _op(self, tag: str, attempt: Callable[[], T], write: bool, timeout: Timeout, flags: int = 0) -> T | SelectInfo:
        if flags & socket.MSG_DONTWAIT:  # one try, and BlockingIOError as from a kernel socket
            return self.stack.call(attempt)
        if isinstance(timeout, NoWait):
            return self.stack.call(self._nowait, tag, attempt, write)
        return self.stack.run(self._blocking(tag, attempt, write, timeout))

    async def _aop(
        self, tag: str, attempt: Callable[[], T], write: bool, timeout: Timeout, flags: int = 0
    ) -> T | SelectInfo:
        if flags & socket.MSG_DONTWAIT:
            return await self.stack.arun(_now(attempt))
        if isinstance(timeout, NoWait):
            return await self.stack.arun(_now(self._nowait, tag, attempt, write))
        return await self.stack.arun(self._blocking(tag, attempt, write, timeout))

    # -- the attempts (on the loop thread) ---------------------------------------------------

    def _try_accept(self) -> Socket:
        self._check_open()
        impl, _ = self._impl.accept()
        return Socket(self.stack, impl, self.owner)

    def _try_connect(self, address: Address) -> None:
        self._check_open()
        self._impl.connect(address)

    def _try_receive(self, size: int, flags: int) -> tuple[bytes, Address | None, int]:
        """One datagram, or (a stream) exactly `size` bytes, or what is there for size 0."""
        self._check_open()
        impl = self._impl
        if impl.type != socket.SOCK_STREAM:
            data, source, msg_flags = impl.receive(size, flags)
            self._count("read", data)
            return data, source, msg_flags
        rest = self._rest
        if flags & socket.MSG_PEEK:  # look, take nothing: up to `size` bytes, not exactly
            if rest:
                return bytes(rest[: size or len(rest)]), None, 0
            return impl.receive(size or CHUNK, flags)[0], None, 0
        if size == 0:
            if rest:
                data = bytes(rest)
                rest.clear()
                return data, None, 0
            data = impl.receive(CHUNK, flags)[0]
            self._count("read", data)
            return data, None, 0
        while len(rest) < size:
            data = impl.receive(size - len(rest), flags)[0]  # BlockingIOError keeps what `rest` holds
            if not data:
                break  # the end of the stream: what there is
            self._count("read", data)
            rest += data
        data = bytes(rest[:size])
        del rest[:size]
        return data, None, 0

    def _count(self, direction: str, data: bytes | memoryview) -> None:
        counters = self.counters
        counters[f"{direction}_bytes"] += len(data)
        counters[f"{direction}_packets"] += 1

    def _sender(self, data: bytes | bytearray | memoryview, address: Address | None, flags: int, all: bool) -> Any:
        view = memoryview(data).cast("B")
        sent = 0

        def attempt() -> int:
            nonlocal view, sent
            self._check_open()
            while True:
                n = self._impl.send(view, address, flags)
                self._count("write", view[:n])
                sent += n
                view = view[n:]
                if not all or not view:
                    return sent

        return attempt

    def _send_op(self, tag: str, data: Any, address: Address | None, flags: int, timeout: Timeout) -> int | SelectInfo:
        attempt = self._sender(data, address, flags, not isinstance(timeout, NoWait))
        return self._op(tag, attempt, True, timeout, flags)

    async def _asend_op(
        self, tag: str, data: Any, address: Address | None, flags: int, timeout: Timeout
    ) -> int | SelectInfo:
        attempt = self._sender(data, address, flags, not isinstance(timeout, NoWait))
        return await self._aop(tag, attempt, True, timeout, flags)

    # -- connection setup ------------------------------------------------------------------------

    def bind(self, address: Address) -> None:
        self._call(self._impl.bind, address)

    def listen(self, backlog: int = 128) -> None:
        self._call(self._impl.listen, backlog)

    def accept(self, timeout: Timeout = None) -> Socket | SelectInfo:
        return self._op("accept", self._try_accept, False, timeout)

    async def aaccept(self, timeout: Timeout = None) -> Socket | SelectInfo:
        return await self._aop("accept", self._try_accept, False, timeout)

    def connect(self, address: Address, timeout: Timeout = None) -> SelectInfo | None:
        """Connect; with NOWAIT a SelectInfo, then `connect(address)` again to learn the outcome."""
        return self._op("connect", lambda: self._try_connect(address), True, timeout)

    async def aconnect(self, address: Address, timeout: Timeout = None) -> SelectInfo | None:
        return await self._aop("connect", lambda: self._try_connect(address), True, timeout)

    # -- data ----------------------------------------------------------------------------------------

    def recv(self, length: int = 0, flags: int = 0, timeout: Timeout = None) -> bytes | SelectInfo:
        result = self._op("recv", lambda: self._try_receive(length, flags), False, timeout, flags)
        return result if isinstance(result, SelectInfo) else result[0]

    async def arecv(self, length: int = 0, flags: int = 0, timeout: Timeout = None) -> bytes | SelectInfo:
        result = await self._aop("recv", lambda: self._try_receive(length, flags), False, timeout, flags)
        return result if isinstance(result, SelectInfo) else result[0]

    def recvfrom(self, bufsize: int = 0, flags: int = 0, timeout: Timeout = None) -> tuple[bytes, Any] | SelectInfo:
        result = self._op("recvfrom", lambda: self._try_receive(bufsize, flags), False, timeout, flags)
        return result if isinstance(result, SelectInfo) else (result[0], result[1])

    async def arecvfrom(
        self, bufsize: int = 0, flags: int = 0, timeout: Timeout = None
    ) -> tuple[bytes, Any] | SelectInfo:
        result = await self._aop("recvfrom", lambda: self._try_receive(bufsize, flags), False, timeout, flags)
        return result if isinstance(result, SelectInfo) else (result[0], result[1])

    def recvmsg(
        self, bufsize: int = 0, ancbufsize: int = 0, flags: int = 0, timeout: Timeout = None
    ) -> tuple[bytes, list[Any], int, Any] | SelectInfo:
        """(data, ancillary data, MSG_* flags such as MSG_TRUNC, sender), as socket.recvmsg; no ancillary data."""
        result = self._op("recvmsg", lambda: self._try_receive(bufsize, flags), False, timeout, flags)
        return result if isinstance(result, SelectInfo) else (result[0], [], result[2], result[1])

    async def arecvmsg(
        self, bufsize: int = 0, ancbufsize: int = 0, flags: int = 0, timeout: Timeout = None
    ) -> tuple[bytes, list[Any], int, Any] | SelectInfo:
        result = await self._aop("recvmsg", lambda: self._try_receive(bufsize, flags), False, timeout, flags)
        return result if isinstance(result, SelectInfo) else (result[0], [], result[2], result[1])

    def send(self, data: bytes | bytearray | memoryview, flags: int = 0, timeout: Timeout = None) -> int | SelectInfo:
        """Send all of `data` (waiting for room), or with NOWAIT what fits now: the count, or a SelectInfo."""
        return self._send_op("send", data, None, flags, timeout)

    async def asend(
        self, data: bytes | bytearray | memoryview, flags: int = 0, timeout: Timeout = None
    ) -> int | SelectInfo:
        return await self._asend_op("send", data, None, flags, timeout)

    def sendto(
        self, data: bytes | bytearray | memoryview, address: Address, flags: int = 0, timeout: Timeout = None
    ) -> int | SelectInfo:
        return self._send_op("sendto", data, address, flags, timeout)

    async def asendto(
        self, data: bytes | bytearray | memoryview, address: Address, flags: int = 0, timeout: Timeout = None
    ) -> int | SelectInfo:
        return await self._asend_op("sendto", data, address, flags, timeout)

    def sendmsg(
        self,
        buffers: Iterable[bytes | bytearray | memoryview],
        ancdata: Iterable[Any] = (),
        flags: int = 0,
        address: Address | None = None,
        timeout: Timeout = None,
    ) -> int | SelectInfo:
        """Gather `buffers` into one message (one datagram on UDP); ancillary data is not supported."""
        data = _gather(buffers, ancdata)
        return self._send_op("sendmsg", data, address, flags, timeout)

    async def asendmsg(
        self,
        buffers: Iterable[bytes | bytearray | memoryview],
        ancdata: Iterable[Any] = (),
        flags: int = 0,
        address: Address | None = None,
        timeout: Timeout = None,
    ) -> int | SelectInfo:
        data = _gather(buffers, ancdata)
        return await self._asend_op("sendmsg", data, address, flags, timeout)

    # -- the rest ---------------------------------------------------------------------------------

    def shutdown(self, how: int) -> None:
        self._call(self._impl.shutdown, how)

    def close(self) -> None:
        """Close; pending SelectInfos complete (a retry then raises EBADF). Closing twice is harmless."""
        if self._closed:
            return  # also once the stack has closed it and its loop is gone

        def close() -> None:
            if not self._closed:
                self._closed = True
                self.stack.forget(self)
                self._impl.close()

        self.stack.call(close)

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sockname(self) -> Address:
        return self._call(self._impl.sockname)

    def peername(self) -> Address:
        return self._call(self._impl.peername)

    def setopt(self, option: tuple[str, str], value: int | bool) -> None:
        """Set an option by its Erlang-style (level, name): `setopt(("tcp", "nodelay"), True)`."""
        self.setopt_native(_option(option).number, int(value))

    def getopt(self, option: tuple[str, str]) -> int | bool:
        known = _option(option)
        value = self.getopt_native(known.number)
        return bool(value) if known.kind == "bool" else value

    def setopt_native(self, option: tuple[int, int], value: int | bytes) -> None:
        """Set an option by its numbers: `setopt_native((socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)`."""
        self._call(self._impl.setopt, option[0], option[1], value)

    def getopt_native(self, option: tuple[int, int]) -> int:
        return self._call(self._impl.getopt, option[0], option[1])

    def cancel(self, info: SelectInfo) -> bool:
        """Stop a pending SelectInfo of this socket; False when it had already completed."""
        if info.socket is not self:
            raise OSError(errno.EINVAL, "that SelectInfo belongs to another socket")
        return info.cancel()

    def info(self) -> dict[str, Any]:
        """What the socket is and has done: Erlang's socket:info/1."""

        def gather() -> dict[str, Any]:
            impl = self._impl
            facts: dict[str, Any] = {
                "backend": impl.backend, "domain": _NAMES.get(impl.family, impl.family),
                "type": _NAMES.get(impl.type, impl.type), "protocol": _PROTOCOLS.get(impl.protocol, impl.protocol),
                "state": "closed" if self._closed else impl.state(), "owner": self.owner,
                "counters": dict(self.counters), "num_selects": len(self._selects),
            }  # fmt: skip  # related facts share a line
            if not self._closed:
                for key, get in (("sockname", impl.sockname), ("peername", impl.peername)):
                    try:
                        facts[key] = get()
                    except OSError:
                        pass  # not bound or not connected: left out, as Erlang's info leaves it out
                facts.update(impl.details())
            return facts

        return self.stack.call(gather)

    def matches(self, filter: object) -> bool:
        """Whether `filter` (a name such as \"tcp\" or \"kernel\", or an owner thread) picks this socket."""
        impl = self._impl
        names = {
            impl.backend, _NAMES.get(impl.family), _NAMES.get(impl.type), _PROTOCOLS.get(impl.protocol),
        }  # fmt: skip  # one set of four names
        return filter in names or filter == self.owner


async def _now(fn: Callable[..., T], *args: Any) -> T:
    """A coroutine that runs `fn` at once: NOWAIT calls from other loops go through Stack.arun."""
    return fn(*args)


def _gather(buffers: Iterable[bytes | bytearray | memoryview], ancdata: Iterable[Any]) -> bytes:
    if list(ancdata):
        raise OSError(errno.EOPNOTSUPP, "usernet.socket does not send ancillary data (control messages)")
    return b"".join(bytes(b) for b in buffers)


def _option(option: tuple[str, str]) -> Option:
    known = option_by_name(*option)
    if known is None:
        raise OSError(errno.ENOPROTOOPT, f"unknown option {option}: see usernet.socket.supports('options')")
    return known
