"""A TCP connection's state, and the few moves every other part of it makes: changing state,
telling the user, aborting.

`TcpConnection` is built in layers, one module per concern, each a class deriving from the
one below: this core (state, transitions), `output` (segments, retransmission),
`recovery` (RACK-TLP, PRR, D-SACK, undo), `timers`, `input` (segment arrival, RFC 9293
§3.10.7) and `connection` (the user's calls, options, statistics). They share one object
and one set of slots, so the hot path reads plain attributes as before the split;
docs/architecture.md says why mixins and not helper objects.
"""

from __future__ import annotations

import os
from typing import Any

from usernet.stack.route import Route
from usernet.stack.tcp.buffers import NEVER, UNUSED, ReceiveBuffer, SendBuffer
from usernet.stack.tcp.congestion import CongestionControl, NewReno
from usernet.stack.tcp.owner import AcceptQueue, Address, ConnectionOwner
from usernet.stack.tcp.prr import Prr
from usernet.stack.tcp.rack import Rack
from usernet.stack.tcp.rcvspace import ReceiveSpace
from usernet.stack.tcp.reassembly import Reassembly
from usernet.stack.tcp.rtt import TS_HZ, TimestampClock
from usernet.stack.tcp.scoreboard import Scoreboard
from usernet.stack.tcp.states import TRANSITIONS, Event, State, transition
from usernet.wire.tcp import ACK, RST

DEFAULT_MSS = 536  # RFC 9293 §3.7.1, when the peer sends no MSS option
# Not a TCP header bit: the layer folds a CE mark of the IP header (RFC 3168) into the
# segment's flags, above the NS bit, so that the connection sees it where it sees ECE and CWR.
CE = 0x200

# Every (state, event, target) the table allows, for `_set_state`'s check in one set lookup
# (hashing State and Event is C); `transition` is called only to raise on one not in it.
_ALLOWED = frozenset((row.source, event, row.target) for row in TRANSITIONS for event in row.events)
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

# Where the user may still queue data, where data goes out, where data is taken in.
CAN_SEND = frozenset((SYN_SENT, SYN_RECEIVED, ESTABLISHED, CLOSE_WAIT))
SENDS_DATA = frozenset((ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK))
TAKES_DATA = frozenset((ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2))
KEEPS_ALIVE = frozenset((ESTABLISHED, CLOSE_WAIT, FIN_WAIT_2))


# `_timer_kind`: which timer `_rto_at` is (one slot, as Linux's icsk_pending).
RTO_TIMER = 0
PROBE_TIMER = 1
REORDER_TIMER = 2

# `_frto`: where F-RTO (RFC 5682) stands after a retransmission timeout.
FRTO_OFF = 0
FRTO_FIRST_ACK = 1  # step 2: the RTO resent the first segment; waiting for the first new ACK
FRTO_SECOND_ACK = 2  # step 3: new data went out after the first ACK; waiting for the second


#: The out-of-order queue of every connection that has had no segment out of order, as most
#: never do: one shared and empty, never written to. The first such segment gives the
#: connection its own (`input._take_data`), with the receive buffer's limit, as both
#: limits are always set together.
NO_OOO = Reassembly(0)


def os_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class ConnectionCore:
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
        "_cork_pushed",
        "_delack_at",
        "_dsack",
        "_dupacks",
        "_ecn_cwr",
        "_ecn_echo",
        "_ecn_ok",
        "_ecn_recover",
        "_fastopen",
        "_fin_seq",
        "_frto",
        "_frto_resent",
        "_ka_probes",
        "_keepalive_at",
        "_last_ack_sent",
        "_last_data_rx",
        "_last_oow",
        "_last_rx",
        "_last_tx",
        "_mss",
        "_mss_limit",
        "_nr_recovery",
        "_ooo",
        "_owner",
        "_peer_fin",
        "_peer_fin_at",
        "_persist_at",
        "_pingpong",
        "_probes",
        "_prr",
        "_prr_ok",
        "_push_marks",
        "_pushed",
        "_quick",
        "_rack",
        "_rack_ok",
        "_rcv_adv",
        "_rcv_mss",
        "_rcv_space",
        "_rcv_wscale",
        "_rcvbuf_max",
        "_read_since_output",
        "_recover",
        "_recv",
        "_reo_at",
        "_retries",
        "_route",
        "_rto_at",
        "_rto_tsval",
        "_rtt_seq",
        "_rtt_time",
        "_rtx_start",
        "_sack_ok",
        "_sb",
        "_send",
        "_send_blocked",
        "_skb_start",
        "_snd_mss",
        "_snd_sml",
        "_snd_wscale",
        "_sndbuf_max",
        "_soft_error",
        "_stats",
        "_syn_data",
        "_syn_retransmitted",
        "_syn_window",
        "_timer_kind",
        "_tlp_high",
        "_tlp_ok",
        "_tlp_retrans",
        "_ts_ok",
        "_ts_recent",
        "_ts_recent_at",
        "_tsclock",
        "_ttl",
        "_unacked",
        "_undo_marker",
        "_undo_retrans",
        "_undo_rto",
        "_undo_tsval",
        "_undo_until",
        "_user_closed",
        "bytes_received",
        "bytes_sent",
        "cork",
        "error",
        "fastopen_deferred",
        "flow_local",
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
    )

    def __init__(
        self,
        owner: ConnectionOwner[Any],
        route: Route,
        local: Address,
        remote: Address,
        now: float,
        listener: AcceptQueue[Any] | None = None,
    ) -> None:
        # The owner and the listener are typed for any connection class: their methods take
        # the full TcpConnection, which derives from this core (see owner.py).
        cfg = owner.config
        self._owner = owner
        self._route = route
        self._stats = owner.counters
        self._cfg = cfg
        self.local = local
        self.remote = remote
        self.key = key = (local[0], local[1], remote[0], remote[1])
        self.flow_local = 0  # the local address as an int, shared: the layer sets it when it files us
        self.listener = listener
        self.state = LISTEN if listener is not None else CLOSED
        self.error: OSError | None = None
        self._soft_error = 0
        self.nodelay = cfg.nodelay
        self.cork = False  # TCP_CORK: hold a partial segment until a full one, the FIN or uncorking
        # TCP_NODELAY set while corked: the cork is lifted for what was queued then and comes back
        # at the next write (Linux's TCP_NAGLE_PUSH, see set_option)
        self._cork_pushed = False
        self.keepalive = cfg.keepalive
        self.keepidle = cfg.keepalive_idle
        self.keepintvl = cfg.keepalive_interval
        self.keepcnt = cfg.keepalive_count
        self.user_timeout = cfg.user_timeout
        self._send = SendBuffer(cfg.sndbuf)
        self._recv = ReceiveBuffer(cfg.rcvbuf)
        self._ooo = NO_OOO
        # Receive autotuning (rcvspace.py): its ceiling, 0 when off or when the user set rcvbuf
        # (SO_RCVBUF locks the size, as on Linux); its measurements, made at the first read.
        self._rcvbuf_max = cfg.rcvbuf_max if cfg.rcvbuf_max > cfg.rcvbuf else 0
        self._rcv_space: ReceiveSpace | None = None
        self._sndbuf_max = cfg.sndbuf_max if cfg.sndbuf_max > cfg.sndbuf else 0  # the same for sending
        self._ttl = 0  # the user's IP_TTL (0: the route's own, the interface's)
        isn = owner.isn_source
        self.iss = iss = isn.isn(now, *key)
        self.snd_una = self.snd_nxt = self.snd_max = iss
        self.snd_wnd = 0
        self.snd_wl1 = self.snd_wl2 = 0
        self.max_sndwnd = 0
        self.irs = 0
        self.rcv_nxt = 0
        self._rcv_adv = 0
        self._last_ack_sent = 0
        # min() spelled out here and below (twice a connection): a builtin call with its
        # argument parsing costs ~750 instructions, a conditional expression ~50.
        rcvbuf = cfg.rcvbuf
        self._syn_window = rcvbuf if rcvbuf < 65535 else 65535
        mss_limit = cfg.mss or 65495
        route_mss = route.mss
        self._mss_limit = mss_limit if mss_limit < route_mss else route_mss
        self._snd_mss = DEFAULT_MSS
        self._mss = DEFAULT_MSS
        self._rcv_mss = DEFAULT_MSS
        self._snd_wscale = 0
        self._rcv_wscale = 0
        self._sack_ok = False
        self._ts_ok = False
        self._ts_recent = 0
        self._ts_recent_at = 0.0
        self._tsclock = TimestampClock(TS_HZ, isn.ts_offset(*key))  # positional: cheaper than a keyword
        self.rtt = cfg.rtt_prototype.fresh()
        self._cc: CongestionControl = NewReno(DEFAULT_MSS, cfg.initial_window)
        # Loss recovery beyond duplicate ACKs (recovery.py); RACK and PRR only with SACK. Whether
        # they are on is decided at the handshake (`_sack_ok`, `_rack_ok`, `_prr_ok`); their
        # objects are made at first use (`_scoreboard`, `_rack_sent`, the first recovery), as an
        # idle connection never needs them, and migrate as absent until then.
        self._sb: Scoreboard | None = None
        self._rack: Rack | None = None
        self._rack_ok = False
        self._prr: Prr | None = None
        self._prr_ok = False
        self._timer_kind = RTO_TIMER  # what `_rto_at` is: the RTO, a tail loss probe, or RACK's reordering timer
        self._reo_at: float | None = None  # when RACK looks again for losses (RFC 8985 §6.2 step 5)
        self._tlp_ok = False  # probes may be sent on this connection (SACK, rack and tlp on)
        self._tlp_high: int | None = None  # TLP.end_seq: SND.NXT when the outstanding probe went
        self._tlp_retrans = False  # that probe was a retransmission
        self._dsack: tuple[int, int] | None = None  # a duplicate segment's range, for the next ACK (RFC 2883)
        self._undo_marker: int | None = None  # SND.UNA when the last cwnd cut began, while it may be undone
        self._undo_retrans = 0  # segments retransmitted since, less those D-SACKs showed needless
        self._undo_tsval: int | None = None  # TSval of the first retransmission: older echoes prove it needless
        self._undo_rto = False  # the cut was a retransmission timeout's
        self._undo_until: int | None = None  # after recovery: wait for late D-SACKs until SND.UNA passes this
        self._frto = FRTO_OFF
        self._frto_resent = 0  # step 2.b: where go-back-N had got to; the originals lie above it
        self._quick = 0  # quick ACKs left (Linux's icsk_ack.quick)
        self._pingpong = False  # interactive: we answer what arrives, ACKs wait to ride on data
        self._last_data_rx = NEVER  # when in-order data last arrived (Linux's lrcvtime)
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
        self._last_oow = NEVER
        self._snd_sml = iss
        # PSH as Linux places it (output.py `_mark_pushes`), in stream positions (bytes_sent
        # counts from 0): the marks before the last, the last (Linux's pushed_seq, the end
        # of the last write), and where the unsent tail "skb" starts.
        self._push_marks: list[int] = UNUSED
        self._pushed = 0
        self._skb_start = 0
        self._send_blocked = False
        self._probes = 0
        self._ka_probes = 0
        self._last_rx = now
        self._last_tx = now  # when data last went out (Linux's lsndtime): idle time starts there
        self._rto_at: float | None = None
        self._persist_at: float | None = None
        self._delack_at: float | None = None
        self._keepalive_at: float | None = None
        self._close_at: float | None = None
        self.segs_in = 0
        self.segs_out = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.retransmits = 0
        self._syn_retransmitted = False
        self._ecn_ok = False  # ECN agreed in the handshake (RFC 3168 §6.1.1)
        self._ecn_echo = False  # a CE mark arrived: ECE on what we send until the peer's CWR
        self._ecn_cwr = False  # the window was reduced for an ECE: CWR on the next new data
        self._ecn_recover = iss  # no further reduction for ECE until SND.UNA passes this
        # Fast Open (RFC 7413): the option our SYN or SYN-ACK carries (a cookie; b"" asks for
        # one; None: no option), and the bytes of data the SYN carried (client) or took (server).
        self._fastopen: bytes | None = None
        self._syn_data = 0
        self.fastopen_deferred = False  # the SYN waits for the first data (TCP_FASTOPEN_CONNECT)

    def _scoreboard(self) -> Scoreboard:
        """The SACK scoreboard, made at its first use (a SACK block, a duplicate ACK, recovery,
        a timeout); only for a connection with SACK (`_sack_ok`).

        One made now is the one the handshake would have made and left untouched: nothing
        reached it (the ACKs that skip it leave no SACKed range, recovery or recovery point),
        and its first use updates it to SND.UNA and SND.MAX before anything reads it.
        """
        sb = self._sb
        if sb is None:
            sb = self._sb = Scoreboard(self._mss, self.snd_una, rack=self._rack_ok)
        return sb

    def _new_rack(self) -> Rack:
        """RACK's state, made at its first use (`_rack_ok`): the first transmission, or an ACK
        with SACK news before one. Until something is sent there is nothing to log, detect or
        probe, so one made now is the one the handshake would have made and left untouched."""
        rack = self._rack = Rack(self.snd_una, self._cfg.rack_static_reo_wnd)
        return rack

    def _rack_sent(self, seq: int, end: int, now: float) -> None:
        """Log [seq, end), sent at `now`, in a RACK made by this first transmission."""
        self._new_rack().sent(seq, end, now, self.snd_una)

    def _set_state(self, new: State, event: Event, now: float) -> None:
        """The one way to change state: checked against `states.TRANSITIONS` (state, event) -> new.

        The check and the wake-up (`_wake`, written out) are inline: ten state changes a
        connection's life on the two ends, each saved two Python calls."""
        if (self.state, event, new) not in _ALLOWED:
            transition(self.state, event, new)  # raises TransitionError, naming the change
        self.state = new
        if new == CLOSED:
            self._rto_at = self._persist_at = self._delack_at = self._keepalive_at = self._close_at = None
            self._ack_now = self._ack_pending = False
            self._owner.forget(self)
        if self.listener is None:
            self._owner.wake(self)

    def _set_rcvbuf(self, size: int) -> None:
        """The receive buffer's size, in-order and out-of-order alike (the shared empty
        out-of-order queue stands for one of any size and is never written to)."""
        self._recv.limit = size
        if self._ooo is not NO_OOO:
            self._ooo.limit = size

    def _wake(self) -> None:
        """Tell the user side; connections not yet accepted are the listener's business."""
        if self.listener is None:
            self._owner.wake(self)

    def _send_reset(self, seq: int, ack: int, flags: int, now: float) -> None:
        self._owner.send_reset(self._route, self.local, self.remote, seq, ack, flags, now)

    def _reset(self, now: float) -> None:
        """Abort with a RST to the peer (close with unread data, abort, data after close)."""
        self._send_reset(self.snd_nxt, self.rcv_nxt, RST | ACK, now)
        self._set_state(CLOSED, Event.ABORT, now)

    def _fail(self, code: int, event: Event, now: float, send_rst: bool) -> None:
        """Close with an error for the user (`code`), after `event`; a RST tells the peer when asked."""
        if send_rst:
            self._send_reset(self.snd_nxt, self.rcv_nxt, RST | ACK, now)
        self.error = os_error(code)
        self._set_state(CLOSED, event, now)
