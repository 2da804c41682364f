"""Congestion control: how big the congestion window is, and how it reacts to ACKs,
losses and timeouts.

`CongestionControl` holds what every algorithm shares: RFC 5681 slow start with
appropriate byte counting (RFC 3465, L = 2), the initial window of RFC 6928, the
recovery-time window of fast recovery (NewReno's inflation and partial-ACK deflation,
RFC 6582, or none with SACK, where RFC 6675's pipe decides), and the timeout
response. An algorithm supplies two things: growth in congestion avoidance
(`_avoid`) and the slow-start threshold after a congestion event (`_decrease`).
`NewReno` and `Cubic` (RFC 9438) are the two provided.

The loss-recovery bookkeeping is the caller's: it counts duplicate ACKs or asks the
SACK scoreboard, remembers the recovery point, and tells this object what happened:

    cc.on_ack(newly_acked, now, srtt)          # SND.UNA advanced (also partial ACKs)
    cc.enter_recovery(now, flight_size, sack)  # fast retransmit
    cc.on_dupack()                             # each further dup ACK (matters without SACK)
    cc.on_recovery_exit(now, flight_size)      # the ACK covered the recovery point
    cc.on_rto(now, flight_size)                # the retransmission timer fired
    cc.on_ecn(now, flight_size)                # an ECN-Echo, at most once per window

Windows are in bytes; `cwnd` and `ssthresh` are plain int attributes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from usernet.stack.tcp.frozen import Freezable

INFINITE_SSTHRESH = 1 << 62  # "arbitrarily high" (RFC 5681 §3.1)
ABC_LIMIT = 2  # RFC 3465 L: slow start grows by at most L*SMSS per ACK


def initial_window(smss: int, segments: int = 10) -> int:
    """RFC 6928's IW = min(10*MSS, max(2*MSS, 14600)), with 10 replaced by `segments`."""
    return min(segments * smss, max(2 * smss, segments * 1460))


class CongestionControl(Freezable, ABC):
    """The shared machinery; subclasses decide congestion-avoidance growth and decrease."""

    __slots__ = ("_sack", "_timed_out", "cwnd", "in_recovery", "smss", "ssthresh")
    FROZEN: ClassVar[tuple[str, ...]] = __slots__

    def __init__(self, smss: int, initial_segments: int = 10) -> None:
        if smss <= 0 or initial_segments <= 0:
            raise ValueError(f"smss and initial_segments must be positive, got {smss}, {initial_segments}")
        self.smss = smss
        self.cwnd = initial_window(smss, initial_segments)
        self.ssthresh = INFINITE_SSTHRESH
        self.in_recovery = False
        self._sack = False  # recovery is SACK-based (RFC 6675): no inflation or deflation
        self._timed_out = False  # an RTO fired and no new data was acknowledged since

    def on_ack(self, acked: int, now: float, rtt: float | None) -> None:
        """`acked` new bytes were cumulatively acknowledged; `rtt` is the current SRTT.

        During recovery this is a partial ACK: without SACK the window deflates by the
        amount acknowledged and grows back by one SMSS if at least that much was
        acknowledged (RFC 6582 §3.2 step 5); with SACK it stays at ssthresh.
        """
        if acked <= 0:
            return
        self._timed_out = False
        if self.in_recovery:
            if not self._sack:
                cwnd = self.cwnd - acked
                if acked >= self.smss:
                    cwnd += self.smss
                self.cwnd = cwnd if cwnd > self.smss else self.smss
            return
        if self.cwnd < self.ssthresh:
            self.cwnd += acked if acked < ABC_LIMIT * self.smss else ABC_LIMIT * self.smss
        else:
            self._avoid(acked, now, rtt)

    def on_dupack(self) -> None:
        """A further duplicate ACK during recovery: without SACK, one more segment has
        left the network, so the window inflates by SMSS (RFC 5681 §3.2 step 4)."""
        if self.in_recovery and not self._sack:
            self.cwnd += self.smss

    def enter_recovery(self, now: float, flight_size: int, sack: bool) -> None:
        """Fast retransmit: cut ssthresh and start recovery.

        Without SACK the window is ssthresh + 3*SMSS (the three segments the duplicate
        ACKs reported, RFC 5681 §3.2 step 3); with SACK it is ssthresh and the caller
        sends while cwnd - pipe >= SMSS (RFC 6675 §5).
        """
        self.ssthresh = self._decrease(now, flight_size, timeout=False)
        self.cwnd = self.ssthresh if sack else self.ssthresh + 3 * self.smss
        self.in_recovery = True
        self._sack = sack

    def on_recovery_exit(self, now: float, flight_size: int) -> None:
        """A full ACK ended recovery. The window becomes
        min(ssthresh, max(FlightSize, SMSS) + SMSS), RFC 6582 §3.2 step 6 option 1,
        which avoids a burst when little data is still in flight."""
        self.in_recovery = False
        smss = self.smss
        fs = flight_size if flight_size > smss else smss
        self.cwnd = min(self.ssthresh, fs + smss)

    def on_rto(self, now: float, flight_size: int) -> None:
        """The retransmission timer fired: back to one segment (RFC 5681 §3.1 eq. 4).

        ssthresh is cut only on the first timeout for the same data; further timeouts
        before any new data is acknowledged keep it (RFC 5681 §3.1, note on eq. 4).
        """
        if not self._timed_out:
            self.ssthresh = self._decrease(now, flight_size, timeout=True)
            self._timed_out = True
        self.cwnd = self.smss
        self.in_recovery = False

    def on_ecn(self, now: float, flight_size: int) -> None:
        """The peer echoed a CE mark (RFC 3168 §6.1.2): the network signalled congestion
        without dropping, so the window is cut as for a loss (ssthresh by the algorithm's
        decrease, cwnd to it) but nothing is retransmitted and no recovery starts."""
        self.ssthresh = self._decrease(now, flight_size, timeout=False)
        self.cwnd = self.ssthresh

    @abstractmethod
    def _avoid(self, acked: int, now: float, rtt: float | None) -> None:
        """Grow cwnd in congestion avoidance for `acked` newly acknowledged bytes."""

    @abstractmethod
    def _decrease(self, now: float, flight_size: int, timeout: bool) -> int:
        """The new ssthresh after a congestion event (timeout says which kind)."""


class NewReno(CongestionControl):
    """RFC 5681 AIMD with RFC 6582 recovery: +1 SMSS per window acknowledged, halve on loss.

    Congestion avoidance counts bytes (RFC 3465 §2.1): once a whole window's worth has
    been acknowledged, cwnd grows by one SMSS, however the ACKs were spaced.
    """

    __slots__ = ("_bytes_acked",)
    FROZEN = (*CongestionControl.FROZEN, *__slots__)

    def __init__(self, smss: int, initial_segments: int = 10) -> None:
        super().__init__(smss, initial_segments)
        self._bytes_acked = 0

    def _avoid(self, acked: int, now: float, rtt: float | None) -> None:
        n = self._bytes_acked + acked
        if n >= self.cwnd:
            n -= self.cwnd
            self.cwnd += self.smss
        self._bytes_acked = n

    def _decrease(self, now: float, flight_size: int, timeout: bool) -> int:
        self._bytes_acked = 0
        half = flight_size // 2
        return half if half > 2 * self.smss else 2 * self.smss


class Cubic(CongestionControl):
    """CUBIC (RFC 9438): window growth as a cubic function of the time since the last
    congestion event, so it does not depend on the RTT in the convex region.

    In segments, W_cubic(t) = C*(t - K)**3 + W_max, with K = cbrt((W_max - cwnd_epoch)/C)
    (§4.2). Each ACK in congestion avoidance moves cwnd towards W_cubic(t + RTT),
    clamped to [cwnd, 1.5*cwnd], at (target - cwnd)/cwnd per segment acknowledged. The
    Reno-friendly estimate W_est (§4.3) grows by alpha_cubic per window, or by 1 once it
    reaches cwnd_prior, and cwnd follows it while W_cubic(t) is below it. A congestion
    event sets ssthresh = max(beta_cubic * FlightSize, 2*SMSS) and, with fast
    convergence (§4.7), remembers a W_max lowered to cwnd*(1 + beta)/2 when the window
    did not regain the previous W_max. After a timeout the next congestion-avoidance
    stage starts with K = 0 and W_max = cwnd (§4.8). HyStart++ and spurious-loss undo
    are not implemented.
    """

    __slots__ = (
        "_cwnd_prior",
        "_epoch",
        "_frac",
        "_k",
        "_rtt",
        "_w_est",
        "_w_max",
        "beta",
        "c",
        "fast_convergence",
    )
    FROZEN = (*CongestionControl.FROZEN, *(name for name in __slots__ if name != "_epoch"))
    FROZEN_TIMES = ("_epoch",)

    def __init__(
        self,
        smss: int,
        initial_segments: int = 10,
        *,
        c: float = 0.4,
        beta: float = 0.7,
        fast_convergence: bool = True,
    ) -> None:
        super().__init__(smss, initial_segments)
        if not 0 < beta < 1 or c <= 0:
            raise ValueError(f"CUBIC needs 0 < beta < 1 and c > 0, got beta={beta}, c={c}")
        self.c = c
        self.beta = beta
        self.fast_convergence = fast_convergence
        self._w_max: float | None = None  # segments; None: set at the next stage's start
        self._k = 0.0
        self._epoch: float | None = None  # start of the current congestion-avoidance stage
        self._w_est = 0.0
        self._cwnd_prior = 0.0  # segments, just before the last reduction
        self._frac = 0.0  # the fraction of a byte of cwnd that int() dropped
        self._rtt = 0.0

    @property
    def w_max(self) -> float | None:
        """W_max in segments (None before the first congestion-avoidance stage)."""
        return self._w_max

    @property
    def k(self) -> float:
        """K in seconds: when W_cubic returns to W_max, counted from the stage's start."""
        return self._k

    def w_cubic(self, t: float) -> float:
        """W_cubic(t) in segments, t seconds after the current stage began (RFC 9438 eq. 1)."""
        w_max = self._w_max if self._w_max is not None else self.cwnd / self.smss
        return self.c * (t - self._k) ** 3 + w_max

    def _avoid(self, acked: int, now: float, rtt: float | None) -> None:
        smss = self.smss
        w = (self.cwnd + self._frac) / smss
        epoch = self._epoch
        if epoch is None:
            epoch = now
            self._start_stage(now, w)
        if rtt is not None:
            self._rtt = rtt
        t = now - epoch
        segments = acked / smss
        alpha = 1.0 if self._w_est >= self._cwnd_prior else 3 * (1 - self.beta) / (1 + self.beta)
        self._w_est += alpha * segments / w
        if self.w_cubic(t) < self._w_est:  # Reno-friendly region
            new_w = self._w_est if self._w_est > w else w
        else:  # concave or convex region
            target = self.w_cubic(t + self._rtt)
            if target < w:
                target = w
            elif target > 1.5 * w:
                target = 1.5 * w
            new_w = w + (target - w) / w * segments
        total = new_w * smss
        self.cwnd = int(total)
        self._frac = total - self.cwnd

    def _start_stage(self, now: float, w: float) -> None:
        """Begin a congestion-avoidance stage at cwnd = w segments."""
        self._epoch = now
        self._w_est = w
        if self._w_max is None:
            # First stage after slow start or a timeout: K = 0 and W_max is the window
            # now (RFC 9438 §4.8, §4.10).
            self._w_max = w
            self._k = 0.0
        elif w >= self._w_max:
            self._k = 0.0  # already past the old maximum (§4.2)
        else:
            self._k = ((self._w_max - w) / self.c) ** (1 / 3)

    def _decrease(self, now: float, flight_size: int, timeout: bool) -> int:
        smss = self.smss
        w = self.cwnd / smss
        self._cwnd_prior = w
        if timeout:
            self._w_max = None
        elif self.fast_convergence and self._w_max is not None and w < self._w_max:
            self._w_max = w * (1 + self.beta) / 2
        else:
            self._w_max = w
        self._epoch = None
        self._frac = 0.0
        ssthresh = int(flight_size * self.beta)
        return ssthresh if ssthresh > 2 * smss else 2 * smss
