"""Ctrl-C that does not cut asyncio's or usernet's own machinery in half.

CPython runs a Python signal handler between two bytecodes of whatever the main thread
executes, and handlers nest: a second SIGINT can run the handler again inside the first.
asyncio.Runner's handler cancels the main task on the first Ctrl-C and raises
KeyboardInterrupt on the second. Raised inside the loop's code, that KeyboardInterrupt
loses a wakeup: in the `call_soon` that the first press's `main_task.cancel()` makes
(the future the task waits on is cancelled, the task's wakeup never queued), or between
the loop popping a callback off its ready queue and running it. The Runner's clean-up
then cancels the task again and runs the loop until it finishes, which it never does: the
program hangs instead of stopping, and a sandbox's namespace, deleted at exit, stays
(bpo-39622, cpython#95592; `python -m usernet --sandbox` under Ctrl-C twice on a loaded machine).

`between_callbacks` moves such a press to the next turn of the loop, as a callback of its
own, when it lands in that machinery; anywhere else (the program's code, a tight loop in a
coroutine) it acts at once, as CPython has it. `held` keeps presses back for a block that
must finish (closing a loop, deleting a namespace) and acts on them after.

This module imports nothing from usernet: the link layer (sandbox) and the asyncio face use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import signal
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

__all__ = ["between_callbacks", "held", "in_machinery", "waking"]

Handler = Callable[[int, FrameType | None], Any]

#: Code whose state a KeyboardInterrupt can leave half-changed: asyncio's loop, its selector, usernet.
_MACHINERY = tuple(os.path.join(os.path.dirname(os.path.abspath(path)), "") for path in (asyncio.__file__, __file__))
_SELECTORS = os.path.abspath(selectors.__file__)
#: The standard library: a frame there runs for whoever called it, so the caller decides.
_STDLIB = os.path.join(os.path.abspath(sysconfig.get_paths()["stdlib"]), "")
_PACKAGES = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")

#: A press that arrives while this many earlier ones still wait for the loop acts at once:
#: the loop is stuck inside its machinery, and Ctrl-C must still end the program.
_PATIENCE = 2


def in_machinery(frame: FrameType | None) -> bool:
    """Whether a signal handler called with `frame` interrupted asyncio's or usernet's own code.

    The innermost frame that is neither the standard library's (it runs for its caller)
    nor the running tracer's or profiler's (an exception there surfaces in the frame it
    traces) decides.
    """
    skip = {getattr(hook, "__code__", None) for hook in (sys.gettrace(), sys.getprofile())}
    while frame is not None:
        code = frame.f_code
        if code not in skip:
            name = code.co_filename
            if name.startswith(_MACHINERY) or name == _SELECTORS:
                return True
            stdlib = name.startswith("<frozen ") or (name.startswith(_STDLIB) and not any(p in name for p in _PACKAGES))
            if not stdlib:
                return False
        frame = frame.f_back
    return False


@contextlib.contextmanager
def between_callbacks(call_soon_threadsafe: Callable[[Callable[[], None]], object]) -> Iterator[None]:
    """While the block runs a loop (on the main thread), a SIGINT that lands in the loop's machinery
    runs the installed handler as a callback of its own on the loop's next turn.

    Presses still waiting when the block ends are acted on then, in order. The handler
    found at the start is put back at the end unless someone replaced it meanwhile.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers run on the main thread only
        return
    original = signal.getsignal(signal.SIGINT)
    if not callable(original):
        yield  # SIG_DFL, SIG_IGN, or set outside Python: no Python handler to move
        return
    act: Handler = original
    waiting = [0]

    def deliver() -> None:
        if waiting[0]:
            waiting[0] -= 1
            act(signal.SIGINT, None)

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if waiting[0] >= _PATIENCE or not in_machinery(frame):
            act(signum, frame)
            return
        waiting[0] += 1
        try:
            call_soon_threadsafe(deliver)
        except RuntimeError:  # the loop is closed: nothing will run the callback
            waiting[0] -= 1
            act(signum, frame)

    signal.signal(signal.SIGINT, on_sigint)  # a press pending now acts first, before anything changed
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is on_sigint:
            signal.signal(signal.SIGINT, original)
        left, waiting[0] = waiting[0], 0  # the callbacks still queued find none waiting
        for _ in range(left):
            original(signal.SIGINT, None)


@contextlib.contextmanager
def waking(fd: int, kept: Callable[[], bool]) -> Iterator[None]:
    """While the block runs (on the main thread), a signal caught on any thread writes to `fd`, the
    loop's self-pipe, so a loop asleep in select() wakes and its thread runs the Python handler.

    The kernel may hand a process-directed SIGINT to any thread that does not block it (the
    control server's, in accept()). Python handlers run on the main thread only, and nothing
    else wakes one asleep in select() without a timeout: the press was never acted on, and
    the program never ended. Another wakeup fd (one asyncio's own signal handlers set) is left
    alone; ours is taken back at the end unless `kept()` (the loop has signal handlers of its
    own, which live on after the block).
    """
    if fd < 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
    if previous not in (-1, fd):
        signal.set_wakeup_fd(previous)  # someone else's: it wakes a loop already
    try:
        yield
    finally:
        if previous == -1 and not kept():
            current = signal.set_wakeup_fd(-1)
            if current != fd:
                signal.set_wakeup_fd(current)  # replaced meanwhile: not ours to take


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold Ctrl-C back while the block runs (on the main thread), then act on it as the handler before would.

    A KeyboardInterrupt raised half-way through a close (between unmounting a namespace
    and removing its file, between a loop's driver detaching and its link closing) would
    leave the rest undone; Ctrl-C twice is a common sequence.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield  # handlers are the main thread's; None: one set outside Python, which cannot be restored
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed and callable(previous):
        previous(signal.SIGINT, None)  # the default handler raises KeyboardInterrupt
    elif pressed and previous == signal.SIG_DFL:
        os.kill(os.getpid(), signal.SIGINT)
