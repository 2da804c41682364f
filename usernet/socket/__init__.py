"""`usernet.socket`: a socket-level API in the style of Erlang/OTP's `socket` module.

Plain calls with a timeout, or with NOWAIT for a `SelectInfo` notified when the call
can be retried; usable from coroutines (the `a`-prefixed twins) and from plain
threads; on usernet's stack or the kernel's (`backend=`, per socket). See
docs/socket.md.
"""

from typing import Any

from usernet.socket.core import NOWAIT, SelectInfo, Socket, Stack, Timeout, open
from usernet.socket.options import is_supported, supports

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
