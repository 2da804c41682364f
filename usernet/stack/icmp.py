"""ICMPv4 (RFC 792, RFC 1122 §3.2.2): echo, rate-limited errors, errors delivered to sockets."""

from __future__ import annotations

import errno
import os
from collections import deque
from typing import TYPE_CHECKING

from usernet.native import internet_checksum
from usernet.wire import (
    ICMP_DEST_UNREACH,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    ICMP_TIME_EXCEEDED,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPv4Packet,
    MalformedPacket,
    emit_icmp,
    parse_icmp,
    parse_quoted,
)

if TYPE_CHECKING:
    from usernet.stack.interface import Interface

_HEADROOM = 14 + 20
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


class PingSocket:
    """An echo client endpoint: sends echo requests with its identifier, collects replies."""

    __slots__ = ("_iface", "closed", "ident", "replies")

    def __init__(self, iface: Interface, ident: int) -> None:
        self._iface = iface
        self.ident = ident
        self.replies: deque[tuple[bytes, int, bytes, int]] = deque(maxlen=1024)
        self.closed = False

    def send(self, dst: bytes, sequence: int, payload: bytes, now: float) -> None:
        """Send one echo request. Raises OSError(ENETUNREACH) when nothing routes to `dst`."""
        iface = self._iface
        route = iface.route(dst)
        if route is None:
            raise OSError(
                errno.ENETUNREACH, "no route to the destination: it is on no usernet network and no gateway is set"
            )
        size = 8 + len(payload)
        frame = bytearray(_HEADROOM + size)
        emit_icmp(frame, _HEADROOM, ICMP_ECHO_REQUEST, 0, (self.ident << 16) | (sequence & 0xFFFF), payload)
        iface.send_ipv4(frame, route[1], dst, IPPROTO_ICMP, size, route[0], now)

    def receive(self) -> tuple[bytes, int, bytes, int] | None:
        """The oldest reply as (source, sequence, payload, ttl), or None."""
        return self.replies.popleft() if self.replies else None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._iface.icmp.close_ping(self)


class IcmpLayer:
    def __init__(self, iface: Interface) -> None:
        self._iface = iface
        self._stats = iface.counters
        cfg = iface.config
        self._rate = cfg.icmp_error_rate
        self._burst = float(cfg.icmp_error_burst)
        self._tokens = self._burst
        self._refilled = 0.0
        self._pings: dict[int, PingSocket] = {}

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
            self._iface.mark_ready(sock)
        elif kind == ICMP_DEST_UNREACH or kind == ICMP_TIME_EXCEEDED:
            self._deliver_error(msg.type, msg.code, msg, now)
        else:
            stats.icmp_unhandled += 1

    def _echo_reply(self, ip: IPv4Packet, rest: int, payload: memoryview, now: float) -> None:
        iface = self._iface
        route = iface.route(ip.src)
        if route is None:
            self._stats.ipv4_no_route += 1
            return
        size = 8 + len(payload)
        frame = bytearray(_HEADROOM + size)
        emit_icmp(frame, _HEADROOM, ICMP_ECHO_REPLY, 0, rest, payload)
        iface.send_ipv4(frame, ip.dst, ip.src, IPPROTO_ICMP, size, route[0], now)
        self._stats.icmp_echo_answered += 1

    def _deliver_error(self, kind: int, code: int, msg: object, now: float) -> None:
        stats = self._stats
        try:
            quoted, sport, dport = parse_quoted(msg)  # type: ignore[arg-type]
        except MalformedPacket:
            stats.icmp_malformed += 1
            return
        stats.icmp_errors_received += 1
        err = _UNREACH_ERRNO.get(code, errno.EHOSTUNREACH) if kind == ICMP_DEST_UNREACH else errno.EHOSTUNREACH
        if quoted.protocol == IPPROTO_TCP:
            mtu = msg.next_hop_mtu if kind == ICMP_DEST_UNREACH and code == 4 else 0  # type: ignore[attr-defined]
            self._iface.tcp.icmp_error(quoted, sport, dport, err, now, mtu=mtu)
            return
        if quoted.protocol != IPPROTO_UDP:
            stats.icmp_unhandled += 1
            return
        sock = self._iface.udp.lookup(quoted.src, sport)
        if sock is None or sock.remote != (quoted.dst, dport):
            return  # like Linux: unconnected sockets are not told
        sock.errors.append(OSError(err, os.strerror(err)))
        self._iface.mark_ready(sock)

    def send_error(self, kind: int, code: int, ip: IPv4Packet, datagram: memoryview, now: float) -> None:
        """Answer `datagram` with an ICMP error, unless RFC 1122 §3.2.2 forbids it or the rate limit says no.

        `datagram` may run past `ip.total_length` (link padding): only the datagram is quoted,
        and the slice is made here, on the rare error path, not for every frame received.
        """
        iface = self._iface
        if ip.fragment_offset or iface.is_broadcast(ip.dst) or not iface.is_unicast(ip.src):
            return
        if ip.protocol == IPPROTO_ICMP and _is_icmp_error(ip.payload):
            return
        tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if tokens < 1.0:
            self._tokens = tokens
            self._stats.icmp_errors_rate_limited += 1
            return
        self._tokens = tokens - 1.0
        route = iface.route(ip.src)
        if route is None:
            self._stats.ipv4_no_route += 1
            return
        quote = datagram[: min(ip.total_length, _MAX_QUOTE)]
        size = 8 + len(quote)
        frame = bytearray(_HEADROOM + size)
        emit_icmp(frame, _HEADROOM, kind, code, 0, quote)
        iface.send_ipv4(
            frame, ip.dst if iface.is_local(ip.dst) else route[1], ip.src, IPPROTO_ICMP, size, route[0], now
        )
        self._stats.icmp_errors_sent += 1

    def open_ping(self, ident: int | None = None) -> PingSocket:
        """An echo client with identifier `ident` (a free one when None)."""
        if ident is None:
            ident = next(i for i in range(1, 65536) if i not in self._pings)
        if ident in self._pings:
            raise OSError(errno.EADDRINUSE, f"ICMP echo identifier {ident} is in use")
        sock = self._pings[ident] = PingSocket(self._iface, ident)
        return sock

    def close_ping(self, sock: PingSocket) -> None:
        if self._pings.get(sock.ident) is sock:
            del self._pings[sock.ident]


def _is_icmp_error(payload: memoryview) -> bool:
    """True for ICMP messages no error may be sent about: errors themselves (RFC 1122 §3.2.2)."""
    return bool(payload) and payload[0] not in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY, 13, 14, 15, 16, 17, 18)
