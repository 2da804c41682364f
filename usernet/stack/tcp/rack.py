"""RACK-TLP (RFC 8985): loss detection by time, and the tail loss probe's bookkeeping.

RACK marks a segment lost when a segment sent *after* it has been delivered (SACKed or
cumulatively acknowledged) and more than RACK.rtt + reo_wnd has passed since it was sent;
the reordering window reo_wnd is min_RTT/4, grown per round trip that brings a D-SACK
(the peer saw a retransmission that was not needed), and zero in recovery or once
DupThresh segments are SACKed while no reordering has been seen (§6.2).

What this needs is each outstanding byte's last transmission time. Original
transmissions go out in sequence order at non-decreasing times, so they are two sorted
lists (`_ends`, `_times`, one entry per transmission: a TSO frame is one entry) that
`bisect` searches both ways: which time a byte was sent at, and up to which byte
everything was sent before a given time. Retransmissions in SACK recovery are few and
kept apart (`_rtx`); one is lost by the same rule as an original (§6.2: a segment sent
after it was delivered and the reordering window passed), and is sent again. After a
retransmission timeout the sender starts over from SND.UNA in sequence order
(go-back-N), so `restart` simply begins the log again there.

The log is appended to once per transmission and trimmed lazily: the ACK of the common
case (no SACK, no recovery) never touches this object.

Sequence numbers are unwrapped to unbounded positions around the log's end, as in the
scoreboard, so no comparison here wraps.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from typing import Any

from usernet.stack.tcp.buffers import NEVER, UNUSED
from usernet.stack.tcp.frozen import Freezable, field
from usernet.stack.tcp.seq import seq_add, seq_unwrap

_TRIM_AT = 256  # entries: trim what SND.UNA passed once the log is this much longer than after the last trim
_CLOCK_SLACK = 0.001  # seconds: the RTT clock's granularity (Linux compares microseconds)
_REO_PERSIST = 16  # recoveries without a D-SACK before reo_wnd falls back to min_RTT/4 (§6.2)


class Rack(Freezable):
    """RACK state and the transmission log of one connection."""

    __slots__ = (
        "_ends",
        "_fack",
        "_keep",
        "_rtx",
        "_times",
        "_top",
        "_top_seq",
        "dsack_round",
        "rack_end",
        "rack_rtt",
        "rack_rtx",
        "rack_xmit",
        "reo_wnd_mult",
        "reo_wnd_persist",
        "reordering_seen",
        "static_reo_wnd",
    )

    # Times (the log's, RACK.xmit_ts) go relative to the freeze instant: see freeze().
    FROZEN = tuple(name for name in __slots__ if name not in ("_times", "_rtx", "rack_xmit"))
    NOT_FROZEN = ("_times", "_rtx", "rack_xmit")

    def __init__(self, snd_una: int, static_reo_wnd: bool = False) -> None:
        self.static_reo_wnd = static_reo_wnd  # Linux's tcp_recovery bit 0x2: no D-SACK adaptation
        self._top_seq = snd_una & 0xFFFFFFFF  # the end of the log as a sequence number ...
        self._top = 0  # ... and as a position
        # The log's lists are made by the first transmission: an idle connection sends none.
        self._ends: list[int] = UNUSED  # end position of each original transmission, increasing
        self._times: list[float] = UNUSED  # when each was sent, non-decreasing
        self._keep = _TRIM_AT
        self._rtx: list[tuple[int, int, float]] = UNUSED  # (start, end, time) retransmitted in recovery
        self._fack = 0  # the highest end position delivered so far (RACK.fack)
        self.rack_xmit = NEVER  # RACK.xmit_ts: when the most recently sent delivered segment was sent
        self.rack_end = 0  # RACK.end_seq, a position
        self.rack_rtx = False  # whether that segment was a retransmission
        self.rack_rtt: float | None = None  # RACK.rtt
        self.reordering_seen = False
        self.reo_wnd_mult = 1
        self.reo_wnd_persist = 0
        self.dsack_round: int | None = None  # SND.NXT position when reo_wnd last grew

    def freeze(self, now: float) -> dict[str, Any]:
        state = super().freeze(now)
        state["_times"] = [t - now for t in self._times]
        state["_rtx"] = [[lo, hi, t - now] for lo, hi, t in self._rtx]
        state["rack_xmit"] = self.rack_xmit - now
        return state

    def restore(self, state: dict[str, Any], now: float) -> None:
        super().restore(state, now)
        self._times = [now + t for t in field(state, "_times", list, "RACK")]
        self._rtx = [(lo, hi, now + t) for lo, hi, t in field(state, "_rtx", list, "RACK")]
        self.rack_xmit = now + field(state, "rack_xmit", float, "RACK")

    def pos(self, seq: int) -> int:
        return seq_unwrap(seq, self._top_seq, self._top)

    def seq(self, pos: int) -> int:
        return seq_add(self._top_seq, pos - self._top)

    # -- the transmission log ----------------------------------------------------------

    def sent(self, seq: int, end: int, now: float, snd_una: int) -> None:
        """[seq, end) went out at `now`: new data past the log's end, or a retransmission."""
        top_seq = self._top_seq
        if seq == top_seq:
            top = self._top + ((end - top_seq) & 0xFFFFFFFF)
            self._top = top
            self._top_seq = end
            ends = self._ends
            if ends is UNUSED:
                ends = self._ends = []
                self._times = []
            ends.append(top)
            self._times.append(now)
            if len(ends) > self._keep:
                self._trim(self.pos(snd_una))
            return
        lo = self.pos(seq)
        hi = self.pos(end)
        if hi > self._top:  # a retransmission that runs on into new data
            self.sent(self._top_seq, end, now, snd_una)
            hi = self._top
        if lo < hi:
            if self._rtx is UNUSED:
                self._rtx = []
            self._rtx.append((lo, hi, now))

    def restart(self, snd_una: int) -> None:
        """After a retransmission timeout everything is sent again from SND.UNA, in order."""
        self._top_seq = snd_una & 0xFFFFFFFF
        self._ends = self._times = self._rtx = UNUSED
        self._keep = _TRIM_AT

    def end_recovery(self, snd_una: int) -> None:
        """Recovery is over: the retransmissions below SND.UNA are history."""
        una = self.pos(snd_una)
        self._rtx = [r for r in self._rtx if r[1] > una]
        if self.reo_wnd_persist > 0:
            self.reo_wnd_persist -= 1
            if not self.reo_wnd_persist:
                self.reo_wnd_mult = 1

    def _trim(self, una: int) -> None:
        k = bisect_right(self._ends, una)
        if k:
            del self._ends[:k], self._times[:k]
        self._keep = len(self._ends) + _TRIM_AT

    def sent_at(self, pos: int) -> tuple[float, bool]:
        """When the byte just below `pos` was last sent, and whether that was a retransmission."""
        for lo, hi, t in reversed(self._rtx):
            if lo < pos <= hi:
                return t, True
        ends = self._ends
        i = bisect_left(ends, pos)
        if i == len(ends):
            i -= 1
        return (self._times[i] if i >= 0 else NEVER), False

    # -- RFC 8985 §6.2 -----------------------------------------------------------------

    def delivered(self, end_seq: int, now: float, min_rtt: float) -> None:
        """Steps 2 and 3 for the delivered data that ends at `end_seq`.

        A retransmission delivered sooner than min_RTT after it was sent cannot be what
        the peer acknowledged: its original was (§6.2 step 2), so it says nothing about
        RACK.xmit_ts. A millisecond of slack keeps a path of constant delay, whose every
        RTT is min_RTT to within rounding, on the right side of the test.
        """
        p = self.pos(end_seq)
        t, rtx = self.sent_at(p)
        if rtx and now - t + _CLOCK_SLACK < min_rtt:
            return
        if p < self._fack:
            if not rtx:
                self.reordering_seen = True  # §6.2 step 3: an original delivered below RACK.fack
        else:
            self._fack = p
        if t > self.rack_xmit or (t == self.rack_xmit and p > self.rack_end):
            self.rack_xmit = t
            self.rack_end = p
            self.rack_rtx = rtx
            self.rack_rtt = now - t

    def on_dsack(self, snd_nxt: int) -> None:
        """A D-SACK arrived: widen reo_wnd by min_RTT/4, at most once per round trip (§6.2 step 4)."""
        if self.static_reo_wnd:
            return
        if self.dsack_round is None:
            self.dsack_round = self.pos(snd_nxt)
            self.reo_wnd_mult += 1
            self.reo_wnd_persist = _REO_PERSIST

    def reo_wnd(
        self, snd_una: int, in_recovery: bool, sacked_segments: int, min_rtt: float, srtt: float | None
    ) -> float:
        """RACK.reo_wnd (§6.2 step 4)."""
        if self.dsack_round is not None and self.pos(snd_una) >= self.dsack_round:
            self.dsack_round = None
        if not self.reordering_seen and (in_recovery or sacked_segments >= 3):
            return 0.0
        if min_rtt == math.inf:
            return 0.0
        wnd = self.reo_wnd_mult * min_rtt / 4
        return wnd if srtt is None or wnd < srtt else srtt

    def lost_retransmissions(
        self, snd_una: int, reo_wnd: float, now: float
    ) -> tuple[list[tuple[int, int]], float | None]:
        """§6.2 step 5 for the retransmissions: those sent before the RACK segment (as Linux's
        tcp_rack_sent_after) more than RACK.rtt + reo_wnd ago are lost too, and leave the
        log (their bytes' last transmission is gone; resending logs them anew). Returns
        their (seq, end) ranges, and when the oldest still waiting is due, or None."""
        rtx = self._rtx
        rtt = self.rack_rtt
        if not rtx or rtt is None:
            return [], None
        una = self.pos(snd_una)
        xmit = self.rack_xmit
        end = self.rack_end
        wait = rtt + reo_wnd
        lost: list[tuple[int, int]] = []
        keep: list[tuple[int, int, float]] = []
        timeout: float | None = None
        for lo, hi, t in rtx:
            if hi <= una:
                continue
            if t < xmit or (t == xmit and hi < end):
                due = t + wait
                if due <= now:
                    lost.append((self.seq(lo), self.seq(hi)))
                    continue
                if timeout is None or due < timeout:
                    timeout = due
            keep.append((lo, hi, t))
        self._rtx = keep
        return lost, timeout

    def detect(self, snd_una: int, reo_wnd: float, now: float) -> tuple[int, float | None]:
        """§6.2 step 5: (position below which every original unacknowledged byte is lost,
        when to look again for the next one, or None)."""
        rtt = self.rack_rtt
        una = self.pos(snd_una)
        if rtt is None:
            return una, None
        ends = self._ends
        times = self._times
        xmit = self.rack_xmit
        # Originals sent before the RACK segment: time < RACK.xmit_ts, or the same time and
        # lower in sequence (a burst shares one time).
        before = bisect_left(times, xmit)
        limit = ends[before - 1] if before else una
        if not self.rack_rtx:
            k = bisect_right(times, xmit)
            if k > before:
                top_same = ends[k - 1] if ends[k - 1] < self.rack_end else self.rack_end
                if top_same > limit:
                    limit = top_same
                before = k
        wait = rtt + reo_wnd
        k = bisect_right(times, now - wait)
        while k < before and times[k] + wait <= now:  # the deadline below, computed the same way
            k += 1
        if k >= before:
            lost = limit
            timeout = None
        else:
            lost = ends[k - 1] if k else una
            timeout = times[k] + wait
        return (lost if lost > una else una), timeout
