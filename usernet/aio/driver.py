"""Binds one Host to one asyncio loop: the reader, the single timer, the once-per-iteration flush.

Thread rule: the stack is not thread-safe and belongs to the thread of the loop that
drives it. A Host is driven by at most one loop at a time (attaching it to a second
running loop raises RuntimeError); transports refuse calls from other threads with a
RuntimeError that says to use `loop.call_soon_threadsafe`. No lock is taken on the
per-packet path.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import weakref
from typing import NoReturn, Protocol

from usernet.drivers.host import Host
from usernet.link.base import LinkFailed
from usernet.stack.interface import Socket

__all__ = ["Driver", "StackOwner"]

_claims: weakref.WeakKeyDictionary[Host, Driver] = weakref.WeakKeyDictionary()
_claims_lock = threading.Lock()


class StackOwner(Protocol):
    """What the driver calls on whoever registered a stack socket (a transport, a listener, a waiter).

    Every transport kind, the server's listeners, the socket-level holders and
    usernet.socket's sockets implement it; `Driver.register` takes nothing else.
    """

    def stack_ready(self) -> None:
        """The stack marked the socket ready (data, room, a connection, a state change, an error).

        Called from the driver's pump once per wake-up, before the pump's flush: what the
        owner writes here leaves with it. An exception is reported to the loop's exception
        handler and the other owners still hear their news.
        """
        ...

    def stack_detached(self) -> None:
        """The loop stopped driving the stack (it was closed): the socket is gone, nothing more will come."""
        ...


class Driver:
    """Moves frames for `host` on `loop` and tells transports when their sockets have news.

    The loop's clock is the stack's clock: every `now` handed to the stack is
    `loop.time()`. Work happens in three places only: the link's reader (or, for links
    without an fd, the timer), one `call_at` handle kept at or before `host.deadline()`,
    and one `call_soon` flush per loop iteration, scheduled by the first write of the
    iteration made outside a pump (writes made by the pump's own callbacks leave with it).

    Transports read two things from it on every write, so that the common case costs
    attribute reads rather than calls: `flush_pending` (a flush is already due before the
    loop waits again: nothing to request) and `pump_time` (inside a pump, the time the
    stack was handed: a write made by a pump's callback is stamped with it instead of
    reading the clock again; the flush after the callbacks uses the same time).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, host: Host) -> None:
        self.loop = loop
        self.host = host
        self.thread: int | None = None
        self._owners: dict[Socket, StackOwner] = {}
        self._fd: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._armed: float | None = None
        #: The host's next deadline as `_rearm` last read it (after the last flush): what a
        #: pump for frames takes as the time its timers are due, rather than asking again.
        #: When the link's or an agent's is the earlier, the pump polls the interface with
        #: nothing due, which does nothing.
        self._timers_at: float | None = None
        #: A flush runs before the loop waits again (a pump is running, or one is scheduled).
        self.flush_pending = False
        #: The `now` of the pump whose callbacks are running, else None.
        self.pump_time: float | None = None
        self._wake_pending = False
        self.attached = False

    # -- lifecycle -------------------------------------------------------------------------

    def attach(self) -> None:
        """Start driving the host from the calling thread, which must be the loop's."""
        with _claims_lock:
            other = _claims.get(self.host)
            if other is not None and other is not self:
                raise RuntimeError(
                    f"this usernet stack is already driven by {other.loop!r} (thread {other.thread}); a stack "
                    "belongs to one event loop at a time: close that loop first, or hand work to it with "
                    "asyncio.run_coroutine_threadsafe(coro, that_loop)"
                )
            _claims[self.host] = self
        self.thread = threading.get_ident()
        self.attached = True
        self._fd = self.host.link.fileno()
        if self._fd is not None:
            self.loop.add_reader(self._fd, self._on_event)
        self.host.start(self.loop.time())
        self._rearm()

    def detach(self) -> None:
        """Stop driving: drop the reader and the timer, close every socket transports still hold."""
        self.attached = False
        if self._fd is not None:
            self.loop.remove_reader(self._fd)
            self._fd = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._armed = None
        owners = list(self._owners.values())
        self._owners.clear()
        for owner in owners:
            owner.stack_detached()
        with _claims_lock:
            if _claims.get(self.host) is self:
                del _claims[self.host]

    def pause(self) -> None:
        """Stop reading the link and running timers until `resume` (a handover freezes the stack meanwhile)."""
        if self._fd is not None:
            self.loop.remove_reader(self._fd)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._armed = None
        self.attached = False

    def resume(self) -> None:
        """Drive the link again after `pause`."""
        self.attached = True
        if self._fd is not None:
            self.loop.add_reader(self._fd, self._on_event)
        self._pump(self.loop.time(), True)

    def owners(self) -> dict[Socket, StackOwner]:
        """Each stack socket with the transport (or waiter) it reports to."""
        return dict(self._owners)

    @property
    def armed(self) -> float | None:
        """The time the one timer handle is set for (at or before the host's deadline), or None."""
        return self._armed

    # -- transports' side ------------------------------------------------------------------

    def register(self, sock: Socket, owner: StackOwner) -> None:
        self._owners[sock] = owner

    def unregister(self, sock: Socket) -> None:
        self._owners.pop(sock, None)

    def check_thread(self) -> None:
        """Raise unless called from the loop's thread (the stack is not thread-safe)."""
        if threading.get_ident() != self.thread:
            raise RuntimeError(
                "usernet transports belong to their event loop's thread; from another thread use "
                "loop.call_soon_threadsafe(transport.<method>, ...)"
            )

    async def ipv6_settled(self, timeout: float = 5.0) -> None:
        """Wait while IPv6 addresses are in duplicate address detection (1 s after the stack starts,
        which is at a program's first network call): a connection to an IPv6 peer made at once
        would find no usable source address. Linux programs wait for the same (network-online)."""
        ipv6 = self.host.iface.ipv6
        end = self.loop.time() + timeout
        while ipv6 is not None and ipv6.settling and self.loop.time() < end:
            await asyncio.sleep(0.05)

    def request_flush(self) -> None:
        """Something was written: send it at the next loop iteration, with whatever else is written until then."""
        if not self.flush_pending and self.attached:
            self.flush_pending = True
            self.loop.call_soon(self._on_flush)

    def wake(self, context: contextvars.Context | None = None) -> None:
        """Pump at the next iteration: a link without an fd got something its deadline does not show yet.

        The pump runs in `context` when given (one the caller made for it), else in a copy of the caller's.
        """
        if not self._wake_pending:
            self._wake_pending = True
            self.loop.call_soon(self._on_wake, context=context)

    # -- loop callbacks --------------------------------------------------------------------

    def _on_wake(self) -> None:
        self._wake_pending = False
        if self.attached:
            self._pump(self.loop.time())

    def _on_timer(self) -> None:
        due = self._armed
        self._timer = None
        self._armed = None
        now = self.loop.time()
        # The loop may fire a timer up to its clock resolution early: what was due is due.
        # (A handle armed for a deadline that has since moved later finds nothing due.)
        self._pump(now if due is None or now >= due else due, True)

    def _on_flush(self) -> None:
        self.flush_pending = False
        if not self.attached:
            return
        try:
            self.host.flush(self.loop.time())
        except LinkFailed as exc:
            self._link_failed(exc)
        finally:
            self._rearm()

    def _pump(self, now: float | None = None, ask: bool = False) -> None:
        """Receive, run due timers, let the owners react, flush: the link's reader (`_on_event`,
        which reads the loop's clock) and the timer's and resume's work (given their time).

        Whether timers are due is the host's deadline `_rearm` read after the last flush
        (what the frames change, `_rearm` reads after this pump's flush and arms the timer
        for, at once when due); the timer and `resume` `ask` the interface afresh.
        """
        if now is None:
            now = self.loop.time()
        if ask:
            due = None
        else:
            at = self._timers_at
            due = at is not None and at <= now
        # Writes made by the callbacks below leave with this pump's one flush, in the same
        # callback: no extra loop iteration between a request and its answer.
        scheduled, outer = self.flush_pending, self.pump_time
        self.flush_pending = True
        self.pump_time = now
        host = self.host
        try:
            ready = host.pump(now, due)
            owners = self._owners
            for sock in ready:
                owner = owners.get(sock)
                if owner is None:
                    continue
                try:
                    owner.stack_ready()
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self.loop.call_exception_handler(
                        {"message": "Exception in a usernet protocol callback", "exception": exc, "transport": owner}
                    )
        except LinkFailed as exc:
            self._link_failed(exc)
        finally:
            # Also when a callback raised KeyboardInterrupt: the others' writes are not lost.
            self.flush_pending = scheduled
            self.pump_time = outer
            try:
                if self.attached:
                    host.flush(now)
            except LinkFailed as exc:
                self._link_failed(exc)
            finally:
                self._rearm()

    #: The link's reader: a pump at the loop's time, with no call between the loop and the pump.
    _on_event = _pump

    def _link_failed(self, exc: LinkFailed) -> NoReturn:
        """The link is gone: stop driving it and end the program with one line saying so.

        An ordinary exception from a loop callback is only logged, and the reader of a
        dead fd is called again at once: that would spin, a traceback per iteration.
        """
        self.detach()
        raise SystemExit(f"usernet: {exc.strerror or exc}") from exc

    def _rearm(self) -> None:
        # Lazily: a later deadline (an RTO pushed back by every ACK) keeps the armed
        # handle, which then fires early once and re-arms; only an earlier one replaces it.
        deadline = self._timers_at = self.host.deadline()
        armed = self._armed
        if deadline is None or (armed is not None and armed <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(deadline, self._on_timer)
        self._armed = deadline
