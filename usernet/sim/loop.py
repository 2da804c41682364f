"""The simulation's event loop: the stdlib selector loop on a virtual clock, one stack per host.

One loop runs every simulated host, so programs on different hosts may share asyncio
objects (an Event the server sets when it listens, a Queue the test reads), and the
loop's own ordering (FIFO callbacks, a timer heap) makes a run repeatable.

Time: `loop.time()` is the simulation's `VirtualClock`. The loop asks its selector to
wait until the next timer; `VirtualSelector` answers at once and moves the clock there
instead, so when nothing is runnable time jumps to the next deadline of any host, cable
or user timer. The one exception is work in `run_in_executor` threads: while some run,
the selector waits for them in real time without moving the clock (a thread's work takes
no virtual time).

Hosts: which host a piece of code runs on is a context variable (`resident()`), set in
the context each host's main starts in. asyncio copies the context into every task and
callback, so a task started by a host's code stays on that host; the loop's usernet
methods (`create_server`, `open_connection`, `create_datagram_endpoint`...) ask it for
their stack through `usernet_driver()` and `usernet_router`.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import ipaddress
import selectors
import socket
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from usernet.aio.driver import Driver
from usernet.aio.loop import UsernetLoopMixin
from usernet.aio.routing import Router
from usernet.drivers.config import UsernetConfig
from usernet.link.clock import VirtualClock

__all__ = ["Resident", "SimLoop", "SimulationDeadlock", "VirtualSelector", "current", "resident"]

_T = TypeVar("_T")
_FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}


class Resident(Protocol):
    """What the loop needs from the host a piece of code runs on."""

    name: str
    driver: Driver
    router: Router

    def adopt(self, task: asyncio.Task[Any]) -> None:
        """Take a task started by this host's code (cancel it if the host is down)."""
        ...


_resident: contextvars.ContextVar[Resident | None] = contextvars.ContextVar("usernet_sim_host", default=None)


class SimulationDeadlock(RuntimeError):
    """Every task waits, no timer is set and no thread works: nothing can ever happen again."""


def current() -> Resident | None:
    """The host the calling code runs on, or None outside every host."""
    return _resident.get()


def resident() -> Resident:
    """The host the calling code runs on; RuntimeError outside every host."""
    host = _resident.get()
    if host is None:
        raise RuntimeError(
            "this code runs on no simulated host, so it has no network: open sockets from a host's main "
            "(net.host(...) / net.client(...)) or from tasks it starts"
        )
    return host


def enter(host: Resident) -> contextvars.Context:
    """A fresh context in which code runs on `host` (hand copies of it to tasks and callbacks)."""
    context = contextvars.Context()
    context.run(_resident.set, host)
    return context


class VirtualSelector(selectors.BaseSelector):
    """A real selector (for the loop's self-pipe and threads) whose waits move a virtual clock instead."""

    def __init__(self, clock: VirtualClock, threads_busy: Callable[[], bool]) -> None:
        self._real = selectors.DefaultSelector()
        self._clock = clock
        self._threads_busy = threads_busy

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if self._threads_busy():
            return self._real.select(None)  # the thread's answer wakes the loop through its self-pipe
        if timeout is None:
            raise SimulationDeadlock(
                f"deadlock at virtual t={self._clock():.6f}s: every task waits for something no timer, frame "
                "or thread will bring (give Network.run a timeout to turn this into a timeout of the run)"
            )
        self._clock.advance(timeout)
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class _ResidentRouter(Router):
    """The Router of whichever host the calling code runs on; only simulated addresses are reachable."""

    def __init__(self) -> None:
        # IPv6 is carried: whether the calling code's host has it is its own router's answer
        # (`reaches`), so that an IPv6 socket on an IPv4-only host fails as one on Linux would.
        super().__init__((), only=True, ipv6=True)

    def is_local(self, host: str) -> bool:
        return resident().router.is_local(host)

    def on_network(self, host: str) -> bool:
        return resident().router.on_network(host)

    def reaches(self, host: str) -> bool:
        return resident().router.reaches(host)

    def refuse(self, what: str) -> None:
        here = resident()
        networks = ", ".join(str(i.network) for i in here.router.interfaces)
        raise OSError(
            errno.ENETUNREACH,
            f"{what} is not on the simulated network of host {here.name!r} ({networks}): code in a simulation "
            "reaches only the simulated hosts (the kernel's network is not used, so runs stay repeatable)",
        )


class SimLoop(UsernetLoopMixin, asyncio.SelectorEventLoop):
    """The loop of a simulated network: virtual time, and every socket on the stack of its host.

    `names` maps a host name to its addresses (none for a name that is no host), so code
    may connect to "server" as to a name in DNS; other names do not resolve (there is no
    DNS in a simulation).
    """

    def __init__(self, clock: VirtualClock, names: Callable[[str], tuple[str, ...]]) -> None:
        self._sim_clock = clock
        self._threads = 0
        super().__init__(VirtualSelector(clock, self._threads_busy))
        self._usernet_setup(UsernetConfig(only=True), None)  # no stack of its own: see usernet_driver()
        self.usernet_router = _ResidentRouter()
        self._names = names

    def time(self) -> float:
        return self._sim_clock()

    def usernet_driver(self) -> Driver:
        """The driver of the host the calling code runs on."""
        return resident().driver

    def create_task(self, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = super().create_task(coro, **kwargs)
        context: contextvars.Context | None = kwargs.get("context")
        host = context.get(_resident) if context is not None else _resident.get()
        if host is not None:
            host.adopt(task)
        return task

    def run_in_executor(self, executor: Any, func: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:  # type: ignore[override]
        future = super().run_in_executor(executor, func, *args)
        self._threads += 1
        future.add_done_callback(self._thread_done)
        return future

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        # A crash cancels a host's tasks; Python 3.11's start_server then calls
        # task.exception() on the cancelled handler task in a callback and reports the
        # CancelledError it gets as an error. It is the crash working, not a fault.
        if isinstance(context.get("exception"), asyncio.CancelledError):
            return
        super().call_exception_handler(context)

    def _thread_done(self, _: asyncio.Future[Any]) -> None:
        self._threads -= 1

    def _threads_busy(self) -> bool:
        return self._threads > 0

    async def getaddrinfo(
        self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, ...]]:
        """Host names of the simulation and address literals, answered at once (a host's addresses
        in the order it was given them); any other name does not resolve."""
        if isinstance(host, bytes):
            host = host.decode("idna")
        if not isinstance(host, str) or not host:
            return socket.getaddrinfo(host, port, family, type, proto, flags)
        addresses = self._names(host)
        if not addresses:
            try:
                literal = ipaddress.ip_address(host)
            except ValueError:
                raise socket.gaierror(
                    socket.EAI_NONAME, f"{host!r} is not a host of the simulated network (there is no DNS here)"
                ) from None
            if isinstance(literal, ipaddress.IPv6Address) and literal.scope_id:
                raise socket.gaierror(
                    socket.EAI_NONAME,
                    f"{host!r}: a zone names an interface of this machine; a simulated host has one link, "
                    "so give the address without it",
                )
            return socket.getaddrinfo(host, port, family, type, proto, flags)
        wanted = [a for a in addresses if family in (0, _FAMILY[ipaddress.ip_address(a).version])]
        if not wanted:
            raise socket.gaierror(socket.EAI_ADDRFAMILY, f"host {host!r} has no address of family {family!r}")
        return [info for a in wanted for info in socket.getaddrinfo(a, port, family, type, proto, flags)]
