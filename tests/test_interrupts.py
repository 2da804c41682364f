"""Ctrl-C ends an asyncio program on a usernet loop (the stdlib-based one and the uvloop-based one),
wherever the presses land.

The second press is put at the exact point that hung `python -m usernet` under CI load:
inside the `call_soon` that asyncio.Runner's first-press handler makes while it cancels
the main task (the handlers nest). A KeyboardInterrupt raised there leaves the task
waiting on a cancelled future whose wakeup was never queued, and Runner.close then runs
the loop for ever waiting for it. A profiler function in the child watches for the two
calls and sends the signal; nothing depends on timing. uvloop's `call_soon` is compiled
(no Python frame inside it, so no handler can run there): on it the second press lands as
the first one's handler calls the main task's `cancel`, the nearest point a handler can run.

uvloop sets a wakeup fd of its own while it runs (usernet's is the selector loop's self-pipe):
the tests that put the main thread to sleep in epoll_wait show a press still wakes it there.
Timeouts are hang guards only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import pytest

from usernet import interrupts
from usernet.aio.loop import UsernetSelectorEventLoop

#: How each child program gets the loop: (import line, class), and where its second press lands.
LOOPS = {
    "asyncio": (
        "from usernet.aio.loop import UsernetSelectorEventLoop as Loop",
        'event == "call" and frame.f_code is CALL_SOON',
    ),
    "uvloop": (
        "from usernet.aio.uv import UsernetUvloop as Loop",
        'event == "c_call" and frame.f_code is HANDLER and getattr(arg, "__name__", "") == "cancel"',
    ),
}

#: Runs `main` with asyncio.Runner on a usernet loop (no link: the program never touches the network).
PROGRAM = textwrap.dedent(
    """
    import asyncio, asyncio.base_events, asyncio.runners, os, signal, sys
    {loop_import}

    HANDLER = asyncio.runners.Runner._on_sigint.__code__
    CALL_SOON = asyncio.base_events.BaseEventLoop.call_soon.__code__
    armed = False

    def profile(frame, event, arg):
        global armed
        if event == "call" and frame.f_code is HANDLER and armed is False:
            armed = True  # the first press is being handled
        elif armed and {second_press}:
            armed = None
            os.write(2, b"second SIGINT inside the first one's handling\\n")
            os.kill(os.getpid(), signal.SIGINT)  # its handler runs here, in the profiler
            sys.setprofile(None)

    async def main():
        sys.setprofile(profile)
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGINT)
        await asyncio.Event().wait()

    with asyncio.Runner(loop_factory=Loop) as runner:
        runner.run(main())
    """
)


@pytest.mark.parametrize("kind", LOOPS)
def test_a_second_ctrl_c_inside_the_first_ones_handling_ends_the_program(kind: str) -> None:
    loop_import, second_press = LOOPS[kind]
    done = _run(PROGRAM.replace("{loop_import}", loop_import).replace("{second_press}", second_press), "Ctrl-C twice")
    assert "second SIGINT inside the first one's handling" in done.stderr, done.stderr  # it landed where it hung
    assert done.returncode == -signal.SIGINT, done.stderr  # ended by the KeyboardInterrupt, as Ctrl-C should


#: Waits (in /proc) until the main thread sleeps in epoll_wait, the syscall it would never leave.
AWAIT_SLEEP = textwrap.dedent(
    """
    import os, threading

    EPOLL_WAITS = {"232", "281", "441"}  # epoll_wait, epoll_pwait, epoll_pwait2 (x86-64)

    def until_main_sleeps():
        main = threading.main_thread().native_id
        while True:
            with open(f"/proc/self/task/{main}/syscall") as state:
                if state.read().split()[0] in EPOLL_WAITS:
                    return
    """
)

#: The main thread asleep in epoll_wait (no timers: no timeout), SIGINT caught on another thread.
ASLEEP = AWAIT_SLEEP + textwrap.dedent(
    """
    import asyncio, signal
    {loop_import}

    def catch_it_here():
        until_main_sleeps()
        os.write(2, b"main asleep in epoll_wait\\n")
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # the C handler runs on this thread

    async def main():
        threading.Thread(target=catch_it_here, daemon=True).start()
        await asyncio.Event().wait()

    with asyncio.Runner(loop_factory=Loop) as runner:
        runner.run(main())
    """
)


@pytest.mark.parametrize("kind", LOOPS)
def test_a_ctrl_c_another_thread_catches_wakes_the_loop(kind: str) -> None:
    done = _run(ASLEEP.replace("{loop_import}", LOOPS[kind][0]), "a Ctrl-C caught on another thread")
    assert "main asleep in epoll_wait" in done.stderr, done.stderr
    assert done.returncode == -signal.SIGINT, done.stderr


#: `usernet.run` on the loop `sys.argv[1]` names. Its main task takes the first press's cancellation
#: and cleans up for ever; it says on stdout each time the main thread sleeps in epoll_wait.
CLEANS_UP_FOR_EVER = AWAIT_SLEEP + textwrap.dedent(
    """
    import asyncio, sys
    import usernet

    reached = threading.Condition()
    phase = [0]

    def enter(n):
        with reached:
            phase[0] = n
            reached.notify_all()

    def report_sleeps():
        for n in (1, 2):
            with reached:
                reached.wait_for(lambda: phase[0] >= n)
            until_main_sleeps()
            os.write(1, f"asleep {n}\\n".encode())

    async def main():
        threading.Thread(target=report_sleeps, daemon=True).start()
        try:
            enter(1)
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            os.write(2, b"cancelled: cleaning up for ever\\n")
            enter(2)
            await asyncio.Event().wait()

    usernet.run(main(), loop=sys.argv[1])
    """
)


@pytest.mark.parametrize("kind", LOOPS)
def test_two_presses_sent_by_pid_to_a_sleeping_loop_end_a_program_that_ignores_the_first(kind: str) -> None:
    """The first press cancels the main task, the second raises KeyboardInterrupt: each arrives from
    outside (kill(pid), as a terminal's Ctrl-C does) while the loop sleeps with nothing to do."""
    argv = [sys.executable, "-c", AT_A_TERMINAL + CLEANS_UP_FOR_EVER, kind]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env()) as child:
        hang_guard = threading.Timer(60, child.kill)  # a loop that never wakes never writes the next line
        hang_guard.start()
        try:
            assert child.stdout is not None
            for n in (1, 2):
                if child.stdout.readline() != f"asleep {n}\n":
                    break  # it died, or the guard killed it: the asserts below say which
                os.kill(child.pid, signal.SIGINT)
            _, err = child.communicate()
        finally:
            hang_guard.cancel()
    assert child.returncode != -signal.SIGKILL, f"the program hung after a press: {err!r}"
    assert "cancelled: cleaning up for ever" in err, err  # the first press reached the main task
    assert child.returncode == -signal.SIGINT, err  # the second one ended it
    assert err.rstrip().endswith("KeyboardInterrupt"), err


#: A child starts as a program at a terminal starts: Ctrl-C raises KeyboardInterrupt. A shell that
#: started the test run in the background (no job control) leaves SIGINT ignored, and a child would
#: inherit that and never see a press.
AT_A_TERMINAL = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("USERNET_")}


def _run(program: str, what: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", AT_A_TERMINAL + program]
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=_child_env(), timeout=60)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the program hung after {what}: {exc.stderr!r}")


def test_a_press_in_the_loops_machinery_waits_for_the_next_turn_and_one_in_the_program_acts_at_once() -> None:
    loop = UsernetSelectorEventLoop()
    seen: list[str] = []
    try:

        def callback() -> None:
            machinery = sys._getframe(1)  # asyncio's Handle._run, which runs this callback
            seen.append(f"machinery {interrupts.in_machinery(machinery)}")
            seen.append(f"program {interrupts.in_machinery(sys._getframe())}")

        loop.call_soon(callback)
        loop.call_soon(loop.stop)
        loop.run_forever()
    finally:
        loop.close()
    assert seen == ["machinery True", "program False"]


def _caught(frame: FrameType | None, log: list[str]) -> None:
    """Deliver a SIGINT as CPython would with `frame` current, to the handler the loop runs under."""
    handler = signal.getsignal(signal.SIGINT)
    assert callable(handler)
    log.append("signal")
    handler(signal.SIGINT, frame)
    log.append("handler returned")


@contextlib.contextmanager
def _loop_under(handler: Callable[[int, FrameType | None], object]) -> Iterator[UsernetSelectorEventLoop]:
    """A usernet loop, with `handler` as the SIGINT handler while it is used."""
    previous = signal.signal(signal.SIGINT, handler)
    loop = UsernetSelectorEventLoop()
    try:
        yield loop
    finally:
        loop.close()
        signal.signal(signal.SIGINT, previous)


def test_between_callbacks_moves_a_press_in_the_machinery_to_a_callback_of_its_own() -> None:
    log: list[str] = []
    with _loop_under(lambda signum, frame: log.append(f"handled {frame is None}")) as loop:

        def callback() -> None:
            _caught(sys._getframe(1), log)
            loop.call_soon(loop.stop)

        loop.call_soon(callback)
        loop.run_forever()
        # Then one in the program's own code: acted on there, with its frame.
        loop.call_soon(lambda: (_caught(sys._getframe(), log), loop.stop()))
        loop.run_forever()
    assert log == ["signal", "handler returned", "handled True", "signal", "handled False", "handler returned"]


def test_presses_still_waiting_when_the_loop_stops_act_then() -> None:
    log: list[str] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        log.append("handled")

    with _loop_under(handler) as loop:

        def callback() -> None:
            loop.stop()  # the turn ends before the callback the press became
            _caught(sys._getframe(1), log)

        loop.call_soon(callback)
        loop.run_forever()
        log.append("run_forever returned")
        assert signal.getsignal(signal.SIGINT) is handler  # put back
        loop.call_soon(loop.stop)
        loop.run_forever()  # the queued callback finds no press waiting
    assert log == ["signal", "handler returned", "handled", "run_forever returned"]


def test_a_third_press_while_two_wait_acts_at_once() -> None:
    """A loop stuck inside its machinery must still be interruptible."""
    log: list[str] = []
    with _loop_under(lambda signum, frame: log.append("handled")) as loop:

        def callback() -> None:
            for _ in range(3):
                _caught(sys._getframe(1), log)
            loop.stop()

        loop.call_soon(callback)
        loop.run_forever()
    assert log == ["signal", "handler returned"] * 2 + ["signal", "handled", "handler returned", "handled", "handled"]


def test_held_acts_on_a_press_after_the_block() -> None:
    log: list[str] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        log.append("handled")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        with interrupts.held():
            signal.raise_signal(signal.SIGINT)
            log.append("block ran on")
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert log == ["block ran on", "handled"]
