"""ICMPv4 (RFC 792, RFC 1122 §3.2.2): echo, rate-limited errors, errors delivered to sockets."""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable
from typing import Protocol

from usernet.native import internet_checksum
from usernet.stack.node import Node
from usernet.stack.ratelimit import TokenBucket
from usernet.stack.route import Route
from usernet.wire import (
    ICMP_DEST_UNREACH,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    ICMP_TIME_EXCEEDED,
    IPPROTO_ICMP,
    UNREACH_FRAG_NEEDED,
    IcmpMessage,
    IPv4Packet,
    MalformedPacket,
    emit_icmp,
    is_icmp_error,
    parse_datagram_head,
    parse_icmp,
    parse_quoted,
)

# Where an ICMP error about one of our datagrams goes, by the quoted protocol:
# (quoted IP header and payload start, our port, their port, errno, next-hop MTU or 0, now)
# -> whether the quote names a socket of ours (for TCP: a connection, and a sequence number
# it has sent and not had acknowledged: RFC 5927 §4.1), which a path MTU change needs.
ErrorHandler = Callable[[IPv4Packet, int, int, int, int, float], bool]
# RFC 1812 §4.3.2.3: quote as much of the offending datagram as fits in 576 bytes.
_MAX_QUOTE = 576 - 20 - 8

# What a kernel socket reports for each ICMP error (Linux's icmp_err_convert).
_UNREACH_ERRNO = {
    0: errno.ENETUNREACH,
    1: errno.EHOSTUNREACH,
    2: errno.ENOPROTOOPT,
    3: errno.ECONNREFUSED,
    4: errno.EMSGSIZE,
    5: errno.EOPNOTSUPP,
}


class EchoLayer(Protocol):
    """What a ping socket needs from its ICMP layer (ICMPv4's, or ICMPv6's in icmpv6.py)."""

    def send_echo(self, dst: bytes, ident: int, sequence: int, payload: bytes, now: float) -> None: ...

    def close_ping(self, sock: PingSocket) -> None: ...


class PingSocket:
    """An echo client endpoint: sends echo requests with its identifier, collects replies."""

    __slots__ = ("_layer", "closed", "ident", "replies")

    def __init__(self, layer: EchoLayer, ident: int) -> None:
        self._layer = layer
        self.ident = ident
        self.replies: deque[tuple[bytes, int, bytes, int]] = deque(maxlen=1024)
        self.closed = False

    def send(self, dst: bytes, sequence: int, payload: bytes, now: float) -> None:
        """Send one echo request. Raises OSError(ENETUNREACH) when nothing routes to `dst`."""
        self._layer.send_echo(dst, self.ident, sequence, payload, now)

    def receive(self) -> tuple[bytes, int, bytes, int] | None:
        """The oldest reply as (source, sequence, payload, ttl or hop limit), or None."""
        return self.replies.popleft() if self.replies else None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._layer.close_ping(self)


NO_ROUTE = "no route to the destination: it is on no usernet network and no gateway is set"


class PingTable:
    """The echo client sockets of one ICMP layer (ICMPv4's or ICMPv6's), by identifier."""

    __slots__ = ("_layer", "_pings", "_what")

    def __init__(self, layer: EchoLayer, what: str) -> None:
        self._layer = layer
        self._what = what
        self._pings: dict[int, PingSocket] = {}

    def open(self, ident: int | None) -> PingSocket:
        """A socket with identifier `ident` (a free one when None)."""
        if ident is None:
            ident = next(i for i in range(1, 65536) if i not in self._pings)
        if ident in self._pings:
            raise OSError(errno.EADDRINUSE, f"{self._what} echo identifier {ident} is in use")
        sock = self._pings[ident] = PingSocket(self._layer, ident)
        return sock

    def get(self, ident: int) -> PingSocket | None:
        return self._pings.get(ident)

    def close(self, sock: PingSocket) -> None:
        if self._pings.get(sock.ident) is sock:
            del self._pings[sock.ident]


class IcmpLayer:
    """Echo, errors we send (rate-limited) and errors we receive, handed to the protocol they quote.

    The transports register for the errors about their datagrams (`on_error`), so ICMP
    knows no transport: it parses the quote and calls whoever asked.
    """

    def __init__(self, node: Node) -> None:
        self._node = node
        self._stats = node.counters
        cfg = node.config
        self._budget = TokenBucket(cfg.icmp_error_rate, cfg.icmp_error_burst)  # RFC 1812 §4.3.2.8
        self._pings = PingTable(self, "ICMP")
        self._error_handlers: dict[int, ErrorHandler] = {}

    def on_error(self, protocol: int, handler: ErrorHandler) -> None:
        """Hand ICMP errors quoting a datagram of `protocol` (IPPROTO_TCP, IPPROTO_UDP) to `handler`."""
        self._error_handlers[protocol] = handler

    def send_echo(self, dst: bytes, ident: int, sequence: int, payload: bytes, now: float) -> None:
        """An echo request from a ping socket; OSError(ENETUNREACH) when nothing routes to `dst`."""
        route = self._node.route_to(dst)
        if route is None:
            raise OSError(errno.ENETUNREACH, NO_ROUTE)
        _send_icmp(route, ICMP_ECHO_REQUEST, 0, (ident << 16) | (sequence & 0xFFFF), payload, now)

    def receive(self, ip: IPv4Packet, now: float) -> None:
        """Handle an ICMP message addressed to us."""
        stats = self._stats
        if internet_checksum(ip.payload) != 0:
            stats.icmp_bad_checksum += 1
            return
        try:
            msg = parse_icmp(ip.payload, verify_checksum=False)
        except MalformedPacket:
            stats.icmp_malformed += 1
            return
        kind = msg.type
        if kind == ICMP_ECHO_REQUEST:
            self._echo_reply(ip, msg.rest, msg.payload, now)
        elif kind == ICMP_ECHO_REPLY:
            sock = self._pings.get(msg.ident)
            if sock is None:
                stats.icmp_unhandled += 1
                return
            sock.replies.append((ip.src, msg.sequence, bytes(msg.payload), ip.ttl))
            self._node.mark_ready(sock)
        elif kind in (ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED):
            self._deliver_error(msg.type, msg.code, msg, now)
        else:
            stats.icmp_unhandled += 1

    def _echo_reply(self, ip: IPv4Packet, rest: int, payload: memoryview, now: float) -> None:
        route = self._node.route_to(ip.src, ip.dst)
        if route is None:
            self._stats.ipv4_no_route += 1
            return
        _send_icmp(route, ICMP_ECHO_REPLY, 0, rest, payload, now)
        self._stats.icmp_echo_answered += 1

    def _deliver_error(self, kind: int, code: int, msg: IcmpMessage, now: float) -> None:
        stats = self._stats
        try:
            quoted, sport, dport = parse_quoted(msg)
        except MalformedPacket:
            stats.icmp_malformed += 1
            return
        stats.icmp_errors_received += 1
        handler = self._error_handlers.get(quoted.protocol)
        if handler is None:
            stats.icmp_unhandled += 1
            return
        err = _UNREACH_ERRNO.get(code, errno.EHOSTUNREACH) if kind == ICMP_DEST_UNREACH else errno.EHOSTUNREACH
        mtu = 0
        if kind == ICMP_DEST_UNREACH and code == UNREACH_FRAG_NEEDED:
            # Path MTU discovery (RFC 1191): an MTU of 0 (a pre-1191 router) or below the
            # floor is not acted on at all, as Linux's min_pmtu (RFC 5927 §5.2).
            mtu = msg.next_hop_mtu
            path_mtu = self._node.path_mtu
            if not path_mtu.acceptable(mtu):
                stats.ipv4_pmtu_ignored += 1
                return
            if handler(quoted, sport, dport, err, mtu, now) and path_mtu.lower(quoted.dst, mtu, now):
                stats.ipv4_pmtu_lowered += 1
            return
        handler(quoted, sport, dport, err, mtu, now)

    def undeliverable(self, datagram: memoryview, next_hop: bytes, now: float) -> None:
        """One of our datagrams whose next hop never answered ARP: its socket hears EHOSTUNREACH.

        Linux's ARP sends itself an ICMP host unreachable for each packet it drops so
        (arp_error_report), which fails a connect in SYN-SENT with "No route to host" once
        the ARP retries run out, instead of after two minutes of SYNs to nobody. A datagram
        whose destination no longer routes through `next_hop` (a new gateway since) is not
        news for its socket, which already sends the other way.
        """
        try:
            ip, sport, dport = parse_datagram_head(datagram)
        except MalformedPacket:
            return  # not a datagram a transport sent (the link held nothing else)
        handler = self._error_handlers.get(ip.protocol)
        route = self._node.route_to(ip.dst, ip.src)
        if handler is not None and route is not None and route.next_hop == next_hop:
            handler(ip, sport, dport, errno.EHOSTUNREACH, 0, now)

    def send_error(self, kind: int, code: int, ip: IPv4Packet, datagram: memoryview, now: float) -> None:
        """Answer `datagram` with an ICMP error, unless RFC 1122 §3.2.2 forbids it or the rate limit says no.

        `datagram` may run past `ip.total_length` (link padding): only the datagram is quoted,
        and the slice is made here, on the rare error path, not for every frame received.
        """
        node = self._node
        if ip.fragment_offset or node.is_broadcast(ip.dst) or not node.is_unicast(ip.src):
            return
        if ip.protocol == IPPROTO_ICMP and is_icmp_error(ip.payload):
            return
        if not self._budget.allow(now):
            self._stats.icmp_errors_rate_limited += 1
            return
        route = node.route_to(ip.src, ip.dst if node.is_local(ip.dst) else None)
        if route is None:
            self._stats.ipv4_no_route += 1
            return
        _send_icmp(route, kind, code, 0, datagram[: min(ip.total_length, _MAX_QUOTE)], now)
        self._stats.icmp_errors_sent += 1

    def open_ping(self, ident: int | None = None) -> PingSocket:
        """An echo client with identifier `ident` (a free one when None)."""
        return self._pings.open(ident)

    def close_ping(self, sock: PingSocket) -> None:
        self._pings.close(sock)


def _send_icmp(route: Route, kind: int, code: int, rest: int, payload: bytes | memoryview, now: float) -> None:
    """Write an ICMP message behind the route's headers and send it."""
    size = 8 + len(payload)
    frame = bytearray(route.headroom + size)
    emit_icmp(frame, route.headroom, kind, code, rest, payload)
    route.send_datagram(frame, IPPROTO_ICMP, size, now)
