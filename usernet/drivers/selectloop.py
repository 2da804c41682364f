"""A plain selectors loop that drives one Host: what `usernet up` and `usernet ping` run on.

The asyncio loops do the same job for asyncio programs; this one exists so the stack
can be used and tested without asyncio.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable

from usernet.drivers.host import Host
from usernet.stack.interface import Socket

MAX_WAIT = 0.5


class Waker:
    """Cuts the loop's wait short: for other threads and for signal handlers.

    Without it the loop notices outside news only at the next frame or after
    MAX_WAIT. `write_fd` can be handed to `signal.set_wakeup_fd`, so a signal wakes
    the loop at once instead of letting select() resume its wait.
    """

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    def fileno(self) -> int:
        return self._r.fileno()

    @property
    def write_fd(self) -> int:
        return self._w.fileno()

    def wake(self) -> None:
        """Safe from any thread; a wake-up already pending makes this one a no-op."""
        try:
            self._w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is pending) or closed (the loop is gone)

    def drain(self) -> None:
        try:
            while self._r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        self._r.close()
        self._w.close()


def run(
    host: Host,
    on_ready: Callable[[Socket, float], object],
    *,
    until: Callable[[float], bool],
    clock: Callable[[], float] = time.monotonic,
    waker: Waker | None = None,
) -> None:
    """Pump `host` whenever its link is readable or a deadline passes, until `until(now)` is true.

    `on_ready` is told about each socket with news, once per batch. `until` runs at
    every iteration, also right after `waker` is woken: it is where work handed in
    from outside the loop gets done. The pump after it reads the clock again: an answer
    to what `until` sent may already be waiting (the kernel answers inside the write),
    and must not be stamped with the time it was sent.
    """
    fd = host.link.fileno()
    with selectors.DefaultSelector() as sel:
        if fd is not None:
            sel.register(fd, selectors.EVENT_READ)
        if waker is not None:
            sel.register(waker.fileno(), selectors.EVENT_READ, waker)
        host.start(clock())
        while True:
            now = clock()
            if until(now):
                return
            now = clock()
            for sock in host.pump(now):
                on_ready(sock, now)
            host.flush(now)
            deadline = host.deadline()
            wait = MAX_WAIT if deadline is None else min(MAX_WAIT, max(0.0, deadline - clock()))
            for key, _ in sel.select(wait):
                if key.data is not None:
                    key.data.drain()
