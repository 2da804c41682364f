"""The interface behind `usernet.socket.Socket`, which each backend implements.

Each backend's socket is the same small non-blocking interface, called only on the
stack's loop thread: an operation either completes, raises the OSError a kernel socket
would, or raises BlockingIOError; then `wait()` gives a future resolved when it is worth
trying again. Everything about timeouts, NOWAIT and threads lives one level up, in
core.py, once. The backends: usernet_sockets.py (the stack's TCP and UDP) and
kernel_sockets.py (a non-blocking kernel socket).
"""

from __future__ import annotations

import asyncio
import errno
from abc import ABC, abstractmethod
from typing import Any

from usernet.socket.options import Option

__all__ = ["Address", "Impl", "Received", "add_waiter", "no_option", "would_block"]

Address = tuple[str, int]
#: A received datagram or segment: (data, sender, MSG_* flags of the reception).
Received = tuple[bytes, Address | None, int]


def would_block(code: int = errno.EAGAIN) -> BlockingIOError:
    return BlockingIOError(code, "the operation would block")


def add_waiter(waiters: list[asyncio.Future[None]], loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    """A new future appended to `waiters`, after dropping the ones already done: a call that timed
    out cancels its future, and a socket polled with timeouts must not keep one per call."""
    waiters[:] = [future for future in waiters if not future.done()]
    future = loop.create_future()
    waiters.append(future)
    return future


def no_option(option: Option | None, what: str) -> OSError:
    name = f"{option.level}.{option.name}" if option else what
    return OSError(errno.ENOPROTOOPT, f"usernet does not support the option {name} here: see supports('options')")


class Impl(ABC):
    """One socket of one backend. Methods run on the loop thread and never block."""

    backend: str
    family: int
    type: int
    protocol: int

    @abstractmethod
    def bind(self, address: Address) -> None: ...

    @abstractmethod
    def listen(self, backlog: int) -> None: ...

    @abstractmethod
    def accept(self) -> tuple[Impl, Address]: ...

    @abstractmethod
    def connect(self, address: Address) -> None: ...

    @abstractmethod
    def receive(self, size: int, flags: int) -> Received:
        """Up to `size` bytes (a stream) or one datagram cut to `size` (0: whole); b"" at end of stream."""

    @abstractmethod
    def send(self, data: memoryview, address: Address | None, flags: int) -> int: ...

    @abstractmethod
    def shutdown(self, how: int) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def sockname(self) -> Address: ...

    @abstractmethod
    def peername(self) -> Address: ...

    @abstractmethod
    def setopt(self, level: int, name: int, value: int | bytes) -> None: ...

    @abstractmethod
    def getopt(self, level: int, name: int) -> int: ...

    @abstractmethod
    def wait(self, write: bool) -> asyncio.Future[None]:
        """A future resolved when the socket has news for reading (or, with `write`, writing)."""

    @abstractmethod
    def state(self) -> str: ...

    def details(self) -> dict[str, Any]:
        """Backend-specific facts for info(): the TCP_INFO-like statistics of a usernet connection."""
        return {}
