"""The driver's timer, on a virtual clock: every deadline runs at its time, whoever moved it.

A real Host drives a stub interface whose one deadline the test moves the ways the stack
does: a frame that makes something due at once, a flush (a write outside a pump) that
brings it forward, a timer already due when a frame arrives. The loop's clock is the
test's (`loop.time` replaced), so no step sleeps; the loop is run one iteration at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from usernet.aio.driver import Driver
from usernet.drivers.host import Host


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class StubLink:
    """No fd (the test calls the reader itself), no deadline of its own, frames from `inbox`."""

    def __init__(self) -> None:
        self.inbox: list[bytes] = []

    def fileno(self) -> None:
        return None

    def poll(self, now: float) -> None:
        pass

    def receive(self, max_frames: int) -> list[bytes]:
        frames, self.inbox = self.inbox, []
        return frames

    def send(self, frame: bytes) -> None:
        pass

    def next_deadline(self) -> None:
        return None


class StubInterface:
    """One deadline; `poll` records when it ran and clears what was due."""

    def __init__(self) -> None:
        self.config = SimpleNamespace(tx_checksum_partial=False, tso_max=0, rx_checksum_trusted=False, ethernet=True)
        self.deadline: float | None = None
        self.polls: list[float] = []
        #: What the next flush arms, `now` plus this (a write outside a pump starting an RTO).
        self.flush_arms: float | None = None

    def start(self, now: float) -> None:
        pass

    def receive(self, frame: bytes, now: float) -> None:
        if frame == b"due now":
            self.deadline = now

    def poll(self, now: float) -> None:
        self.polls.append(now)
        if self.deadline is not None and self.deadline <= now:
            self.deadline = None

    def flush(self, now: float) -> None:
        if self.flush_arms is not None:
            at = now + self.flush_arms
            self.flush_arms = None
            if self.deadline is None or at < self.deadline:
                self.deadline = at

    def take_output(self) -> list[bytes]:
        return []

    def take_ready(self) -> list[object]:
        return []

    def next_deadline(self) -> float | None:
        return self.deadline


class Rig:
    def __init__(self) -> None:
        self.clock = Clock()
        self.loop = asyncio.new_event_loop()
        self.loop.time = self.clock  # type: ignore[method-assign]  # the virtual clock
        self.link = StubLink()
        self.iface = StubInterface()
        self.driver = Driver(self.loop, Host(self.link, self.iface))  # type: ignore[arg-type]  # stubs

    def iteration(self) -> None:
        """One loop iteration: what is ready, and the timers due at the clock's time."""
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()


@pytest.fixture
def rig() -> Iterator[Rig]:
    rig = Rig()
    rig.driver.attach()
    try:
        yield rig
    finally:
        rig.driver.detach()
        rig.loop.close()


def test_a_deadline_a_frame_makes_due_at_once_runs_at_that_time(rig: Rig) -> None:
    rig.clock.now = 5.0
    rig.link.inbox.append(b"due now")
    rig.driver._on_event()  # the reader, as the loop calls it
    rig.iteration()
    assert rig.iface.polls == [5.0], "the timer the frame made due never ran, or ran late"
    assert rig.iface.deadline is None


def test_a_deadline_a_flush_brings_forward_is_armed_and_runs_on_time(rig: Rig) -> None:
    rig.iface.deadline = 30.0
    rig.driver._rearm()
    assert rig.driver.armed == 30.0
    rig.clock.now = 5.0
    rig.iface.flush_arms = 2.0
    rig.driver.request_flush()  # a write outside a pump
    rig.iteration()
    assert rig.driver.armed == 7.0, "the earlier deadline the flush made is not armed"
    rig.clock.now = 7.0
    rig.iteration()
    assert rig.iface.polls == [7.0]


def test_a_timer_due_when_frames_arrive_runs_once_in_that_pump(rig: Rig) -> None:
    rig.iface.deadline = 5.0
    rig.driver._rearm()
    rig.clock.now = 5.0
    rig.link.inbox.append(b"data")
    rig.driver._on_event()
    assert rig.iface.polls == [5.0], "the due timer waited for a later pump"
    rig.iteration()  # the handle armed for 5.0 fires and finds nothing due
    assert rig.iface.polls == [5.0]
    assert rig.driver.armed is None


def test_a_deadline_met_by_a_late_pump_runs_in_it(rig: Rig) -> None:
    """A frame pump after the deadline passed (the loop was busy) runs the timer first."""
    rig.iface.deadline = 1.0
    rig.driver._rearm()
    rig.clock.now = 3.0
    rig.link.inbox.append(b"data")
    rig.driver._on_event()
    assert rig.iface.polls == [3.0]
