"""A connection's receiving side: opening handshakes and SEGMENT ARRIVES (RFC 9293 §3.10.7).

A segment comes in as `native.tcp_parse`'s tuple, unpacked once into named locals at
`input`; the functions below get the fields they need by name. Header prediction
(`_fast_path`) takes the next in-order segment or a pure ACK of new data in a few
comparisons; everything else takes the full processing.

The per-segment functions (`input`, `_fast_path`, `_on_ack`, `_take_data`) spell their
sequence arithmetic out, each expression marked with the `seq.py` helper it stands for
(a call per comparison was ~20% of their Python calls; docs/performance.md); the rest
calls the helpers.
"""

from __future__ import annotations

import errno

from usernet.native import TcpParsed
from usernet.stack.tcp.congestion import HYSTART_ENTER_CSS, HYSTART_RESUME, CongestionControl, Cubic, NewReno
from usernet.stack.tcp.core import (
    CE,
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    DEFAULT_MSS,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    LISTEN,
    NO_OOO,
    SYN_RECEIVED,
    SYN_SENT,
    TAKES_DATA,
    TIME_WAIT,
)
from usernet.stack.tcp.reassembly import Reassembly
from usernet.stack.tcp.seq import seq_add, seq_ge, seq_gt, seq_le, seq_lt, seq_offset, seq_sub
from usernet.stack.tcp.states import Event
from usernet.stack.tcp.timers import ConnectionTimers
from usernet.wire.tcp import ACK, CWR, ECE, FIN, RST, SYN, URG

_PAWS_IDLE = 24 * 86400.0  # RFC 7323 §5.5: ts_recent older than 24 days is invalid
# Where header prediction applies: no FIN of ours waits for its ACK, so an ACK changes no state.
_FAST = frozenset((ESTABLISHED, CLOSE_WAIT, FIN_WAIT_2))
# Of these, a predicted segment has ACK alone (PSH may be set); ECN signals take the full path.
_FAST_FLAGS = URG | ACK | RST | SYN | FIN | ECE | CWR | CE
_ECN_SIGNALS = ECE | CWR | CE
SackBlocks = tuple[tuple[int, int], ...]


class ConnectionInput(ConnectionTimers):
    """Handshakes and segment arrival."""

    __slots__ = ()

    # -- opening ---------------------------------------------------------------------------

    def active_open(self, now: float, fastopen: tuple[bytes, int] | None = None) -> None:
        """Start the handshake; the SYN leaves at the next flush.

        `fastopen` (RFC 7413 §4.2) is the client's Fast Open: (cookie, the server's MSS
        when the cookie came) to send data in the SYN, (b"", 0) to ask for a cookie. With
        a cookie the SYN waits for the first data (`fastopen_deferred`), as Linux's
        TCP_FASTOPEN_CONNECT.
        """
        if fastopen is not None:
            cookie, mss = fastopen
            self._fastopen = cookie
            if cookie:
                self.fastopen_deferred = True
                if mss > 0:
                    self._snd_mss = min(mss, self._mss_limit)
        self._set_state(SYN_SENT, Event.CONNECT, now)
        self._stats.tcp_active_opens += 1

    def passive_open(self, p: TcpParsed, now: float) -> None:
        """Take a listener's SYN: options, the peer's ISN; the SYN-ACK goes at the next flush."""
        _, _, _, seq, _, _, flags, window, _, _, mss, wscale, sack_permitted, tsval, _, _ = p
        self.irs = seq
        self.rcv_nxt = seq_add(seq, 1)
        self._take_syn_options(mss, wscale, sack_permitted, tsval, now)
        if self._cfg.ecn and flags & (ECE | CWR) == ECE | CWR:  # an ECN-setup SYN (RFC 3168 §6.1.1)
            self._ecn_ok = True
            self._stats.tcp_ecn_negotiated += 1
        self.snd_wnd = window
        self.snd_wl1 = seq
        self._set_state(SYN_RECEIVED, Event.SYN, now)
        self._stats.tcp_passive_opens += 1

    def offer_fastopen_cookie(self, cookie: bytes) -> None:
        """Server: the SYN-ACK carries this Fast Open cookie (the client asked, or sent a stale one)."""
        self._fastopen = cookie

    def take_syn_data(self, payload: memoryview, now: float) -> int:
        """Server: accept the data of a SYN whose Fast Open cookie was valid (RFC 7413 §4.3.2).

        It is readable at once, and the SYN-ACK acknowledges it; returns the bytes taken
        (what the receive buffer holds; the rest the client sends again after the handshake).
        """
        n = min(len(payload), self._recv.free)
        self._syn_data = n
        if n:
            self._take_data(self.rcv_nxt, payload[:n], now)
            self._ack_now = False  # the SYN-ACK is the ACK
            self._ack_pending = False
            self._delack_at = None
        return n

    def cookie_open(self, p: TcpParsed, mss: int, now: float) -> None:
        """Finish a handshake answered with a SYN cookie: the final ACK is all that is known."""
        _, _, _, seq, ack, _, _, window, _, _, _, _, _, _, _, _ = p
        self.iss = seq_add(ack, -1)
        self.snd_una = self.snd_nxt = self.snd_max = self._recover = self._snd_sml = ack
        self.irs = seq_add(seq, -1)
        self.rcv_nxt = self._last_ack_sent = seq
        self._rcv_adv = seq_add(seq, self._syn_window)
        self._snd_mss = min(mss, self._mss_limit)
        self._mss = self._snd_mss
        self.snd_wnd = self.max_sndwnd = window
        self.snd_wl1 = seq
        self.snd_wl2 = ack
        self._stats.tcp_passive_opens += 1
        self._establish(Event.COOKIE_ACK, now)

    def _take_syn_options(self, mss: int, wscale: int, sack_permitted: int, tsval: int, now: float) -> None:
        cfg = self._cfg
        if mss <= 0:
            mss = DEFAULT_MSS
        self._snd_mss = mss if mss < self._mss_limit else self._mss_limit
        if wscale >= 0:  # window scaling only when both sides send the option (RFC 7323 §2.2)
            self._snd_wscale = wscale if wscale <= 14 else 14
            self._rcv_wscale = cfg.window_scale
        self._sack_ok = bool(sack_permitted) and cfg.sack
        self._ts_ok = tsval >= 0 and cfg.timestamps
        if self._ts_ok:
            self._ts_recent = tsval
            self._ts_recent_at = now
        self._mss = self._snd_mss - 12 if self._ts_ok else self._snd_mss
        self._rcv_mss = self._mss

    def _establish(self, event: Event, now: float) -> None:
        cfg = self._cfg
        mss = self._mss
        cc: CongestionControl = (
            Cubic(mss, cfg.initial_window, hystart=cfg.hystart)
            if cfg.congestion == "cubic"
            else NewReno(mss, cfg.initial_window)
        )
        cc.abc_limit = cfg.abc_limit
        self._last_tx = now  # the handshake is no idle time (Linux sets lsndtime here too)
        if self._syn_retransmitted:
            cc.cwnd = mss  # RFC 6298 (5.7): the SYN or SYN-ACK was lost
        self._cc = cc
        if self._sack_ok:  # the scoreboard, RACK and PRR objects come at their first use
            if cfg.rack:
                self._rack_ok = True
                self._tlp_ok = cfg.tlp
            self._prr_ok = cfg.prr
        self._recover = self.snd_una
        self._retries = 0
        self._rtx_start = None
        self._rto_at = None
        self.rtt.reset_backoff()
        self._set_state(ESTABLISHED, event, now)
        if self.keepalive:
            self._keepalive_at = now + self.keepidle
        listener = self.listener
        if listener is not None:
            listener.established(self)
        else:
            self._wake()
        if self._fin_seq is not None:  # shutdown() came before the handshake completed
            self._set_state(FIN_WAIT_1, Event.CLOSE, now)

    # -- receiving -------------------------------------------------------------------------

    def input_predicted(
        self,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        tsval: int,
        tsecr: int,
        sack: SackBlocks,
        payload: memoryview,
        now: float,
    ) -> bool:
        """`input`'s header prediction for a segment `TcpLayer.receive_predicted` parsed,
        with the fields it already holds: False, and nothing changed, when `input` must take
        the segment (`_fast_path` tests before it changes anything, and `input` tests again).
        Spares the 16-tuple `input` takes (a slice of the C parser's 20) and its unpacking."""
        if self.state in _FAST and flags & _FAST_FLAGS == ACK and seq == self.rcv_nxt:
            self.segs_in += 1  # counted first, as `input` does
            if self._fast_path(seq, ack, window, tsval, tsecr, sack, payload, now):
                self._last_rx = now
                return True
            self.segs_in -= 1  # `input` counts it
        return False

    def input(self, p: TcpParsed, payload: memoryview, now: float) -> None:
        """SEGMENT ARRIVES (RFC 9293 §3.10.7); `p` is `native.tcp_parse`'s tuple."""
        _, _, _, seq, ack, _, flags, window, _, _, _, _, _, tsval, tsecr, sack = p
        self.segs_in += 1
        state = self.state
        if (
            state in _FAST
            and flags & _FAST_FLAGS == ACK
            and seq == self.rcv_nxt
            and self._fast_path(seq, ack, window, tsval, tsecr, sack, payload, now)
        ):
            self._last_rx = now
            return
        if state == SYN_SENT:
            self._input_syn_sent(p, now)
            return
        if state in (CLOSED, LISTEN):
            return
        stats = self._stats
        # RST (RFC 5961 §3): exact match resets, in-window earns a challenge ACK.
        if flags & RST:
            stats.tcp_rst_received += 1
            if seq == self.rcv_nxt:
                self._on_reset(now)
            elif self._seq_in_window(seq):
                self._challenge_ack(now)
            return
        # PAWS (RFC 7323 §5)
        if (
            self._ts_ok
            and tsval >= 0
            and (tsval - self._ts_recent) & 0xFFFFFFFF >= 0x80000000  # seq_lt(tsval, ts_recent)
            and now - self._ts_recent_at <= _PAWS_IDLE
        ):
            stats.tcp_paws_rejected += 1
            self._oow_ack(len(payload) == 0, now)
            return
        if flags & SYN:
            if state == SYN_RECEIVED and seq == self.irs:
                if flags & ACK and ack == seq_add(self.iss, 1):  # simultaneous open: their SYN-ACK
                    self._ack_syn(seq, ack, flags, window, tsecr, Event.SYN_ACK, now)
                    self._ack_now = True
                else:
                    self.snd_nxt = self.iss  # a retransmitted SYN: send the SYN-ACK again
                return
            self._challenge_ack(now)  # RFC 5961 §4: any SYN in a synchronized state
            return
        # Sequence acceptability (RFC 9293 §3.10.7.4), then trimming to the window.
        rcv_nxt = self.rcv_nxt
        n = len(payload)
        fin = flags & FIN
        seglen = n + (1 if fin else 0)
        wnd = ((self._rcv_adv - rcv_nxt + 0x80000000) & 0xFFFFFFFF) - 0x80000000  # seq_sub(rcv_adv, rcv_nxt)
        if wnd < 0:
            wnd = 0
        off = (seq - rcv_nxt) & 0xFFFFFFFF  # seq_offset(seq, rcv_nxt)
        if seglen == 0:  # noqa: SIM108 - the comment below belongs to one branch
            # Linux's test (tcp_sequence): an empty segment AT the right edge is acceptable. A peer
            # that filled our window sends its pure ACKs from there; RFC 9293's strict "< edge"
            # would drop every one of them while our window is full, and the ACKs they carry.
            ok = off <= wnd
        else:  # the first byte or the last (its seq_offset) in the window
            ok = wnd > 0 and (off < wnd or (seq + seglen - 1 - rcv_nxt) & 0xFFFFFFFF < wnd)
        if not ok:
            if wnd == 0 and off == 0 and flags & ACK:
                payload = payload[:0]  # zero window: still take the ACK (RFC 9293 §3.10.7.4)
                fin = 0
                n = 0
                stats.tcp_rcv_overflow += 1
                self._ack_now = True
            else:
                stats.tcp_out_of_window += 1
                if state == TIME_WAIT and fin:
                    self._close_at = now + 2 * self._cfg.msl
                if n and seq_lt(seq, rcv_nxt) and self._sack_ok and self._cfg.dsack:
                    end = seq_add(seq, n)
                    if seq_le(end, rcv_nxt):
                        self._dsack = (seq, end)  # all of it arrived before (RFC 2883)
                self._oow_ack(seglen == 0, now)
                return
        if off >= 0x80000000:  # seq_lt(seq, rcv_nxt): starts before RCV.NXT, cut what we already have
            if n and self._sack_ok and self._cfg.dsack:
                self._dsack = (seq, rcv_nxt)  # its start arrived before (RFC 2883)
                self._ack_now = True
            cut = (rcv_nxt - seq) & 0xFFFFFFFF  # seq_offset(rcv_nxt, seq)
            payload = payload[cut:]
            n -= cut
            seq = rcv_nxt
            off = 0
        keep = wnd - off
        if n > keep:
            payload = payload[:keep]
            n = keep
            fin = 0
            stats.tcp_rcv_overflow += 1
        if not flags & ACK:
            return
        if state == SYN_RECEIVED:
            if 0 < seq_offset(ack, self.snd_una) <= seq_offset(self.snd_max, self.snd_una):
                self._ack_syn(seq, ack, flags, window, tsecr, Event.ACK, now)
            else:
                self._send_reset(ack, 0, RST, now)
                return
        elif not self._on_ack(seq, ack, flags, window, tsecr, sack, n, now):
            return
        # TS.Recent only from a segment that is accepted (RFC 7323 §4.3): here, after the ACK
        # check, so that one acknowledging data never sent (or too old) cannot plant a
        # far-future TSval that makes PAWS drop every later segment of the real peer. The
        # same for the time last heard from the peer: a stray segment keeps no dead peer's
        # connection from its keepalive probes (Linux's rcv_tstamp, set in tcp_ack).
        self._last_rx = now
        if self._ts_ok and tsval >= 0 and (self._last_ack_sent - seq) & 0xFFFFFFFF < 0x80000000:  # seq_ge
            self._ts_recent = tsval
            self._ts_recent_at = now
        if flags & _ECN_SIGNALS and self._ecn_ok:
            self._ecn_input(flags, now)
        state = self.state
        if state == CLOSED:
            return
        if self._fin_seq is not None and seq_gt(self.snd_una, self._fin_seq):
            if state == FIN_WAIT_1:
                self._set_state(FIN_WAIT_2, Event.ACK, now)
                if self._user_closed:
                    self._close_at = now + self._cfg.fin_timeout
            elif state == CLOSING:
                self._enter_time_wait(Event.ACK, now)
                return
            elif state == LAST_ACK:
                self._set_state(CLOSED, Event.ACK, now)
                return
        state = self.state
        if n:
            if state not in TAKES_DATA:
                return
            if self._user_closed:  # data for a closed socket: nobody will read it (Linux resets)
                self._reset(now)
                return
            self._take_data(seq, payload, now)
        if fin:
            end = seq_add(seq, n)
            if end == self.rcv_nxt:
                self._on_fin(now)
            else:
                self._peer_fin_at = end
                self._ack_now = True

    def _fast_path(
        self,
        seq: int,
        ack: int,
        window: int,
        tsval: int,
        tsecr: int,
        sack: SackBlocks,
        payload: memoryview,
        now: float,
    ) -> bool:
        """Header prediction: the next in-order segment, a pure ACK of new data, or both at once.

        What it skips is what cannot apply to such a segment: RST/SYN/FIN handling,
        PAWS beyond one comparison, window trimming, duplicate-ACK counting, and state
        changes (in these states only a FIN or an ACK of our FIN changes state). A new
        window is taken here when it rides on an ACK of new data (`_on_ack` updates it
        then whatever SND.WL1/WL2 say, on either path); on data alone it needs the full
        path's SND.WL1/WL2 test. A request/response peer's every other segment carries a
        window its unread data moved, so requiring the window unchanged, as Linux's
        prediction flags do, sent half of them the full way.
        """
        # seq_lt(tsval, ts_recent)
        if self._ts_ok and (tsval < 0 or (tsval - self._ts_recent) & 0xFFFFFFFF >= 0x80000000):
            return False
        if self._dupacks or self._nr_recovery:
            return False
        una = self.snd_una
        n = len(payload)
        new_ack = ack != una
        if new_ack:
            # A pure ACK, or data that also acknowledges ours (request/response): new
            # data acknowledged, no SACK news, and no FIN of ours whose ACK changes state.
            if not 0 < (ack - una) & 0xFFFFFFFF <= (self.snd_max - una) & 0xFFFFFFFF:  # seq_offset()s
                return False
            sb = self._sb
            if sb is not None:
                if sack or sb.in_recovery:
                    return False
            elif sack and self._sack_ok:
                return False
            if n and self._fin_seq is not None:
                return False
        elif not n or (window << self._snd_wscale) != self.snd_wnd:
            return False
        if n and (
            self._ooo.held
            or self._user_closed
            or self.state == CLOSE_WAIT
            or n > (self._rcv_adv - self.rcv_nxt) & 0xFFFFFFFF  # seq_offset(rcv_adv, rcv_nxt)
        ):
            return False
        self._stats.tcp_fast_path += 1
        if self._ts_ok and self.rcv_nxt == self._last_ack_sent:
            self._ts_recent = tsval
            self._ts_recent_at = now
        if new_ack:
            # With SACK, a pending undo implies a scoreboard: every cut that sets one makes it.
            if ack == self.snd_max and sb is None and not self._frto and (not self._sack_ok or self._tlp_high is None):
                self._ack_all(seq, ack, window, tsecr, now)
            else:
                self._on_ack(seq, ack, ACK, window, tsecr, sack, n, now)
        if n:
            self._take_data(seq, payload, now)
        return True

    def _input_syn_sent(self, p: TcpParsed, now: float) -> None:
        _, _, _, seq, ack, _, flags, window, _, _, mss, wscale, sack_permitted, tsval, tsecr, _ = p
        if flags & ACK and not 0 < seq_offset(ack, self.iss) <= seq_offset(self.snd_max, self.iss):
            if not flags & RST:
                self._stats.tcp_bad_syn_ack += 1
                self._send_reset(ack, 0, RST, now)
            return
        if flags & RST:
            self._stats.tcp_rst_received += 1
            if flags & ACK:
                self._fail(errno.ECONNREFUSED, Event.RST, now, send_rst=False)
            return
        if not flags & SYN:
            return
        self.irs = seq
        self.rcv_nxt = self._last_ack_sent = seq_add(seq, 1)
        self._rcv_adv = seq_add(self.rcv_nxt, self._syn_window)
        self._take_syn_options(mss, wscale, sack_permitted, tsval, now)
        self.snd_wl1 = seq
        if flags & ACK:
            cfg_ecn = self._cfg.ecn == 1 and not self._syn_retransmitted
            if cfg_ecn and flags & (ECE | CWR) == ECE:  # an ECN-setup SYN-ACK answers ours
                self._ecn_ok = True
                self._stats.tcp_ecn_negotiated += 1
            self._ack_syn(seq, ack, flags, window, tsecr, Event.SYN_ACK, now)
            self.snd_wnd = self.max_sndwnd = window  # a SYN's window is never scaled
            self._ack_now = True
        else:
            self.snd_wnd = self.max_sndwnd = window
            self.snd_nxt = self.iss  # simultaneous open: our SYN again, now with an ACK
            self._set_state(SYN_RECEIVED, Event.SYN, now)

    def _ack_syn(self, seq: int, ack: int, flags: int, window: int, tsecr: int, event: Event, now: float) -> None:
        """The peer acknowledged our SYN: take the RTT sample and become ESTABLISHED."""
        if self._ts_ok and tsecr > 0:
            rtt = self._tsclock.rtt(now, tsecr)
            if rtt is not None:
                self.rtt.sample(rtt)
        elif not self._syn_retransmitted and self._rtt_seq is not None:
            self.rtt.sample(now - self._rtt_time)
        self._rtt_seq = None
        if self._syn_data and self.state == SYN_SENT:
            self._syn_data_acked(ack)
        self.snd_una = ack
        if seq_lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        if not flags & SYN:
            self.snd_wnd = self.max_sndwnd = window << self._snd_wscale
        self.snd_wl1 = seq
        self.snd_wl2 = ack
        self._establish(event, now)

    def _syn_data_acked(self, ack: int) -> None:
        """Client Fast Open: what the SYN-ACK says of the SYN's data. What it acknowledges
        leaves the send buffer; the rest goes again after the handshake (RFC 7413 §4.2.2)."""
        acked = seq_offset(ack, self.iss) - 1
        self._send.ack(acked)
        self.bytes_sent += acked
        if acked < self._syn_data:
            self._stats.tcp_fastopen_active_fail += 1
            self.snd_nxt = ack
        else:
            self._stats.tcp_fastopen_active += 1

    def _on_ack(
        self, seq: int, ack: int, flags: int, window: int, tsecr: int, sack: SackBlocks, n: int, now: float
    ) -> bool:
        """Process SEG.ACK in a synchronized state; False when the segment must be dropped."""
        una = self.snd_una
        snd_max = self.snd_max
        acked = (ack - una) & 0xFFFFFFFF  # seq_offset(ack, una)
        outstanding = (snd_max - una) & 0xFFFFFFFF  # seq_offset(snd_max, una)
        wnd = window << self._snd_wscale
        sb = self._sb
        if 0 < acked <= outstanding:
            cc = self._cc
            frto = self._frto
            if frto:  # after an RTO: judged before SND.UNA and SND.NXT move (recovery.py)
                frto = self._frto_verdict(ack, sack)
            self._sample_rtt(cc, ack, outstanding, tsecr, now)
            send = self._send
            data = acked if acked <= send.held else send.held
            send.ack(data)
            self.bytes_sent += data
            self.snd_una = ack
            if (self.snd_nxt - ack) & 0xFFFFFFFF >= 0x80000000:  # seq_lt(snd_nxt, ack)
                self.snd_nxt = ack
            self._retries = 0
            self._rtx_start = None
            self._probes = 0
            if sb is not None:
                if (
                    sack
                    or sb.sacked_bytes
                    or sb.in_recovery
                    or self._tlp_high is not None
                    or self._undo_marker is not None
                ):
                    self._sack_ack(ack, sack, acked, tsecr, now)
                else:
                    sb.update(ack, snd_max, sack)
                    cc.on_ack(acked, now, self.rtt.srtt)
            elif self._sack_ok:  # no scoreboard yet: nothing SACKed, no recovery (`_scoreboard`)
                if sack or self._tlp_high is not None or self._undo_marker is not None:
                    self._sack_ack(ack, sack, acked, tsecr, now)
                else:
                    cc.on_ack(acked, now, self.rtt.srtt)
            elif self._nr_recovery:
                if seq_ge(ack, self._recover):
                    self._nr_recovery = False
                    cc.on_recovery_exit(now, seq_offset(snd_max, ack))
                else:  # partial ACK (RFC 6582 §3.2 step 5): the next hole goes out at once
                    cc.on_ack(acked, now, self.rtt.srtt)
                    self._retransmit(ack, self._mss, now)
            elif self._dupacks:
                # Each duplicate ACK stood for a segment delivered (RFC 5681 §3.2): those are
                # not delivered again now; the hole's segment at least is, as Linux's
                # tcp_remove_reno_sacks (delivered += max(acked - sacked_out, 1)).
                mss = self._mss
                delivered = acked - self._dupacks * mss
                least = acked if acked < mss else mss
                cc.on_ack(acked, now, self.rtt.srtt, delivered if delivered > least else least)
            else:
                cc.on_ack(acked, now, self.rtt.srtt)
            if frto:
                self._frto_act(frto, now)
            self._dupacks = 0
            if ack == snd_max:
                self._rto_at = None
            elif self._rack_ok:
                self._arm_timer(now, True)
            else:
                self._rto_at = now + self.rtt.rto
            if self._send_blocked and send.free:
                self._send_blocked = False
                self._wake()
        elif acked == 0:
            if n == 0 and outstanding and wnd == self.snd_wnd and not flags & FIN:
                self._on_dupack(sack, now)
            elif sack and self._sack_ok:
                self._sack_ack(una, sack, 0, tsecr, now)  # a D-SACK, a window update with SACK
        elif seq_gt(ack, una):  # beyond SND.MAX: acknowledges what was never sent
            self._stats.tcp_ack_unsent += 1
            if not self._cfg.ack_unsent_silent:
                self._oow_ack(n == 0, now)
            elif self.state != ESTABLISHED:
                self._challenge_ack(now)  # Linux: tcp_rcv_state_process's answer, ESTABLISHED's is none
            return False
        elif seq_offset(una, ack) > self.max_sndwnd:  # RFC 5961 §5: too old to be real
            self._stats.tcp_ack_too_old += 1
            self._challenge_ack(now)
            return False
        elif sack and self._sack_ok and outstanding:
            # An ACK below SND.UNA (reordered behind a later one) may still SACK data for
            # the first time: take that in, as Linux's tcp_ack does for an old ACK with SACK.
            # Only blocks above SND.UNA: below it they are no D-SACK (that is judged against
            # the ACK's own number), just news already known.
            above = tuple(block for block in sack if seq_gt(block[1], una))
            if above:
                self._sack_ack(una, above, 0, tsecr, now)
                if self._reo_at is not None:
                    self._arm_timer(now, False)  # RACK waits for the reordering window
        wl1 = self.snd_wl1
        # RFC 9293's SND.WL1/WL2 test, plus Linux's "the ACK advanced" (tcp_may_update_window):
        # a window update riding on new data acknowledged is never stale, even if its
        # sequence number is behind SND.WL1 (a peer's pure ACKs sent from its right edge).
        if (
            0 < acked <= outstanding
            or (wl1 - seq) & 0xFFFFFFFF >= 0x80000000  # seq_lt(wl1, seq)
            or (wl1 == seq and seq_ge(ack, self.snd_wl2))
        ):
            if wnd != self.snd_wnd:
                self.snd_wnd = wnd
                if wnd > self.max_sndwnd:
                    self.max_sndwnd = wnd
            self.snd_wl1 = seq
            self.snd_wl2 = ack
        return True

    def _ack_all(self, seq: int, ack: int, window: int, tsecr: int, now: float) -> None:
        """`_on_ack` for header prediction's commonest ACK: all in flight acknowledged.

        `_fast_path` checked what makes it so: SEG.ACK is SND.MAX and new, no duplicate
        ACKs, no recovery of either kind, no scoreboard, no F-RTO, and with SACK no tail
        probe pending (nor SACK blocks). What `_on_ack` then does, without its tests: the
        RTT sample, the release, cc.on_ack, no retransmission timer (nothing in flight),
        and the window, which an ACK of new data always updates.
        """
        acked = (ack - self.snd_una) & 0xFFFFFFFF  # seq_offset(ack, una): all that was outstanding
        cc = self._cc
        self._sample_rtt(cc, ack, acked, tsecr, now)
        send = self._send
        held = send.held
        data = acked if acked <= held else held
        send.ack(data)
        self.bytes_sent += data
        self.snd_una = self.snd_nxt = ack  # SND.NXT is never past SND.MAX, which this is
        self._retries = 0
        self._rtx_start = None
        self._probes = 0
        cc.on_ack(acked, now, self.rtt.srtt)
        self._rto_at = None
        if self._send_blocked and send.free:
            self._send_blocked = False
            self._wake()
        wnd = window << self._snd_wscale
        if wnd != self.snd_wnd:
            self.snd_wnd = wnd
            if wnd > self.max_sndwnd:
                self.max_sndwnd = wnd
        self.snd_wl1 = seq
        self.snd_wl2 = ack

    def _sample_rtt(self, cc: CongestionControl, ack: int, outstanding: int, tsecr: int, now: float) -> None:
        """An ACK of new data's RTT sample (RFC 6298, RFC 7323 §4): from the timestamp it
        echoes unless that stamps a segment sent before the last RTO, else from the timed
        segment once the ACK covers it (Karn); `outstanding` is what was in flight, for
        the number of samples a window is expected to give."""
        if self._ts_ok and tsecr > 0:
            rto_tsval = self._rto_tsval
            if rto_tsval is None or (tsecr - rto_tsval) & 0xFFFFFFFF < 0x80000000:  # seq_ge(tsecr, rto_tsval)
                rtt = self._tsclock.rtt(now, tsecr)
                if rtt is not None:
                    self.rtt.sample(rtt, -(-outstanding // (2 * self._mss)))
                    if cc.hystart:
                        self._hystart_sample(cc, rtt, ack)
        elif self._rtt_seq is not None and seq_ge(ack, self._rtt_seq):
            rtt = now - self._rtt_time
            self.rtt.sample(rtt)
            self._rtt_seq = None
            if cc.hystart:
                self._hystart_sample(cc, rtt, ack)

    def _hystart_sample(self, cc: CongestionControl, rtt: float, ack: int) -> None:
        """Hand an RTT sample of the initial slow start to HyStart++ and count what it did."""
        event = cc.hystart_sample(rtt, ack, self.snd_nxt)
        if event:
            stats = self._stats
            if event == HYSTART_ENTER_CSS:
                stats.tcp_hystart_css += 1
            elif event == HYSTART_RESUME:
                stats.tcp_hystart_spurious += 1
            else:
                stats.tcp_hystart_exits += 1

    def _ecn_input(self, flags: int, now: float) -> None:
        """An accepted segment's ECN signals (RFC 3168 §6.1): the peer's CWR ends our echo,
        a CE mark starts it (in that order, as Linux, for a segment with both), and an ECE
        reduces the window once per window of data, as a loss would, with no retransmission:
        not again before SND.UNA passes what was in flight then, nor while our CWR has not
        gone out (the echoes until then are about the same marks)."""
        if flags & CWR:
            self._stats.tcp_ecn_cwr_received += 1
            self._ecn_echo = False
        if flags & CE:
            self._stats.tcp_ecn_ce_received += 1
            if not self._ecn_echo:
                self._ecn_echo = True
                self._ack_now = True  # the sender may have a small window: tell it at once (Linux)
        if flags & ECE and not self._ecn_cwr and seq_ge(self.snd_una, self._ecn_recover):
            cc = self._cc
            if not cc.in_recovery:  # a loss already cut the window for this one
                cc.on_ecn(now, seq_offset(self.snd_max, self.snd_una))
                self._stats.tcp_ecn_reductions += 1
            self._ecn_recover = self.snd_max
            self._ecn_cwr = True

    def _on_dupack(self, sack: SackBlocks, now: float) -> None:
        """A duplicate ACK (RFC 5681 §2): count it and maybe start loss recovery."""
        if self._frto:
            self._frto_dupack(sack, now)
        self._dupacks += 1
        una = self.snd_una
        cc = self._cc
        if self._sack_ok:
            sb = self._scoreboard()
            if self._rack_ok:  # RACK decides by time (recovery.py)
                self._sack_ack(una, sack, 0, 0, now)
                if self._reo_at is not None:
                    self._arm_timer(now, False)
            else:
                sb.update(una, self.snd_max, sack)
                rp = sb.recovery_point
                if not sb.in_recovery and (self._dupacks >= 3 or sb.is_lost(una)) and (rp is None or seq_ge(una, rp)):
                    self._enter_sack_recovery(0, now)
            if not sb.in_recovery and self._dupacks <= 2 and self._cfg.limited_transmit:
                self._limited_transmit(now)
            return
        if self._nr_recovery:
            cc.on_dupack()
        elif self._dupacks <= 2:
            if self._cfg.limited_transmit:
                self._limited_transmit(now)
        elif self._dupacks == 3 and seq_ge(una, self._recover):
            self._recover = self.snd_max
            self._nr_recovery = True
            cc.enter_recovery(now, seq_offset(self.snd_max, una), False)
            self._stats.tcp_fast_retransmits += 1
            self._retransmit(una, self._mss, now)

    def _take_data(self, seq: int, payload: memoryview, now: float) -> None:
        """In-window data: in order to the receive buffer, ahead of a hole to reassembly."""
        n = len(payload)
        if self._rcv_mss < n <= self._mss_limit:
            # Learn the peer's segment size only from what can be one of its segments (as
            # Linux's tcp_measure_rcv_mss): a run that GRO or the kernel's TSO joined is
            # bigger than the MSS we offered, and counting it would delay every later ACK.
            self._rcv_mss = n
        if seq == self.rcv_nxt:
            got = self._recv.append(payload)
            rcv_nxt = (seq + got) & 0xFFFFFFFF  # seq_add(seq, got)
            self.bytes_received += got
            ooo = self._ooo
            if ooo.held:
                data, rcv_nxt = ooo.pop_ready(rcv_nxt)
                if data:
                    self._recv.append(data)
                    self.bytes_received += len(data)
                self._ack_now = True  # a hole filled (RFC 5681 §4.2)
            self.rcv_nxt = rcv_nxt
            if self._peer_fin_at is not None and self._peer_fin_at == rcv_nxt:
                self._on_fin(now)
            if now - self._last_data_rx > self.rtt.rto:
                self._enter_quickack()  # the first data, or data after an idle RTO (Linux)
            self._last_data_rx = now
            unacked = self._unacked + got
            self._unacked = unacked
            if unacked >= 2 * self._rcv_mss or (self._quick and not self._pingpong):
                self._ack_now = True
            else:
                self._ack_pending = True
                if self._delack_at is None:
                    self._delack_at = now + self._cfg.delayed_ack
            self._wake()
        else:
            self._stats.tcp_ofo_segments += 1
            ooo = self._ooo
            if ooo is NO_OOO:
                ooo = self._ooo = Reassembly(self._recv.limit)
            ooo.insert(seq, payload)
            self._ack_now = True

    def _enter_quickack(self) -> None:
        """Quick-ACK mode (Linux's tcp_incr_quickack): the next data segments, up to half the
        window's worth and at most `TcpConfig.quickack`, are acknowledged at once, so a
        starting sender's window opens without waiting for delayed ACKs."""
        n = ((self._rcv_adv - self.rcv_nxt) & 0xFFFFFFFF) // (2 * self._rcv_mss)
        limit = self._cfg.quickack
        n = limit if n > limit else n if n > 2 else min(2, limit)
        if n > self._quick:
            self._quick = n

    def _on_fin(self, now: float) -> None:
        self.rcv_nxt = seq_add(self.rcv_nxt, 1)
        self._peer_fin_at = None
        self._peer_fin = True
        self._ack_now = True
        self._dsack = None  # the FIN's ACK reports no duplicate (Linux's tcp_fin resets its SACK state)
        self._wake()
        state = self.state
        if state == ESTABLISHED:
            self._set_state(CLOSE_WAIT, Event.FIN, now)
        elif state == FIN_WAIT_1:  # ours is not acknowledged: input moves to FIN_WAIT_2 first when it is
            self._set_state(CLOSING, Event.FIN, now)
        elif state == FIN_WAIT_2:
            self._enter_time_wait(Event.FIN, now)

    def _on_reset(self, now: float) -> None:
        state = self.state
        if state == SYN_RECEIVED:
            self._fail(errno.ECONNREFUSED, Event.RST, now, send_rst=False)
        elif state in (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
            self._fail(errno.ECONNRESET, Event.RST, now, send_rst=False)
        else:
            self._set_state(CLOSED, Event.RST, now)

    def _seq_in_window(self, seq: int) -> bool:
        wnd = seq_sub(self._rcv_adv, self.rcv_nxt)
        return seq_offset(seq, self.rcv_nxt) < (wnd if wnd > 0 else 1)

    def _enter_time_wait(self, event: Event, now: float) -> None:
        self._set_state(TIME_WAIT, event, now)
        self._close_at = now + 2 * self._cfg.msl
        self._rto_at = self._persist_at = self._keepalive_at = None

    def _oow_ack(self, limited: bool, now: float) -> None:
        """ACK an unacceptable segment; pure ACKs earn at most one answer per interval (Linux)."""
        if limited:
            if now - self._last_oow < self._cfg.invalid_ack_interval:
                return
            self._last_oow = now
        self._ack_now = True

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961's challenge ACK, limited as Linux limits it (tcp_send_challenge_ack): once per
        `invalid_ack_interval` per connection, and `challenge_ack_limit` a second interface-wide."""
        if now - self._last_oow < self._cfg.invalid_ack_interval:
            self._stats.tcp_challenge_acks_limited += 1
            return
        if self._owner.challenge_allowed(now):
            self._last_oow = now
            self._stats.tcp_challenge_acks += 1
            self._emit(self.snd_max, ACK, b"", now)

    def icmp_error(self, code_errno: int, seq: int, mtu: int, now: float) -> bool:
        """An ICMP error quoting one of our segments; False when RFC 5927 §4.1's check of
        the quoted sequence number (in SND.UNA..SND.MAX) refuses it."""
        if seq_offset(seq, self.snd_una) > seq_offset(self.snd_max, self.snd_una):
            return False
        if mtu:
            self.path_mtu_lowered(mtu)
            return True
        if self.state == SYN_SENT:
            self._fail(code_errno, Event.ICMP_ERROR, now, send_rst=False)
        else:
            self._soft_error = code_errno
        return True

    def path_mtu_lowered(self, mtu: int) -> None:
        """Path MTU discovery (RFC 1191 §6.4): segments now fit `mtu`, never grow from it;
        what is in flight is cut again at the new size and sent again (Linux's
        tcp_simple_retransmit: the too-big segments were dropped, not congestion)."""
        mss = mtu - (self._route.mtu - self._route.mss)
        if 88 <= mss < self._snd_mss:
            self._snd_mss = mss
            self._mss = mss - 12 if self._ts_ok else mss
            self._cc.smss = self._mss
            self.snd_nxt = self.snd_una  # what was sent was too big: send it again smaller
            self._owner.touch(self)
