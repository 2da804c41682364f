"""A connection's timers: retransmission, persist (zero-window probes), delayed ACK, keepalive, close.

Timers are plain attributes (`_rto_at`...) holding a time or None. The layer files each
connection in its heap by `deadline()` whenever it was touched, and calls `on_timer`
when the earliest is due; nothing here knows about the heap.
"""

from __future__ import annotations

import errno

from usernet.stack.tcp.core import (
    CLOSED,
    FRTO_FIRST_ACK,
    FRTO_OFF,
    KEEPS_ALIVE,
    PROBE_TIMER,
    RTO_TIMER,
    SYN_RECEIVED,
    SYN_SENT,
)
from usernet.stack.tcp.recovery import ConnectionRecovery
from usernet.stack.tcp.seq import seq_add, seq_offset, seq_sub
from usernet.stack.tcp.states import Event
from usernet.wire.tcp import ACK


class ConnectionTimers(ConnectionRecovery):
    """What happens when time passes without the peer."""

    __slots__ = ()

    def deadline(self) -> float | None:
        """The earliest armed timer."""
        # Written out, not a loop over a tuple of the four: this runs at every poll of an
        # active connection, and most of them are None (no tuple to build then).
        d = self._rto_at
        t = self._persist_at
        if t is not None and (d is None or t < d):
            d = t
        t = self._delack_at
        if t is not None and (d is None or t < d):
            d = t
        t = self._keepalive_at
        if t is not None and (d is None or t < d):
            d = t
        t = self._close_at
        if t is not None and (d is None or t < d):
            d = t
        return d

    def on_timer(self, now: float) -> float:
        """Run every timer that is due; returns how late the latest-running one was."""
        late = 0.0
        t = self._rto_at
        if t is not None and t <= now:
            late = now - t
            self._rto_at = None
            kind = self._timer_kind
            self._timer_kind = RTO_TIMER
            if kind == RTO_TIMER:
                self._on_rto(now)
            elif kind == PROBE_TIMER:
                self._on_probe_timer(now)
            else:
                self._on_reorder_timer(now)
        t = self._persist_at
        if t is not None and t <= now and self.state != CLOSED:
            late = max(late, now - t)
            self._persist_at = None
            self._on_persist(now)
        t = self._delack_at
        if t is not None and t <= now:
            late = max(late, now - t)
            self._delack_at = None
            if self._ack_pending:
                self._ack_now = True
                self._stats.tcp_delayed_acks += 1
                self._pingpong = False  # the peer did not answer in time: quick ACKs again (Linux)
        t = self._keepalive_at
        if t is not None and t <= now and self.state != CLOSED:
            late = max(late, now - t)
            self._keepalive_at = None
            self._on_keepalive(now)
        t = self._close_at
        if t is not None and t <= now and self.state != CLOSED:
            late = max(late, now - t)
            self._close_at = None
            self._set_state(CLOSED, Event.TIMEOUT, now)
        return late

    def _on_rto(self, now: float) -> None:
        state = self.state
        if self.snd_una == self.snd_max:
            return
        self._stats.tcp_timeouts += 1
        cfg = self._cfg
        limit = cfg.syn_retries if state == SYN_SENT else cfg.synack_retries if state == SYN_RECEIVED else cfg.retries
        if self._rtx_start is None:
            self._rtx_start = now
        self._retries += 1
        if self._retries > limit or (self.user_timeout and now - self._rtx_start >= self.user_timeout):
            self._stats.tcp_conn_timeouts += 1
            # No RST: the peer is not answering (Linux's tcp_write_err sends none either).
            self._fail(self._soft_error or errno.ETIMEDOUT, Event.TIMEOUT, now, send_rst=False)
            return
        self.rtt.backoff()
        if state in (SYN_SENT, SYN_RECEIVED):
            self._syn_retransmitted = True
        else:
            snd_max = self.snd_max
            una = self.snd_una
            sb = self._sb
            # F-RTO (RFC 5682 §3.1 step 1, §3.2): not when this timeout cuts short a fast
            # recovery, nor when SACKs had told of holes (the scoreboard forgets them now, and
            # an ACK of what they covered would pass for news: Linux counts SACKed data as
            # none); again for repeated timeouts of the same data if it ran for the first.
            if self._retries > 1:
                frto = self._frto != FRTO_OFF
            else:
                frto = cfg.frto and not self._nr_recovery and (sb is None or not (sb.in_recovery or sb.sacked_bytes))
            if self._retries == 1:
                self._start_undo(una, True, now)
            self._cc.on_rto(now, seq_offset(snd_max, una))
            if self._sack_ok:  # the recovery point it keeps refuses recovery below it
                sb = self._scoreboard()
                sb.update(una, snd_max, ())
                sb.reset()
            if self._rack is not None:
                self._rack.restart(una)
            self._reo_at = None
            self._tlp_high = None
            self._recover = snd_max
            self._nr_recovery = False
            self._dupacks = 0
            self._frto = FRTO_FIRST_ACK if frto and self._undo_rto else FRTO_OFF  # its undo is the RTO's
        self.snd_nxt = self.snd_una
        self._rtt_seq = None
        self._rto_tsval = self._tsclock.tsval(now)
        self._rto_at = now + self.rtt.rto
        if self.user_timeout:  # the last back-off is cut short to end at the user timeout (as Linux)
            self._rto_at = min(self._rto_at, self._rtx_start + self.user_timeout)

    def _on_persist(self, now: float) -> None:
        """The peer's window stayed closed: probe it (RFC 9293 §3.8.6.1)."""
        off = seq_offset(self.snd_nxt, self.snd_una)
        if self._send.held <= off or self.snd_una != self.snd_max:
            self._probes = 0
            return
        room = seq_sub(seq_add(self.snd_una, self.snd_wnd), self.snd_nxt)
        if room > 0:  # a window too small for the SWS rules: send what fits
            self._send_new(min(room, self._mss, self._send.held - off), now)
            return
        self._stats.tcp_window_probes += 1
        self._emit(seq_add(self.snd_una, -1), ACK, b"", now)
        self._probes += 1
        self._persist_at = now + min(self.rtt.rto * (1 << min(self._probes, 16)), self._cfg.persist_max)

    def _on_keepalive(self, now: float) -> None:
        if not self.keepalive or self.state not in KEEPS_ALIVE:
            return
        # Compare with the very sum the timer was set to: `now - last_rx < keepidle` can
        # hold at that instant through rounding, and would re-arm the timer for now, forever.
        idle_end = self._last_rx + self.keepidle
        if now < idle_end:  # heard from the peer since: wait for the next idle period
            self._ka_probes = 0
            self._keepalive_at = idle_end
            return
        if self._ka_probes >= self.keepcnt:
            self._stats.tcp_conn_timeouts += 1
            self._fail(self._soft_error or errno.ETIMEDOUT, Event.TIMEOUT, now, send_rst=True)
            return
        if self.snd_una == self.snd_max:  # with data in flight, retransmissions do the probing
            self._stats.tcp_keepalive_probes += 1
            self._emit(seq_add(self.snd_una, -1), ACK, b"", now)
        self._ka_probes += 1
        self._keepalive_at = now + self.keepintvl
