"""One TCP connection (RFC 9293): what its user calls, its options and its statistics.

The engine behind it is split by concern, each part a class the next derives from:
`core` (state and transitions) <- `output` (segments, retransmission) <- `recovery` <- `timers` <-
`input` (handshakes, segment arrival) <- `migrate` (freeze, thaw) <- `TcpConnection` here.
Segments come in through
`input` (from the layer's demultiplexer) and go out through `output`, which the layer
calls once per flush for every connection that changed. What the connection needs from
its owner is declared in `owner.py`; it holds no reference to the interface.
"""

from __future__ import annotations

import errno
from typing import Any

from usernet.stack.route import Route, format_ip
from usernet.stack.tcp.core import (
    CAN_SEND,
    CLOSE_WAIT,
    CLOSED,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    KEEPS_ALIVE,
    LAST_ACK,
    SYN_RECEIVED,
    SYN_SENT,
    TAKES_DATA,
    TIME_WAIT,
)
from usernet.stack.tcp.migrate import ConnectionMigration
from usernet.stack.tcp.output import OffloadFrame
from usernet.stack.tcp.owner import Address
from usernet.stack.tcp.seq import seq_add, seq_offset
from usernet.stack.tcp.states import SYNCHRONIZED, Event

__all__ = ["USER_MSS_RANGE", "OffloadFrame", "TcpConnection", "check_option"]

_OPTION_NAMES = (
    "nodelay", "cork", "keepalive", "keepidle", "keepintvl", "keepcnt", "user_timeout", "rcvbuf", "sndbuf", "maxseg",
    "ttl",
)  # fmt: skip
USER_MSS_RANGE = range(88, 32768)  # Linux's TCP_MIN_MSS to MAX_TCP_WINDOW: what TCP_MAXSEG takes


def check_option(name: str, value: Any) -> None:
    """ValueError, saying why, for a value `TcpConnection.set_option` refuses: one place for
    the connection and for a listener that keeps options for the connections it accepts."""
    if name in ("keepidle", "keepintvl", "user_timeout"):
        if value < 0:
            raise ValueError(f"{name} is a duration in seconds and cannot be negative")
    elif name == "keepcnt":
        if value < 1:
            raise ValueError("keepcnt must be at least 1")
    elif name in ("rcvbuf", "sndbuf"):
        if value < 1:
            raise ValueError(f"{name} must be at least 1 byte")
    elif name == "maxseg":
        if value not in USER_MSS_RANGE:
            raise ValueError(f"maxseg must be between {USER_MSS_RANGE[0]} and {USER_MSS_RANGE[-1]} bytes")
    elif name == "ttl":
        if not -1 <= value <= 255:
            raise ValueError(f"a TTL is 1-255 (0 or -1: the interface's), not {value}")
    elif name not in _OPTION_NAMES:
        raise ValueError(f"unknown TCP option {name!r}: use one of {', '.join(_OPTION_NAMES)}")


class TcpConnection(ConnectionMigration):
    """A TCP connection as its user sees it: send, receive, shut down, close, options, info."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<TcpConnection {_fmt(self.local)} -> {_fmt(self.remote)} {self.state.name}>"

    # -- user side -----------------------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview, now: float, more: bool = False) -> int:
        """Queue bytes to send; returns how many fitted in the send buffer (0 when full).
        `more`: the caller has more to write (MSG_MORE): the end of these bytes is no push point."""
        if self.state not in CAN_SEND or self._fin_seq is not None:
            if self.error is not None:
                raise self.error
            raise OSError(errno.EPIPE, "the connection is shut down for writing: no more data can be sent")
        if self._cork_pushed:  # what was queued when TCP_NODELAY came goes before the cork is back
            self._cork_pushed = False
            self.output(now)
            self.cork = True
        send = self._send
        n = send.write(data)
        self.fastopen_deferred = False  # the SYN waited for this (Fast Open): it goes with it
        # A write takes less than it was given only when it filled the buffer, so a full buffer
        # is the one test (`not send.free`, read as attributes): also after a write that
        # fitted exactly, room freed must wake the user.
        if send.held >= send.limit:
            if self._sndbuf_max and self._grow_sndbuf():
                n += send.write(memoryview(data)[n:])
            if send.held >= send.limit:
                self._send_blocked = True
        if n:
            self._mark_pushes(n, more)
            self._owner.touch(self)
        return n

    def _grow_sndbuf(self) -> bool:
        """Send-buffer autotuning, when a write filled the buffer: room for twice the congestion
        window (at least ten segments), up to `sndbuf_max` (Linux's tcp_sndbuf_expand), so a
        window that outgrew the buffer is not held back by it. Not while the window is full
        (tcp_should_expand_sndbuf): then the buffer is not what holds the sender back. True
        when the buffer grew."""
        cwnd = self._cc.cwnd
        if seq_offset(self.snd_nxt, self.snd_una) >= cwnd:  # bytes in flight
            return False
        target = 2 * max(cwnd, 10 * self._mss)
        if target > self._sndbuf_max:
            target = self._sndbuf_max
        if target <= self._send.limit:
            return False
        self._send.limit = target
        self._stats.tcp_sndbuf_grown += 1
        return True

    def receive(self, max_bytes: int = -1) -> bytes:
        """Take up to `max_bytes` received bytes (all with -1); b"" when none are waiting."""
        recv = self._recv
        # No emptiness test first: both reads give b"" on an empty buffer, and the test
        # would cost three calls on every read that finds data.
        data = recv.read_all() if max_bytes < 0 else recv.read(max_bytes)
        if data and self.state in TAKES_DATA:
            self._read_since_output = True
            self._owner.touch(self)  # the window may have opened enough to tell the peer
        return data

    def receive_into(self, buffer: bytearray | memoryview) -> int:
        """Copy received bytes into `buffer` (a BufferedProtocol's); returns the count."""
        n = self._recv.read_into(buffer)
        if n and self.state in TAKES_DATA:
            self._read_since_output = True
            self._owner.touch(self)
        return n

    @property
    def readable(self) -> int:
        """Bytes waiting to be read."""
        return len(self._recv.unread)  # polled by the user side on every wake-up: no `__len__` call

    @property
    def at_eof(self) -> bool:
        """The peer's FIN arrived and every byte before it has been read."""
        return self._peer_fin and not len(self._recv.unread)  # no `__len__` call, as `readable`

    @property
    def fastopen_requested(self) -> bool:
        """This client's SYN carries a Fast Open option (a cookie, or a request for one)."""
        return self.state == SYN_SENT and self._fastopen is not None

    @property
    def peer_mss(self) -> int:
        """The largest segment the peer takes (its MSS option, bounded by our route)."""
        return self._snd_mss

    def send_space(self) -> int:
        """How many bytes `send` would accept now."""
        return self._send.free

    @property
    def unsent(self) -> int:
        """Bytes in the send buffer: queued or in flight, not yet acknowledged."""
        return self._send.held

    def shutdown(self, now: float) -> None:
        """SHUT_WR: send a FIN once the queued data is out."""
        state = self.state
        if self._fin_seq is not None or state not in CAN_SEND:
            return
        data_start = self.snd_una if state not in (SYN_SENT, SYN_RECEIVED) else seq_add(self.iss, 1)
        self._fin_seq = seq_add(data_start, self._send.held)
        self.fastopen_deferred = False
        if state in (ESTABLISHED, SYN_RECEIVED):
            self._set_state(FIN_WAIT_1, Event.CLOSE, now)
        elif state == CLOSE_WAIT:
            self._set_state(LAST_ACK, Event.CLOSE, now)
        self._owner.touch(self)

    def close(self, now: float) -> None:
        """Close both directions. Unread data makes it a reset, as on Linux."""
        if self.state == CLOSED:
            return
        self._user_closed = True
        if self.state == SYN_SENT:
            self._set_state(CLOSED, Event.CLOSE, now)
        elif len(self._recv.unread) and self.state in SYNCHRONIZED:
            self._reset(now)
        else:
            self.shutdown(now)
            if self.state == FIN_WAIT_2:
                self._close_at = now + self._cfg.fin_timeout
                self._owner.touch(self)

    def abort(self, now: float) -> None:
        """Drop the connection at once, telling the peer with a RST (SO_LINGER 0)."""
        if self.state == CLOSED:
            return
        self._user_closed = True
        if self.state == SYN_SENT or self.state == TIME_WAIT:
            self._set_state(CLOSED, Event.ABORT, now)
        else:
            self._reset(now)

    def address_gone(self, now: float) -> None:
        """Our local address went away (Interface.readdress_ipv4): end at once with ECONNABORTED, as
        Linux's SOCK_DESTROY does, but with no RST: it would leave from an address that is not ours."""
        if self.state != CLOSED:
            self._fail(errno.ECONNABORTED, Event.ABORT, now, send_rst=False)

    def reroute(self, route: Route | None, now: float) -> None:
        """The interface's routes changed while our address stayed (a new gateway): send through
        `route` from now on, as Linux's socket drops its cached dst; with none left, end as
        `address_gone` does (nothing could leave)."""
        if route is None:
            self.address_gone(now)
        else:
            self._route = route.with_ttl(self._ttl)

    def set_option(self, name: str, value: Any) -> None:
        """Set a socket option: nodelay, cork, keepalive, keepidle, keepintvl, keepcnt, user_timeout, rcvbuf, sndbuf,
        maxseg (Linux's TCP_MAXSEG: caps the MSS this end offers and sends; as on Linux, set
        before the SYN leaves, so an established connection keeps the MSS it has), ttl (IP_TTL,
        IPV6_UNICAST_HOPS: the TTL of every segment from now on, also after a reroute)."""
        check_option(name, value)
        if name == "nodelay":
            self.nodelay = bool(value)
            if self.nodelay and self.cork:
                # tcp(7): setting TCP_NODELAY flushes pending output even while TCP_CORK is set
                # (Linux's TCP_NAGLE_PUSH): what is queued goes at the next flush, the cork
                # holds again from the next write (`send`).
                self.cork = False
                self._cork_pushed = True
        elif name == "cork":
            self.cork = bool(value)  # uncorking sends what it held at the next flush (touched below)
            self._cork_pushed = False
        elif name == "keepalive":
            self.keepalive = bool(value)
        elif name in ("keepidle", "keepintvl", "user_timeout"):
            setattr(self, name, float(value))
        elif name == "keepcnt":
            self.keepcnt = int(value)
        elif name in ("rcvbuf", "sndbuf"):
            if name == "rcvbuf":
                self._set_rcvbuf(int(value))
                self._rcvbuf_max = 0  # the size is the user's now: no autotuning (SO_RCVBUF on Linux)
            else:
                self._send.limit = int(value)
                self._sndbuf_max = 0  # the program's size now (SO_SNDBUF on Linux)
        elif name == "maxseg":
            self._mss_limit = min(int(value), self._cfg.mss or 65495, self._route.mss)
        else:  # ttl: IP_TTL, IPV6_UNICAST_HOPS: 1-255, or 0 / -1 for the interface's
            self._ttl = max(int(value), 0)
            self._route = self._route.with_ttl(self._ttl)
        if name.startswith("keep"):
            on = self.keepalive and self.state in KEEPS_ALIVE
            self._keepalive_at = self._last_rx + self.keepidle if on else None
        self._owner.touch(self)

    @property
    def options(self) -> dict[str, Any]:
        return {
            "nodelay": self.nodelay,
            "cork": self.cork or self._cork_pushed,
            "keepalive": self.keepalive,
            "keepidle": self.keepidle,
            "keepintvl": self.keepintvl,
            "keepcnt": self.keepcnt,
            "user_timeout": self.user_timeout,
            "rcvbuf": self._recv.limit,
            "sndbuf": self._send.limit,
            "maxseg": self._mss,  # what Linux's TCP_MAXSEG reads: the MSS in use (mss_cache)
            "ttl": self._route.ttl,
        }

    def info(self) -> dict[str, Any]:
        """Statistics in the spirit of TCP_INFO, for `usernet up` and debugging."""
        rtt = self.rtt
        return {
            "state": self.state.name,
            "rtt": rtt.srtt,
            "rttvar": rtt.rttvar,
            "rto": rtt.rto,
            "cwnd": self._cc.cwnd,
            "ssthresh": self._cc.ssthresh,
            "mss": self._mss,
            "snd_wnd": self.snd_wnd,
            "rcv_wnd": seq_offset(self._rcv_adv, self.rcv_nxt),
            "retransmits": self.retransmits,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "segs_in": self.segs_in,
            "segs_out": self.segs_out,
            "sack": self._sack_ok,
            "timestamps": self._ts_ok,
            "ecn": self._ecn_ok,
            "fastopen_data": self._syn_data,  # bytes of data in the SYN (client) or taken from it (server)
            "wscale": (self._snd_wscale, self._rcv_wscale),
            "unacked": seq_offset(self.snd_max, self.snd_una),
            "unread": len(self._recv),
        }


def _fmt(addr: Address) -> str:
    return f"{format_ip(addr[0])}:{addr[1]}"
