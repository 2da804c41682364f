"""A clock that only moves when told to, so simulations are exact and repeatable."""

from __future__ import annotations

__all__ = ["VirtualClock"]


class VirtualClock:
    """Simulated monotonic time in float seconds: call it to read, `advance`/`set` to move it.

    It has the same shape as `time.monotonic` or `loop.time` (a callable returning now), so
    links that need a clock take either.
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def advance(self, dt: float) -> float:
        """Move forward by `dt` seconds and return the new time."""
        if dt < 0:
            raise ValueError(f"a monotonic clock cannot go back: advance({dt!r})")
        self._now += dt
        return self._now

    def set(self, t: float) -> None:
        """Jump to `t`, which must not be earlier than now (links order frames by time)."""
        if t < self._now:
            raise ValueError(f"a monotonic clock cannot go back from {self._now!r} to {t!r}")
        self._now = float(t)

    def __repr__(self) -> str:
        return f"VirtualClock({self._now!r})"
