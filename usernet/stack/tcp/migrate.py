"""Freezing a connection into plain fields and thawing it on another interface (live migration).

A synchronized connection is its sequence numbers, windows and scales, negotiated options
(MSS, SACK, timestamps with TS.Recent and the TSval clock), timers, byte queues (unacked
and unsent, unread, out of order), SACK scoreboard, congestion state and RTT estimator.
All of it is frozen: nothing is dropped or reset, so the peer sees the same connection,
at most after a pause (during which it may retransmit; the thawed side answers as the old
one would have). Times, timers included, are stored relative to the freeze instant and
come back relative to the thaw instant, so the two processes' clocks need not agree;
the TSval clock continues from the last TSval sent. docs/migration.md lists the fields.

A connection mid-handshake (SYN_SENT, SYN_RECEIVED) is refused: its peer has not yet
agreed to anything worth moving. Finish the handshake first, or leave it to retry.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from usernet.stack.route import Route
from usernet.stack.tcp.buffers import ReceiveBuffer, SendBuffer
from usernet.stack.tcp.congestion import CongestionControl, Cubic, NewReno
from usernet.stack.tcp.core import NO_OOO
from usernet.stack.tcp.frozen import Freezable, MigrationError, field
from usernet.stack.tcp.input import ConnectionInput
from usernet.stack.tcp.owner import AcceptQueue, ConnectionOwner
from usernet.stack.tcp.prr import Prr
from usernet.stack.tcp.rack import Rack
from usernet.stack.tcp.reassembly import Reassembly
from usernet.stack.tcp.rtt import RttEstimator, TimestampClock
from usernet.stack.tcp.scoreboard import Scoreboard
from usernet.stack.tcp.states import SYNCHRONIZED, State

__all__ = ["MOVABLE", "ConnectionMigration"]

#: The states a connection can be frozen in: every synchronized one.
MOVABLE = frozenset(SYNCHRONIZED)

_CONGESTION: dict[str, type[CongestionControl]] = {"newreno": NewReno, "cubic": Cubic}
#: Parts frozen by their own `freeze` (slot -> class).
_PARTS: dict[str, type[Freezable]] = {
    "_send": SendBuffer,
    "_recv": ReceiveBuffer,
    "_ooo": Reassembly,
    "rtt": RttEstimator,
    "_tsclock": TimestampClock,
}


class ConnectionMigration(ConnectionInput, Freezable):
    """`freeze` a connection to a map of fields; `thaw` one from it, owned by another layer."""

    __slots__ = ()

    FROZEN = (
        "_ack_now", "_ack_pending", "_dupacks", "_ecn_cwr", "_ecn_echo", "_ecn_ok", "_ecn_recover", "_fastopen",
        "_fin_seq", "_ka_probes", "_last_ack_sent", "_mss", "_mss_limit",
        "_nr_recovery", "_peer_fin", "_peer_fin_at", "_probes", "_rcv_adv", "_rcv_mss", "_rcv_wscale",
        "_read_since_output", "_recover", "_retries", "_rto_tsval", "_rtt_seq", "_sack_ok", "_send_blocked",
        "_snd_mss", "_snd_sml", "_snd_wscale", "_soft_error", "_syn_data", "_syn_retransmitted", "_syn_window",
        "_ts_ok", "_ts_recent", "_unacked", "_user_closed", "bytes_received", "bytes_sent", "cork", "fastopen_deferred",
        "irs", "iss", "keepalive",
        "keepcnt", "keepidle", "keepintvl", "max_sndwnd", "nodelay", "rcv_nxt", "retransmits", "segs_in",
        "segs_out", "snd_max", "snd_nxt", "snd_una", "snd_wl1", "snd_wl2", "snd_wnd", "user_timeout",
        # loss recovery (recovery.py) and quick ACKs
        "_dsack", "_pingpong", "_quick", "_timer_kind", "_tlp_high", "_tlp_ok", "_tlp_retrans", "_undo_marker",
        "_undo_retrans", "_undo_rto", "_undo_tsval", "_undo_until", "_frto", "_rack_ok", "_prr_ok",
        "_frto_resent", "_cork_pushed",
        # PSH placement (output.py)
        "_push_marks", "_pushed", "_skb_start",
        # the buffers' autotuning ceilings (0: off, or the user's size)
        "_rcvbuf_max", "_sndbuf_max",
        # the user's IP_TTL (0: the interface's)
        "_ttl",
    )  # fmt: skip  # a table of names
    #: Fields later than the first blobs (ECN and Fast Open, loss recovery, quick ACKs): off or
    #: nothing pending in what those froze.
    FROZEN_DEFAULTS: ClassVar[dict[str, Any]] = {
        "_ecn_cwr": False, "_ecn_echo": False, "_ecn_ok": False, "_ecn_recover": 0, "_fastopen": None,
        "_syn_data": 0, "fastopen_deferred": False, "cork": False,
        "_dsack": None, "_pingpong": False, "_quick": 0, "_timer_kind": 0, "_tlp_high": None, "_tlp_ok": False,
        "_tlp_retrans": False, "_undo_marker": None, "_undo_retrans": 0, "_undo_rto": False, "_undo_tsval": None,
        "_undo_until": None, "_frto": 0, "_frto_resent": 0, "_cork_pushed": False,
        "_push_marks": [], "_pushed": 0, "_skb_start": 0, "_rcvbuf_max": 0, "_sndbuf_max": 0, "_ttl": 0,
    }  # fmt: skip  # a table of names
    FROZEN_TIMES = (
        "_close_at", "_delack_at", "_keepalive_at", "_last_oow", "_last_rx", "_persist_at", "_rto_at",
        "_rtt_time", "_rtx_start", "_ts_recent_at", "_reo_at", "_last_data_rx", "_last_tx",
    )  # fmt: skip  # a table of names
    NOT_FROZEN = (
        # Given by the layer that thaws: its own owner, counters, config and route to the peer,
        # and (`flow_local`) the local address as its flow table compares it, when it files it.
        "__weakref__", "_owner", "_stats", "_cfg", "_route", "listener", "flow_local",
        # Frozen under their own names below (addresses, state) or by their parts (the rest).
        "key", "local", "remote", "state", "error", "_cc", "_sb", "_rack", "_prr", *_PARTS,
        # Receive autotuning's measurements: begun again at the first read after the move.
        "_rcv_space",
    )  # fmt: skip  # a table of names

    def freeze(self, now: float, unsent: bytes = b"", unread: bytes = b"") -> dict[str, Any]:
        """Every field of this connection; MigrationError when it is mid-handshake or closed.

        `unsent` (bytes its user wrote that the stack has not taken: a transport's buffer) go
        after the send buffer's; `unread` (bytes the stack delivered that its user has not
        consumed: a StreamReader's buffer) before the receive buffer's, so the next user
        reads them first. The receive buffer may then hold more than its limit: the window
        stays closed until it is read below it."""
        state = self.state
        if state not in MOVABLE:
            raise MigrationError(
                f"{self!r} cannot move: it is in {state.name}. Only synchronized connections move; let a "
                "handshake finish first (TcpListener.drain stops new ones), or leave it: the peer retries"
            )
        frozen = super().freeze(now)
        frozen["state"] = state.name
        frozen["local"] = [self.local[0], self.local[1]]
        frozen["remote"] = [self.remote[0], self.remote[1]]
        for name in _PARTS:
            part: Freezable = getattr(self, name)
            if part is NO_OOO:  # frozen as the empty queue of its own it stands for
                part = Reassembly(self._recv.limit)
            frozen[name] = part.freeze(now)
        if unsent:
            frozen["_send"]["data"] += unsent
        if unread:
            frozen["_recv"]["data"] = unread + frozen["_recv"]["data"]
        cc = self._cc
        kind = next(k for k, cls in _CONGESTION.items() if type(cc) is cls)
        frozen["_cc"] = {"kind": kind, **cc.freeze(now)}
        frozen["_sb"] = None if self._sb is None else self._sb.freeze(now)
        frozen["_rack"] = None if self._rack is None else self._rack.freeze(now)
        frozen["_prr"] = None if self._prr is None else self._prr.freeze(now)
        return frozen

    @classmethod
    def thaw_on(
        cls,
        owner: ConnectionOwner[Any],
        route: Route,
        frozen: dict[str, Any],
        now: float,
        listener: AcceptQueue[Any] | None = None,
    ) -> Self:
        """A connection from `freeze`'s fields, owned by `owner` and sending through `route`.

        The caller (the TCP layer) files it in its tables and, for `listener`, in the accept queue.
        """
        conn = cls.__new__(cls)
        conn.restore_on(owner, route, frozen, now, listener)
        return conn

    def restore_on(
        self,
        owner: ConnectionOwner[Any],
        route: Route,
        frozen: dict[str, Any],
        now: float,
        listener: AcceptQueue[Any] | None,
    ) -> None:
        """Fill a fresh (`__new__`) connection from `freeze`'s fields: `thaw_on`'s work."""
        self.restore(frozen, now)
        name = field(frozen, "state", str, "connection")
        if name not in State.__members__ or State[name] not in MOVABLE:
            raise MigrationError(f"a frozen connection is in state {name!r}, which cannot move: the blob is damaged")
        self.state = State[name]
        self.local = address(frozen, "local")
        self.remote = address(frozen, "remote")
        self.key = (self.local[0], self.local[1], self.remote[0], self.remote[1])
        self._owner = owner
        self._route = route
        self._stats = owner.counters
        self._cfg = owner.config
        self.listener = listener
        self.error = None
        self._send = SendBuffer.thaw(field(frozen, "_send", dict, "connection"), now)
        self._recv = ReceiveBuffer.thaw(field(frozen, "_recv", dict, "connection"), now)
        ooo = Reassembly.thaw(field(frozen, "_ooo", dict, "connection"), now)
        self._ooo = NO_OOO if not (ooo.held or ooo.dropped) and ooo.limit == self._recv.limit else ooo
        self.rtt = RttEstimator.thaw(field(frozen, "rtt", dict, "connection"), now)
        self._tsclock = TimestampClock.thaw(field(frozen, "_tsclock", dict, "connection"), now)
        cc = field(frozen, "_cc", dict, "connection")
        kind = _CONGESTION.get(field(cc, "kind", str, "congestion control"))
        if kind is None:
            raise MigrationError(f"unknown congestion control {cc['kind']!r} in a frozen connection")
        self._cc = kind.thaw(cc, now)
        sb = frozen.get("_sb")
        self._sb = None if sb is None else Scoreboard.thaw(field(frozen, "_sb", dict, "connection"), now)
        rack = frozen.get("_rack")
        self._rack = None if rack is None else Rack.thaw(field(frozen, "_rack", dict, "connection"), now)
        prr = frozen.get("_prr")
        self._prr = None if prr is None else Prr.thaw(field(frozen, "_prr", dict, "connection"), now)
        self._rcv_space = None
        if self._ttl:
            self._route = route.with_ttl(self._ttl)
        self._mss_limit = min(self._mss_limit, route.mss)


def address(state: dict[str, Any], name: str) -> tuple[bytes, int]:
    """A frozen (IPv4 address, port) pair."""
    value = field(state, name, list, "socket")
    if len(value) != 2 or not isinstance(value[0], bytes) or len(value[0]) != 4 or not isinstance(value[1], int):
        raise MigrationError(f"the frozen address {name!r} is not (4 bytes, port): the blob is damaged")
    if not 0 <= value[1] < 65536:
        raise MigrationError(f"the frozen port {value[1]} is out of range: the blob is damaged")
    return value[0], value[1]
