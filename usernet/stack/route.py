"""The egress seam: what a socket needs to send to one destination, handed out by the interface.

A connection or socket asks its interface once for a `Route` to its peer and keeps it,
the way Linux caches a `dst_entry` in a socket. The route holds everything below the
transport header: the next hop and source address, the link-layer header (or none on an
IP-only link), the IP header template, the ident counter, the MTU and the offloads the
link offers. TCP and UDP hand it their own header's fields only (`send_tcp`, `send_udp`);
`native.build_tcp`/`build_udp` put the route's two templates in front of that header in
the same C call, so the transport code is the same whatever the encapsulation
(Ethernet+IPv4, Ethernet+IPv6: another template; bare IP: another `deliver`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from usernet.native import CSUM_FULL, BytesLike, build_tcp, build_udp
from usernet.stack.fragments import ipv4_fragments
from usernet.stack.ipv6_fragments import ipv6_fragments
from usernet.stack.pmtu import PathMtu
from usernet.wire import IPPROTO_UDP, emit_ipv4_header
from usernet.wire.ipv6 import emit_ipv6_header

# How a built frame leaves: (frame, next hop, source address, now) -> None. On Ethernet it
# resolves the next hop's MAC into bytes 0-5 (ARP) and queues the frame.
Deliver = Callable[[bytearray, bytes, bytes, float], None]

IPV4_HEADER = 20
TCP_HEADER = 20
UDP_HEADER = 8
_ZERO = bytearray(1)  # repeated to a new frame's length: `_ZERO * n` is n zero bytes, made by one memset
ECT0 = 0x02  # RFC 3168's ECT(0) codepoint in the ECN field, the IP header's second byte's low bits


def ipv4_template(src: bytes, dst: bytes, ttl: int) -> bytes:
    """An IPv4 header with DF set whose length, ident, protocol and checksum the builder fills."""
    return bytes((0x45, 0, 0, 0, 0, 0, 0x40, 0, ttl, 0, 0, 0)) + src + dst


def ipv6_template(src: bytes, dst: bytes, hop_limit: int) -> bytes:
    """An IPv6 header whose payload length and next header the builder fills."""
    return bytes((0x60, 0, 0, 0, 0, 0, 0, hop_limit)) + src + dst


def ect_template(ip_header: bytes) -> bytes:
    """The same IP header template with ECT(0) in its ECN field (IPv4's TOS byte; IPv6's traffic
    class straddles bytes 0-1, its ECN bits are bits 5-4 of byte 1)."""
    out = bytearray(ip_header)
    out[1] |= ECT0 if out[0] >> 4 == 4 else ECT0 << 4
    return bytes(out)


class Route:
    """One destination as seen from one source address: templates, limits and the way out.

    Routes never change while the interface lives (its gateway and MTU are fixed, and so
    are its addresses but for `Interface.readdress_ipv4`, which ends or re-routes the
    sockets that kept a route), so a socket may keep one for its whole life. Only the path MTU moves: `mtu`
    is the destination's shared `PathMtu` (the link's MTU until an ICMP lowers it, see
    pmtu.py), so every route to it follows. The MSS a TCP connection may offer or send
    follows from `mtu` and the header sizes here, not from constants in TCP.
    """

    __slots__ = (
        "_base",
        "_deliver",
        "_ect",
        "_hops",
        "_ident",
        "_udp_headroom",
        "_udp_overhead",
        "destination",
        "headroom",
        "ip_header",
        "link_header",
        "next_hop",
        "path",
        "source",
        "tcp_overhead",
        "tso_max",
        "ttl",
        "tx_checksum_partial",
    )

    def __init__(
        self,
        destination: bytes,
        source: bytes,
        next_hop: bytes,
        link_header: bytes,
        ttl: int,
        mtu: int,
        deliver: Deliver,
        tx_checksum_partial: bool = False,
        tso_max: int = 0,
        path: PathMtu | None = None,
        ect: bool = False,
        base: Route | None = None,
    ) -> None:
        self.destination = destination
        self.source = source
        self.next_hop = next_hop
        self.link_header = link_header
        self.ttl = ttl
        if len(destination) == 16:
            ip = ipv6_template(source, destination, ttl)
        else:
            ip = ipv4_template(source, destination, ttl)
        if ect:  # every packet ECN-capable: what `with_ect` hands out
            ip = ect_template(ip)
        self.ip_header = ip
        self._ect: Route | None = None
        self._hops: Route | None = None  # the last `with_ttl` twin
        self._base = self if base is None else base  # the interface's route a twin was made from
        ip_header = len(ip)
        self.headroom = len(link_header) + ip_header
        self.path = PathMtu(mtu) if path is None else path
        # IP and TCP header bytes (no options): `mtu - mss`, read as one attribute on the
        # send path (the two properties are two calls).
        self.tcp_overhead = ip_header + TCP_HEADER
        # The same for UDP's send path: the frame's bytes before the payload, and the IP
        # packet's (what the path MTU bounds).
        self._udp_headroom = self.headroom + UDP_HEADER
        self._udp_overhead = ip_header + UDP_HEADER
        self.tx_checksum_partial = tx_checksum_partial
        self.tso_max = tso_max
        self._deliver = deliver
        self._ident = 0

    @property
    def mtu(self) -> int:
        """The IP MTU toward the destination: the path MTU, at most the link's."""
        return self.path.mtu

    @property
    def mss(self) -> int:
        """The largest TCP payload a segment without options may carry at `mtu`."""
        return self.path.mtu - self.tcp_overhead

    def __repr__(self) -> str:
        ends = f"{format_ip(self.source)} -> {format_ip(self.destination)}"
        return f"<Route {ends} via {format_ip(self.next_hop)} mtu {self.mtu}>"

    def send_tcp(
        self,
        frame: bytearray,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        options: bytes,
        payload: BytesLike,
        csum_mode: int,
        now: float,
    ) -> None:
        """Build a TCP segment with these header fields into `frame` (`headroom` + its length) and send it.

        The ident counter is this route's (RFC 6864: unique per source, destination and
        protocol is enough, and with DF set any value is).
        """
        ident = self._ident = (self._ident + 1) & 0xFFFF
        build_tcp(
            frame,
            self.link_header,
            self.ip_header,
            ident,
            sport,
            dport,
            seq,
            ack,
            flags,
            window,
            0,
            options,
            payload,
            csum_mode,
        )
        self._deliver(frame, self.next_hop, self.source, now)

    def with_ect(self) -> Route:
        """This route for ECN-capable packets (RFC 3168 §6.1.2: an ECN connection's new data): the
        same way out, with ECT(0) in the IP header template. Made once, on first use, so that the
        segments of connections without ECN pay nothing for it."""
        twin = self._ect
        if twin is None:
            twin = self._ect = self._twin(self.ttl, ect=True)
        return twin

    def with_ttl(self, ttl: int) -> Route:
        """This route with another TTL (IPv6: hop limit) in its IP header template, for a socket
        with IP_TTL or IPV6_UNICAST_HOPS set; 0 gives the interface's route back. The last
        twin asked for is kept."""
        base = self._base
        if base is not self:
            return base.with_ttl(ttl)
        if not ttl or ttl == self.ttl:
            return self
        twin = self._hops
        if twin is None or twin.ttl != ttl:
            twin = self._hops = self._twin(ttl, ect=False)
        return twin

    def _twin(self, ttl: int, ect: bool) -> Route:
        return Route(
            self.destination,
            self.source,
            self.next_hop,
            self.link_header,
            ttl,
            self.mtu,
            self._deliver,
            self.tx_checksum_partial,
            self.tso_max,
            path=self.path,  # one path MTU for all twins: an ICMP that lowers it lowers it for each
            ect=ect,
            base=self._base,
        )

    def send_udp(self, sport: int, dport: int, payload: BytesLike, now: float, length: int = -1) -> None:
        """Build a UDP datagram with both checksums in one C call and send it, in fragments
        if it is larger than the path MTU (see `UdpSocket.sendto`). `length` is the payload's
        when the caller has it already (`len(payload)` otherwise)."""
        if length < 0:
            length = len(payload)
        ident = self._ident = (self._ident + 1) & 0xFFFF
        # A sequence repeat: cheaper than bytearray(n), a type call with its argument parsing.
        frame = _ZERO * (self._udp_headroom + length)
        build_udp(frame, self.link_header, self.ip_header, ident, sport, dport, payload, CSUM_FULL)
        if self._udp_overhead + length > self.path.mtu:
            self._send_fragments(frame, IPPROTO_UDP, now)
            return
        self._deliver(frame, self.next_hop, self.source, now)

    def send_datagram(self, frame: bytearray, protocol: int, l4_length: int, now: float) -> None:
        """Fill the headers in front of an L4 message already written at `headroom`, and send it.

        For messages not built by one C call (ICMP): the cold path, so plain Python.
        """
        link = len(self.link_header)
        if len(self.ip_header) + l4_length > self.path.mtu:
            self._send_fragments(frame, protocol, now)
            return
        frame[:link] = self.link_header
        if len(self.destination) == 16:
            emit_ipv6_header(frame, link, self.source, self.destination, protocol, l4_length, hop_limit=self.ttl)
        else:
            ident = self._ident = (self._ident + 1) & 0xFFFF
            emit_ipv4_header(frame, link, self.source, self.destination, protocol, l4_length, ttl=self.ttl, ident=ident)
        self._deliver(frame, self.next_hop, self.source, now)

    def _send_fragments(self, frame: bytearray, protocol: int, now: float) -> None:
        """Send the L4 message at `headroom` in `frame` as IP fragments that fit the path MTU,
        identified by the destination's counter (`PathMtu`), not this route's."""
        l4 = memoryview(frame)[self.headroom :]
        path = self.path
        cut = ipv6_fragments if len(self.destination) == 16 else ipv4_fragments
        for piece in cut(
            self.link_header, l4, self.source, self.destination, protocol, self.ttl, path.next_ident(), path.mtu
        ):
            self._deliver(piece, self.next_hop, self.source, now)


def no_route_message(dst: bytes, source: bytes | None = None) -> str:
    """Why `route_to` gave nothing, for the OSError (ENETUNREACH, or EAFNOSUPPORT between families) a socket raises."""
    if source is not None and len(source) != len(dst):
        return f"{format_ip(dst)} cannot be reached from {format_ip(source)}: the addresses are of different families"
    return f"no route to {format_ip(dst)}: it is on no usernet network and no gateway is set"


def format_ip(addr: bytes) -> str:
    """An address for messages and reprs: IPv4 as a dotted quad, IPv6 in its compressed form."""
    if len(addr) == 16:
        return str(ipaddress.IPv6Address(addr))
    return ".".join(str(b) for b in addr)
