"""NOWAIT and the SelectInfo handle a NOWAIT call returns when it would block.

The handle completes once, when the operation is worth retrying. It can be awaited
(from any loop), waited for from a thread, given a callback, or cancelled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from usernet.socket.sockets import Socket

__all__ = ["NOWAIT", "NoWait", "SelectInfo", "Timeout"]


class NoWait:
    """The type of NOWAIT."""

    _instance: NoWait | None = None

    def __new__(cls) -> NoWait:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOWAIT"


#: Pass as `timeout` to try once and get a SelectInfo instead of waiting.
NOWAIT: Final = NoWait()
#: What a blocking call's `timeout` takes: seconds, None (no limit) or NOWAIT.
Timeout = float | None | NoWait
_tags = itertools.count(1)


class SelectInfo:
    """The handle a NOWAIT call returns when it would block: `{select, SelectInfo}` in Erlang.

    It completes (once) when the operation is worth retrying: data or a connection
    arrived, room opened, the connection finished opening or failed, or the socket was
    closed. `tag` names the operation ("recv", "accept"...), `ref` is unique.
    """

    __slots__ = ("_future", "_pending", "ref", "socket", "tag")

    def __init__(self, sock: Socket, tag: str, pending: asyncio.Future[None]) -> None:
        self.socket = sock
        self.tag = tag
        self.ref = next(_tags)
        self._pending = pending
        self._future: concurrent.futures.Future[None] = concurrent.futures.Future()
        pending.add_done_callback(self._settle)

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled() else "ready" if self.done() else "pending"
        return f"<SelectInfo {self.tag} #{self.ref} {state}>"

    def _settle(self, pending: asyncio.Future[None]) -> None:
        if self._future.done():
            return
        if pending.cancelled():
            self._future.cancel()
        elif pending.exception() is not None:
            self._future.set_exception(pending.exception())
        else:
            self._future.set_result(None)

    def done(self) -> bool:
        return self._future.done()

    def cancelled(self) -> bool:
        return self._future.cancelled()

    def cancel(self) -> bool:
        """Stop waiting; False when it had already completed. Safe from any thread."""

        def cancel() -> bool:
            self._pending.cancel()  # an asyncio future: cancelled on the loop's thread
            return not self._future.done() and self._future.cancel()

        return self.socket.stack.call(cancel)

    def add_done_callback(self, fn: Callable[[SelectInfo], object]) -> None:
        """Call `fn(self)` on completion or cancellation: on the stack's loop thread (or now, if already done)."""
        self._future.add_done_callback(lambda _: fn(self))

    def wait(self, timeout: float | None = None) -> bool:
        """Block a thread until the operation can be retried; False when `timeout` passed first."""
        try:
            self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            return False
        return True

    def __await__(self) -> Any:
        return asyncio.wrap_future(self._future).__await__()
