"""One TCP connection (RFC 9293): the state machine, data transfer, retransmission.

Segments come in through `input` (from the layer's demultiplexer) and go out through
`output`, which the layer calls once per flush for every connection that changed: that
is where user writes become segments and where a connection sends at most one ACK
per batch of received frames. Timers are plain attributes (`_rto_at`...); the layer
keeps them in its heap and calls `on_timer` when the earliest is due.
"""

from __future__ import annotations

import errno
import math
import os
import struct
from typing import TYPE_CHECKING, Any

from usernet.native import CSUM_FULL, CSUM_PARTIAL, build_ipv4_tcp
from usernet.stack.tcp.buffers import ReceiveBuffer, SendBuffer
from usernet.stack.tcp.congestion import CongestionControl, Cubic, NewReno
from usernet.stack.tcp.reassembly import Reassembly
from usernet.stack.tcp.rtt import RttEstimator, TimestampClock
from usernet.stack.tcp.scoreboard import Scoreboard
from usernet.stack.tcp.states import ALLOWED, SYNCHRONIZED, State
from usernet.wire.tcp import ACK, FIN, PSH, RST, SYN, encode_tcp_options

if TYPE_CHECKING:
    from usernet.stack.tcp.layer import TcpLayer, TcpListener

Address = tuple[bytes, int]

_ZERO_MAC = bytes(6)
_TS_OPTION = struct.Struct("!BBBBII")  # NOP NOP kind=8 len=10 TSval TSecr
_SACK_HEADER = struct.Struct("!BBBB")
_EDGES = struct.Struct("!II")
_PAWS_IDLE = 24 * 86400.0  # RFC 7323 §5.5: ts_recent older than 24 days is invalid
_DEFAULT_MSS = 536  # RFC 9293 §3.7.1, when the peer sends no MSS option

CLOSED = State.CLOSED
LISTEN = State.LISTEN
SYN_SENT = State.SYN_SENT
SYN_RECEIVED = State.SYN_RECEIVED
ESTABLISHED = State.ESTABLISHED
FIN_WAIT_1 = State.FIN_WAIT_1
FIN_WAIT_2 = State.FIN_WAIT_2
CLOSE_WAIT = State.CLOSE_WAIT
CLOSING = State.CLOSING
LAST_ACK = State.LAST_ACK
TIME_WAIT = State.TIME_WAIT

_CAN_SEND = frozenset((SYN_SENT, SYN_RECEIVED, ESTABLISHED, CLOSE_WAIT))
_SENDS_DATA = frozenset((ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK))
_TAKES_DATA = frozenset((ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2))
# Where header prediction applies: no FIN of ours waits for its ACK, so an ACK changes no state.
_FAST = frozenset((ESTABLISHED, CLOSE_WAIT, FIN_WAIT_2))
_OPTION_NAMES = ("nodelay", "keepalive", "keepidle", "keepintvl", "keepcnt", "user_timeout", "rcvbuf", "sndbuf")


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


def _os_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class TcpConnection:
    """A connection's whole state. Sequence numbers are 32-bit ints compared mod 2**32.

    `snd_nxt` is where the next transmission starts; `snd_max` the highest sequence
    number sent so far. They differ after a retransmission timeout, when sending
    starts over from SND.UNA (go-back-N) up to SND.MAX.
    """

    __slots__ = (
        "__weakref__",
        "_ack_now",
        "_ack_pending",
        "_cc",
        "_cfg",
        "_close_at",
        "_delack_at",
        "_dupacks",
        "_fin_seq",
        "_iface",
        "_ka_probes",
        "_keepalive_at",
        "_last_ack_sent",
        "_last_oow",
        "_last_rx",
        "_layer",
        "_mss",
        "_mss_limit",
        "_next_hop",
        "_nr_recovery",
        "_ooo",
        "_peer_fin",
        "_peer_fin_at",
        "_persist_at",
        "_probes",
        "_rcv_adv",
        "_rcv_mss",
        "_rcv_wscale",
        "_read_since_output",
        "_recover",
        "_recv",
        "_retries",
        "_rto_at",
        "_rto_tsval",
        "_rtt_seq",
        "_rtt_time",
        "_rtx_start",
        "_sack_ok",
        "_sb",
        "_send",
        "_send_blocked",
        "_snd_mss",
        "_snd_sml",
        "_snd_wscale",
        "_soft_error",
        "_stats",
        "_syn_retransmitted",
        "_syn_window",
        "_timer_at",
        "_ts_ok",
        "_ts_recent",
        "_ts_recent_at",
        "_tsclock",
        "_unacked",
        "_user_closed",
        "bytes_received",
        "bytes_sent",
        "error",
        "irs",
        "iss",
        "keepalive",
        "keepcnt",
        "keepidle",
        "keepintvl",
        "key",
        "listener",
        "local",
        "max_sndwnd",
        "nodelay",
        "rcv_nxt",
        "remote",
        "retransmits",
        "rtt",
        "segs_in",
        "segs_out",
        "snd_max",
        "snd_nxt",
        "snd_una",
        "snd_wl1",
        "snd_wl2",
        "snd_wnd",
        "state",
        "user_timeout",
    )  # fmt: skip

    def __init__(
        self,
        layer: TcpLayer,
        local: Address,
        remote: Address,
        next_hop: bytes,
        now: float,
        listener: TcpListener | None = None,
    ) -> None:
        cfg = layer.config
        iface = layer.iface
        self._layer = layer
        self._iface = iface
        self._stats = iface.counters
        self._cfg = cfg
        self.local = local
        self.remote = remote
        self.key = (local[0], local[1], remote[0], remote[1])
        self._next_hop = next_hop
        self.listener = listener
        self.state = LISTEN if listener is not None else CLOSED
        self.error: OSError | None = None
        self._soft_error = 0
        self.nodelay = cfg.nodelay
        self.keepalive = cfg.keepalive
        self.keepidle = cfg.keepalive_idle
        self.keepintvl = cfg.keepalive_interval
        self.keepcnt = cfg.keepalive_count
        self.user_timeout = cfg.user_timeout
        self._send = SendBuffer(cfg.sndbuf)
        self._recv = ReceiveBuffer(cfg.rcvbuf)
        self._ooo = Reassembly(cfg.rcvbuf)
        isn = layer.isn_source
        self.iss = iss = isn.isn(now, *self.key)
        self.snd_una = self.snd_nxt = self.snd_max = iss
        self.snd_wnd = 0
        self.snd_wl1 = self.snd_wl2 = 0
        self.max_sndwnd = 0
        self.irs = 0
        self.rcv_nxt = 0
        self._rcv_adv = 0
        self._last_ack_sent = 0
        self._syn_window = min(cfg.rcvbuf, 65535)
        self._mss_limit = min(cfg.mss or 65495, iface.mtu - 40)
        self._snd_mss = _DEFAULT_MSS
        self._mss = _DEFAULT_MSS
        self._rcv_mss = _DEFAULT_MSS
        self._snd_wscale = 0
        self._rcv_wscale = 0
        self._sack_ok = False
        self._ts_ok = False
        self._ts_recent = 0
        self._ts_recent_at = 0.0
        self._tsclock = TimestampClock(offset=isn.ts_offset(*self.key))
        self.rtt = RttEstimator(rto_min=cfg.rto_min, rto_max=cfg.rto_max, rto_initial=cfg.rto_initial)
        self._cc: CongestionControl = NewReno(_DEFAULT_MSS, cfg.initial_window)
        self._sb: Scoreboard | None = None
        self._dupacks = 0
        self._recover = iss
        self._nr_recovery = False
        self._rtt_seq: int | None = None
        self._rtt_time = 0.0
        self._retries = 0
        self._rtx_start: float | None = None
        self._rto_tsval: int | None = None  # TSval when the RTO last fired: older echoes are ambiguous
        self._fin_seq: int | None = None
        self._peer_fin = False
        self._peer_fin_at: int | None = None
        self._user_closed = False
        self._ack_pending = False
        self._ack_now = False
        self._read_since_output = False
        self._unacked = 0
        self._last_oow = -math.inf
        self._snd_sml = iss
        self._send_blocked = False
        self._probes = 0
        self._ka_probes = 0
        self._last_rx = now
        self._rto_at: float | None = None
        self._persist_at: float | None = None
        self._delack_at: float | None = None
        self._keepalive_at: float | None = None
        self._close_at: float | None = None
        self._timer_at: float | None = None  # the time of this connection's valid entry in the layer's heap
        self.segs_in = 0
        self.segs_out = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.retransmits = 0
        self._syn_retransmitted = False

    def __repr__(self) -> str:
        return f"<TcpConnection {_fmt(self.local)} -> {_fmt(self.remote)} {self.state.name}>"

    # -- user side -----------------------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview, now: float) -> int:
        """Queue bytes to send; returns how many fitted in the send buffer (0 when full)."""
        if self.state not in _CAN_SEND or self._fin_seq is not None:
            if self.error is not None:
                raise self.error
            raise OSError(errno.EPIPE, "the connection is shut down for writing: no more data can be sent")
        n = self._send.write(data)
        if n < len(data):
            self._send_blocked = True
        if n:
            self._layer.touch(self)
        return n

    def receive(self, max_bytes: int = -1) -> bytes:
        """Take up to `max_bytes` received bytes (all with -1); b"" when none are waiting."""
        recv = self._recv
        if not len(recv):
            return b""
        data = recv.read_all() if max_bytes < 0 else recv.read(max_bytes)
        if data and self.state in _TAKES_DATA:
            self._read_since_output = True
            self._layer.touch(self)  # the window may have opened enough to tell the peer
        return data

    def receive_into(self, buffer: bytearray | memoryview) -> int:
        """Copy received bytes into `buffer` (a BufferedProtocol's); returns the count."""
        n = self._recv.read_into(buffer)
        if n and self.state in _TAKES_DATA:
            self._read_since_output = True
            self._layer.touch(self)
        return n

    @property
    def readable(self) -> int:
        """Bytes waiting to be read."""
        return len(self._recv)

    @property
    def at_eof(self) -> bool:
        """The peer's FIN arrived and every byte before it has been read."""
        return self._peer_fin and not len(self._recv)

    def send_space(self) -> int:
        """How many bytes `send` would accept now."""
        return self._send.free

    @property
    def unsent(self) -> int:
        """Bytes in the send buffer: queued or in flight, not yet acknowledged."""
        return len(self._send)

    def shutdown(self, now: float) -> None:
        """SHUT_WR: send a FIN once the queued data is out."""
        state = self.state
        if self._fin_seq is not None or state not in _CAN_SEND:
            return
        data_start = self.snd_una if state not in (SYN_SENT, SYN_RECEIVED) else (self.iss + 1) & 0xFFFFFFFF
        self._fin_seq = (data_start + len(self._send)) & 0xFFFFFFFF
        if state == ESTABLISHED or state == SYN_RECEIVED:
            self._set_state(FIN_WAIT_1, now)
        elif state == CLOSE_WAIT:
            self._set_state(LAST_ACK, now)
        self._layer.touch(self)

    def close(self, now: float) -> None:
        """Close both directions. Unread data makes it a reset, as on Linux."""
        if self.state == CLOSED:
            return
        self._user_closed = True
        if self.state == SYN_SENT:
            self._set_state(CLOSED, now)
        elif len(self._recv) and self.state in SYNCHRONIZED:
            self._reset(now)
        else:
            self.shutdown(now)
            if self.state == FIN_WAIT_2:
                self._close_at = now + self._cfg.fin_timeout
                self._layer.touch(self)

    def abort(self, now: float) -> None:
        """Drop the connection at once, telling the peer with a RST (SO_LINGER 0)."""
        if self.state == CLOSED:
            return
        self._user_closed = True
        if self.state == SYN_SENT or self.state == TIME_WAIT:
            self._set_state(CLOSED, now)
        else:
            self._reset(now)

    def set_option(self, name: str, value: Any) -> None:
        """Set a socket option: nodelay, keepalive, keepidle, keepintvl, keepcnt, user_timeout, rcvbuf, sndbuf."""
        if name == "nodelay":
            self.nodelay = bool(value)
        elif name == "keepalive":
            self.keepalive = bool(value)
        elif name in ("keepidle", "keepintvl", "user_timeout"):
            if value < 0:
                raise ValueError(f"{name} is a duration in seconds and cannot be negative")
            setattr(self, name, float(value))
        elif name == "keepcnt":
            if value < 1:
                raise ValueError("keepcnt must be at least 1")
            self.keepcnt = int(value)
        elif name in ("rcvbuf", "sndbuf"):
            if value < 1:
                raise ValueError(f"{name} must be at least 1 byte")
            if name == "rcvbuf":
                self._recv.limit = int(value)
                self._ooo.limit = int(value)
            else:
                self._send.limit = int(value)
        else:
            raise ValueError(f"unknown TCP option {name!r}: use one of {', '.join(_OPTION_NAMES)}")
        if name.startswith("keep"):
            on = self.keepalive and self.state in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT_2)
            self._keepalive_at = self._last_rx + self.keepidle if on else None
        self._layer.touch(self)

    @property
    def options(self) -> dict[str, Any]:
        return {
            "nodelay": self.nodelay, "keepalive": self.keepalive, "keepidle": self.keepidle,
            "keepintvl": self.keepintvl, "keepcnt": self.keepcnt, "user_timeout": self.user_timeout,
            "rcvbuf": self._recv.limit, "sndbuf": self._send.limit,
        }  # fmt: skip

    def info(self) -> dict[str, Any]:
        """Statistics in the spirit of TCP_INFO, for `usernet up` and debugging."""
        rtt = self.rtt
        return {
            "state": self.state.name, "rtt": rtt.srtt, "rttvar": rtt.rttvar, "rto": rtt.rto,
            "cwnd": self._cc.cwnd, "ssthresh": self._cc.ssthresh, "mss": self._mss,
            "snd_wnd": self.snd_wnd, "rcv_wnd": (self._rcv_adv - self.rcv_nxt) & 0xFFFFFFFF,
            "retransmits": self.retransmits, "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received, "segs_in": self.segs_in, "segs_out": self.segs_out,
            "sack": self._sack_ok, "timestamps": self._ts_ok, "wscale": (self._snd_wscale, self._rcv_wscale),
            "unacked": (self.snd_max - self.snd_una) & 0xFFFFFFFF, "unread": len(self._recv),
        }  # fmt: skip

    # -- opening ---------------------------------------------------------------------------

    def active_open(self, now: float) -> None:
        self._set_state(SYN_SENT, now)
        self._stats.tcp_active_opens += 1

    def passive_open(self, p: tuple[Any, ...], now: float) -> None:
        """Take a listener's SYN: options, the peer's ISN; the SYN-ACK goes at the next flush."""
        self.irs = p[3]
        self.rcv_nxt = (p[3] + 1) & 0xFFFFFFFF
        self._take_syn_options(p, now)
        self.snd_wnd = p[7]
        self.snd_wl1 = p[3]
        self._set_state(SYN_RECEIVED, now)
        self._stats.tcp_passive_opens += 1

    def cookie_open(self, p: tuple[Any, ...], mss: int, now: float) -> None:
        """Finish a handshake answered with a SYN cookie: the final ACK is all that is known."""
        ack = p[4]
        self.iss = (ack - 1) & 0xFFFFFFFF
        self.snd_una = self.snd_nxt = self.snd_max = self._recover = self._snd_sml = ack
        self.irs = (p[3] - 1) & 0xFFFFFFFF
        self.rcv_nxt = self._last_ack_sent = p[3]
        self._rcv_adv = (p[3] + self._syn_window) & 0xFFFFFFFF
        self._snd_mss = min(mss, self._mss_limit)
        self._mss = self._snd_mss
        self.snd_wnd = self.max_sndwnd = p[7]
        self.snd_wl1 = p[3]
        self.snd_wl2 = ack
        self._stats.tcp_passive_opens += 1
        self._establish(now)

    def _take_syn_options(self, p: tuple[Any, ...], now: float) -> None:
        cfg = self._cfg
        mss = p[10] if p[10] > 0 else _DEFAULT_MSS
        self._snd_mss = mss if mss < self._mss_limit else self._mss_limit
        if p[11] >= 0:  # window scaling only when both sides send the option (RFC 7323 §2.2)
            self._snd_wscale = p[11] if p[11] <= 14 else 14
            self._rcv_wscale = cfg.window_scale
        self._sack_ok = bool(p[12]) and cfg.sack
        self._ts_ok = p[13] >= 0 and cfg.timestamps
        if self._ts_ok:
            self._ts_recent = p[13]
            self._ts_recent_at = now
        self._mss = self._snd_mss - 12 if self._ts_ok else self._snd_mss
        self._rcv_mss = self._mss

    def _establish(self, now: float) -> None:
        cfg = self._cfg
        mss = self._mss
        cc: CongestionControl = (
            Cubic(mss, cfg.initial_window) if cfg.congestion == "cubic" else NewReno(mss, cfg.initial_window)
        )
        if self._syn_retransmitted:
            cc.cwnd = mss  # RFC 6298 (5.7): the SYN or SYN-ACK was lost
        self._cc = cc
        if self._sack_ok:
            self._sb = Scoreboard(mss, self.snd_una)
        self._recover = self.snd_una
        self._retries = 0
        self._rtx_start = None
        self._rto_at = None
        self.rtt.reset_backoff()
        self._set_state(ESTABLISHED, now)
        if self.keepalive:
            self._keepalive_at = now + self.keepidle
        listener = self.listener
        if listener is not None:
            listener.established(self)
        else:
            self._wake()
        if self._fin_seq is not None:
            self._set_state(FIN_WAIT_1, now)

    # -- receiving -------------------------------------------------------------------------

    def input(self, p: tuple[Any, ...], payload: memoryview, now: float) -> None:
        """SEGMENT ARRIVES (RFC 9293 §3.10.7); `p` is `native.tcp_parse`'s tuple."""
        self.segs_in += 1
        self._last_rx = now
        flags = p[6]
        state = self.state
        if state in _FAST and (flags & 0x37) == ACK and p[3] == self.rcv_nxt and self._fast_path(p, payload, now):
            return
        if state == SYN_SENT:
            self._input_syn_sent(p, payload, now)
            return
        if state == CLOSED or state == LISTEN:
            return
        seq = p[3]
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
            and p[13] >= 0
            and ((p[13] - self._ts_recent) & 0xFFFFFFFF) >= 0x80000000
            and now - self._ts_recent_at <= _PAWS_IDLE
        ):
            stats.tcp_paws_rejected += 1
            self._oow_ack(len(payload) == 0, now)
            return
        if flags & SYN:
            if state == SYN_RECEIVED and seq == self.irs:
                if flags & ACK and p[4] == (self.iss + 1) & 0xFFFFFFFF:  # simultaneous open: their SYN-ACK
                    self._ack_syn(p, now)
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
        wnd = (self._rcv_adv - rcv_nxt) & 0xFFFFFFFF
        if wnd >= 0x80000000:
            wnd = 0
        off = (seq - rcv_nxt) & 0xFFFFFFFF
        if seglen == 0:
            # Linux's test (tcp_sequence): an empty segment AT the right edge is acceptable. A peer
            # that filled our window sends its pure ACKs from there; RFC 9293's strict "< edge"
            # would drop every one of them while our window is full, and the ACKs they carry.
            ok = off <= wnd
        else:
            ok = wnd > 0 and (off < wnd or ((seq + seglen - 1 - rcv_nxt) & 0xFFFFFFFF) < wnd)
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
                self._oow_ack(seglen == 0, now)
                return
        if off >= 0x80000000:  # starts before RCV.NXT: cut what we already have
            cut = (rcv_nxt - seq) & 0xFFFFFFFF
            payload = payload[cut:]
            n -= cut
            seq = rcv_nxt
        if n > wnd - ((seq - rcv_nxt) & 0xFFFFFFFF):
            keep = wnd - ((seq - rcv_nxt) & 0xFFFFFFFF)
            payload = payload[:keep]
            n = keep
            fin = 0
            stats.tcp_rcv_overflow += 1
        if self._ts_ok and p[13] >= 0 and ((self._last_ack_sent - seq) & 0xFFFFFFFF) < 0x80000000:
            self._ts_recent = p[13]
            self._ts_recent_at = now
        if not flags & ACK:
            return
        if state == SYN_RECEIVED:
            ack = p[4]
            if ((ack - self.snd_una - 1) & 0xFFFFFFFF) < ((self.snd_max - self.snd_una) & 0xFFFFFFFF):
                self._ack_syn(p, now)
            else:
                self._send_reset(ack, 0, RST, now)
                return
        elif not self._on_ack(p, n, now):
            return
        state = self.state
        if state == CLOSED:
            return
        if self._fin_seq is not None and ((self.snd_una - self._fin_seq - 1) & 0xFFFFFFFF) < 0x80000000:
            if state == FIN_WAIT_1:
                self._set_state(FIN_WAIT_2, now)
                if self._user_closed:
                    self._close_at = now + self._cfg.fin_timeout
            elif state == CLOSING:
                self._enter_time_wait(now)
                return
            elif state == LAST_ACK:
                self._set_state(CLOSED, now)
                return
        state = self.state
        if n:
            if state not in _TAKES_DATA:
                return
            if self._user_closed:  # data for a closed socket: nobody will read it (Linux resets)
                self._reset(now)
                return
            self._take_data(seq, payload, now)
        if fin:
            if (seq + n) & 0xFFFFFFFF == self.rcv_nxt:
                self._on_fin(now)
            else:
                self._peer_fin_at = (seq + n) & 0xFFFFFFFF
                self._ack_now = True

    def _fast_path(self, p: tuple[Any, ...], payload: memoryview, now: float) -> bool:
        """Header prediction: the next in-order segment, a pure ACK of new data, or both at once.

        What it skips is what cannot apply to such a segment: RST/SYN/FIN handling,
        PAWS beyond one comparison, window trimming, duplicate-ACK counting, and state
        changes (in these states only a FIN or an ACK of our FIN changes state).
        """
        if self._ts_ok:
            tsval = p[13]
            if tsval < 0 or ((tsval - self._ts_recent) & 0xFFFFFFFF) >= 0x80000000:
                return False
        if (p[7] << self._snd_wscale) != self.snd_wnd or self._dupacks or self._nr_recovery:
            return False
        ack = p[4]
        una = self.snd_una
        n = len(payload)
        new_ack = ack != una
        if new_ack:
            # A pure ACK, or data that also acknowledges ours (request/response): new
            # data acknowledged, no SACK news, and no FIN of ours whose ACK changes state.
            if not 0 < ((ack - una) & 0xFFFFFFFF) <= ((self.snd_max - una) & 0xFFFFFFFF):
                return False
            if self._sb is not None and (p[15] or self._sb.in_recovery):
                return False
            if n and self._fin_seq is not None:
                return False
        elif not n:
            return False
        if n and (
            self._ooo.held
            or self._user_closed
            or self.state == CLOSE_WAIT
            or n > ((self._rcv_adv - self.rcv_nxt) & 0xFFFFFFFF)
        ):
            return False
        self._stats.tcp_fast_path += 1
        if self._ts_ok and self.rcv_nxt == self._last_ack_sent:
            self._ts_recent = p[13]
            self._ts_recent_at = now
        if new_ack:
            self._on_ack(p, n, now)
        if n:
            self._take_data(p[3], payload, now)
        return True

    def _input_syn_sent(self, p: tuple[Any, ...], payload: memoryview, now: float) -> None:
        flags = p[6]
        ack = p[4]
        if flags & ACK and ((ack - self.iss - 1) & 0xFFFFFFFF) >= ((self.snd_max - self.iss) & 0xFFFFFFFF):
            if not flags & RST:
                self._stats.tcp_bad_syn_ack += 1
                self._send_reset(ack, 0, RST, now)
            return
        if flags & RST:
            self._stats.tcp_rst_received += 1
            if flags & ACK:
                self._fail(errno.ECONNREFUSED, now, send_rst=False)
            return
        if not flags & SYN:
            return
        self.irs = p[3]
        self.rcv_nxt = self._last_ack_sent = (p[3] + 1) & 0xFFFFFFFF
        self._rcv_adv = (self.rcv_nxt + self._syn_window) & 0xFFFFFFFF
        self._take_syn_options(p, now)
        self.snd_wl1 = p[3]
        if flags & ACK:
            self._ack_syn(p, now)
            self.snd_wnd = self.max_sndwnd = p[7]  # a SYN's window is never scaled
            self._ack_now = True
        else:
            self.snd_wnd = self.max_sndwnd = p[7]
            self.snd_nxt = self.iss  # simultaneous open: our SYN again, now with an ACK
            self._set_state(SYN_RECEIVED, now)

    def _ack_syn(self, p: tuple[Any, ...], now: float) -> None:
        """The peer acknowledged our SYN: take the RTT sample and become ESTABLISHED."""
        ack = p[4]
        if self._ts_ok and p[14] > 0:
            rtt = self._tsclock.rtt(now, p[14])
            if rtt is not None:
                self.rtt.sample(rtt)
        elif not self._syn_retransmitted and self._rtt_seq is not None:
            self.rtt.sample(now - self._rtt_time)
        self._rtt_seq = None
        self.snd_una = ack
        if ((self.snd_nxt - ack) & 0xFFFFFFFF) >= 0x80000000:
            self.snd_nxt = ack
        if not p[6] & SYN:
            self.snd_wnd = self.max_sndwnd = p[7] << self._snd_wscale
        self.snd_wl1 = p[3]
        self.snd_wl2 = ack
        self._establish(now)

    def _on_ack(self, p: tuple[Any, ...], n: int, now: float) -> bool:
        """Process SEG.ACK in a synchronized state; False when the segment must be dropped."""
        ack = p[4]
        una = self.snd_una
        snd_max = self.snd_max
        acked = (ack - una) & 0xFFFFFFFF
        outstanding = (snd_max - una) & 0xFFFFFFFF
        seq = p[3]
        wnd = p[7] << self._snd_wscale
        sb = self._sb
        if 0 < acked <= outstanding:
            cc = self._cc
            if self._ts_ok and p[14] > 0:
                rtt = None
                if self._rto_tsval is None or ((p[14] - self._rto_tsval) & 0xFFFFFFFF) < 0x80000000:
                    rtt = self._tsclock.rtt(now, p[14])
                if rtt is not None:
                    expected = -(-outstanding // (2 * self._mss))
                    self.rtt.sample(rtt, expected)
            elif self._rtt_seq is not None and ((ack - self._rtt_seq) & 0xFFFFFFFF) < 0x80000000:
                self.rtt.sample(now - self._rtt_time)
                self._rtt_seq = None
            send = self._send
            data = acked if acked <= len(send) else len(send)
            send.ack(data)
            self.bytes_sent += data
            self.snd_una = ack
            if ((self.snd_nxt - ack) & 0xFFFFFFFF) >= 0x80000000:
                self.snd_nxt = ack
            self._retries = 0
            self._rtx_start = None
            self._probes = 0
            if sb is not None:
                sb.update(ack, snd_max, p[15])
                if sb.in_recovery:
                    if ((ack - sb.recovery_point) & 0xFFFFFFFF) < 0x80000000:  # type: ignore[operator]
                        sb.exit_recovery()
                        cc.on_recovery_exit(now, (snd_max - ack) & 0xFFFFFFFF)
                    else:
                        cc.on_ack(acked, now, self.rtt.srtt)
                else:
                    cc.on_ack(acked, now, self.rtt.srtt)
            elif self._nr_recovery:
                if ((ack - self._recover) & 0xFFFFFFFF) < 0x80000000:
                    self._nr_recovery = False
                    cc.on_recovery_exit(now, (snd_max - ack) & 0xFFFFFFFF)
                else:  # partial ACK (RFC 6582 §3.2 step 5): the next hole goes out at once
                    cc.on_ack(acked, now, self.rtt.srtt)
                    self._retransmit(ack, self._mss, now)
            else:
                cc.on_ack(acked, now, self.rtt.srtt)
            self._dupacks = 0
            self._rto_at = now + self.rtt.rto if ack != snd_max else None
            if self._send_blocked and send.free:
                self._send_blocked = False
                self._wake()
        elif acked == 0:
            if n == 0 and outstanding and wnd == self.snd_wnd and not p[6] & FIN:
                self._on_dupack(p, now)
            elif sb is not None and p[15]:
                sb.update(una, snd_max, p[15])
        elif acked < 0x80000000:  # beyond SND.MAX: acknowledges what was never sent
            self._stats.tcp_ack_unsent += 1
            self._oow_ack(n == 0, now)
            return False
        elif ((una - ack) & 0xFFFFFFFF) > self.max_sndwnd:  # RFC 5961 §5: too old to be real
            self._stats.tcp_ack_too_old += 1
            self._challenge_ack(now)
            return False
        wl1 = self.snd_wl1
        # RFC 9293's SND.WL1/WL2 test, plus Linux's "the ACK advanced" (tcp_may_update_window):
        # a window update riding on new data acknowledged is never stale, even if its
        # sequence number is behind SND.WL1 (a peer's pure ACKs sent from its right edge).
        if (
            0 < acked <= outstanding
            or ((wl1 - seq) & 0xFFFFFFFF) >= 0x80000000
            or (wl1 == seq and ((ack - self.snd_wl2) & 0xFFFFFFFF) < 0x80000000)
        ):
            if wnd != self.snd_wnd:
                self.snd_wnd = wnd
                if wnd > self.max_sndwnd:
                    self.max_sndwnd = wnd
            self.snd_wl1 = seq
            self.snd_wl2 = ack
        return True

    def _on_dupack(self, p: tuple[Any, ...], now: float) -> None:
        """A duplicate ACK (RFC 5681 §2): count it and maybe start loss recovery."""
        self._dupacks += 1
        una = self.snd_una
        sb = self._sb
        cc = self._cc
        if sb is not None:
            sb.update(una, self.snd_max, p[15])
            if sb.in_recovery:
                return
            rp = sb.recovery_point
            if (self._dupacks >= 3 or sb.is_lost(una)) and (rp is None or ((una - rp) & 0xFFFFFFFF) < 0x80000000):
                seq, n = sb.enter_recovery()
                cc.enter_recovery(now, (self.snd_max - una) & 0xFFFFFFFF, True)
                self._stats.tcp_fast_retransmits += 1
                if n:
                    self._retransmit(seq, n, now)
            return
        if self._nr_recovery:
            cc.on_dupack()
        elif self._dupacks == 3 and ((una - self._recover) & 0xFFFFFFFF) < 0x80000000:
            self._recover = self.snd_max
            self._nr_recovery = True
            cc.enter_recovery(now, (self.snd_max - una) & 0xFFFFFFFF, False)
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
            rcv_nxt = (seq + got) & 0xFFFFFFFF
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
            unacked = self._unacked + got
            self._unacked = unacked
            if unacked >= 2 * self._rcv_mss:
                self._ack_now = True
            else:
                self._ack_pending = True
                if self._delack_at is None:
                    self._delack_at = now + self._cfg.delayed_ack
            self._wake()
        else:
            self._stats.tcp_ofo_segments += 1
            self._ooo.insert(seq, payload)
            self._ack_now = True

    def _on_fin(self, now: float) -> None:
        self.rcv_nxt = (self.rcv_nxt + 1) & 0xFFFFFFFF
        self._peer_fin_at = None
        self._peer_fin = True
        self._ack_now = True
        self._wake()
        state = self.state
        if state == ESTABLISHED:
            self._set_state(CLOSE_WAIT, now)
        elif state == FIN_WAIT_1:
            if self._fin_seq is not None and ((self.snd_una - self._fin_seq - 1) & 0xFFFFFFFF) < 0x80000000:
                self._enter_time_wait(now)
            else:
                self._set_state(CLOSING, now)
        elif state == FIN_WAIT_2:
            self._enter_time_wait(now)

    def _on_reset(self, now: float) -> None:
        state = self.state
        if state == SYN_RECEIVED:
            self._fail(errno.ECONNREFUSED, now, send_rst=False)
        elif state in (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
            self._fail(errno.ECONNRESET, now, send_rst=False)
        else:
            self._set_state(CLOSED, now)

    def _seq_in_window(self, seq: int) -> bool:
        wnd = (self._rcv_adv - self.rcv_nxt) & 0xFFFFFFFF
        return ((seq - self.rcv_nxt) & 0xFFFFFFFF) < (wnd if 0 < wnd < 0x80000000 else 1)

    def _enter_time_wait(self, now: float) -> None:
        self._set_state(TIME_WAIT, now)
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
        if self._layer.challenge_allowed(now):
            self._stats.tcp_challenge_acks += 1
            self._emit(self.snd_max, ACK, b"", now)

    def icmp_error(self, code_errno: int, seq: int, mtu: int, now: float) -> None:
        """An ICMP error quoting one of our segments (RFC 5927 checks the quoted sequence)."""
        if ((seq - self.snd_una) & 0xFFFFFFFF) > ((self.snd_max - self.snd_una) & 0xFFFFFFFF):
            return
        if mtu:
            mss = mtu - 40
            if 88 <= mss < self._snd_mss:
                self._snd_mss = mss
                self._mss = mss - 12 if self._ts_ok else mss
                self._cc.smss = self._mss
                self.snd_nxt = self.snd_una  # what was sent was too big: send it again smaller
                self._layer.touch(self)
            return
        if self.state == SYN_SENT:
            self._fail(code_errno, now, send_rst=False)
        else:
            self._soft_error = code_errno

    # -- timers ------------------------------------------------------------------------------

    def deadline(self) -> float | None:
        """The earliest armed timer."""
        d = self._rto_at
        for t in (self._persist_at, self._delack_at, self._keepalive_at, self._close_at):
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
            self._on_rto(now)
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
        t = self._keepalive_at
        if t is not None and t <= now and self.state != CLOSED:
            late = max(late, now - t)
            self._keepalive_at = None
            self._on_keepalive(now)
        t = self._close_at
        if t is not None and t <= now and self.state != CLOSED:
            late = max(late, now - t)
            self._close_at = None
            self._set_state(CLOSED, now)
        return late

    def _on_rto(self, now: float) -> None:
        state = self.state
        if self.snd_una == self.snd_max:
            return
        self._stats.tcp_timeouts += 1
        limit = (
            self._cfg.syn_retries
            if state == SYN_SENT
            else self._cfg.synack_retries
            if state == SYN_RECEIVED
            else self._cfg.retries
        )
        if self._rtx_start is None:
            self._rtx_start = now
        self._retries += 1
        if self._retries > limit or (self.user_timeout and now - self._rtx_start >= self.user_timeout):
            self._stats.tcp_conn_timeouts += 1
            self._fail(self._soft_error or errno.ETIMEDOUT, now, send_rst=state in SYNCHRONIZED)
            return
        self.rtt.backoff()
        if state == SYN_SENT or state == SYN_RECEIVED:
            self._syn_retransmitted = True
        else:
            snd_max = self.snd_max
            self._cc.on_rto(now, (snd_max - self.snd_una) & 0xFFFFFFFF)
            if self._sb is not None:
                self._sb.update(self.snd_una, snd_max, ())
                self._sb.reset()
            self._recover = snd_max
            self._nr_recovery = False
            self._dupacks = 0
        self.snd_nxt = self.snd_una
        self._rtt_seq = None
        self._rto_tsval = self._tsclock.tsval(now)
        self._rto_at = now + self.rtt.rto

    def _on_persist(self, now: float) -> None:
        """The peer's window stayed closed: probe it (RFC 9293 §3.8.6.1)."""
        off = (self.snd_nxt - self.snd_una) & 0xFFFFFFFF
        if len(self._send) <= off or self.snd_una != self.snd_max:
            self._probes = 0
            return
        room = (self.snd_una + self.snd_wnd - self.snd_nxt) & 0xFFFFFFFF
        if 0 < room < 0x80000000:  # a window too small for the SWS rules: send what fits
            self._send_new(min(room, self._mss, len(self._send) - off), now)
            return
        self._stats.tcp_window_probes += 1
        self._emit((self.snd_una - 1) & 0xFFFFFFFF, ACK, b"", now)
        self._probes += 1
        self._persist_at = now + min(self.rtt.rto * (1 << min(self._probes, 16)), self._cfg.persist_max)

    def _on_keepalive(self, now: float) -> None:
        if not self.keepalive or self.state not in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT_2):
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
            self._fail(self._soft_error or errno.ETIMEDOUT, now, send_rst=True)
            return
        if self.snd_una == self.snd_max:  # with data in flight, retransmissions do the probing
            self._stats.tcp_keepalive_probes += 1
            self._emit((self.snd_una - 1) & 0xFFFFFFFF, ACK, b"", now)
        self._ka_probes += 1
        self._keepalive_at = now + self.keepintvl

    # -- sending -----------------------------------------------------------------------------

    def output(self, now: float) -> None:
        """Turn queued data, FINs and pending ACKs into segments; called at each flush."""
        state = self.state
        sent = False
        if state == SYN_SENT or state == SYN_RECEIVED:
            if self.snd_nxt == self.iss:
                self._emit(self.iss, SYN if state == SYN_SENT else SYN | ACK, b"", now)
                self.snd_nxt = self.snd_max = (self.iss + 1) & 0xFFFFFFFF
                if not self._syn_retransmitted and self._retries == 0:
                    self._rtt_seq = self.snd_nxt
                    self._rtt_time = now
                if self._rto_at is None:
                    self._rto_at = now + self.rtt.rto
                sent = True
        elif state in _SENDS_DATA:
            if self._ack_now and self._ooo.held and self._sack_ok:
                self._emit(self.snd_max, ACK, b"", now)  # SACK blocks do not fit beside full data
            sent = self._output_data(now)
        if state == TIME_WAIT or state == CLOSED:
            if self._ack_now:
                self._emit(self.snd_max, ACK, b"", now)
            return
        read, self._read_since_output = self._read_since_output, False
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

    def _window_update_due(self) -> bool:
        """After reads: tell the peer when the window at least doubled from a small one (Linux)."""
        if self.state not in _TAKES_DATA:
            return False
        cur = (self._rcv_adv - self.rcv_nxt) & 0xFFFFFFFF
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
        total = len(send)
        una = self.snd_una
        if total == ((self.snd_nxt - una) & 0xFFFFFFFF) and (self._fin_seq is None or self._fin_seq != self.snd_nxt):
            return False  # everything queued is sent (the common case at a flush after receiving)
        mss = self._mss
        wnd_end = una + self.snd_wnd
        cc = self._cc
        sent = False
        seg_max = mss
        batch = -1  # computed when first needed: most flushes send one segment that fits
        tso_max = self._iface.config.tso_max
        if tso_max:
            # Whole MSS per segment, as many as one IPv4 packet holds beside the headers.
            cap = tso_max - 40 - (12 if self._ts_ok else 0)
            seg_max = cap - cap % mss
        while True:
            nxt = self.snd_nxt
            off = (nxt - una) & 0xFFFFFFFF
            remaining = total - off
            if remaining <= 0:
                if remaining == 0 and self._fin_seq is not None and nxt == self._fin_seq:
                    self._transmit(nxt, b"", FIN | ACK, now)
                    sent = True
                break
            room = (wnd_end - nxt) & 0xFFFFFFFF
            if room >= 0x80000000:
                room = 0
            n = remaining if remaining < seg_max else seg_max
            if room < n:
                n = room
            cw = cc.cwnd - off
            if cw < n:
                n = cw
            if n <= 0:
                break
            retransmit = ((nxt - self.snd_max) & 0xFFFFFFFF) >= 0x80000000
            if n < remaining and tso_max:
                if batch < 0:
                    # With TSO a segment costs the same whatever its size: while data is in
                    # flight, wait until a worthwhile share of the window is free rather than
                    # sending each MSS an ACK frees (like Linux's tcp_tso_should_defer).
                    batch = min(seg_max, 16 * mss, max(mss, min(cc.cwnd, self.snd_wnd) // 3))
                if off and n < batch and not retransmit:
                    break
                if n > mss:
                    n -= n % mss  # no runt in the middle of the stream
            if n < mss and not retransmit:
                if n < remaining:  # sender SWS avoidance (RFC 9293 §3.8.6.2.1)
                    if n < self.max_sndwnd // 2 or off:
                        break
                elif (
                    not self.nodelay
                    and off
                    and ((self._snd_sml - una) & 0xFFFFFFFF) - 1 < 0x7FFFFFFF
                    and self._fin_seq is None
                ):
                    break  # Nagle, Minshall's variant: one small segment unacknowledged at a time
            self._send_new(n, now)
            sent = True
        if self.snd_una == self.snd_max and len(send) > ((self.snd_nxt - una) & 0xFFFFFFFF):
            if self._persist_at is None:
                self._persist_at = now + self.rtt.rto
        return sent

    def _send_new(self, n: int, now: float) -> None:
        """Send `n` bytes at SND.NXT (new data, or data again after a timeout)."""
        nxt = self.snd_nxt
        off = (nxt - self.snd_una) & 0xFFFFFFFF
        send = self._send
        payload = send.peek(off, n)
        flags = ACK
        if off + n == len(send):
            flags = ACK | PSH
            if self._fin_seq is not None:
                flags = ACK | PSH | FIN
        self._transmit(nxt, payload, flags, now)
        if n % self._mss:  # the segment, or the last piece the device cuts from it, is small
            self._snd_sml = (nxt + n) & 0xFFFFFFFF

    def _transmit(self, seq: int, payload: bytes | memoryview, flags: int, now: float) -> None:
        """Emit a data/FIN segment at `seq` and do the sender's bookkeeping."""
        self._emit(seq, flags, payload, now)
        end = (seq + len(payload) + (1 if flags & FIN else 0)) & 0xFFFFFFFF
        if ((seq - self.snd_max) & 0xFFFFFFFF) >= 0x80000000:
            self.retransmits += 1
            self._stats.tcp_retransmits += 1
            self._rtt_seq = None  # Karn: no sample from what was sent twice
        elif self._rtt_seq is None and not self._ts_ok:
            self._rtt_seq = end
            self._rtt_time = now
        self.snd_nxt = end
        if ((end - self.snd_max) & 0xFFFFFFFF) - 1 < 0x7FFFFFFF:
            self.snd_max = end
        if self._rto_at is None:
            self._rto_at = now + self.rtt.rto
        self._persist_at = None

    def _retransmit(self, seq: int, n: int, now: float) -> None:
        """Send [seq, seq+n) again without moving SND.NXT (fast retransmit, recovery)."""
        off = (seq - self.snd_una) & 0xFFFFFFFF
        send = self._send
        payload = send.peek(off, n)
        flags = ACK
        if off + len(payload) == len(send):
            flags = ACK | PSH
            fin = self._fin_seq
            if fin is not None and len(payload) < n and ((self.snd_max - fin) & 0xFFFFFFFF) - 1 < 0x7FFFFFFF:
                flags = ACK | PSH | FIN
        if not payload and not flags & FIN:
            return
        self._emit(seq, flags, payload, now)
        self.retransmits += 1
        self._stats.tcp_retransmits += 1
        self._rtt_seq = None
        if self._rto_at is None:
            self._rto_at = now + self.rtt.rto

    def _output_sack_recovery(self, sb: Scoreboard, now: float) -> bool:
        """RFC 6675 §5 (C): send while the window has room for a segment beyond the pipe."""
        cc = self._cc
        mss = self._mss
        send = self._send
        sent = False
        while cc.cwnd - sb.pipe() >= mss:
            una = self.snd_una
            snd_max = self.snd_max
            unsent = len(send) - ((snd_max - una) & 0xFFFFFFFF)
            room = (una + self.snd_wnd - snd_max) & 0xFFFFFFFF
            if room >= 0x80000000:
                room = 0
            seg = sb.next_seg(unsent if unsent < room else room)
            if seg is None:
                break
            seq, n = seg
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
            and len(send) == ((self.snd_max - self.snd_una) & 0xFFFFFFFF)
        ):
            self.snd_nxt = self.snd_max
            self._transmit(self.snd_max, b"", FIN | ACK, now)
            sent = True
        return sent

    def _advertise(self) -> int:
        """The window field for an outgoing ACK; never moves the right edge left (RFC 9293 §3.8.6.2.2)."""
        free = self._recv.free - self._ooo.held
        rcv_nxt = self.rcv_nxt
        cur = (self._rcv_adv - rcv_nxt) & 0xFFFFFFFF
        if cur >= 0x80000000:
            cur = 0
        shift = self._rcv_wscale
        # Receiver SWS avoidance: open the window only by min(buffer/2, MSS) or more.
        if free - cur >= min(self._recv.limit >> 1, self._rcv_mss):
            field = free >> shift
        else:
            # Keep the edge where it is, the field rounded DOWN to the scale unit: rounding up
            # would advertise bytes the buffer cannot take.
            field = cur >> shift
        if field > 65535:
            field = 65535
        edge = (rcv_nxt + (field << shift)) & 0xFFFFFFFF
        # The field may fall short of the edge already promised; the edge itself never moves
        # left (as Linux's rcv_wup + rcv_wnd), so what the peer sent up to it stays acceptable.
        if ((edge - self._rcv_adv) & 0xFFFFFFFF) < 0x80000000:
            self._rcv_adv = edge
        return field

    def _emit(self, seq: int, flags: int, payload: bytes | memoryview, now: float) -> None:
        """Build one segment into a fresh frame and hand it to the interface."""
        if flags & SYN:
            options = self._syn_options(now)
            window = self._syn_window
            if flags & ACK:
                self._rcv_adv = (self.rcv_nxt + window) & 0xFFFFFFFF
        else:
            window = self._advertise() if flags & ACK else 0
            if self._ts_ok:
                options = _TS_OPTION.pack(1, 1, 8, 10, self._tsclock.tsval(now), self._ts_recent)
            else:
                options = b""
            if flags & ACK and self._sack_ok and self._ooo.held:
                options = self._with_sack(options, len(payload))
        if flags & ACK:
            self._last_ack_sent = self.rcv_nxt
            self._ack_now = False
            self._ack_pending = False
            self._unacked = 0
            self._delack_at = None
            ack = self.rcv_nxt
        else:
            ack = 0
        iface = self._iface
        local = self.local
        config = iface.config
        size = 54 + len(options) + len(payload)
        frame: bytearray
        if config.tx_checksum_partial and len(payload) > self._mss:
            # Only a frame the device must cut goes out with a partial checksum: for one
            # segment, summing ≤1 MSS in the build call is cheaper than the offload path.
            frame = offload = OffloadFrame(size)
            offload.gso_size = self._mss
            csum_mode = CSUM_PARTIAL
        else:
            frame = bytearray(size)
            csum_mode = CSUM_FULL
        build_ipv4_tcp(
            frame,
            0,
            _ZERO_MAC,
            iface.mac,
            local[0],
            self.remote[0],
            iface.next_ident(),
            config.ttl,
            local[1],
            self.remote[1],
            seq,
            ack,
            flags,
            window,
            0,
            options,
            payload,
            csum_mode,
        )
        iface.transmit(frame, self._next_hop, local[0], now)
        self.segs_out += 1
        self._stats.tcp_tx_segments += 1

    def _with_sack(self, options: bytes, payload_len: int) -> bytes:
        blocks = self._ooo.sack_blocks(3 if self._ts_ok else 4)
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
                mss=self._mss_limit, sack_permitted=cfg.sack,
                timestamp=(self._tsclock.tsval(now), 0) if cfg.timestamps else None, wscale=cfg.window_scale,
            )  # fmt: skip
        return encode_tcp_options(
            mss=self._mss_limit, sack_permitted=self._sack_ok,
            timestamp=(self._tsclock.tsval(now), self._ts_recent) if self._ts_ok else None,
            wscale=self._rcv_wscale if self._snd_wscale or self._rcv_wscale else None,
        )  # fmt: skip

    def _send_reset(self, seq: int, ack: int, flags: int, now: float) -> None:
        self._layer.send_reset(self.local, self.remote, seq, ack, flags, now)

    # -- ending --------------------------------------------------------------------------------

    def _reset(self, now: float) -> None:
        """Abort with a RST to the peer (close with unread data, abort, data after close)."""
        self._layer.send_reset(self.local, self.remote, self.snd_nxt, self.rcv_nxt, RST | ACK, now)
        self._set_state(CLOSED, now)

    def _fail(self, code: int, now: float, send_rst: bool) -> None:
        if send_rst:
            self._layer.send_reset(self.local, self.remote, self.snd_nxt, self.rcv_nxt, RST | ACK, now)
        self.error = _os_error(code)
        self._set_state(CLOSED, now)

    def _set_state(self, new: State, now: float) -> None:
        old = self.state
        assert (old, new) in ALLOWED, f"TCP transition {old.name} -> {new.name} is not in the state table"
        self.state = new
        if new == CLOSED:
            self._rto_at = self._persist_at = self._delack_at = self._keepalive_at = self._close_at = None
            self._ack_now = self._ack_pending = False
            self._layer.forget(self)
        self._wake()

    def _wake(self) -> None:
        """Tell the user side; connections not yet accepted are the listener's business."""
        if self.listener is None:
            self._iface.mark_ready(self)


def _fmt(addr: Address) -> str:
    return ".".join(str(b) for b in addr[0]) + f":{addr[1]}"
