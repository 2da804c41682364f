"""Loss recovery as a modern Linux does it, on top of RFC 6675's scoreboard: RACK-TLP
(RFC 8985), PRR (RFC 6937), limited transmit (RFC 3042), D-SACK (RFC 2883) and the undo
of needless cuts (RFC 3708 with D-SACK, RFC 3522 with timestamps, F-RTO RFC 5682 after a
timeout).

Only ACKs that carry SACK blocks, arrive during recovery, or come while a probe or an
undo is pending come here (`_sack_ack`); the ACK of the common case stays in `input`.
The connection keeps one retransmission timer, `_rto_at`, which is the RTO, a probe
timeout or RACK's reordering timer as `_timer_kind` says (Linux's icsk_pending).
"""

from __future__ import annotations

from usernet.stack.tcp.core import FRTO_FIRST_ACK, FRTO_OFF, FRTO_SECOND_ACK, RTO_TIMER, SENDS_DATA
from usernet.stack.tcp.output import ConnectionOutput
from usernet.stack.tcp.prr import Prr
from usernet.stack.tcp.seq import seq_add, seq_ge, seq_gt, seq_le, seq_lt, seq_offset

SackBlocks = tuple[tuple[int, int], ...]

# `_frto_verdict`'s answers.
FRTO_SPURIOUS = 1  # the ACK proves the timeout spurious: undo it
FRTO_SEND_NEW = 2  # the first ACK after it: send new data and wait for the second


class ConnectionRecovery(ConnectionOutput):
    """RACK-TLP, PRR, limited transmit, D-SACK and undo."""

    __slots__ = ()

    # -- ACKs ------------------------------------------------------------------------------

    def _sack_ack(self, ack: int, sack: SackBlocks, acked: int, tsecr: int, now: float) -> None:
        """An ACK with SACK news, in recovery, or while a probe or an undo is pending.

        `acked` bytes were newly acknowledged (SND.UNA already moved to `ack`); 0 for a
        duplicate ACK. Updates the scoreboard, RACK, PRR and the congestion window, and may
        start recovery (its first retransmission leaves at once).
        """
        sb = self._scoreboard()  # only SACK connections come here
        cc = self._cc
        snd_max = self.snd_max
        rack = self._rack
        if rack is None and self._rack_ok:  # nothing sent since the handshake yet: an empty log
            rack = self._new_rack()
        dsack = False
        if sack:
            left, right = sack[0]
            if seq_le(right, ack) or (len(sack) > 1 and seq_ge(left, sack[1][0]) and seq_le(right, sack[1][1])):
                dsack = True  # RFC 2883 §4: below the cumulative ACK, or inside the second block
                self._on_dsack(left, right, now)
        first = sb.first_sacked() if acked and rack is not None else None
        sacked = sb.sacked_bytes
        newly = sb.update(ack, snd_max, sack)
        # RFC 6937's DeliveredData, Linux's acked_sacked: SND.UNA's advance less the bytes that
        # were SACKed already (delivered then), plus the bytes SACKed for the first time.
        delivered = acked + sb.sacked_bytes - sacked
        if rack is not None:
            if acked:
                # The bytes this ACK delivered end at the hole it filled: above it, SACKed data.
                rack.delivered(first if first is not None and seq_lt(first, ack) else ack, now, self.rtt.min_rtt)
            if newly:
                i = 1 if dsack else 0
                if i < len(sack) and seq_gt(sack[i][1], ack) and seq_le(sack[i][1], snd_max):
                    rack.delivered(sack[i][1], now, self.rtt.min_rtt)
        if self._tlp_high is not None:
            self._tlp_ack(ack, dsack and right == self._tlp_high, acked or newly, now)
        entered = False
        if sb.in_recovery:
            rp = sb.recovery_point
            if rp is not None and seq_ge(ack, rp):
                sb.exit_recovery()
                cc.on_recovery_exit(now, seq_offset(snd_max, ack))
                if self._prr_ok:
                    # PRR's end (RFC 9937): the window the reduction aimed at, whatever is in
                    # flight now, as Linux's tcp_end_cwnd_reduction; RFC 6582's smaller one is
                    # for recovery without PRR.
                    cc.cwnd = cc.ssthresh
                if rack is not None:
                    rack.end_recovery(ack)
                self._undo_until = snd_max
                if self._undo_marker is not None and (self._undo_retrans <= 0 or self._needless_by_timestamp(tsecr)):
                    self._do_undo(now)
            else:
                cc.on_ack(acked, now, self.rtt.srtt)
        elif acked:
            if self._undo_rto and self._undo_marker is not None and self._needless_by_timestamp(tsecr):
                self._do_undo(now)  # the ACK echoes the original, not the RTO's retransmission (Eifel)
            cc.on_ack(acked, now, self.rtt.srtt, delivered)
        if rack is not None:
            entered = self._rack_detect(delivered, now)
        if sb.in_recovery and not entered:
            prr = self._prr
            if prr is not None:
                pipe = sb.pipe()
                cc.cwnd = pipe + prr.sndcnt(delivered, pipe, cc.ssthresh, self._mss)
        if self._undo_marker is not None and not sb.in_recovery:
            until = self._undo_until
            if until is None:
                if seq_ge(ack, self._recover):  # an RTO's go-back-N, or a probe's repair, is over
                    self._undo_until = snd_max
            elif seq_gt(ack, until):
                self._undo_marker = self._undo_until = None  # no more D-SACKs to wait for

    def _rack_detect(self, delivered: int, now: float) -> bool:
        """RFC 8985 §6.2 step 5: mark what RACK finds lost; start recovery if there is loss.
        True when recovery started here."""
        rack = self._rack
        sb = self._sb
        assert rack is not None and sb is not None
        una = self.snd_una
        rtt = self.rtt
        reo = rack.reo_wnd(una, sb.in_recovery, sb.sacked_bytes // self._mss, rtt.min_rtt, rtt.srtt)
        lost, self._reo_at = rack.detect(una, reo, now)
        if sb.mark_lost(rack.seq(lost)):
            self._stats.tcp_rack_losses += 1
        if sb.in_recovery:
            relost, at = rack.lost_retransmissions(una, reo, now)
            for seq, end in relost:
                if sb.mark_retransmission_lost(seq, end):
                    self._stats.tcp_lost_retransmits += 1
            if at is not None and (self._reo_at is None or at < self._reo_at):
                self._reo_at = at
        if sb.in_recovery or not sb.is_lost(una):
            return False
        rp = sb.recovery_point
        if rp is not None and seq_lt(una, rp):
            return False  # still below where the last RTO left off
        self._enter_sack_recovery(delivered, now)
        return True

    def _enter_sack_recovery(self, delivered: int, now: float) -> None:
        """Fast retransmit (RFC 6675 §5 steps 4.1-4.3) with PRR's first allowance."""
        sb = self._sb
        assert sb is not None
        cc = self._cc
        una = self.snd_una
        flight = seq_offset(self.snd_max, una)
        pipe = sb.pipe()
        seq, n = sb.enter_recovery()
        cc.enter_recovery(now, flight, True)
        self._stats.tcp_fast_retransmits += 1
        self._start_undo(una, False, now)
        self._tlp_high = None  # recovery takes over from the probe
        prr = self._prr
        if prr is None and self._prr_ok:
            prr = self._prr = Prr()  # the first recovery: start() sets all it holds
        if prr is not None:
            prr.start(flight)
            cc.cwnd = pipe + prr.sndcnt(delivered, pipe, cc.ssthresh, self._mss)
            prr.out += n
        if n:
            self._retransmit(seq, n, now)
        self._rto_at = now + self.rtt.rto
        self._timer_kind = RTO_TIMER

    def _limited_transmit(self, now: float) -> None:
        """RFC 3042: on the first two duplicate ACKs, one new segment if the peer's window allows."""
        if self.snd_nxt != self.snd_max or self.state not in SENDS_DATA:
            return
        una = self.snd_una
        flight = seq_offset(self.snd_max, una)
        unsent = self._send.held - flight
        room = self.snd_wnd - flight
        n = min(self._mss, unsent, room)
        if n <= 0 or (n < self._mss and n < unsent):
            return  # only a full segment, or the last bytes queued
        self._stats.tcp_limited_transmits += 1
        self._send_new(n, now)

    # -- D-SACK and undo -------------------------------------------------------------------

    def _on_dsack(self, left: int, right: int, now: float) -> None:
        """The peer got [left, right) twice: a retransmission of it was not needed."""
        self._stats.tcp_dsack_received += 1
        if not self._cfg.dsack:
            return
        rack = self._rack
        if rack is not None:
            rack.on_dsack(self.snd_nxt)
        marker = self._undo_marker
        if marker is not None and seq_ge(left, marker) and seq_le(right, self.snd_max):
            self._undo_retrans -= -(-seq_offset(right, left) // self._mss)
            sb = self._sb
            if self._undo_retrans <= 0 and sb is not None and not sb.in_recovery:
                self._do_undo(now)

    def _start_undo(self, una: int, rto: bool, now: float) -> None:
        """A cut begins: remember enough to take it back if it proves needless."""
        if not self._cfg.undo:
            return
        self._undo_marker = una
        self._undo_retrans = 0
        self._undo_rto = rto
        self._undo_until = None
        self._undo_tsval = self._tsclock.tsval(now) if self._ts_ok else None

    def _needless_by_timestamp(self, tsecr: int) -> bool:
        """The ACK echoes a TSval older than the first retransmission: the original got there (RFC 3522)."""
        tsval = self._undo_tsval
        return tsval is not None and tsecr > 0 and seq_lt(tsecr, tsval)

    # -- F-RTO (RFC 5682) ------------------------------------------------------------------

    def _frto_verdict(self, ack: int, sack: SackBlocks) -> int:
        """What a new ACK after an RTO says (RFC 5682 §3.1, SACK-enhanced as Linux's
        tcp_process_loss), judged before SND.UNA and SND.NXT move: `FRTO_SPURIOUS` when it
        acknowledges data the timeout did not resend (above SND.NXT, where go-back-N has got
        to; after step 2.b anything: only new data and originals lie above SND.UNA), step 2.b
        (`FRTO_SEND_NEW`) when it acknowledges only what was resent, else 0: everything is
        acknowledged and nothing can be told (step 2.a; without SACK also when that ACK
        covers more than was resent). A SACK of an original proves it too (`_frto_sacked_original`)."""
        everything = seq_ge(ack, self._recover)
        if self._frto == FRTO_SECOND_ACK or (seq_gt(ack, self.snd_nxt) and (self._sack_ok or not everything)):
            return FRTO_SPURIOUS
        if sack and self._frto_sacked_original(sack):
            return FRTO_SPURIOUS
        if everything:
            # Step 2.a. Without SACK an ACK of everything may be the receiver's out-of-order
            # data released by the resent segment: no proof (RFC 5682's basic F-RTO).
            self._frto = FRTO_OFF
            return 0
        return FRTO_SEND_NEW

    def _frto_act(self, verdict: int, now: float) -> None:
        """After the ACK was taken in: undo a spurious timeout (step 3.b), or send up to two new
        segments instead of retransmitting more (step 2.b); with nothing new to send, go on
        with go-back-N (conventional recovery)."""
        if self._frto == FRTO_OFF:
            return  # the ACK settled it already: its timestamp proved the RTO spurious (Eifel)
        if verdict == FRTO_SPURIOUS:
            self._frto = FRTO_OFF
            if self._undo_rto and self._undo_marker is not None:
                self._do_undo(now)
            return
        una = self.snd_una
        snd_max = self.snd_max
        flight = seq_offset(snd_max, una)
        n = min(2 * self._mss, self._send.held - flight, self.snd_wnd - flight)
        if n <= 0 or self.state not in SENDS_DATA:
            self._frto = FRTO_OFF
            return
        self._frto = FRTO_SECOND_ACK
        self._frto_resent = self.snd_nxt
        self._skip_go_back_n(now)
        while n > 0:
            k = n if n < self._mss else self._mss
            self._send_new(k, now)
            n -= k

    def _frto_sacked_original(self, sack: SackBlocks) -> bool:
        """Does a SACK block cover data sent before the RTO that it never resent (above where
        go-back-N had got to, below what was outstanding then)? Then not everything was lost:
        the timeout was spurious (RFC 5682 §3's SACK-enhanced step 3.b, Linux's
        FLAG_ORIG_SACK_ACKED in tcp_process_loss). New since the RTO, whatever it covers: F-RTO
        runs only when no SACK had reported data before it (`_on_rto`)."""
        low = self.snd_nxt if self._frto != FRTO_SECOND_ACK else self._frto_resent
        high = self._recover
        for left, right in sack:
            start = left if seq_gt(left, low) else low
            end = right if seq_lt(right, high) else high
            if seq_lt(start, end):
                return True
        return False

    def _frto_dupack(self, sack: SackBlocks, now: float) -> None:
        """A duplicate ACK after an RTO. Its SACK of an original undoes the RTO (Linux: even
        before new data went out). Otherwise, with SACK, before step 2.b it only updates the
        scoreboard: F-RTO stays in step 2 (RFC 5682 §3, step 2); without SACK (step 2.a), or
        after new data went out (step 3.a), the loss was real, and go-back-N starts again from
        SND.UNA."""
        if sack and self._frto_sacked_original(sack):
            self._frto = FRTO_OFF
            if self._undo_rto and self._undo_marker is not None:
                self._do_undo(now)
            return
        if self._frto == FRTO_FIRST_ACK and self._sack_ok:
            return
        if self._frto == FRTO_SECOND_ACK:
            una = self.snd_una
            self.snd_nxt = una
            rack = self._rack
            if rack is not None:
                rack.restart(una)
        self._frto = FRTO_OFF

    def _skip_go_back_n(self, now: float) -> None:
        """What go-back-N has not resent since the RTO needs no resending: SND.NXT jumps to
        SND.MAX, and RACK's log with it (those bytes count as sent now: the later of the two)."""
        if seq_lt(self.snd_nxt, self.snd_max):
            rack = self._rack
            if rack is not None:
                rack.sent(self.snd_nxt, self.snd_max, now, self.snd_una)
            elif self._rack_ok:
                self._rack_sent(self.snd_nxt, self.snd_max, now)
            self.snd_nxt = self.snd_max

    def _do_undo(self, now: float) -> None:
        self._cc.undo()
        self._undo_marker = self._undo_until = None
        self._stats.tcp_undos += 1
        if self._undo_rto:
            # A spurious timeout: what go-back-N has not resent yet needs no resending
            # (RFC 4015's response); the log jumps there with it.
            self._stats.tcp_spurious_rtos += 1
            self._undo_rto = False
            self._frto = FRTO_OFF
            self._skip_go_back_n(now)
            self._recover = self.snd_una
            sb = self._sb
            if sb is not None:
                sb.forget_recovery_point()

    # -- tail loss probes ------------------------------------------------------------------

    def _tlp_ack(self, ack: int, dsack_of_probe: bool, news: int, now: float) -> None:
        """RFC 8985 §7.4 as Linux's tcp_process_tlp_ack: did the probe repair a loss?"""
        high = self._tlp_high
        assert high is not None
        if seq_lt(ack, high):
            return
        if not self._tlp_retrans or dsack_of_probe:
            self._tlp_high = None  # new data, or both copies arrived: no loss
        elif seq_gt(ack, high):
            self._tlp_high = None
            self._stats.tcp_tlp_recoveries += 1
            self._start_undo(self.snd_una, False, now)
            self._cc.on_loss_repaired(now)
        elif not news:
            self._tlp_high = None  # a pure duplicate ACK: original and probe both arrived

    def _on_probe_timer(self, now: float) -> None:
        """The probe timeout: send one new segment, or the last one again (RFC 8985 §7.3)."""
        una = self.snd_una
        snd_max = self.snd_max
        if una == snd_max:
            return
        flight = seq_offset(snd_max, una)
        mss = self._mss
        send = self._send
        unsent = send.held - flight
        room = self.snd_wnd - flight
        self._stats.tcp_tlp_probes += 1
        if unsent > 0 and room > 0 and self.snd_nxt == snd_max:
            self._send_new(min(mss, unsent, room), now)
            self._tlp_retrans = False
        else:
            data = send.held if send.held < flight else flight  # a FIN takes one more
            n = data if data < mss else mss
            start = seq_add(una, data - n)
            self._retransmit(start, n + (flight - data), now)
            self._tlp_retrans = True  # (a probe is no timeout: the user timeout's clock waits for the RTO, as Linux's)
        self._tlp_high = self.snd_max
        self._rto_at = now + self.rtt.rto
        self._timer_kind = RTO_TIMER

    def _on_reorder_timer(self, now: float) -> None:
        """RACK's reordering window passed for the oldest waiting segment (RFC 8985 §6.3)."""
        self._reo_at = None
        if self.snd_una == self.snd_max or self._sb is None:
            return
        if not self._rack_detect(0, now):
            self._arm_timer(now, False)
