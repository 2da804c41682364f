"""The TCP layer of an interface: demultiplexing, listeners, SYN cookies, RSTs for
closed ports, and the one timer heap for every connection.

Demultiplexing is one dict lookup keyed by (local ip, local port, remote ip, remote
port), then listeners by (address, port) and (ANY, port). Segments that header
prediction (`native.rx_ipv4_tcp`, `rx_ipv6_tcp`) parsed arrive with an integer flow key instead, looked
up in `_flows`; a flow key leaves out the local address, so the connection carries it
(`flow_local`, one int shared by all connections on that address) to compare, and a
connection whose key another one holds takes the general path until that one closes
(`_shared_flows` says which keys to hand on).
Connections that changed during a batch are remembered in `_dirty` and each produces
its output once, at `flush`. Timers live on the connections; the heap holds at most one
valid entry per connection (lazy invalidation: an entry is valid while its time equals
the one `_filed` holds for that connection), and an entry is only added when a
connection's earliest deadline moves earlier, so re-arming the RTO on every ACK costs no
heap operation.

The layer is a connection's owner (`owner.ConnectionOwner`): connections call it, never
the interface, and it reaches the interface only through `Node`.
"""

from __future__ import annotations

import errno
import heapq
import itertools
from collections import deque
from collections.abc import Callable
from typing import Any

from usernet.native import (
    CSUM_FULL,
    IPV6_FLOW,
    NativeError,
    RxParsed,
    TcpParsed,
    l4_checksum_v4,
    pseudo_sum_v6,
    sum16,
    tcp_parse,
)
from usernet.stack.node import ANY, ANY6, Node, unspecified
from usernet.stack.ports import PortAllocator, PortUse, checked_port
from usernet.stack.ratelimit import TokenBucket
from usernet.stack.route import Route, format_ip, no_route_message
from usernet.stack.tcp.config import TcpConfig
from usernet.stack.tcp.connection import TcpConnection, check_option
from usernet.stack.tcp.core import CE
from usernet.stack.tcp.frozen import MigrationError, field
from usernet.stack.tcp.isn import FastOpenCookies, IsnGenerator, SynCookies
from usernet.stack.tcp.migrate import address
from usernet.stack.tcp.seq import seq_add, seq_lt
from usernet.stack.tcp.states import State
from usernet.wire import IPv4Packet
from usernet.wire.ipv6 import IPv6Packet
from usernet.wire.tcp import ACK, FIN, RST, SYN, encode_tcp_options, fastopen_option

__all__ = ["ANY", "ANY6", "Address", "TcpLayer", "TcpListener"]

Address = tuple[bytes, int]
_IPPROTO_TCP = 6
_CLOSED = State.CLOSED
_TIME_WAIT = State.TIME_WAIT
_SYN_SENT = State.SYN_SENT
_FASTOPEN_CACHE_LIMIT = 1024  # servers whose Fast Open cookie a client remembers
# `TcpListener.room`'s answers to a SYN: a handshake may start; the accept queue is full; the SYN queue is.
_ROOM, _ACCEPT_FULL, _SYN_FULL = 0, 1, 2


class TcpListener:
    """A listening socket: half-open connections (the SYN queue) and an accept queue.

    A Fast Open connection (RFC 7413) is both: it joins the accept queue with its SYN's
    data while its handshake is still open. `fastopen` is TCP_FASTOPEN's queue length, how
    many such connections may wait for their final ACK at once; 0 (the default, as on
    Linux) serves no Fast Open on this listener. `options` are what `set_option` set: its
    connections are born with them, as Linux's copy the listening socket (IP_TTL, TCP_NODELAY,
    keepalive, buffer sizes, TCP_MAXSEG: the SYN-ACK already has them).
    """

    __slots__ = (
        "__weakref__", "_cookies_at", "_embryos", "_fastopen_pending", "_owner", "_queue", "backlog", "closed",
        "draining", "fastopen", "local", "options",
    )  # fmt: skip

    def __init__(self, owner: TcpLayer, local: Address, backlog: int) -> None:
        self._owner = owner
        self.local = local
        self.backlog = backlog
        self.closed = False
        self.draining = False  # new SYNs are dropped (the peer retries them): see drain()
        self._queue: deque[TcpConnection] = deque()
        self._embryos: dict[TcpConnection, bool] = {}  # True: a Fast Open one, already in the queue
        self._fastopen_pending = 0
        self.fastopen = 0
        self.options: dict[str, Any] = {}
        self._cookies_at = -1e18  # when a SYN cookie was last sent

    def __repr__(self) -> str:
        return f"<TcpListener {format_ip(self.local[0])}:{self.local[1]} queued={len(self._queue)}>"

    def set_option(self, name: str, value: Any) -> None:
        """A `TcpConnection.set_option` option for the connections accepted from now on (checked
        now, so that a bad value fails here, not at a SYN)."""
        check_option(name, value)
        self.options[name] = value

    def accept(self) -> TcpConnection | None:
        """The oldest established connection, or None."""
        if not self._queue:
            return None
        conn = self._queue.popleft()
        conn.listener = None
        self._forget_embryo(conn)  # a Fast Open one is the user's now, its handshake its own business
        return conn

    @property
    def pending(self) -> int:
        """Connections waiting for accept()."""
        return len(self._queue)

    @property
    def half_open(self) -> int:
        """Connections in the SYN queue: SYN received, handshake not yet complete."""
        return len(self._embryos)

    @property
    def full(self) -> bool:
        """The accept queue holds `backlog` connections: new ones are refused."""
        return len(self._queue) >= self.backlog

    def room(self, syn_backlog: int) -> int:
        """Whether a new SYN may start a handshake here: `_ROOM`; `_ACCEPT_FULL` when the accept
        queue is `full` (the SYN is refused); `_SYN_FULL` when the SYN queue holds `syn_backlog`
        half-open connections (a SYN cookie answers). One call for the two questions a SYN asks."""
        if len(self._queue) >= self.backlog:
            return _ACCEPT_FULL
        if len(self._embryos) >= syn_backlog:
            return _SYN_FULL
        return _ROOM

    def adopt(self, conn: TcpConnection) -> None:
        """A connection in SYN_RECEIVED joins the SYN queue."""
        self._embryos[conn] = False

    @property
    def fastopen_room(self) -> bool:
        """Whether one more Fast Open connection may wait for its handshake (TCP_FASTOPEN's queue)."""
        return self._fastopen_pending < self.fastopen and not self.full

    def accept_early(self, conn: TcpConnection) -> None:
        """A Fast Open connection in the SYN queue is accepted with its SYN's data, before its final ACK."""
        self._embryos[conn] = True
        self._fastopen_pending += 1
        self._queue.append(conn)
        self._owner.wake(self)

    def cookie_sent(self, now: float) -> None:
        self._cookies_at = now

    def cookies_sent_since(self, since: float) -> bool:
        """Whether a SYN cookie went out at or after `since`: only then may an ACK carry one."""
        return self._cookies_at >= since

    def close(self, now: float) -> None:
        """Stop listening; connections not yet accepted are reset, as on Linux."""
        if self.closed:
            return
        self.closed = True
        self._owner.unlisten(self)
        for conn in list(self._embryos) + list(self._queue):
            conn.abort(now)
        self._queue.clear()
        self._embryos.clear()

    def drain(self) -> None:
        """Take no new handshakes (their SYNs are dropped and counted; the peers retry), so that the
        half-open ones can finish before the listener is frozen and moved."""
        self.draining = True

    def freeze(self, now: float, *, leave_half_open: bool = False) -> dict[str, Any]:
        """The address, backlog and accept queue (connections frozen whole), for `TcpLayer.thaw_listener`.

        Half-open connections cannot move: MigrationError names them, unless
        `leave_half_open`, which leaves them behind (their peers' ACKs then meet a listener
        that does not know them and are answered with a RST: they connect again).
        """
        if self._embryos and not leave_half_open:
            raise MigrationError(
                f"{self!r} has {len(self._embryos)} half-open connections, which cannot move: drain() it and "
                "wait until half_open is 0, or pass leave_half_open=True to let their peers retry"
            )
        return {
            "local": [self.local[0], self.local[1]],
            "backlog": self.backlog,
            "fastopen": self.fastopen,
            "options": dict(self.options),
            "queue": [conn.freeze(now) for conn in self._queue],
        }

    def established(self, conn: TcpConnection) -> None:
        if self._forget_embryo(conn):
            return  # a Fast Open connection waits in the queue already
        self._queue.append(conn)
        self._owner.wake(self)

    def forget(self, conn: TcpConnection) -> None:
        self._forget_embryo(conn)

    def _forget_embryo(self, conn: TcpConnection) -> bool:
        """Out of the SYN queue; True if it was a Fast Open connection (already in the accept queue)."""
        early = self._embryos.pop(conn, False)
        if early:
            self._fastopen_pending -= 1
        return early


class TcpLayer:
    """Every TCP connection and listener of one interface."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.config: TcpConfig = node.config.tcp
        self.counters = self._stats = node.counters
        self._rx_trusted = node.config.rx_checksum_trusted  # the link's kernel vouched; checksums may be partial
        secret = node.config.secret
        self.isn_source = IsnGenerator(secret)
        self.cookies = SynCookies(secret)
        self.fastopen_cookies = FastOpenCookies(secret, self.config.fastopen_key_period)
        self._fastopen_cache: dict[bytes, tuple[bytes, int]] = {}  # server address -> (cookie, its MSS)
        self._table: dict[tuple[bytes, int, bytes, int], TcpConnection] = {}
        self._flows: dict[int, TcpConnection] = {}  # flow key -> connection
        self._local_keys: dict[bytes, int] = {}  # each local address in use as an int (`flow_local`)
        self._shared_flows: set[int] = set()  # keys more than one connection has had at once
        self._listeners: dict[Address, TcpListener] = {}
        self._ports = PortUse()
        self._port_alloc = PortAllocator(*node.config.ephemeral_ports, seed=secret + b"tcp")
        self._dirty: dict[TcpConnection, None] = {}
        self._heap: list[tuple[float, int, TcpConnection]] = []
        self._filed: dict[TcpConnection, float] = {}  # each connection's valid heap entry
        self._tie = itertools.count()
        self._challenges = TokenBucket(self.config.challenge_ack_limit, self.config.challenge_ack_limit)
        self._closed_port_resets = TokenBucket(self.config.reset_limit, self.config.reset_limit)
        self.max_timer_lateness = 0.0  # how far past its deadline any timer ran: 0 under a virtual clock
        # ConnectionOwner.wake, "tell the user side of this socket at the end of the batch", is
        # the node's mark_ready itself: bound here, not wrapped in a method, it costs every
        # segment that brings data one call fewer.
        self.wake: Callable[[TcpConnection | TcpListener], None] = node.mark_ready

    # -- user side -----------------------------------------------------------------------

    def listen(self, local: Address, backlog: int = 128) -> TcpListener:
        """Listen on (address, ANY or ANY6, port); port 0 picks an ephemeral port. The two wildcards
        are apart, as sockets with IPV6_V6ONLY are: the asyncio face listens on both for a
        dual-stack socket."""
        addr, port = local
        port = checked_port(port)
        wildcard = unspecified(addr)
        if addr != wildcard and not self._node.is_local(addr):
            raise OSError(errno.EADDRNOTAVAIL, f"{format_ip(addr)} is not an address of this usernet interface")
        listeners = self._listeners
        if port == 0:
            port = self._port_alloc.allocate(self._ports)
        elif (
            (addr, port) in listeners
            or (wildcard, port) in listeners
            or (addr == wildcard and any(p == port and len(a) == len(addr) for a, p in listeners))
        ):
            raise OSError(errno.EADDRINUSE, f"TCP port {port} already has a listener")
        backlog = max(1, min(backlog, self.config.max_backlog))
        listener = TcpListener(self, (addr, port), backlog)
        self._listeners[(addr, port)] = listener
        self._ports.hold(port)
        return listener

    def connect(
        self, remote: Address, now: float, local: Address | None = None, fastopen: bool = False
    ) -> TcpConnection:
        """Start an active open; the SYN leaves at the next flush. Errors are raised here.

        `fastopen` asks for TCP Fast Open (RFC 7413) if the config's `fastopen` has the
        client bit (1), as Linux's TCP_FASTOPEN_CONNECT: with a cookie from this server
        remembered, the SYN waits for the first `send` and carries its data; without
        one, it leaves at once and asks for a cookie.
        """
        dst, dport = remote
        checked_port(dport, 1, "destination port")
        node = self._node
        if not node.is_unicast(dst):
            raise OSError(errno.ENETUNREACH, f"{format_ip(dst)} is not a unicast address")
        source = None
        port = 0
        if local is not None:
            port = checked_port(local[1])
            if len(local[0]) != len(dst):
                raise OSError(errno.EAFNOSUPPORT, no_route_message(dst, local[0]))
            if local[0] != unspecified(local[0]):
                if not node.is_local(local[0]):
                    raise OSError(
                        errno.EADDRNOTAVAIL, f"{format_ip(local[0])} is not an address of this usernet interface"
                    )
                source = local[0]
        route = node.route_to(dst, source)
        if route is None:
            raise OSError(errno.ENETUNREACH, no_route_message(dst, source))
        src = route.source
        if len(self._table) >= self.config.max_connections:
            raise OSError(errno.ENOBUFS, "too many TCP connections: raise TcpConfig.max_connections or close some")
        if port == 0:
            port = self._port_alloc.allocate(self._ports)
        elif (src, port, dst, dport) in self._table:
            raise OSError(
                errno.EADDRINUSE, f"a connection {format_ip(src)}:{port} -> {format_ip(dst)}:{dport} already exists"
            )
        conn = TcpConnection(self, route, (src, port), remote, now)
        self._add(conn)
        client_fastopen = fastopen and self.config.fastopen & 1
        conn.active_open(now, self._fastopen_cache.get(dst, (b"", 0)) if client_fastopen else None)
        self.touch(conn)
        return conn

    def forget_fastopen_cookies(self) -> None:
        """Drop every Fast Open cookie learnt from servers (the next connections ask again)."""
        self._fastopen_cache.clear()

    def connections(self) -> list[TcpConnection]:
        return list(self._table.values())

    def thaw_listener(self, frozen: dict[str, Any], now: float) -> TcpListener:
        """Listen again as a frozen listener did, its accept queue refilled with its thawed connections."""
        listener = self.listen(address(frozen, "local"), field(frozen, "backlog", int, "listener"))
        fastopen = frozen.get("fastopen", 0)  # not in the first blobs
        if not isinstance(fastopen, int) or fastopen < 0:
            raise MigrationError(f"a frozen listener's fastopen is {fastopen!r}, not a queue length: a damaged blob")
        listener.fastopen = fastopen
        options = frozen.get("options", {})  # not in the first blobs; some had their maxseg alone
        maxseg = frozen.get("maxseg", 0)
        if not isinstance(options, dict) or not isinstance(maxseg, int):
            raise MigrationError("a frozen listener's options are no map of names to values: a damaged blob")
        if maxseg:
            options = {"maxseg": maxseg, **options}
        for name, value in options.items():
            if not isinstance(name, str) or not isinstance(value, (int, float)):
                raise MigrationError(f"a frozen listener's option {name!r} is {value!r}: a damaged blob")
            try:
                listener.set_option(name, value)
            except ValueError as exc:
                raise MigrationError(f"a frozen listener's option: {exc}: a damaged blob") from None
        for conn in field(frozen, "queue", list, "listener"):
            if not isinstance(conn, dict):
                raise MigrationError("a frozen queued connection is not a map of fields: the blob is damaged")
            self.thaw_connection(conn, now, listener)
        return listener

    def thaw_connection(self, frozen: dict[str, Any], now: float, listener: TcpListener | None = None) -> TcpConnection:
        """A connection `TcpConnection.freeze` froze, now this layer's: in its tables, its timers filed,
        and with `listener`, waiting in that listener's accept queue."""
        local = address(frozen, "local")
        remote = address(frozen, "remote")
        node = self._node
        if local[0] not in node.local_addresses:
            raise MigrationError(
                f"a frozen connection is from {format_ip(local[0])}, not an address of this interface: thaw it "
                "on an interface with the old one's addresses"
            )
        if (local[0], local[1], remote[0], remote[1]) in self._table:
            raise MigrationError(
                f"a connection {format_ip(local[0])}:{local[1]} -> {format_ip(remote[0])}:{remote[1]} exists already"
            )
        route = node.route_to(remote[0], local[0])
        if route is None:
            raise MigrationError(
                f"no route to {format_ip(remote[0])} on this interface: give it the old one's networks"
            )
        conn = TcpConnection.thaw_on(self, route, frozen, now, listener)
        self._add(conn)
        if listener is not None:
            listener.established(conn)
        self._dirty[conn] = None
        return conn

    def listeners(self) -> list[TcpListener]:
        return list(self._listeners.values())

    # -- driver side -----------------------------------------------------------------------

    def receive(self, ip: IPv4Packet | IPv6Packet, now: float) -> None:
        """One TCP segment addressed to us (not a broadcast or multicast); `ip.payload` is the segment.

        The general path, for both families: what header prediction (`rx_ipv4_tcp`,
        `rx_ipv6_tcp`) did not take, or took for no connection.
        """
        stats = self._stats
        seg = ip.payload
        try:
            p = tcp_parse(seg)
        except NativeError:
            stats.tcp_malformed += 1
            return
        _, sport, dport, seq, _, header_length, flags, _, _, _, _, _, _, _, _, _ = p
        if not self._rx_trusted and (
            l4_checksum_v4(ip.src, ip.dst, _IPPROTO_TCP, seg)
            if len(ip.src) == 4
            else sum16(seg, pseudo_sum_v6(ip.src, ip.dst, _IPPROTO_TCP, len(seg))) != 0xFFFF
        ):
            stats.tcp_bad_checksum += 1
            return
        stats.tcp_rx_segments += 1
        payload = seg[header_length:]
        conn = self._table.get((ip.dst, dport, ip.src, sport))
        if conn is not None:
            if conn.state == _TIME_WAIT and flags & (SYN | ACK | RST) == SYN and self._reuse_time_wait(conn, seq, now):
                conn = None
            else:
                if ip.tos & 3 == 3:  # CE (RFC 3168): header prediction leaves these to this path
                    p = (*p[:6], flags | CE, *p[7:])
                fastopen = flags & SYN and conn.state == _SYN_SENT and conn.fastopen_requested
                conn.input(p, payload, now)
                if fastopen and conn.state != _SYN_SENT:
                    self._fastopen_learn(conn, fastopen_option(seg, header_length))
                self._dirty[conn] = None
                return
        listener = self._listeners.get((ip.dst, dport)) or self._listeners.get((unspecified(ip.dst), dport))
        if listener is not None:
            self._listen_input(listener, ip.dst, ip.src, seg, p, payload, now)
            return
        stats.tcp_no_socket += 1
        self._reset_reply(ip.dst, ip.src, p, len(payload), now)

    def receive_predicted(self, p: RxParsed, frame: bytes | bytearray | memoryview, now: float) -> bool:
        """A segment header prediction found valid, for a connection or a listener; False if it
        is for neither.

        What it skips is the general path's per-layer parsing and checks, all of which
        `rx_ipv4_tcp` or `rx_ipv6_tcp` did in C. A SYN for a listener is taken here too (a
        connection's birth, once per connection: the general path's second parse and checksum
        were a tenth of it); a segment for no socket (a stray one to answer with a RST) goes
        back to the general path, which handles it whole.
        """
        _, _, dport, seq, ack, hlen, flags, window, _, _, _, _, _, tsval, tsecr, sack, local, flow, start, length = p
        conn = self._flows.get(flow)
        if conn is None:
            return self._listen_predicted(p[:16], local, flow, dport, frame, start - hlen, start, length, now)
        if conn.flow_local != local:
            return False
        if flags & SYN:
            return False  # a new incarnation in TIME_WAIT, a SYN-ACK's options: the general path decides
        stats = self._stats
        stats.tcp_rx_segments += 1
        stats.tcp_rx_predicted += 1
        view = frame if type(frame) is memoryview else memoryview(frame)
        payload = view[start : start + length]
        if not conn.input_predicted(seq, ack, flags, window, tsval, tsecr, sack, payload, now):
            conn.input(p[:16], payload, now)  # layout.TCP_PARSED's 16; RX_TCP adds 4
        self._dirty[conn] = None
        return True

    def _listen_predicted(
        self,
        p: TcpParsed,
        local: int,
        flow: int,
        dport: int,
        frame: bytes | bytearray | memoryview,
        header_start: int,
        start: int,
        length: int,
        now: float,
    ) -> bool:
        """A predicted segment for no connection that a listener takes (a SYN, most of all): to
        `_listen_input` with the addresses the flow key and `local` carry, skipping the
        general path's second parse and checksum of what `rx_ipv4_tcp` (`rx_ipv6_tcp`) checked.
        False when no listener takes it (a RST to send, a closed port), or when our address is
        not its destination: the general path decides and counts those."""
        v6 = flow & IPV6_FLOW
        size = 16 if v6 else 4
        dst = local.to_bytes(size, "big")
        listeners = self._listeners
        listener = listeners.get((dst, dport)) or listeners.get((ANY6 if v6 else ANY, dport))
        if listener is None or not self._node.is_local(dst):
            return False
        src = ((flow ^ v6) >> 32).to_bytes(size, "big")
        end = start + length
        view = frame if type(frame) is memoryview else memoryview(frame)
        stats = self._stats
        stats.tcp_rx_segments += 1
        stats.tcp_rx_predicted += 1
        self._listen_input(listener, dst, src, view[header_start:end], p, view[start:end], now)
        return True

    def poll(self, now: float) -> None:
        """Run the timers that are due."""
        heap = self._heap
        dirty = self._dirty
        filed = self._filed
        while heap and heap[0][0] <= now:
            when, _, conn = heapq.heappop(heap)
            if filed.get(conn) != when:
                continue  # superseded by an earlier entry
            del filed[conn]
            if conn.state == _CLOSED:
                continue
            late = conn.on_timer(now)
            if late > self.max_timer_lateness:
                self.max_timer_lateness = late
            dirty[conn] = None

    def flush(self, now: float) -> None:
        """Each connection that changed sends what it has, then its timers are filed."""
        if not self._dirty:
            return
        dirty = self._dirty
        self._dirty = {}
        heap = self._heap
        filed = self._filed
        for conn in dirty:
            if conn.state == _CLOSED:
                continue
            conn.output(now)
            d = conn.deadline()
            if d is not None:
                at = filed.get(conn)
                if at is None or d < at:
                    filed[conn] = d
                    heapq.heappush(heap, (d, next(self._tie), conn))

    def next_deadline(self) -> float | None:
        heap = self._heap
        filed = self._filed
        while heap:
            when, _, conn = heap[0]
            if filed.get(conn) == when and conn.state != _CLOSED:
                return when
            heapq.heappop(heap)
        return None

    def icmp_error(
        self, quoted: IPv4Packet | IPv6Packet, sport: int, dport: int, code_errno: int, mtu: int, now: float
    ) -> bool:
        """An ICMP error about a segment we sent (`IcmpLayer.ErrorHandler`); `mtu` is set for "fragmentation needed"
        (or an ICMPv6 packet too big).

        True when it names a connection and a sequence number in flight (RFC 5927).
        """
        conn = self._table.get((quoted.src, sport, quoted.dst, dport))
        if conn is None or len(quoted.payload) < 8:
            return False
        seq = int.from_bytes(quoted.payload[4:8], "big")
        self._dirty[conn] = None
        return conn.icmp_error(code_errno, seq, mtu, now)

    # -- shared with connections and listeners -------------------------------------------

    def touch(self, conn: TcpConnection) -> None:
        """`conn` has something for the next flush to do, or its timers moved."""
        self._dirty[conn] = None

    def forget(self, conn: TcpConnection) -> None:
        """A connection reached CLOSED: out of the table (its heap entry is now stale)."""
        self._filed.pop(conn, None)
        flow = _flow_key(conn)
        if self._flows.get(flow) is conn:
            del self._flows[flow]
            if flow in self._shared_flows:
                self._hand_on_flow(flow, conn)
        if self._table.get(conn.key) is conn:
            del self._table[conn.key]
            self._ports.release(conn.local[1])
        listener = conn.listener
        if listener is not None:
            listener.forget(conn)

    def unlisten(self, listener: TcpListener) -> None:
        if self._listeners.get(listener.local) is listener:
            del self._listeners[listener.local]
            self._ports.release(listener.local[1])

    def challenge_allowed(self, now: float) -> bool:
        """RFC 5961 §7: at most `challenge_ack_limit` challenge ACKs per second, interface-wide."""
        if self._challenges.allow(now):
            return True
        self._stats.tcp_challenge_acks_limited += 1
        return False

    def send_reset(
        self, route: Route, local: Address, remote: Address, seq: int, ack: int, flags: int, now: float
    ) -> None:
        """A RST through `route` that belongs to no connection state (`ConnectionOwner.send_reset`)."""
        self._send_bare(route, local, remote, seq, ack, flags, 0, b"", now)
        self._stats.tcp_rst_sent += 1

    # -- internals -------------------------------------------------------------------------

    def _add(self, conn: TcpConnection) -> None:
        self._table[conn.key] = conn
        key = _flow_key(conn)
        addr = conn.local[0]
        local = self._local_keys.get(addr)
        if local is None:
            local = self._local_keys[addr] = int.from_bytes(addr, "big")
        conn.flow_local = local
        if self._flows.setdefault(key, conn) is not conn:
            self._shared_flows.add(key)
        port = conn.local[1]
        self._ports.hold(port)

    def _hand_on_flow(self, flow: int, gone: TcpConnection) -> None:
        """The holder of a shared flow key closed: the next connection with that key takes
        the predicted path. A scan of the table, but only for keys that were ever shared
        (the same remote endpoint and local port on two local addresses)."""
        others = [c for c in self._table.values() if c is not gone and c.state != _CLOSED and _flow_key(c) == flow]
        if others:
            self._flows[flow] = others[0]
        if len(others) < 2:
            self._shared_flows.discard(flow)

    def _reuse_time_wait(self, conn: TcpConnection, seq: int, now: float) -> bool:
        """A new SYN for a pair in TIME_WAIT may start a new connection if its sequence
        number is beyond the old one's (RFC 9293 §3.10.7.4, as Linux does)."""
        if seq_lt(seq, conn.rcv_nxt):
            return False
        conn.abort(now)
        return True

    def _listen_input(
        self,
        listener: TcpListener,
        dst: bytes,
        src: bytes,
        segment: memoryview,
        p: TcpParsed,
        payload: memoryview,
        now: float,
    ) -> None:
        """RFC 9293 §3.10.7.2, with SYN cookies when the SYN queue is full; `segment` (`p`
        parsed) came from `src` to our `dst`."""
        _, sport, dport, seq, ack, _, flags, _, _, _, peer_mss, _, _, _, _, _ = p
        stats = self._stats
        if flags & RST:
            return
        local = (dst, dport)
        remote = (src, sport)
        if flags & ACK:
            if not flags & SYN and self._cookie_ack(listener, local, remote, p, payload, now):
                return
            self._reset_to(local, remote, ack, 0, RST, now)
            return
        if not flags & SYN or not self._node.is_unicast(src):
            return
        if listener.draining:
            stats.tcp_syn_draining += 1
            return
        config = self.config
        room = listener.room(config.syn_backlog)  # nothing below changes the listener before it is used
        if room == _ACCEPT_FULL:
            stats.tcp_listen_overflow += 1
            return
        if len(self._table) >= config.max_connections:
            stats.tcp_conn_limit += 1
            return
        route = self._node.route_to(src, dst)
        if route is None:
            stats.ipv4_no_route += 1
            return
        if room == _SYN_FULL:
            if config.syn_cookies:
                self._send_cookie(listener, route, local, remote, seq, peer_mss, now)
            else:
                stats.tcp_syn_queue_full += 1
            return
        if route.source == local[0]:
            local = (route.source, dport)  # the interface's own bytes, not each SYN's copy
        conn = TcpConnection(self, route, local, remote, now, listener)
        listener.adopt(conn)
        self._add(conn)
        for name, value in listener.options.items():
            conn.set_option(name, value)
        conn.passive_open(p, now)
        if config.fastopen & 2 and listener.fastopen:
            self._fastopen_passive(listener, conn, fastopen_option(segment, p[5]), payload, now)
        self._dirty[conn] = None

    def _fastopen_passive(
        self, listener: TcpListener, conn: TcpConnection, cookie: bytes | None, payload: memoryview, now: float
    ) -> None:
        """Server Fast Open (RFC 7413 §4.3): a valid cookie lets the SYN's data in, and the
        connection into the accept queue at once; a request or a bad cookie earns a fresh
        one in the SYN-ACK, whose ACK then covers the SYN alone (the client sends the data again)."""
        if cookie is None:
            return
        stats = self._stats
        client, server = conn.remote[0], conn.local[0]
        cookies = self.fastopen_cookies
        if cookie and cookies.valid(now, client, server, cookie):
            if not payload:
                return  # nothing to hurry: an ordinary handshake
            if not listener.fastopen_room:
                stats.tcp_fastopen_overflow += 1
                return
            conn.take_syn_data(payload, now)
            listener.accept_early(conn)
            stats.tcp_fastopen_passive += 1
            return
        if cookie:
            stats.tcp_fastopen_cookie_invalid += 1
        else:
            stats.tcp_fastopen_cookie_requests += 1
        conn.offer_fastopen_cookie(cookies.make(now, client, server))

    def _fastopen_learn(self, conn: TcpConnection, cookie: bytes | None) -> None:
        """Client Fast Open: remember the cookie a server's SYN-ACK gave (with its MSS, which
        bounds the next SYN's data), as Linux's tcp_fastopen_cache_set."""
        if not cookie:
            return
        cache = self._fastopen_cache
        if len(cache) >= _FASTOPEN_CACHE_LIMIT:
            cache.pop(next(iter(cache)))
        cache[conn.remote[0]] = (cookie, conn.peer_mss)

    def _send_cookie(
        self, listener: TcpListener, route: Route, local: Address, remote: Address, seq: int, peer_mss: int, now: float
    ) -> None:
        """A stateless SYN-ACK whose ISN encodes the MSS; no other option survives."""
        mss_limit = min(self.config.mss or 65495, route.mss)
        if peer_mss <= 0:
            peer_mss = 536  # RFC 9293 §3.7.1, when the peer sends no MSS option
        cookie = self.cookies.encode(now, local[0], local[1], remote[0], remote[1], seq, min(peer_mss, mss_limit))
        window = min(self.config.rcvbuf, 65535)
        self._send_bare(
            route.with_ttl(listener.options.get("ttl", 0)),
            local,
            remote,
            cookie,
            seq_add(seq, 1),
            SYN | ACK,
            window,
            encode_tcp_options(mss=mss_limit),
            now,
        )
        listener.cookie_sent(now)
        self._stats.tcp_syn_cookies_sent += 1

    def _cookie_ack(
        self,
        listener: TcpListener,
        local: Address,
        remote: Address,
        p: TcpParsed,
        payload: memoryview,
        now: float,
    ) -> bool:
        """Complete a handshake from a cookie; True if the ACK carried a valid one."""
        _, _, _, seq, ack, _, flags, _, _, _, _, _, _, _, _, _ = p
        cookies = self.cookies
        if not listener.cookies_sent_since(now - cookies.period * (cookies.max_age + 1)):
            return False  # no cookies sent lately: do not let blind ACKs guess one
        mss = cookies.validate(now, local[0], local[1], remote[0], remote[1], seq, ack)
        if mss is None:
            self._stats.tcp_syn_cookies_invalid += 1
            return False
        if listener.full or len(self._table) >= self.config.max_connections:
            self._stats.tcp_listen_overflow += 1
            return True  # dropped: the client retransmits or times out
        route = self._node.route_to(remote[0], local[0])
        if route is None:
            return True
        self._stats.tcp_syn_cookies_valid += 1
        if route.source == local[0]:
            local = (route.source, local[1])  # the interface's own bytes, as in `_listen_input`
        conn = TcpConnection(self, route, local, remote, now, listener)
        self._add(conn)
        for name, value in listener.options.items():
            conn.set_option(name, value)
        conn.cookie_open(p, mss, now)
        if payload or flags & FIN:
            conn.input(p, payload, now)
        self._dirty[conn] = None
        return True

    def _reset_reply(self, local_ip: bytes, remote_ip: bytes, p: TcpParsed, length: int, now: float) -> None:
        """RFC 9293 §3.10.7.1: answer a segment for no connection, unless it is a RST; at most
        `reset_limit` a second, so a scan or a flood to closed ports cannot make us a reflector."""
        _, sport, dport, seq, ack, _, flags, _, _, _, _, _, _, _, _, _ = p
        if flags & RST or not self._node.is_unicast(remote_ip):
            return
        if not self._closed_port_resets.allow(now):
            self._stats.tcp_rst_limited += 1
            return
        local = (local_ip, dport)
        remote = (remote_ip, sport)
        if flags & ACK:
            self._reset_to(local, remote, ack, 0, RST, now)
        else:
            seglen = length + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            self._reset_to(local, remote, 0, seq_add(seq, seglen), RST | ACK, now)

    def _reset_to(self, local: Address, remote: Address, seq: int, ack: int, flags: int, now: float) -> None:
        """A RST for a segment that no connection owns: routed here, from the address it came to."""
        route = self._node.route_to(remote[0], local[0])
        if route is None:
            self._stats.ipv4_no_route += 1
            return
        self.send_reset(route, local, remote, seq, ack, flags, now)

    def _send_bare(
        self,
        route: Route,
        local: Address,
        remote: Address,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        options: bytes,
        now: float,
    ) -> None:
        """A segment that belongs to no connection state (RSTs, cookie SYN-ACKs)."""
        frame = bytearray(route.headroom + 20 + len(options))
        route.send_tcp(frame, local[1], remote[1], seq, ack, flags, window, options, b"", CSUM_FULL, now)
        self._stats.tcp_tx_segments += 1


def _flow_key(conn: TcpConnection) -> int:
    """The key `rx_ipv4_tcp` (`rx_ipv6_tcp`) computes for the connection's incoming segments.

    An IPv6 connection's key has bit 160 (`IPV6_FLOW`) set: above any IPv4 key (< 2**64),
    so the two families never share one.
    """
    remote = conn.remote
    key = (int.from_bytes(remote[0], "big") << 32) | (remote[1] << 16) | conn.local[1]
    return key if len(remote[0]) == 4 else key | IPV6_FLOW
