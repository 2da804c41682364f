"""The one stack a process started by `python -m usernet` / `usernet run` shares among its loops.

Programs create loops where usernet cannot pass arguments (`asyncio.run`,
`uvloop.new_event_loop()`, a policy): such loops find the installed `SharedHost` here.
It opens the link on first use — a program that never touches the network needs no
TAP — and keeps it until the process exits, so sequential `asyncio.run` calls see the
same interface, addresses and sandbox. One loop drives it at a time (see driver.py).
While the host is open the process answers a control socket (`usernet ss`, `usernet
stats`; drivers/control.py), through whichever loop drives the stack at the moment.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import socket
import sys
import threading
import time
from concurrent.futures import Future
from typing import Any

from usernet.aio import handover
from usernet.aio.driver import Driver
from usernet.drivers.config import UsernetConfig, open_host
from usernet.drivers.control import serving, snapshot
from usernet.drivers.handover import HandoverPoint
from usernet.drivers.host import Host

__all__ = ["SharedHost", "current", "install"]


class SharedHost:
    """A Host opened lazily from `config`, closed at interpreter exit."""

    def __init__(self, config: UsernetConfig) -> None:
        self.config = config
        self._host: Host | None = None
        self._exit = contextlib.ExitStack()
        self._lock = threading.Lock()
        self._driver: Driver | None = None

    def get(self) -> Host:
        with self._lock:
            if self._host is None:
                if self.config.handover is None:
                    self._host = self._exit.enter_context(open_host(self.config, clock=time.monotonic))
                else:
                    self._host = self._exit.enter_context(handover.open_or_take_over(self.config, self._hand_over))
                self._exit.enter_context(serving(self._answer))
                atexit.register(self.close)
            return self._host

    def driven_by(self, driver: Driver | None) -> None:
        """Record the driver (and so the loop) now driving the stack (None: none): control requests
        and handovers run on its thread."""
        self._driver = driver

    def _hand_over(self, point: HandoverPoint, conn: socket.socket) -> bool:
        """A successor asks for the stack (on the handover thread): hand it over on the driving loop."""
        driver = self._driver
        if driver is None:
            point.refuse(conn, "no event loop drives the stack at this moment: try again")
            return False
        future = asyncio.run_coroutine_threadsafe(handover.hand_over(driver, point, conn), driver.loop)
        try:
            done = future.result(handover.DRAIN + 60)
        except Exception as exc:
            print(f"usernet: the handover through {point.path} failed: {exc!r}", file=sys.stderr, flush=True)
            return False
        if done:
            driver.loop.call_soon_threadsafe(_exit_handed_over)
        return done

    def _answer(self, request: str) -> dict[str, Any]:
        driver, host = self._driver, self._host
        loop = None if driver is None else driver.loop
        if host is None:
            return {"error": "the stack is closed"}
        if loop is None:  # between loops nobody touches the stack
            return snapshot(host.iface, request)
        future: Future[dict[str, Any]] = Future()

        def run() -> None:
            try:
                future.set_result(snapshot(host.iface, request))
            except Exception as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(5)

    def close(self) -> None:
        with self._lock:
            self._host = None
            self._exit.close()


def _exit_handed_over() -> None:
    """End the program once its stack is another process's: status 0, the handover succeeded."""
    raise SystemExit(0)


_installed: SharedHost | None = None


def install(config: UsernetConfig) -> SharedHost:
    """Make `config` the process's stack for loops created without arguments."""
    global _installed
    if _installed is not None:
        if _installed.config != config:
            raise RuntimeError("usernet is already installed in this process with a different configuration")
        return _installed
    _installed = SharedHost(config)
    return _installed


def current() -> SharedHost | None:
    return _installed
