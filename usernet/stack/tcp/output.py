"""A connection's sending side: segments from the send buffer, ACKs, retransmission, SACK recovery.

`output` runs once per flush for every connection that changed: that is where user
writes become segments and where a connection sends at most one ACK per batch of
received frames. Every segment leaves through `_emit`, which writes the TCP header only
and hands the route's link and IP templates to the one C call that builds the frame.
The per-segment functions (`_output_data`, `_send_segment`, `_send_predicted`, `_transmit`, `_advertise`) spell
their sequence arithmetic out, each expression marked with the `seq.py` helper it stands
for, as `input` does; the rest calls the helpers.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from math import floor

from usernet.native import CSUM_FULL, CSUM_PARTIAL
from usernet.stack.tcp.buffers import UNUSED
from usernet.stack.tcp.core import (
    DEFAULT_MSS,
    PROBE_TIMER,
    REORDER_TIMER,
    RTO_TIMER,
    SENDS_DATA,
    SYN_SENT,
    TAKES_DATA,
    ConnectionCore,
)
from usernet.stack.tcp.rcvspace import ReceiveSpace
from usernet.stack.tcp.scoreboard import Scoreboard
from usernet.stack.tcp.seq import seq_add, seq_ge, seq_gt, seq_lt, seq_offset, seq_sub
from usernet.stack.tcp.states import State
from usernet.wire.tcp import ACK, CWR, ECE, FIN, PSH, SYN, encode_tcp_options

_TS_OPTION = struct.Struct("!BBBBII")  # NOP NOP kind=8 len=10 TSval TSecr
_SACK_HEADER = struct.Struct("!BBBB")
_EDGES = struct.Struct("!II")
_TCP_HEADER = 20
_HANDSHAKE = frozenset((State.SYN_SENT, State.SYN_RECEIVED))
_ENDED = frozenset((State.TIME_WAIT, State.CLOSED))  # only an ACK asked for goes out
_DELACK_MAX = 0.2  # the longest a peer may delay an ACK (Linux's TCP_DELACK_MAX, RFC 8985's WCDelAckT)
_PTO_MIN = 0.002  # Linux's TCP_TIMEOUT_MIN: two jiffies
_GSO_MAX_SIZE = 65536 - 1 - 320  # Linux's skb size goal before the window bound: gso_max_size - 1 - MAX_TCP_HEADER


class OffloadFrame(bytearray):
    """A TCP frame of more than one MSS whose checksum field holds only the pseudo-header
    sum, for a link whose device cuts the payload into segments of `gso_size` bytes and
    completes their checksums (LinkCapabilities.checksum_tx_partial and tso_max: TSO, or
    software GSO). A frame of one segment is built whole and needs neither.

    The MSS rides on the frame because frames wait in ARP's queue and the interface's
    output list between the connection that knows it and the link that needs it.
    """

    __slots__ = ("gso_size",)

    gso_size: int


class ConnectionOutput(ConnectionCore):
    """Turning the send buffer, FINs and pending ACKs into segments."""

    __slots__ = ()

    def output(self, now: float) -> None:
        """Turn queued data, FINs and pending ACKs into segments; called at each flush."""
        state = self.state
        sent = False
        if state in _HANDSHAKE:
            if self.snd_nxt == self.iss and not self.fastopen_deferred:
                payload = self._syn_payload() if state == SYN_SENT else b""
                self._emit(self.iss, SYN if state == SYN_SENT else SYN | ACK, payload, now)
                self.snd_nxt = end = seq_add(self.iss, 1 + len(payload))
                if seq_lt(self.snd_max, end):  # a SYN sent again without its data still may see it acknowledged
                    self.snd_max = end
                if not self._syn_retransmitted and self._retries == 0:
                    self._rtt_seq = self.snd_nxt
                    self._rtt_time = now
                if self._rto_at is None:
                    self._rto_at = now + self.rtt.rto
                    self._timer_kind = RTO_TIMER
                sent = True
        elif state in SENDS_DATA:
            if self._ack_now and self._sack_ok and (self._ooo.held or self._dsack is not None):
                self._emit(self.snd_max, ACK, b"", now)  # SACK blocks do not fit beside full data
            sent = self._output_data(now)
        if state in _ENDED:
            if self._ack_now:
                self._emit(self.snd_max, ACK, b"", now)
            return
        read, self._read_since_output = self._read_since_output, False
        if read and self._rcvbuf_max:
            space = self._rcv_space
            # Inline, the test that anything is due: request/response reads on every round trip.
            if (
                space is None
                or (self.rcv_nxt - space.rtt_seq) & 0xFFFFFFFF < 0x80000000  # seq_ge: a window arrived
                or (space.rtt and now - space.time >= space.rtt)
            ):
                self._rcv_space_adjust(now)
        if not sent:
            # A pure window update only after the user read, as Linux does: the window
            # growing past the SYN-ACK's unscaled 65535 at the handshake is no reason to speak.
            # A pure ACK carries SND.MAX, RFC 9293's SND.NXT: after an RTO rewinds snd_nxt
            # for go-back-N, the peer may already hold data above it, and would drop an ACK
            # whose sequence number lies below its window (both sides rewound: neither
            # hears the other's ACKs, and the connection stalls for good).
            if self._ack_now or (read and self._window_update_due()):
                self._emit(self.snd_max, ACK, b"", now)
            elif self._ack_pending and self._delack_at is None:
                self._delack_at = now + self._cfg.delayed_ack

    def _syn_payload(self) -> memoryview | bytes:
        """Fast Open: the data a client's first SYN carries, after a cookie (RFC 7413 §4.2.1).

        As much as one segment holds beside the largest options (Linux: the MSS of our MTU
        less 40, clamped to the server's MSS remembered with the cookie); a retransmitted
        SYN carries none: the data then waits for the handshake, as on Linux, unless the
        SYN-ACK acknowledges the first SYN's (`_syn_data` stays what that one carried).
        """
        if not self._fastopen or self._syn_retransmitted:
            return b""
        n = min(self._send.held, self._mss_limit - 40, self._snd_mss)
        self._syn_data = n
        return self._send.peek(0, n) if n > 0 else b""

    def _rcv_space_adjust(self, now: float) -> None:
        """Receive autotuning after the user read (rcvspace.py): the buffer, and so the window
        the next ACK offers, grows toward twice what one receiver RTT delivered."""
        rcv_nxt = self.rcv_nxt
        recv = self._recv
        copied = (rcv_nxt - len(recv.unread)) & 0xFFFFFFFF  # Linux's copied_seq: where the reads stand
        window = ((self._rcv_adv - rcv_nxt + 0x80000000) & 0xFFFFFFFF) - 0x80000000  # seq_sub(rcv_adv, rcv_nxt)
        if window < 0:
            window = 0
        space = self._rcv_space
        if space is None:
            self._rcv_space = ReceiveSpace(copied, rcv_nxt, window, self._mss_limit, now)
            return
        limit = space.adjust(copied, rcv_nxt, window, self._mss_limit, recv.limit, self._rcvbuf_max, now)
        if limit != recv.limit:
            self._set_rcvbuf(limit)
            self._stats.tcp_rcvbuf_grown += 1

    def _window_update_due(self) -> bool:
        """After reads: tell the peer when the window at least doubled from a small one (Linux)."""
        if self.state not in TAKES_DATA:
            return False
        cur = seq_offset(self._rcv_adv, self.rcv_nxt)
        limit = self._recv.limit
        if cur * 2 > limit:
            return False
        free = min(self._recv.free - self._ooo.held, 65535 << self._rcv_wscale)
        return free >= 2 * cur and free - cur >= self._rcv_mss

    def _output_data(self, now: float) -> bool:
        sb = self._sb
        if sb is not None and sb.in_recovery:
            return self._output_sack_recovery(sb, now)
        send = self._send
        total = send.held
        una = self.snd_una
        fin_seq = self._fin_seq
        if total == (self.snd_nxt - una) & 0xFFFFFFFF and (fin_seq is None or fin_seq != self.snd_nxt):  # seq_offset
            return False  # everything queued is sent (the common case at a flush after receiving)
        mss = self._mss
        cc = self._cc
        idle = una == self.snd_max
        if (
            idle
            and fin_seq is None
            and total <= mss
            and total <= self.snd_wnd
            and total <= cc.cwnd
            and not self._push_marks
            and self._pushed - self.bytes_sent == total
            and not self.cork
            and (now - self._last_tx <= self.rtt.rto or not self._cfg.slow_start_after_idle)
        ):
            # Send prediction: one write of at most an MSS with nothing in flight (a request,
            # a response): what the loop below decides for it, without the loop. It ends at
            # the write's push mark (PSH), neither window stops it (so no cwnd limit but
            # the one below), Nagle has nothing unacknowledged to wait for.
            self._send_predicted(total, now)
            cc.note_sent(1, cc.cwnd < 2 * mss, una, self.snd_nxt)  # 1 packet >= cwnd // mss
            if self._tlp_ok and self._timer_kind != PROBE_TIMER:
                self._arm_timer(now, False)
            return True
        wnd_end = una + self.snd_wnd  # seq_add(una, snd_wnd) unwrapped: only `room` below reads it, mod 2**32
        if idle and now - self._last_tx > self.rtt.rto and self._cfg.slow_start_after_idle:
            # Data again after more than an RTO with nothing in flight: no ACK clock is left
            # to pace what the old window would send at once (Linux's tcp_cwnd_restart).
            cc.restart_after_idle(now - self._last_tx, self.rtt.rto)
            self._last_tx = now  # once per idle period, also when what is queued must wait
            self._stats.tcp_cwnd_restarts += 1
        sent = False
        seg_max = mss
        batch = -1  # computed when first needed: most flushes send one segment that fits
        route = self._route
        tso_max = route.tso_max
        if tso_max:
            # Whole MSS per segment, as many as one IP packet holds beside the headers.
            cap = tso_max - route.tcp_overhead - (12 if self._ts_ok else 0)
            seg_max = cap - cap % mss
        base = self.bytes_sent  # the stream position of SND.UNA: push marks are stream positions
        marks = self._push_marks
        push_at = -1  # offset of the next push mark past SND.NXT (found below)
        limited = False  # the congestion window, not the data or the peer's window, stopped us
        frame_start = frame_end = -1  # the stretch Linux would send as one GSO skb (below)
        while True:
            nxt = self.snd_nxt
            off = (nxt - una) & 0xFFFFFFFF  # seq_offset(nxt, una)
            remaining = total - off
            if remaining <= 0:
                if remaining == 0 and fin_seq is not None and nxt == fin_seq:
                    self._transmit(nxt, b"", FIN | ACK, now)
                    sent = True
                break
            if off >= push_at:
                pos = base + off
                if marks and marks[-1] > pos:  # a mark before the last write's end is ahead
                    push_at = marks[bisect_right(marks, pos)] - base
                else:
                    push_at = self._pushed - base
                    if push_at <= off:  # bytes queued without a mark (MSG_MORE, a migrated transport's)
                        push_at = total + 1  # no push point: the last segment has no PSH
            room = ((wnd_end - nxt + 0x80000000) & 0xFFFFFFFF) - 0x80000000  # seq_sub(wnd_end, nxt)
            if room < 0:
                room = 0
            lim = remaining
            if push_at - off < lim:
                lim = push_at - off  # a segment ends at a push mark, as Linux's skb does
            if room < lim:
                lim = room
            cw = cc.cwnd - off
            if cw < lim:
                lim = cw
                limited = True  # Linux's is_cwnd_limited: tcp_cwnd_test left no quota
            n = lim if lim < seg_max else seg_max
            if n <= 0:
                break
            retransmit = (nxt - self.snd_max) & 0xFFFFFFFF >= 0x80000000  # seq_lt(nxt, snd_max)
            # A segment that ends at a push mark before more queued data is a whole skb for
            # Linux: it goes now, runt or not (tcp_write_xmit holds only the queue's tail).
            push = off + n == push_at
            if off >= frame_end:
                # Where tcp_write_xmit would end the GSO skb starting here: at most
                # tcp_cwnd_test's quota, half the window (and what is left of it), in MSS.
                cw_pkts = cc.cwnd // mss
                quota = cw_pkts - (off + mss - 1) // mss
                half = cw_pkts >> 1 if cw_pkts > 1 else 1
                if quota > half:
                    quota = half
                frame_start = off
                frame_end = off + (quota if quota > 0 else 1) * mss
            if n < remaining and tso_max and not push:
                if batch < 0:
                    # With TSO a segment costs the same whatever its size: while data is in
                    # flight, wait until a worthwhile share of the window is free rather than
                    # sending each MSS an ACK frees (like Linux's tcp_tso_should_defer).
                    batch = min(seg_max, 16 * mss, max(mss, min(cc.cwnd, self.snd_wnd) // 3))
                if off and n < batch and not retransmit:
                    if cw < room and cw <= remaining:
                        limited = True  # tcp_tso_should_defer: deferring for the congestion window
                    break
                if n > mss:
                    n -= n % mss  # no runt in the middle of the stream
            if n < mss and not retransmit:
                if n < remaining:  # sender SWS avoidance (RFC 9293 §3.8.6.2.1)
                    if not push and (n < self.max_sndwnd // 2 or off):
                        break
                elif fin_seq is None and (self.cork or (not self.nodelay and off and seq_gt(self._snd_sml, una))):
                    break  # TCP_CORK; Nagle, Minshall's variant: one small segment unacknowledged at a time
            # Linux's __tcp_transmit_skb sets PSH on every skb of more than one MSS
            # (tcp_skb_pcount > 1) and GSO leaves it on the skb's last segment: here a TSO
            # frame of more than one MSS, or the segment that ends such a stretch.
            last = push or n == lim or off + n >= frame_end
            self._send_segment(n, now, push or n > mss or (last and off + n - frame_start > mss))
            sent = True
            if last:
                frame_end = -1
        flight = (self.snd_nxt - una) & 0xFFFFFFFF
        packets = -(-flight // mss)
        if packets >= cc.cwnd // mss:
            limited = True  # tcp_write_xmit: packets in flight >= cwnd
        if sent or limited:
            cc.note_sent(packets, limited, una, self.snd_nxt)
        if self.snd_una == self.snd_max and send.held > (self.snd_nxt - una) & 0xFFFFFFFF and self._persist_at is None:
            self._persist_at = now + self.rtt.rto
        if sent and self._tlp_ok and self._timer_kind != PROBE_TIMER:
            # New data went out: the probe timeout starts (a probe timer already armed by
            # the ACK that opened the window stands; the next ACK moves it).
            self._arm_timer(now, False)
        return sent

    def _arm_timer(self, now: float, restart: bool) -> None:
        """Data is outstanding: arm RACK's reordering timer if it waits, else a probe when one
        may go (RFC 8985 §7.2), else the RTO. `restart` (an ACK of new data) restarts the RTO;
        after a transmission only a probe timer moves (RFC 6298 (5.1))."""
        rtt = self.rtt
        rto = rtt.rto
        reo = self._reo_at
        if reo is not None and reo < now + rto:
            self._rto_at = reo
            self._timer_kind = REORDER_TIMER
            return
        if self._tlp_ok and self._tlp_high is None:
            sb = self._sb
            una = self.snd_una
            # (seq_ge(una, recover): no RTO recovery under way, inlined as on the ACK path)
            if (sb is None or not sb.in_recovery) and (una - self._recover) & 0xFFFFFFFF < 0x80000000:
                srtt = rtt.srtt
                if srtt is None:
                    pto = 1.0
                else:
                    pto = 2 * srtt
                    if (self.snd_max - una) & 0xFFFFFFFF <= self._mss:  # one segment out
                        alone = 1.5 * srtt + _DELACK_MAX  # a lone segment's ACK may be delayed
                        if alone > pto:
                            pto = alone
                    if pto < _PTO_MIN:
                        pto = _PTO_MIN
                # Never later than the RTO would fire (RFC 8985 §7.2, Linux's rto_delta_us):
                # a lone segment's probe goes at the RTO's time, and the RTO one RTO later.
                self._rto_at = now + (pto if pto < rto else rto)
                self._timer_kind = PROBE_TIMER
                return
        if restart or self._rto_at is None or self._timer_kind != RTO_TIMER:
            self._rto_at = now + rto
            self._timer_kind = RTO_TIMER

    def _send_new(self, n: int, now: float) -> None:
        """Send `n` bytes at SND.NXT (new data, or data again after a timeout), with PSH when
        they reach a push mark (probes and limited transmit, which size their own segment)."""
        self._send_segment(n, now, self._push_in(seq_offset(self.snd_nxt, self.snd_una), n))

    def _send_segment(self, n: int, now: float, push: bool) -> None:
        """Send `n` bytes at SND.NXT; `push`: they end at a push mark (PSH)."""
        nxt = self.snd_nxt
        off = (nxt - self.snd_una) & 0xFFFFFFFF  # seq_offset(nxt, snd_una)
        send = self._send
        payload = send.peek(off, n)
        if now - self._last_data_rx < self._cfg.delayed_ack:
            self._pingpong = True  # an answer to what just came: ACKs can wait to ride on data (Linux)
        flags = ACK | PSH if push else ACK
        if off + n == send.held and self._fin_seq is not None:
            flags |= FIN
        self._transmit(nxt, payload, flags, now)
        if n % self._mss:  # the segment, or the last piece the device cuts from it, is small
            self._snd_sml = (nxt + n) & 0xFFFFFFFF  # seq_add(nxt, n)

    def _send_predicted(self, n: int, now: float) -> None:
        """`_send_segment(n, now, True)` and its `_transmit` for the send prediction's segment.

        What the prediction established makes their tests moot: nothing is in flight, so
        SND.NXT is SND.UNA and SND.MAX (offset 0, new data, SND.MAX moves to its end), no
        FIN is queued, and the `n` bytes are all the buffer holds. The rest, in their order
        (tests/tcp/test_send_predicted_same.py). Two of `_transmit`'s tests stay,
        `_rtt_seq is None` and `_rto_at is None`, though no path found leaves either set
        with nothing in flight (the ACK that took SND.UNA to SND.MAX cleared both): they
        cost a few bytecodes, and were one set, dropping its test would restart it. Those
        two are what that test's mutations cannot reach.
        """
        seq = self.snd_nxt
        payload = self._send.peek(0, n)
        if now - self._last_data_rx < self._cfg.delayed_ack:
            self._pingpong = True  # an answer to what just came: ACKs can wait to ride on data (Linux)
        self._emit(seq, ACK | PSH, payload, now)
        self._last_tx = now
        end = (seq + n) & 0xFFFFFFFF  # seq_add(seq, n)
        if not self._ts_ok and self._rtt_seq is None:
            self._rtt_seq = end
            self._rtt_time = now
        self.snd_nxt = self.snd_max = end
        self._sent(seq, end, now)
        if n % self._mss:  # a small segment (Nagle's, Minshall's variant)
            self._snd_sml = end

    def _transmit(self, seq: int, payload: bytes | memoryview, flags: int, now: float) -> None:
        """Emit a data/FIN segment at `seq` and do the sender's bookkeeping."""
        self._emit(seq, flags, payload, now)
        self._last_tx = now
        end = (seq + len(payload) + (1 if flags & FIN else 0)) & 0xFFFFFFFF  # seq_add
        snd_max = self.snd_max
        if (seq - snd_max) & 0xFFFFFFFF >= 0x80000000:  # seq_lt(seq, snd_max)
            self.retransmits += 1
            self._stats.tcp_retransmits += 1
            self._rtt_seq = None  # Karn: no sample from what was sent twice
            if self._undo_marker is not None:
                self._undo_retrans += 1
        elif self._rtt_seq is None and not self._ts_ok:
            self._rtt_seq = end
            self._rtt_time = now
        self.snd_nxt = end
        if (end - snd_max) & 0xFFFFFFFF < 0x80000000:  # seq_ge(end, snd_max)
            self.snd_max = end
        self._sent(seq, end, now)

    def _sent(self, seq: int, end: int, now: float) -> None:
        """What every data segment's sending notes, predicted or not: RACK's log, the
        retransmission timer if none runs, and no persist timer (the window is open)."""
        rack = self._rack
        if rack is not None:
            rack.sent(seq, end, now, self.snd_una)
        elif self._rack_ok:
            self._rack_sent(seq, end, now)
        if self._rto_at is None:
            self._rto_at = now + self.rtt.rto
            self._timer_kind = RTO_TIMER
        self._persist_at = None

    def _retransmit(self, seq: int, n: int, now: float) -> None:
        """Send [seq, seq+n) again without moving SND.NXT (fast retransmit, recovery)."""
        off = seq_offset(seq, self.snd_una)
        send = self._send
        payload = send.peek(off, n)
        # PSH when a push mark is inside: Linux's retransmission is the original skb, or
        # several collapsed into one with their flags (tcp_retrans_try_collapse). A bare
        # FIN carries none, as Linux's.
        flags = ACK | PSH if payload and self._push_in(off, len(payload)) else ACK
        if off + len(payload) == send.held:
            fin = self._fin_seq
            if fin is not None and len(payload) < n and seq_ge(self.snd_max, fin):
                flags |= FIN
        if not payload and not flags & FIN:
            return
        self._emit(seq, flags, payload, now)
        self._last_tx = now
        self.retransmits += 1
        self._stats.tcp_retransmits += 1
        self._rtt_seq = None
        if self._undo_marker is not None:
            self._undo_retrans += 1
        rack = self._rack
        if rack is not None:
            rack.sent(seq, seq_add(seq, len(payload) + (1 if flags & FIN else 0)), now, self.snd_una)
        elif self._rack_ok:
            self._rack_sent(seq, seq_add(seq, len(payload) + (1 if flags & FIN else 0)), now)
        if self._rto_at is None:
            self._rto_at = now + self.rtt.rto
            self._timer_kind = RTO_TIMER

    def _push_in(self, off: int, n: int) -> bool:
        """A push mark lies in the `n` bytes `off` bytes past SND.UNA (their PSH, as Linux's)."""
        pos = self.bytes_sent + off
        if pos < self._pushed <= pos + n:
            return True
        marks = self._push_marks
        if not marks:
            return False
        k = bisect_right(marks, pos)
        return k < len(marks) and marks[k] <= pos + n

    def _mark_pushes(self, n: int, more: bool = False) -> None:
        """The user just queued `n` bytes: mark where Linux would set PSH in them.

        Linux's tcp_sendmsg_locked cuts a write into skbs of `size_goal` bytes (65535 less
        its header room, at most half the peer's largest window, whole MSS), appending
        first to the unsent tail skb, whose PSH it then clears. A full skb is marked PSH
        when more than half that window was written since the last mark (`forced_push`,
        tcp_mark_push), and the write's last skb always is (tcp_push). Each skb keeps its
        PSH however it is later cut for the wire, so the marks here are stream positions:
        a segment never crosses one and has PSH when it ends at one (`_output_data`).
        The last mark, the end of the last write, is `_pushed` (Linux's pushed_seq); the
        list holds the earlier ones not known to be acknowledged.
        """
        base = self.bytes_sent
        marks = self._push_marks
        prev = self._pushed
        if base == prev and n <= self._mss and not more and self._send.held == n:
            # The common write: every earlier one is acknowledged, so this is an skb of its
            # own (a request, a response), marked at its end.
            if marks:
                marks.clear()
            self._pushed = base + n
            self._skb_start = base
            return
        end = base + self._send.held
        pos = end - n
        if marks is UNUSED:
            marks = self._push_marks = []
        else:
            k = bisect_right(marks, base)  # marks of acknowledged data have done their work
            if k:
                del marks[:k]
        mss = self._mss
        window = self.max_sndwnd
        goal = _GSO_MAX_SIZE
        cutoff = window >> 1 if window > DEFAULT_MSS else window  # tcp_bound_to_half_wnd
        if cutoff and goal > cutoff:
            goal = cutoff
        goal -= goal % mss
        if goal < mss:
            goal = mss
        sent = base + seq_offset(self.snd_max, self.snd_una)
        start = self._skb_start
        if start < sent:
            start = sent if sent < pos else pos  # the sent part of the tail skb left the queue
        tail = pos - start
        # The last write's end keeps its mark unless this write continues its unsent skb.
        if prev > base and not (0 < tail < goal and prev == pos):
            marks.append(prev)
        pushed = prev
        half = window >> 1
        left = n
        while left > goal - tail:
            room = goal - tail
            if room > 0:
                pos += room
                left -= room
                if pos > pushed + half:  # forced_push: after(write_seq, pushed_seq + max_window / 2)
                    marks.append(pos)
                    pushed = pos
            start = pos
            tail = 0
        self._skb_start = start
        if more and not end > pushed + half:
            # MSG_MORE: tcp_push marks the write's end only for a forced push.
            if marks and marks[-1] == pushed:
                marks.pop()  # `_pushed` holds the last mark
            self._pushed = pushed
            return
        self._pushed = end

    def _output_sack_recovery(self, sb: Scoreboard, now: float) -> bool:
        """RFC 6675 §5 (C): send while the window has room for a segment beyond the pipe."""
        cc = self._cc
        mss = self._mss
        send = self._send
        sent = False
        while cc.cwnd - sb.pipe() >= mss:
            una = self.snd_una
            snd_max = self.snd_max
            unsent = send.held - seq_offset(snd_max, una)
            room = max(seq_sub(seq_add(una, self.snd_wnd), snd_max), 0)
            seg = sb.next_seg(unsent if unsent < room else room)
            if seg is None:
                break
            seq, n = seg
            prr = self._prr
            if prr is not None:
                prr.out += n
            if seq == snd_max:
                self.snd_nxt = snd_max
                self._send_new(n, now)
            else:
                self._retransmit(seq, n, now)
            sent = True
        if (
            not sent
            and self._fin_seq is not None
            and self.snd_max == self._fin_seq
            and send.held == seq_offset(self.snd_max, self.snd_una)
        ):
            self.snd_nxt = self.snd_max
            self._transmit(self.snd_max, b"", FIN | ACK, now)
            sent = True
        return sent

    def _advertise(self) -> int:
        """The window field for an outgoing ACK; never moves the right edge left (RFC 9293 §3.8.6.2.2)."""
        recv = self._recv
        # `recv.free - self._ooo.held` with the property spelled out, and without its clamp at
        # 0: a negative `free` fails the test below, where 0 passes it only with `cur` and
        # `step` both 0, and the field is `cur >> shift`, 0, either way.
        free = recv.limit - len(recv.unread) - self._ooo.held
        rcv_nxt = self.rcv_nxt
        adv = self._rcv_adv
        cur = ((adv - rcv_nxt + 0x80000000) & 0xFFFFFFFF) - 0x80000000  # seq_sub(rcv_adv, rcv_nxt)
        if cur < 0:
            cur = 0
        shift = self._rcv_wscale
        # Receiver SWS avoidance: open the window only by min(buffer/2, MSS) or more (`step`).
        # Else keep the edge where it is, the field rounded DOWN to the scale unit: rounding up
        # would advertise bytes the buffer cannot take.
        step = recv.limit >> 1
        mss = self._rcv_mss
        if mss < step:
            step = mss
        field = free >> shift if free - cur >= step else cur >> shift
        if field > 65535:
            field = 65535
        edge = (rcv_nxt + (field << shift)) & 0xFFFFFFFF  # seq_add(rcv_nxt, field << shift)
        # The field may fall short of the edge already promised; the edge itself never moves
        # left (as Linux's rcv_wup + rcv_wnd), so what the peer sent up to it stays acceptable.
        if (edge - adv) & 0xFFFFFFFF < 0x80000000:  # seq_sub(edge, rcv_adv) >= 0, i.e. seq_ge(edge, rcv_adv)
            self._rcv_adv = edge
        return field

    def _emit(self, seq: int, flags: int, payload: bytes | memoryview, now: float) -> None:
        """Build one segment into a fresh frame and send it through the connection's route."""
        if flags & SYN:
            options = self._syn_options(now)
            flags |= self._syn_ecn_flags()
            window = self._syn_window
            if flags & ACK:
                self._rcv_adv = seq_add(self.rcv_nxt, window)
        else:
            window = self._advertise() if flags & ACK else 0
            if self._ts_ok:
                clock = self._tsclock  # `clock.tsval(now)` spelled out: one call less per segment
                tsval = (floor(now * clock.hz) + clock.offset) & 0xFFFFFFFF
                options = _TS_OPTION.pack(1, 1, 8, 10, tsval, self._ts_recent)
            else:
                options = b""
            if flags & ACK and self._sack_ok and (self._ooo.held or self._dsack is not None):
                options = self._with_sack(options, len(payload))
        if flags & ACK:
            if self._quick:
                self._quick -= 1
            self._last_ack_sent = self.rcv_nxt
            self._ack_now = False
            self._ack_pending = False
            self._unacked = 0
            self._delack_at = None
            ack = self.rcv_nxt
        else:
            ack = 0
        route = self._route
        if self._ecn_ok and not flags & SYN:
            # New data only is ECN-capable (RFC 3168 §6.1.5: not retransmissions, not pure ACKs).
            new_data = bool(payload) and not seq_lt(seq, self.snd_max)
            flags |= self._ecn_flags(new_data)
            if new_data:
                route = route.with_ect()
        size = route.headroom + _TCP_HEADER + len(options) + len(payload)
        frame: bytearray
        if route.tx_checksum_partial and len(payload) > self._mss:
            # Only a frame the device must cut goes out with a partial checksum: for one
            # segment, summing ≤1 MSS in the build call is cheaper than the offload path.
            frame = offload = OffloadFrame(size)
            offload.gso_size = self._mss
            csum_mode = CSUM_PARTIAL
        else:
            frame = bytearray(size)
            csum_mode = CSUM_FULL
        route.send_tcp(frame, self.local[1], self.remote[1], seq, ack, flags, window, options, payload, csum_mode, now)
        self.segs_out += 1
        self._stats.tcp_tx_segments += 1

    def _with_sack(self, options: bytes, payload_len: int) -> bytes:
        blocks = self._ooo.sack_blocks(3 if self._ts_ok else 4)
        dsack = self._dsack
        if dsack is not None:  # RFC 2883: the duplicate first, once
            self._dsack = None
            self._stats.tcp_dsack_sent += 1
            blocks.insert(0, dsack)
        space = min(40 - len(options), self._snd_mss - payload_len - len(options)) - 4
        k = min(len(blocks), space // 8)
        if k <= 0:
            return options
        out = bytearray(options)
        out += _SACK_HEADER.pack(1, 1, 5, 2 + 8 * k)
        for left, right in blocks[:k]:
            out += _EDGES.pack(left, right)
        return bytes(out)

    def _syn_options(self, now: float) -> bytes:
        cfg = self._cfg
        if self.state == SYN_SENT:
            return encode_tcp_options(
                mss=self._mss_limit,
                sack_permitted=cfg.sack,
                timestamp=(self._tsclock.tsval(now), 0) if cfg.timestamps else None,
                wscale=cfg.window_scale,
                fastopen=self._fastopen,
            )
        return encode_tcp_options(
            mss=self._mss_limit,
            sack_permitted=self._sack_ok,
            timestamp=(self._tsclock.tsval(now), self._ts_recent) if self._ts_ok else None,
            wscale=self._rcv_wscale if self._snd_wscale or self._rcv_wscale else None,
            fastopen=self._fastopen,
        )

    def _syn_ecn_flags(self) -> int:
        """ECN setup (RFC 3168 §6.1.1): ECE+CWR on a SYN when asked to (tcp_ecn=1), not on a
        retransmitted one (a middlebox may drop them: Linux's fallback); ECE on the SYN-ACK
        of a connection that agreed."""
        if self.state == SYN_SENT:
            return ECE | CWR if self._cfg.ecn == 1 and not self._syn_retransmitted else 0
        return ECE if self._ecn_ok else 0

    def _ecn_flags(self, new_data: bool) -> int:
        """ECE while a CE mark waits for the peer's CWR; CWR on the first new data after a reduction."""
        flags = ECE if self._ecn_echo else 0
        if new_data and self._ecn_cwr:
            self._ecn_cwr = False
            flags |= CWR
        return flags
