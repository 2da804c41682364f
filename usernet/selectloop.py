"""A plain selectors loop that drives one Host: what `usernet up` and `usernet ping` run on.

The asyncio loops do the same job for asyncio programs; this one exists so the stack
can be used and tested without asyncio.
"""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable

from usernet.host import Host
from usernet.stack.interface import Socket

MAX_WAIT = 0.5


def run(
    host: Host,
    on_ready: Callable[[Socket, float], None],
    *,
    until: Callable[[float], bool],
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Pump `host` whenever its link is readable or a deadline passes, until `until(now)` is true.

    `on_ready` is told about each socket with news, once per batch.
    """
    fd = host.link.fileno()
    with selectors.DefaultSelector() as sel:
        if fd is not None:
            sel.register(fd, selectors.EVENT_READ)
        host.start(clock())
        while True:
            now = clock()
            if until(now):
                return
            for sock in host.pump(now):
                on_ready(sock, now)
            host.flush(now)
            deadline = host.deadline()
            wait = MAX_WAIT if deadline is None else min(MAX_WAIT, max(0.0, deadline - clock()))
            sel.select(wait)
