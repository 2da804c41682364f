"""Congestion control: how big the congestion window is, and how it reacts to ACKs,
losses and timeouts.

`CongestionControl` holds what every algorithm shares: RFC 5681 slow start with
appropriate byte counting (RFC 3465) as Linux does it — every byte an ACK newly
acknowledges counts, so a stretch ACK grows the window as much as the ACKs it replaces,
and growth stops at ssthresh, the rest going to congestion avoidance (`abc_limit` = 2
restores RFC 3465's per-ACK limit L) —, the initial window of RFC 6928, the
recovery-time window of fast recovery (NewReno's inflation and partial-ACK deflation,
RFC 6582, or none with SACK, where RFC 6675's pipe decides), and the timeout
response, HyStart++'s slow-start exit (RFC 9406, `hystart=True`: the caller hands each
RTT sample of initial slow start to `hystart_sample`) and the restart after idle
(`restart_after_idle`, Linux's tcp_cwnd_restart). An algorithm supplies two things:
growth in congestion avoidance (`_avoid`) and the slow-start threshold after a
congestion event (`_decrease`). `NewReno` and `Cubic` (RFC 9438) are the two provided.

The loss-recovery bookkeeping is the caller's: it counts duplicate ACKs or asks the
SACK scoreboard, remembers the recovery point, and tells this object what happened:

    cc.hystart_sample(rtt, ack, snd_nxt)       # an RTT sample, while cc.hystart (before on_ack)
    cc.on_ack(newly_acked, now, srtt)          # SND.UNA advanced (also partial ACKs)
    cc.enter_recovery(now, flight_size, sack)  # fast retransmit
    cc.on_dupack()                             # each further dup ACK (matters without SACK)
    cc.on_recovery_exit(now, flight_size)      # the ACK covered the recovery point
    cc.on_rto(now, flight_size)                # the retransmission timer fired
    cc.on_loss_repaired(now)                   # a tail loss probe repaired a loss (RFC 8985 §7.4)
    cc.undo()                                  # the last cut was for nothing (D-SACK, timestamps)
    cc.on_ecn(now, flight_size)                # an ECN-Echo, at most once per window
    cc.restart_after_idle(idle, rto)           # new data after `idle` seconds with nothing in flight

Windows are in bytes; `cwnd` and `ssthresh` are plain int attributes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from usernet.stack.tcp.frozen import Freezable

INFINITE_SSTHRESH = 1 << 62  # "arbitrarily high" (RFC 5681 §3.1)

# HyStart++ (RFC 9406 §4.3): its constants, the ones for a sender that does not pace.
MIN_RTT_THRESH = 0.004
MAX_RTT_THRESH = 0.016
MIN_RTT_DIVISOR = 8
N_RTT_SAMPLE = 8
CSS_GROWTH_DIVISOR = 4
CSS_ROUNDS = 5
# `hystart`: where HyStart++ is. OFF: not running (not asked for, or initial slow start is over).
HYSTART_OFF = 0
HYSTART_SS = 1  # standard slow start, watching the rounds' minimum RTT
HYSTART_CSS = 2  # conservative slow start: a quarter of the growth, for at most CSS_ROUNDS rounds
# What `hystart_sample` did, for the caller's counters.
HYSTART_ENTER_CSS = 1
HYSTART_RESUME = 2  # the RTT fell below CSS's baseline: the exit was spurious, back to slow start
HYSTART_EXIT = 3  # CSS_ROUNDS rounds of CSS: congestion avoidance, ssthresh = cwnd


def initial_window(smss: int, segments: int = 10) -> int:
    """RFC 6928's IW = min(10*MSS, max(2*MSS, 14600)), with 10 replaced by `segments`."""
    # min and max spelled out: twice per connection, and the builtins cost ~750 instructions a call.
    floor = 2 * smss
    iw = segments * 1460
    if iw < floor:
        iw = floor
    cap = segments * smss
    return cap if cap < iw else iw


class HyStartRounds:
    """HyStart++'s round state (RFC 9406 §4.2): a round ends when the ACK passes `end`
    (SND.NXT when it began); the minimum RTT of the last round and of this one, the samples
    this round, CSS's baseline and its rounds begun."""

    __slots__ = ("baseline", "cur_min", "end", "last_min", "rounds", "samples")

    def __init__(self) -> None:
        self.end: int | None = None
        self.last_min = math.inf
        self.cur_min = math.inf
        self.samples = 0
        self.baseline = math.inf
        self.rounds = 0

    def fields(self) -> list[Any]:
        return [getattr(self, name) for name in self.__slots__]


#: The state a first sample finds: what an absent `_hs` freezes as.
_NO_ROUNDS = HyStartRounds()


class CongestionControl(Freezable, ABC):
    """The shared machinery; subclasses decide congestion-avoidance growth and decrease."""

    __slots__ = (
        "_hs",
        "_initial_segments",
        "_prior_cwnd",
        "_prior_ssthresh",
        "_sack",
        "_timed_out",
        "abc_limit",
        "cwnd",
        "cwnd_usage_seq",
        "hystart",
        "in_recovery",
        "is_cwnd_limited",
        "max_packets_out",
        "smss",
        "ssthresh",
    )
    FROZEN: ClassVar[tuple[str, ...]] = tuple(name for name in __slots__ if name != "_hs")
    NOT_FROZEN: ClassVar[tuple[str, ...]] = ("_hs",)  # frozen as the six `_hs_*` fields of HyStartRounds
    FROZEN_DEFAULTS: ClassVar[dict[str, Any]] = {
        "_prior_cwnd": 0,
        "_prior_ssthresh": 0,
        "abc_limit": 0,
        # Blobs from before HyStart++ and the idle restart: no HyStart++, the RFC 6928 window.
        "hystart": HYSTART_OFF,
        "_initial_segments": 10,
        # Blobs from before cwnd validation: treated as cwnd-limited (growth as before).
        "is_cwnd_limited": True,
        "max_packets_out": 0,
        "cwnd_usage_seq": -1,
    }

    def __init__(self, smss: int, initial_segments: int = 10, *, hystart: bool = False) -> None:
        if smss <= 0 or initial_segments <= 0:
            raise ValueError(f"smss and initial_segments must be positive, got {smss}, {initial_segments}")
        self.smss = smss
        self._initial_segments = initial_segments  # the restart window after idle is the initial one
        self.cwnd = initial_window(smss, initial_segments)
        self.ssthresh = INFINITE_SSTHRESH
        self.in_recovery = False
        self._sack = False  # recovery is SACK-based (RFC 6675): no inflation or deflation
        self._timed_out = False  # an RTO fired and no new data was acknowledged since
        self.abc_limit = 0  # RFC 3465's L in segments per ACK; 0: none, as Linux (tcp_slow_start)
        self._prior_cwnd = 0  # cwnd and ssthresh before the last cut, for undo()
        self._prior_ssthresh = 0
        # HyStart++ (RFC 9406 §4.2), for the initial slow start only; its rounds' state is made
        # by the first RTT sample (an idle connection takes none) and dropped when it ends.
        self.hystart = HYSTART_SS if hystart else HYSTART_OFF
        self._hs: HyStartRounds | None = None
        # Linux's cwnd validation (tcp_cwnd_validate, tcp_is_cwnd_limited), kept up by the
        # sender (`note_sent`): was the window full in this usage period, the most segments
        # out in it, and the SND.NXT at which the period ends.
        # Until a sender reports (`note_sent`), the window counts as used (growth as RFC 5681).
        self.is_cwnd_limited = True
        self.max_packets_out = 0
        self.cwnd_usage_seq = -1  # no usage period yet: the first report starts one

    def note_sent(self, packets_out: int, limited: bool, snd_una: int, snd_nxt: int) -> None:
        """After a send pass that sent something or found the window full (Linux's
        tcp_cwnd_validate): remember the strongest sign of how full the window was, until
        SND.UNA passes the SND.NXT of when the period started."""
        if (
            self.cwnd_usage_seq < 0
            or (snd_una - self.cwnd_usage_seq) & 0xFFFFFFFF < 0x80000000  # !before(snd_una, cwnd_usage_seq)
            or limited
            or (not self.is_cwnd_limited and packets_out > self.max_packets_out)
        ):
            self.is_cwnd_limited = limited
            self.max_packets_out = packets_out
            self.cwnd_usage_seq = snd_nxt

    def cwnd_limited(self) -> bool:
        """Linux's tcp_is_cwnd_limited: the window was full; or, in slow start, the flight
        reached half of it (so an application-limited sender still doubles what it used)."""
        if self.is_cwnd_limited:
            return True
        if self.cwnd < self.ssthresh:
            return self.cwnd < 2 * self.max_packets_out * self.smss
        return False

    def freeze(self, now: float) -> dict[str, Any]:
        state = super().freeze(now)
        hs = self._hs if self._hs is not None else _NO_ROUNDS
        for name, value in zip(HyStartRounds.__slots__, hs.fields(), strict=True):
            state[f"_hs_{name}"] = value
        return state

    def restore(self, state: dict[str, Any], now: float) -> None:
        super().restore(state, now)
        hs = HyStartRounds()
        for name in HyStartRounds.__slots__:  # blobs from before HyStart++ lack them: no rounds yet
            key = f"_hs_{name}"
            setattr(hs, name, state[key] if key in state else getattr(_NO_ROUNDS, name))
        # As it was: none before the first sample, none once HyStart++ is over.
        self._hs = None if self.hystart == HYSTART_OFF or hs.fields() == _NO_ROUNDS.fields() else hs

    def on_ack(self, acked: int, now: float, rtt: float | None, delivered: int = -1) -> None:
        """`acked` new bytes were cumulatively acknowledged; `rtt` is the current SRTT.

        Growth counts `delivered`, the bytes this ACK newly delivered (-1: `acked`), the
        caller's RFC 6937 DeliveredData, as Linux's tcp_cong_control(acked_sacked): bytes
        that earlier duplicate ACKs SACKed (or, without SACK, stood for) were delivered
        then and do not count again when SND.UNA passes them. Only an ACK of new data comes
        here (Linux's tcp_may_raise_cwnd), so what duplicate ACKs alone report never grows
        the window.

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
        if not self.cwnd_limited():
            return  # Linux: the window grows only when it was used (tcp_cong_avoid callers)
        if delivered >= 0:
            if delivered == 0:
                return
            acked = delivered
        ssthresh = self.ssthresh
        if self.cwnd < ssthresh:
            limit = self.abc_limit * self.smss
            grow = acked if not limit or acked < limit else limit
            if self.hystart == HYSTART_CSS:  # RFC 9406 §4.3: a quarter of slow start's growth
                grow //= CSS_GROWTH_DIVISOR
            cwnd = self.cwnd + grow
            if cwnd <= ssthresh:
                self.cwnd = cwnd
                return
            self.cwnd = ssthresh  # the bytes past ssthresh count in congestion avoidance
            self._avoid(cwnd - ssthresh, now, rtt)
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
        self._prior_cwnd = self.cwnd
        self._prior_ssthresh = self.ssthresh
        self.ssthresh = self._decrease(now, flight_size, timeout=False)
        self.cwnd = self.ssthresh if sack else self.ssthresh + 3 * self.smss
        self.in_recovery = True
        self.hystart = HYSTART_OFF  # a loss ends slow start and HyStart++ with it (RFC 9406 §4.2)
        self._hs = None
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
            self._prior_cwnd = self.cwnd
            self._prior_ssthresh = self.ssthresh
            self.ssthresh = self._decrease(now, flight_size, timeout=True)
            self._timed_out = True
        self.cwnd = self.smss
        self.in_recovery = False
        self.hystart = HYSTART_OFF
        self._hs = None

    def on_loss_repaired(self, now: float) -> None:
        """A loss was repaired without entering recovery (a tail loss probe's retransmission
        filled it, RFC 8985 §7.4): reduce once, straight to the new ssthresh. Linux takes the
        window, not the flight size, as the base here (tcp_init_cwnd_reduction)."""
        self._prior_cwnd = self.cwnd
        self._prior_ssthresh = self.ssthresh
        self.ssthresh = self._decrease(now, self.cwnd, timeout=False)
        self.cwnd = self.ssthresh
        self.hystart = HYSTART_OFF
        self._hs = None

    def undo(self) -> None:
        """The last reduction answered no loss (RFC 3708 via D-SACK, or timestamps, RFC 3522):
        take back cwnd and ssthresh as they were before it, as Linux's tcp_undo_cwnd_reduction."""
        if self._prior_cwnd > self.cwnd:
            self.cwnd = self._prior_cwnd
        if self._prior_ssthresh > self.ssthresh:
            self.ssthresh = self._prior_ssthresh
        self._timed_out = False
        self.in_recovery = False

    def on_ecn(self, now: float, flight_size: int) -> None:
        """The peer echoed a CE mark (RFC 3168 §6.1.2): the network signalled congestion
        without dropping, so the window is cut as for a loss (ssthresh by the algorithm's
        decrease, cwnd to it) but nothing is retransmitted and no recovery starts."""
        self._prior_cwnd = self._prior_ssthresh = 0  # a mark is no loss that may prove spurious: no undo
        self.ssthresh = self._decrease(now, flight_size, timeout=False)
        self.cwnd = self.ssthresh
        self.hystart = HYSTART_OFF  # ECN ends HyStart++ as a loss does (RFC 9406 §4.2)
        self._hs = None

    def hystart_sample(self, rtt: float, ack: int, snd_nxt: int) -> int:
        """HyStart++ (RFC 9406 §4.2): one RTT sample, from the ACK of `ack` while SND.NXT is
        `snd_nxt`. Called before `on_ack` for the same ACK, only while `hystart` is on.

        Rounds are counted by sequence number: one ends with the ACK of the SND.NXT of its
        start, and the next ACK begins the next (as Linux's HyStart, `after(snd_una, end_seq)`).
        Once a round has N_RTT_SAMPLE samples, slow start leaves for CSS when the round's
        minimum RTT is at least the last round's plus
        clamp(last / MIN_RTT_DIVISOR, MIN_RTT_THRESH, MAX_RTT_THRESH); CSS goes back to slow
        start when a round's minimum falls below the one that made it exit, and ends in
        congestion avoidance (ssthresh = cwnd) after CSS_ROUNDS rounds, the round it began in
        counting as one. Returns what happened: 0, or HYSTART_ENTER_CSS / _RESUME / _EXIT.
        """
        hs = self._hs
        if hs is None:
            hs = self._hs = HyStartRounds()
        end = hs.end
        if end is None or 0 < (ack - end) & 0xFFFFFFFF < 0x80000000:  # seq_gt(ack, end): a new round
            hs.end = snd_nxt
            hs.last_min = hs.cur_min
            hs.cur_min = math.inf
            hs.samples = 0
            if self.hystart == HYSTART_CSS:
                if hs.rounds >= CSS_ROUNDS:
                    self.ssthresh = self.cwnd
                    self.hystart = HYSTART_OFF
                    self._hs = None
                    return HYSTART_EXIT
                hs.rounds += 1
        if rtt < hs.cur_min:
            hs.cur_min = rtt
        hs.samples += 1
        if hs.samples < N_RTT_SAMPLE:
            return 0
        current = hs.cur_min
        if self.hystart == HYSTART_SS:
            last = hs.last_min
            if last == math.inf:
                return 0
            thresh = last / MIN_RTT_DIVISOR
            if thresh < MIN_RTT_THRESH:
                thresh = MIN_RTT_THRESH
            elif thresh > MAX_RTT_THRESH:
                thresh = MAX_RTT_THRESH
            if current >= last + thresh:
                hs.baseline = current
                hs.rounds = 1
                self.hystart = HYSTART_CSS
                return HYSTART_ENTER_CSS
        elif current < hs.baseline:
            hs.baseline = math.inf
            self.hystart = HYSTART_SS
            return HYSTART_RESUME
        return 0

    def restart_after_idle(self, idle: float, rto: float) -> None:
        """New data after `idle` seconds, more than one RTO, with nothing in flight: the ACK
        clock is gone, so restart as Linux's tcp_cwnd_restart (tcp_slow_start_after_idle=1).

        ssthresh keeps at least 3/4 of the window (tcp_current_ssthresh); the window halves
        for each RTO of the idle time after the first, but not below the restart window,
        min(initial window, cwnd), and is counted in whole segments as Linux's.
        """
        smss = self.smss
        cwnd = self.cwnd // smss
        if not self.in_recovery:
            keep = ((cwnd >> 1) + (cwnd >> 2)) * smss
            if keep > self.ssthresh:
                self.ssthresh = keep
        restart = initial_window(smss, self._initial_segments) // smss
        if restart > cwnd:
            restart = cwnd
        left = idle - rto
        while left > 0 and cwnd > restart:
            cwnd >>= 1
            left -= rto
        self.cwnd = (cwnd if cwnd > restart else restart) * smss
        self._on_idle(idle)

    def _on_idle(self, idle: float) -> None:
        """The window restarted after `idle` seconds: an algorithm's own clock may skip them."""

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
        # The base named, not super(): four congestion controls a connection's life (one per
        # end before the handshake, one after), and super() costs ~900 instructions more each.
        CongestionControl.__init__(self, smss, initial_segments)
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
    stage starts with K = 0 and W_max = cwnd (§4.8). Undo of a spurious cut is the shared
    `undo` (cwnd and ssthresh back; W_max stays lowered). HyStart++
    (RFC 9406) is the shared slow start's, on when `hystart` is asked for (TcpConfig.hystart,
    Linux's tcp_cubic hystart). A window restarted after idle keeps its place on the curve:
    the stage's epoch moves by the idle time, as Linux's CA_EVENT_TX_START does.
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
        hystart: bool = False,
    ) -> None:
        CongestionControl.__init__(self, smss, initial_segments, hystart=hystart)  # as NewReno's
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

    def _on_idle(self, idle: float) -> None:
        if self._epoch is not None:
            self._epoch += idle

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
