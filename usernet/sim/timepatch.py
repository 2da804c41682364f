"""Wall-clock reads in virtual time, for the length of a run (`Network(patch_time=True)`).

The loop's clock is virtual whatever happens; but code that reads `time.time()` or
`time.monotonic()` itself (a rate limiter, a cache expiry, an HTTP Date header) would
see the wall clock move by microseconds while the simulation jumps minutes, and would
make runs differ. `virtual_time(clock)` replaces those functions in the `time` module
while it is active. It cannot reach names bound before it started: a module that did
`from time import monotonic` keeps the real one (see docs/simulation.md).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

__all__ = ["EPOCH", "virtual_time"]

#: What `time.time()` says at virtual time 0: 2024-01-01T00:00:00Z.
EPOCH = 1_704_067_200.0


@contextlib.contextmanager
def virtual_time(clock: Callable[[], float]) -> Iterator[None]:
    """Make time.time/time_ns/monotonic/monotonic_ns read `clock` (seconds) until the block ends."""
    saved = (time.time, time.time_ns, time.monotonic, time.monotonic_ns)

    def wall() -> float:
        return EPOCH + clock()

    def wall_ns() -> int:
        return round((EPOCH + clock()) * 1e9)

    def monotonic_ns() -> int:
        return round(clock() * 1e9)

    time.time, time.time_ns, time.monotonic, time.monotonic_ns = wall, wall_ns, clock, monotonic_ns
    try:
        yield
    finally:
        time.time, time.time_ns, time.monotonic, time.monotonic_ns = saved
