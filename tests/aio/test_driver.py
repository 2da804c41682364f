"""The driver's promise that what the pump's callbacks write leaves with the pump, even when one raises.

A stub host stands in for the stack, so the test sees exactly which pumps and flushes
the driver makes; the reader callback is called as the loop would call it.
"""

from __future__ import annotations

import asyncio

import pytest

from usernet.aio.driver import Driver


class StubLink:
    def fileno(self) -> None:
        return None  # no reader: the test calls the driver's callback itself


class StubHost:
    """Two sockets have news at every pump; `waiting` is output the next flush sends."""

    def __init__(self) -> None:
        self.link = StubLink()
        self.flushes = 0
        self.waiting = False

    def start(self, now: float) -> None:
        pass

    def pump(self, now: float, due: bool | None = None) -> list[str]:
        return ["writes", "raises"]

    def flush(self, now: float) -> None:
        self.flushes += 1
        self.waiting = False

    def deadline(self) -> None:
        return None


class Writes:
    def __init__(self, driver: Driver, host: StubHost) -> None:
        self.driver, self.host = driver, host

    def stack_ready(self) -> None:
        self.host.waiting = True
        self.driver.request_flush()  # what transport.write does

    def stack_detached(self) -> None:
        pass


class Raises:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def stack_ready(self) -> None:
        raise self.exc

    def stack_detached(self) -> None:
        pass


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), ValueError("a protocol bug")])
def test_a_raising_callback_does_not_strand_what_the_others_wrote(exc: BaseException) -> None:
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda loop, context: None)  # the ValueError is reported there
    host = StubHost()
    driver = Driver(loop, host)  # type: ignore[arg-type]  # a stub host
    driver.attach()
    try:
        driver.register("writes", Writes(driver, host))  # type: ignore[arg-type]  # stub sockets
        driver.register("raises", Raises(exc))  # type: ignore[arg-type]  # stub sockets
        try:
            driver._on_event()
        except KeyboardInterrupt:
            pass
        assert host.flushes == 1 and not host.waiting, "the write made before the raise never left"
        assert not driver.flush_pending  # and later writes still schedule their own flush
    finally:
        driver.detach()
        loop.close()
