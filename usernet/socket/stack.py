"""The Stack: the asyncio loop carrying usernet.socket sockets, the crossing to it, and its registry."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import socket
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, TypeVar

from usernet.aio.routing import forced_backend
from usernet.socket.base import Impl
from usernet.socket.kernel_sockets import KernelSocket
from usernet.socket.options import Backend
from usernet.socket.sockets import Socket
from usernet.socket.usernet_sockets import UsernetTcp, UsernetUdp

__all__ = ["Stack"]

T = TypeVar("T")


class Stack:
    """An asyncio loop that carries sockets, and the registry of its sockets.

    `Stack.start(config)` runs a usernet loop on a thread of its own (for programs that
    use threads); `Stack.of(loop)` (or `Stack.current()` in a coroutine) uses a loop
    that is already running. A usernet loop carries both backends; any other loop only
    kernel sockets.
    """

    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Stack]] = weakref.WeakKeyDictionary()

    def __init__(
        self, loop: asyncio.AbstractEventLoop, thread: threading.Thread | None = None, *, driver: Any = None
    ) -> None:
        """Prefer `of`/`current`/`start`; `driver=` puts the usernet sockets on another Driver of
        the same loop (a second stack on a simulated wire, in tests)."""
        # The registry maps each loop weakly to its stack, so the stack holds the loop (and the
        # loop's driver, which holds it too) weakly: a strong one would keep every loop forever.
        self._loop = weakref.ref(loop)
        self._thread = thread
        self._loop_thread: int | None = thread.ident if thread is not None else threading.get_ident()
        self._sockets: dict[Socket, None] = {}
        self._driver: Any = driver

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop()
        if loop is None:
            raise RuntimeError("the event loop of this usernet.socket Stack is gone")
        return loop

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Stack:
        """The stack of `loop`, which must be running on the calling thread."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:
            raise RuntimeError(
                "Stack.of(loop) is called from a coroutine running on that loop; elsewhere use Stack.start"
            )
        stack = cls._by_loop.get(loop)
        if stack is None:
            stack = cls._by_loop[loop] = cls(loop)
        return stack

    @classmethod
    def current(cls) -> Stack:
        """The stack of the running loop (call it from a coroutine)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "no event loop is running here: pass stack=usernet.socket.Stack.start(...) from plain threads"
            ) from None
        return cls.of(loop)

    @classmethod
    def start(cls, config: Any = None, *, host: Any = None) -> Stack:
        """A usernet loop (from `config`, a UsernetConfig, or driving `host`) running on its own thread."""
        from usernet.aio.loop import UsernetSelectorEventLoop

        loop = UsernetSelectorEventLoop(config=config, host=host)
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=serve, name="usernet.socket stack", daemon=True)
        thread.start()
        ready.wait()
        stack = cls(loop, thread)
        cls._by_loop[loop] = stack
        return stack

    def close(self) -> None:
        """Close every socket; a stack made by `start` also stops and closes its loop. Closing twice is harmless."""
        loop = self._loop()
        if loop is None or loop.is_closed():
            return  # its sockets went with it
        for sock in self.call(lambda: list(self._sockets)):
            sock.close()
        if self._thread is not None:  # `loop` is held here: once the thread ends, nothing else may hold it
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join()
            loop.close()
            self._thread = None

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- crossing to the loop's thread -------------------------------------------------------

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the loop's thread and return (or raise) its result."""
        if self.on_loop_thread():
            return fn(*args)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return  # the caller gave up: the loop had stopped
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

        return self._across(run, future)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop from another thread and wait for its result."""
        if self.on_loop_thread():
            coro.close()
            raise RuntimeError(
                "a blocking usernet.socket call on the stack's own loop thread would stop the loop: "
                "await the a-prefixed method (await sock.arecv(...)) or pass timeout=NOWAIT"
            )
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def start() -> None:
            if not future.set_running_or_notify_cancel():
                coro.close()
                return
            task = self.loop.create_task(coro)

            def done(task: asyncio.Task[T]) -> None:
                if task.cancelled():
                    future.set_exception(concurrent.futures.CancelledError())
                elif (exc := task.exception()) is not None:
                    future.set_exception(exc)
                else:
                    future.set_result(task.result())

            task.add_done_callback(done)

        return self._across(start, future)

    def _across(self, start: Callable[[], None], future: concurrent.futures.Future[T]) -> T:
        """Hand `start` to the loop's thread and wait for `future`, which it completes.

        A loop that is not running (stopped but not closed) would hold the call forever, and
        the thread with it: refuse it up front, and give up if the loop stops while waiting.
        """
        loop = self.loop
        if loop.is_closed():
            raise RuntimeError(
                "the event loop of this usernet.socket Stack is closed: the stack's sockets went with it"
            )
        if not loop.is_running():
            raise RuntimeError(self._NOT_RUNNING)
        loop.call_soon_threadsafe(start)
        # Wait, not result(timeout=): the call's own TimeoutError must not read as "still waiting".
        while not concurrent.futures.wait((future,), timeout=self._STOP_CHECK).done:
            if not loop.is_running() and not future.done():
                future.cancel()  # a call not yet started never starts; one under way is abandoned
                raise RuntimeError(self._NOT_RUNNING)
        return future.result()

    _STOP_CHECK = 0.2  # seconds between looks at whether the loop still runs
    _NOT_RUNNING = (
        "the event loop of this usernet.socket Stack is not running: run it (loop.run_forever()) "
        "while other threads call its sockets, or use Stack.start(), which runs one on its own thread"
    )

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` on the stack's loop, from a coroutine on that loop or on any other."""
        if self.on_loop_thread():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    # -- sockets --------------------------------------------------------------------------------

    def driver(self) -> Any:
        """The usernet driver of the loop, or None when it is not a usernet loop (kernel sockets only)."""
        if self._driver is not None:
            return self._driver
        from usernet.aio.loop import UsernetLoopMixin

        loop = self.loop
        return self.call(loop.usernet_driver) if isinstance(loop, UsernetLoopMixin) else None

    def open(
        self,
        domain: int = socket.AF_INET,
        type: int = socket.SOCK_STREAM,
        protocol: int = 0,
        *,
        backend: Backend | None = None,
    ) -> Socket:
        """A new socket on `backend`: "usernet" or "kernel"; by default what a surrounding
        `usernet.aio.use_backend(...)` block says, else usernet on a usernet loop."""
        owner = threading.get_ident()
        if backend is None:
            backend = forced_backend() or ("usernet" if self.driver() is not None else "kernel")
        if backend == "kernel":
            kernel = socket.socket(domain, type, protocol)
            try:
                return self.call(lambda: Socket(self, KernelSocket(self.loop, kernel), owner))
            except BaseException:
                kernel.close()  # the stack refused it (its loop is closed): the socket is ours to close
                raise
        if backend != "usernet":
            raise ValueError(f"backend is 'usernet' or 'kernel', not {backend!r}")
        driver = self.driver()
        if driver is None:
            raise OSError(errno.EAFNOSUPPORT, "this loop is not a usernet loop: it only has the kernel backend")
        if domain != socket.AF_INET:
            raise OSError(errno.EAFNOSUPPORT, "usernet sockets are IPv4 (AF_INET); use backend='kernel' for others")
        kinds: dict[tuple[int, int], Callable[[Any], Impl]] = {
            (socket.SOCK_STREAM, socket.IPPROTO_TCP): UsernetTcp,
            (socket.SOCK_DGRAM, socket.IPPROTO_UDP): UsernetUdp,
        }
        default: dict[int, int] = {socket.SOCK_STREAM: socket.IPPROTO_TCP, socket.SOCK_DGRAM: socket.IPPROTO_UDP}
        make = kinds.get((type, protocol or default.get(type, -1)))
        if make is None:
            raise OSError(errno.EPROTONOSUPPORT, "usernet sockets are TCP streams or UDP datagrams")
        return self.call(lambda: Socket(self, make(driver), owner))

    def register(self, sock: Socket) -> None:
        """Called by each new Socket, on the loop's thread."""
        self._sockets[sock] = None

    def forget(self, sock: Socket) -> None:
        """Called by a Socket as it closes, on the loop's thread."""
        self._sockets.pop(sock, None)

    def which_sockets(self, filter: object = None) -> list[Socket]:
        """The open sockets, all or those `filter` picks: "inet", "tcp", "udp", "stream", "dgram",
        "usernet", "kernel", a thread ident, or a function of info(sock) returning a bool."""
        found = self.call(lambda: list(self._sockets))
        if filter is None:
            return found
        if callable(filter):
            return [s for s in found if filter(s.info())]
        return [s for s in found if s.matches(filter)]

    def number_of(self) -> int:
        return self.call(lambda: len(self._sockets))
