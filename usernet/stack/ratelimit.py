"""A token bucket on the time handed in: how the stack caps what an attacker can make it send.

`TokenBucket(rate, burst)` lets `burst` events through at once and `rate` per second
after that; `allow(now)` spends a token or says no. It reads no clock: the stack passes
the `now` it was handed, so the virtual clock drives it in tests as the real one does.
"""

from __future__ import annotations


class TokenBucket:
    """At most `burst` at once, refilled at `rate` tokens per second."""

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        if rate < 0 or burst < 0:
            raise ValueError(f"a rate limit needs rate >= 0 and burst >= 0, got {rate} and {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = 0.0

    def allow(self, now: float) -> bool:
        """Spend one token if there is one (True), else False; refills for the time since the last call."""
        tokens = self._tokens + (now - self._at) * self.rate
        self._at = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True
