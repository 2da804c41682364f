"""`usernet.socket`: a socket-level API in the style of Erlang/OTP's `socket` module.

Plain calls with a timeout, or with NOWAIT for a `SelectInfo` notified when the call
can be retried; usable from coroutines (the `a`-prefixed twins) and from plain
threads; on usernet's stack or the kernel's (`backend=`, per socket). See
docs/socket.md.
"""

import socket as _socket
from typing import Any

from usernet.socket.nowait import NOWAIT, SelectInfo, Timeout
from usernet.socket.options import Backend, is_supported, supports
from usernet.socket.sockets import Socket
from usernet.socket.stack import Stack

__all__ = [
    "NOWAIT",
    "SelectInfo",
    "Socket",
    "Stack",
    "Timeout",
    "info",
    "is_supported",
    "number_of",
    "open",
    "supports",
    "which_sockets",
]


def info(sock: Socket) -> dict[str, Any]:
    """What `sock` is and has done (Erlang's socket:info/1)."""
    return sock.info()


def which_sockets(filter: object = None, *, stack: Stack | None = None) -> list[Socket]:
    """The open sockets of `stack` (in a coroutine: the running loop's), all or those `filter` picks."""
    return (stack or Stack.current()).which_sockets(filter)


def number_of(*, stack: Stack | None = None) -> int:
    return (stack or Stack.current()).number_of()


def open(
    domain: int = _socket.AF_INET,
    type: int = _socket.SOCK_STREAM,
    protocol: int = 0,
    *,
    backend: Backend | None = None,
    stack: Stack | None = None,
) -> Socket:
    """A new socket on `stack` (from a coroutine: the running loop's) and `backend` (see Stack.open)."""
    return (stack or Stack.current()).open(domain, type, protocol, backend=backend)
