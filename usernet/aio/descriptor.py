"""A real file descriptor whose readiness mirrors a usernet socket, for select/poll/selectors.

Libraries look at the descriptor behind a transport (httpcore polls an idle pooled
connection: readable means the server closed it or sent something unasked); a usernet
socket has no kernel socket, so it gets a stand-in. An eventfd cannot be readable and
not writable, so the stand-in is one end ("theirs") of an AF_UNIX datagram socketpair
whose other end ("ours") sets its state:

- readable: ours has sent theirs one empty datagram (a kernel queues a zero-length
  datagram like any other); taking it back off theirs makes it unreadable again;
- not writable: theirs has sent ours one datagram bigger than a quarter of its send
  buffer (at the minimum size the kernel allows), which Linux counts against theirs
  until ours reads it (`unix_writable`: queued bytes x 4 <= sndbuf).

Each change of either bit is one system call, and none is made while the bits stay
the same, so a program that never asks for the descriptor pays nothing (it is made on
the first `fileno()`), and one that does pays only at changes (measured in
docs/asyncio.md). Nothing is ever read from or written to theirs by the program's
side in a correct program: it is only polled.
"""

from __future__ import annotations

import functools
import socket

__all__ = ["Readiness"]


@functools.cache
def _fill(sndbuf: int) -> bytes:
    """The datagram that makes a socket with this send buffer unwritable (one object for every pair)."""
    return b"\0" * (sndbuf // 4 + 1)


class Readiness:
    """One socketpair standing for a socket: `fileno()` polls readable/writable as `set` says."""

    __slots__ = ("_fill", "_ours", "_theirs", "readable", "writable")

    def __init__(self) -> None:
        theirs, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        theirs.setblocking(False)
        ours.setblocking(False)
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the kernel raises it to its minimum
        self._fill = _fill(theirs.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
        self._theirs = theirs
        self._ours = ours
        self.readable = False
        self.writable = True  # a fresh pair: nothing queued either way

    def fileno(self) -> int:
        return self._theirs.fileno()

    def set(self, readable: bool, writable: bool) -> None:
        """Make the descriptor poll as `readable`/`writable`; a system call only for a bit that changes."""
        if readable != self.readable:
            if readable:
                self._ours.send(b"")
            else:
                self._theirs.recv(1)
            self.readable = readable
        if writable != self.writable:
            if writable:
                self._ours.recv(len(self._fill))
            else:
                self._theirs.send(self._fill)
            self.writable = writable

    def close(self) -> None:
        self._theirs.close()
        self._ours.close()
