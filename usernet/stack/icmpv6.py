"""ICMPv6 (RFC 4443) apart from Neighbor Discovery: echo both ways, and the errors we send.

Errors follow §2.4: none about an error, none from a multicast destination except
packet too big and an unrecognised option with action 10, none to a source that is
not a unicast address; a token bucket (`icmp_error_rate`/`icmp_error_burst`, shared
values with ICMPv4) bounds how many leave. An error quotes as much of the offending
packet as fits in the minimum MTU of 1280 bytes.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TypeAlias

from usernet.stack.config import InterfaceConfig
from usernet.stack.icmp import NO_ROUTE, PingSocket, PingTable
from usernet.stack.ratelimit import TokenBucket
from usernet.stack.route import Route
from usernet.stack.stats import Stats
from usernet.wire import MalformedPacket
from usernet.wire.icmp import IcmpMessage
from usernet.wire.icmpv6 import (
    ICMPV6_DEST_UNREACH,
    ICMPV6_ECHO_REPLY,
    ICMPV6_ECHO_REQUEST,
    ICMPV6_PACKET_TOO_BIG,
    ICMPV6_PARAM_PROBLEM,
    UNREACH6_PORT,
    emit_icmpv6,
    is_icmpv6_error,
    parse_packet_head_v6,
    parse_quoted_v6,
)
from usernet.wire.ipv6 import IPPROTO_ICMPV6, IPV6_MIN_MTU, PARAM_BAD_OPTION, IPv6Packet, with_upper

RouteTo = Callable[[bytes, bytes | None], Route | None]
# Where an ICMPv6 error about one of our packets goes, by the quoted upper protocol, as
# icmp.ErrorHandler: (quoted header with the upper layer as payload, our port, their
# port, errno, MTU of a packet too big or 0, now).
# It says True when the quoted packet is one of ours in flight, so a packet too big may apply.
ErrorHandler: TypeAlias = Callable[[IPv6Packet, int, int, int, int, float], bool]
LowerPath = Callable[[bytes, int, float], bool]
# What a kernel socket reports for each error (Linux's icmpv6_err_convert).
_UNREACH_ERRNO = (
    errno.ENETUNREACH,
    errno.EACCES,
    errno.EHOSTUNREACH,
    errno.EHOSTUNREACH,
    errno.ECONNREFUSED,
    errno.EACCES,
    errno.EACCES,
)
_MAX_QUOTE = 1280 - 40 - 8  # RFC 4443 §2.4 c: the error must fit the minimum IPv6 MTU


class Icmpv6Layer:
    """Echo requests answered, echo replies to ping sockets, errors sent rate-limited and counted."""

    def __init__(
        self,
        config: InterfaceConfig,
        stats: Stats,
        route_to: RouteTo,
        mark_ready: Callable[[object], None],
        lower_path: LowerPath,
    ) -> None:
        self._stats = stats
        self._lower_path = lower_path
        self._route_to = route_to
        self._mark_ready = mark_ready
        self._budget = TokenBucket(config.icmp_error_rate, config.icmp_error_burst)  # RFC 4443 §2.4 f
        self._pings = PingTable(self, "ICMPv6")
        self._error_handlers: dict[int, ErrorHandler] = {}

    def on_error(self, protocol: int, handler: ErrorHandler) -> None:
        """Hand ICMPv6 errors quoting a packet of `protocol` (IPPROTO_TCP, IPPROTO_UDP) to `handler`."""
        self._error_handlers[protocol] = handler

    def receive(self, ip: IPv6Packet, msg: IcmpMessage, local: bool, now: float) -> None:
        """A checked ICMPv6 message that is not NDP; `local` says `ip.dst` is one of our unicast addresses."""
        kind = msg.type
        stats = self._stats
        if kind == ICMPV6_ECHO_REQUEST:
            route = self._route_to(ip.src, ip.dst if local else None)
            if route is None:
                stats.ipv6_no_route += 1
                return
            _send(route, ICMPV6_ECHO_REPLY, 0, msg.rest, msg.payload, now)
            stats.icmpv6_echo_answered += 1
        elif kind == ICMPV6_ECHO_REPLY:
            sock = self._pings.get(msg.ident)
            if sock is None:
                stats.icmpv6_unhandled += 1
                return
            sock.replies.append((ip.src, msg.sequence, bytes(msg.payload), ip.hop_limit))
            self._mark_ready(sock)
        elif is_icmpv6_error(kind):
            self._deliver_error(msg, now)
        else:
            stats.icmpv6_unhandled += 1

    def _deliver_error(self, msg: IcmpMessage, now: float) -> None:
        stats = self._stats
        try:
            quoted, upper, sport, dport = parse_quoted_v6(msg)
        except ValueError:
            stats.icmpv6_malformed += 1
            return
        stats.icmpv6_errors_received += 1
        handler = self._error_handlers.get(upper.protocol)
        if handler is None:
            stats.icmpv6_unhandled += 1
            return
        kind = msg.type
        if kind == ICMPV6_DEST_UNREACH:
            err = _UNREACH_ERRNO[msg.code] if msg.code < len(_UNREACH_ERRNO) else errno.EHOSTUNREACH
        elif kind == ICMPV6_PACKET_TOO_BIG:
            # RFC 8201: the path toward the quoted destination shrinks (never below 1280) when
            # the transport confirms the quote is one of its packets in flight (RFC 5927)
            mtu = max(msg.rest, IPV6_MIN_MTU)
            if handler(with_upper(quoted, upper), sport, dport, errno.EMSGSIZE, mtu, now) and self._lower_path(
                quoted.dst, mtu, now
            ):
                stats.ipv6_pmtu_lowered += 1
            return
        elif kind == ICMPV6_PARAM_PROBLEM:
            err = errno.EPROTO
        else:
            err = errno.EHOSTUNREACH  # time exceeded, and error types RFC 4443 leaves unassigned
        handler(with_upper(quoted, upper), sport, dport, err, 0, now)

    def undeliverable(self, packet: memoryview, next_hop: bytes, now: float) -> None:
        """One of our packets whose next hop never answered neighbour solicitation: its socket
        hears EHOSTUNREACH, as from an ICMPv6 address unreachable (RFC 4861 §7.2.2; Linux's
        ndisc_error_report), unless its destination has routed elsewhere since (see
        `IcmpLayer.undeliverable`)."""
        try:
            ip, upper, sport, dport = parse_packet_head_v6(packet)
        except MalformedPacket:
            return  # not a packet a transport sent
        handler = self._error_handlers.get(upper.protocol)
        route = self._route_to(ip.dst, ip.src)
        if handler is not None and route is not None and route.next_hop == next_hop:
            handler(with_upper(ip, upper), sport, dport, errno.EHOSTUNREACH, 0, now)

    def port_unreachable(self, ip: IPv6Packet, packet: memoryview, now: float) -> None:
        """Answer a datagram for a port nobody listens on."""
        self.send_error(ICMPV6_DEST_UNREACH, UNREACH6_PORT, 0, ip, packet, now)

    def send_error(self, kind: int, code: int, rest: int, ip: IPv6Packet, packet: memoryview, now: float) -> None:
        """Answer `packet` (parsed as `ip`) with an error, unless RFC 4443 §2.4 forbids it or the rate limit says no."""
        src = ip.src
        if src[0] == 0xFF or src == bytes(16):
            return
        if ip.dst[0] == 0xFF and not (
            kind == ICMPV6_PACKET_TOO_BIG or (kind == ICMPV6_PARAM_PROBLEM and code == PARAM_BAD_OPTION)
        ):
            return
        if ip.next_header == IPPROTO_ICMPV6 and ip.payload and is_icmpv6_error(ip.payload[0]):
            return
        if not self._budget.allow(now):
            self._stats.icmpv6_errors_rate_limited += 1
            return
        route = self._route_to(src, None if ip.dst[0] == 0xFF else ip.dst)
        if route is None:
            self._stats.ipv6_no_route += 1
            return
        _send(route, kind, code, rest, packet[: min(40 + ip.payload_length, _MAX_QUOTE)], now)
        self._stats.icmpv6_errors_sent += 1

    # -- ping sockets (usernet.stack.icmp.EchoLayer) ----------------------------------------

    def open_ping(self, ident: int | None = None) -> PingSocket:
        """An ICMPv6 echo client with identifier `ident` (a free one when None)."""
        return self._pings.open(ident)

    def send_echo(self, dst: bytes, ident: int, sequence: int, payload: bytes, now: float) -> None:
        route = self._route_to(dst, None)
        if route is None:
            raise OSError(errno.ENETUNREACH, NO_ROUTE)
        _send(route, ICMPV6_ECHO_REQUEST, 0, (ident << 16) | (sequence & 0xFFFF), payload, now)

    def close_ping(self, sock: PingSocket) -> None:
        self._pings.close(sock)


def _send(route: Route, kind: int, code: int, rest: int, payload: bytes | memoryview, now: float) -> None:
    size = 8 + len(payload)
    frame = bytearray(route.headroom + size)
    emit_icmpv6(frame, route.headroom, route.source, route.destination, kind, code, rest, payload)
    route.send_datagram(frame, IPPROTO_ICMPV6, size, now)
