"""Round-trip time estimation and the retransmission timeout (RFC 6298), and the
timestamp clock that gives RTT samples from echoed timestamps (RFC 7323).

Karn's algorithm is the caller's half of the contract: never call `sample` with the
RTT of a segment that was retransmitted, because its ACK cannot say which copy it
answers (RFC 6298 §3). RTT samples from the timestamp option do not have that
ambiguity (the retransmission carries a fresh TSval), so with timestamps every ACK
that advances SND.UNA may be sampled.
"""

from __future__ import annotations

import math
from typing import Any

from usernet.stack.tcp.frozen import Freezable, field

ALPHA = 1 / 8  # SRTT gain (RFC 6298 §2)
BETA = 1 / 4  # RTTVAR gain
K = 4  # RTTVAR multiplier in RTO = SRTT + max(G, K*RTTVAR)
TS_HZ = 1000.0  # the TSval clock's default rate (Linux's)


class RttEstimator(Freezable):
    """SRTT, RTTVAR and the current RTO of one connection, in seconds.

    `rto` is a plain attribute (read each time the timer is armed) that already
    includes the exponential backoff and the rto_min/rto_max bounds.

    The default `rto_min` is 0.2 s as in Linux, where RFC 6298 (2.4) says 1 s: a
    200 ms floor is what peers on the same host or LAN expect, and 1 s makes every
    loss on a fast path cost a second. Pass rto_min=1.0 for the RFC's value.

    With `rto_min_variance` the floor bounds the variance term instead, as Linux's
    tcp_rtt_estimator and tcp_set_rto do (RTO = SRTT + max(4*RTTVAR, rto_min)): once samples
    settle, Linux's RTO stays rto_min above SRTT where RFC 6298's falls to rto_min. Linux's
    own RTTVAR (mdev with a per-round maximum) is not modelled: the RFC's is used.
    """

    __slots__ = (
        "_base",
        "backoffs",
        "granularity",
        "min_rtt",
        "rto",
        "rto_max",
        "rto_min",
        "rto_min_variance",
        "rttvar",
        "srtt",
    )
    FROZEN = __slots__
    FROZEN_DEFAULTS = {"min_rtt": math.inf, "rto_min_variance": False}  # noqa: RUF012  # a ClassVar table, as Freezable's

    def __init__(
        self,
        *,
        granularity: float = 0.001,
        rto_min: float = 0.2,
        rto_max: float = 120.0,
        rto_initial: float = 1.0,
        rto_min_variance: bool = False,
    ) -> None:
        if not 0 < rto_min <= rto_max:
            raise ValueError(f"need 0 < rto_min <= rto_max, got {rto_min} and {rto_max}")
        if granularity < 0:
            raise ValueError(f"clock granularity must not be negative, got {granularity}")
        self.reset(granularity, rto_min, rto_max, rto_min_variance, self._bound(rto_initial, rto_min, rto_max))

    def fresh(self) -> RttEstimator:
        """A new estimator with this one's settings and RTO, and no samples.

        Connections start from one prototype per config (`TcpConfig.rtt_prototype`, which
        took no samples, so its RTO is the bounded initial one): copying its checked values
        costs less than building each from keywords and checking them again.
        """
        new = RttEstimator.__new__(RttEstimator)
        new.reset(self.granularity, self.rto_min, self.rto_max, self.rto_min_variance, self.rto)
        return new

    def reset(self, granularity: float, rto_min: float, rto_max: float, rto_min_variance: bool, rto: float) -> None:
        """Start over with these settings (unchecked: `__init__` checks them) and `rto`, and no samples."""
        self.granularity = granularity
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.rto_min_variance = rto_min_variance
        self.srtt: float | None = None  # None until the first sample (RFC 6298 §2.1)
        self.rttvar = 0.0
        self.backoffs = 0  # RTO doublings since the last valid sample or reset_backoff
        self.min_rtt = math.inf  # the lowest sample (RACK's min_RTT; Linux keeps a 5-minute windowed min)
        self._base = rto
        self.rto = rto

    @staticmethod
    def _bound(rto: float, rto_min: float, rto_max: float) -> float:
        return rto_min if rto < rto_min else rto_max if rto > rto_max else rto

    def sample(self, rtt: float, expected_samples: int = 1) -> None:
        """Take one RTT measurement (seconds) and recompute RTO; clears any backoff.

        `expected_samples` spreads the gains when many samples arrive per round trip,
        as with timestamps on every ACK: RFC 7323 Appendix G uses
        alpha/ExpectedSamples and beta/ExpectedSamples with
        ExpectedSamples = ceil(FlightSize / (2 * SMSS)).
        """
        if rtt < 0:
            rtt = 0.0
        if rtt < self.min_rtt:
            self.min_rtt = rtt
        srtt = self.srtt
        if srtt is None:  # (2.2)
            srtt = rtt
            rttvar = rtt / 2
        else:  # (2.3): RTTVAR first, with the old SRTT
            delta = srtt - rtt
            if delta < 0:
                delta = -delta
            if expected_samples > 1:
                beta = BETA / expected_samples
                alpha = ALPHA / expected_samples
                rttvar = (1 - beta) * self.rttvar + beta * delta
                srtt = (1 - alpha) * srtt + alpha * rtt
            else:  # one sample a round trip: the gains as literals, 1 - BETA and 1 - ALPHA exact
                rttvar = 0.75 * self.rttvar + 0.25 * delta
                srtt = 0.875 * srtt + 0.125 * rtt
        self.rttvar = rttvar
        self.srtt = srtt
        var = K * rttvar
        rto_min = self.rto_min
        floor = rto_min if self.rto_min_variance else self.granularity  # RFC 6298 (2.3)'s G, or Linux's
        # `_bound` spelled out: this runs for every ACK that carries a sample.
        rto = srtt + (var if var > floor else floor)
        if rto < rto_min:
            rto = rto_min
        elif rto > self.rto_max:
            rto = self.rto_max
        self._base = rto
        self.backoffs = 0
        self.rto = rto

    def backoff(self) -> None:
        """Double the RTO after the retransmission timer fired (RFC 6298 (5.5)), up to rto_max."""
        self.backoffs += 1
        rto = self.rto * 2
        self.rto = rto if rto < self.rto_max else self.rto_max

    def reset_backoff(self) -> None:
        """Return to the RTO computed from SRTT and RTTVAR, without a new sample."""
        self.backoffs = 0
        self.rto = self._base


class TimestampClock(Freezable):
    """The TSval clock of RFC 7323 §5.4: `hz` ticks per second, plus a per-connection offset.

    The offset hides the host's uptime and keeps connections' clocks unrelated
    (RFC 7323 §7.1); `IsnGenerator.ts_offset` makes one from the connection's addresses.
    The default 1 kHz is Linux's rate and within the RFC's 1 ms to 1 s range.
    """

    __slots__ = ("hz", "offset")
    FROZEN = ("hz",)
    NOT_FROZEN = ("offset",)  # frozen as the TSval at the freeze instant: the clock goes on from it

    def __init__(self, hz: float = TS_HZ, offset: int = 0) -> None:
        if not 1.0 <= hz <= 1000.0:
            raise ValueError(f"a TSval clock ticks between 1 and 1000 times a second (RFC 7323 §5.4), got {hz}")
        self.hz = hz
        self.offset = offset

    def freeze(self, now: float) -> dict[str, Any]:
        """The rate and the TSval now: thawed on another clock, TSvals continue from it, never back."""
        return {"hz": self.hz, "tsval": self.tsval(now)}

    def restore(self, state: dict[str, Any], now: float) -> None:
        self.hz = field(state, "hz", float, "TimestampClock")
        self.offset = field(state, "tsval", int, "TimestampClock") - math.floor(now * self.hz)

    def tsval(self, now: float) -> int:
        """The TSval to send at time `now`."""
        return (math.floor(now * self.hz) + self.offset) & 0xFFFFFFFF

    def rtt(self, now: float, tsecr: int) -> float | None:
        """The RTT an echoed TSecr measures, in seconds; None if the echo is from the future.

        The result is a whole number of ticks, so samples shorter than one tick read 0:
        keep the estimator's granularity at least 1/hz.
        """
        # seq_sub(tsval(now), tsecr) spelled out (once per ACK): timestamps wrap like sequence
        # numbers (RFC 7323 §5.2). `tsval`'s own mask is left out: the one here covers it.
        ticks = ((math.floor(now * self.hz) + self.offset - tsecr + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        if ticks < 0:
            return None
        return ticks / self.hz
