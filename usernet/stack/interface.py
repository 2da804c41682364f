"""The sans-IO interface: frames and the time in; frames, ready sockets and a deadline out."""

from __future__ import annotations

from typing import cast

from usernet.native import (
    internet_checksum,
    l4_checksum_v4,
    pseudo_sum_v6,
    rx_ipv4_tcp,
    rx_ipv4_udp,
    rx_ipv6_tcp,
    rx_ipv6_udp,
    sum16,
)
from usernet.stack.arp import BROADCAST_IP, ArpTable
from usernet.stack.config import InterfaceConfig
from usernet.stack.fragments import Ipv4Reassembly, Reassembler
from usernet.stack.icmp import IcmpLayer, PingSocket
from usernet.stack.ipv6 import Ipv6
from usernet.stack.node import ANY6
from usernet.stack.pmtu import PathMtuCache
from usernet.stack.route import Route
from usernet.stack.stats import Stats
from usernet.stack.tcp.connection import TcpConnection
from usernet.stack.tcp.layer import TcpLayer, TcpListener
from usernet.stack.tcp.states import SYNCHRONIZED
from usernet.stack.udp import UdpLayer, UdpSocket
from usernet.wire import (
    BROADCAST_MAC,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ICMP_DEST_UNREACH,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    UNREACH_PORT,
    UNREACH_PROTOCOL,
    IPv4Packet,
    MalformedPacket,
    parse_ethernet,
    parse_ipv4,
    parse_udp,
)
from usernet.wire.ipv6 import IPv6Packet

Socket = UdpSocket | PingSocket | TcpConnection | TcpListener
_ROUTE_CACHE_LIMIT = 1024  # routes kept for reuse; sockets keep their own as long as they live


class Interface:
    """One interface with its IPv4 addresses, ARP, ICMP, UDP and TCP, and IPv6 when configured.

    On an Ethernet link (`config.ethernet`) frames carry an Ethernet header and next hops
    are resolved by ARP (NDP for IPv6); on an IP-only link (a TUN, a tunnel) a frame is a
    bare IPv4 or IPv6 packet, told apart by its version nibble: routes put no link header
    in front, received packets start at the IP header, and there is neither ARP nor NDP —
    the other end of a point-to-point link takes every packet.

    It never reads a clock and never does I/O: a driver hands it each received frame
    with `receive(frame, now)`, calls `poll(now)` when `next_deadline()` is reached,
    and sends whatever `take_output()` returns. Frames handed in may be reused by the
    driver afterwards: anything kept is copied.

    After a batch the driver asks `take_ready()` for the sockets that got data or
    errors, so the user side hears once per socket per batch, not once per frame.
    """

    def __init__(self, config: InterfaceConfig) -> None:
        self.config = config
        self.mac = config.mac
        self.mtu = config.mtu
        self._rx_trusted = config.rx_checksum_trusted
        self.counters = Stats()
        self._out: list[bytearray | bytes] = []
        self._ready: dict[object, None] = {}  # Sockets only: the layers mark nothing else (Node.mark_ready)
        self._set_ipv4(config.addresses, config.gateway)
        self._learn_local6(frozenset())
        self.ethernet = config.ethernet
        # Ethernet: the destination MAC stays blank until ARP fills it as the frame leaves.
        self._link_header = bytes(6) + self.mac + ETHERTYPE_IPV4.to_bytes(2, "big") if self.ethernet else b""
        self._link_len = len(self._link_header)
        self._routes: dict[tuple[bytes, bytes | None], Route] = {}
        self.path_mtu = PathMtuCache(self.mtu, config.pmtu_expires, config.min_pmtu, self.counters, config.secret)
        self.icmp = IcmpLayer(self)
        self.arp = ArpTable(config, self.counters, self._out, self.icmp.undeliverable)
        self.udp = UdpLayer(self, self._ready)
        self.tcp = TcpLayer(self)
        self.icmp.on_error(IPPROTO_TCP, self.tcp.icmp_error)
        self.icmp.on_error(IPPROTO_UDP, self.udp.icmp_error)
        self._reassembler = Reassembler(config.frag_timeout, config.frag_memory_limit, config.frag_source_limit)
        self.reassembly = Ipv4Reassembly(self._reassembler, self.icmp.send_error)
        # IPv6 beside IPv4 (stack/ipv6.py): addresses, NDP and ICMPv6 of its own, routes through the same seam
        self.ipv6 = Ipv6(config, self.counters, self._out, self.mark_ready) if config.wants_ipv6 else None
        if self.ipv6 is not None:
            self.ipv6.on_protocol(IPPROTO_TCP, self._tcp6_in)
            self.ipv6.on_protocol(IPPROTO_UDP, self._udp6_in)
            self.ipv6.icmp.on_error(IPPROTO_TCP, self.tcp.icmp_error)
            self.ipv6.icmp.on_error(IPPROTO_UDP, self.udp.icmp_error)

    def _set_ipv4(self, addresses: tuple[tuple[bytes, int], ...], gateway: bytes | None) -> None:
        """The IPv4 addresses (with prefix lengths) and gateway, and what receive and routing derive from them.

        ValueError for a gateway on none of the networks, before anything changes."""
        subnets = []
        broadcasts = {BROADCAST_IP}
        for addr, prefix in addresses:
            mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
            net = int.from_bytes(addr, "big") & mask
            if prefix < 31:
                broadcasts.add((net | (~mask & 0xFFFFFFFF)).to_bytes(4, "big"))
            subnets.append((net, mask, addr))
        via: tuple[bytes, bytes] | None = None
        if gateway is not None:
            hop = int.from_bytes(gateway, "big")
            source = next((addr for net, mask, addr in subnets if hop & mask == net), None)
            if source is None:
                raise ValueError("the gateway must be on one of the interface's networks")
            via = (gateway, source)
        self.local_addresses = frozenset(addr for addr, _ in addresses)
        # rx_ipv4_udp names the destination as an integer: which of ours it is, if any.
        self._local_by_int = {int.from_bytes(addr, "big"): addr for addr in self.local_addresses}
        self._subnets = tuple(subnets)
        self._broadcasts = frozenset(broadcasts)
        self._gateway = via

    def _learn_local6(self, local: frozenset[bytes]) -> None:
        """Our usable IPv6 addresses as `ipv6.local_addresses` has them now, and by the integers
        rx_ipv6_tcp and rx_ipv6_udp name a destination by, for the IPv6 predictions to check
        (and UDP's to hand its socket the address as bytes, without building them)."""
        self._local6 = local
        self._local6_by_int = {int.from_bytes(addr, "big"): addr for addr in local}

    def readdress_ipv4(self, addresses: tuple[tuple[bytes, int], ...], gateway: bytes | None, now: float) -> None:
        """Take new IPv4 addresses and gateway while running (a DHCP lease that changed or ended).

        What was on an address that goes ends as Linux's SOCK_DESTROY (`ss -K`) ends it:
        TCP connections with ECONNABORTED, though with no RST, which would come from an
        address that is no longer ours; UDP sockets bound to it stay, and their sends fail
        (no route from an address we lack); frames from it still waiting for ARP are dropped.
        Wildcard listeners and sockets go on, on the new addresses, which are announced as at start.
        A gateway none of the new addresses reaches is a ValueError, and then nothing changes.
        """
        gone = self.local_addresses - {addr for addr, _ in addresses}
        self._set_ipv4(addresses, gateway)
        self._routes.clear()
        for conn in self.tcp.connections():
            local = conn.local[0]
            if local in gone:
                conn.address_gone(now)
            elif len(local) == 4:  # kept its address: the gateway (its next hop) may have moved
                conn.reroute(self.route_to(conn.remote[0], local), now)
        self.udp.addresses_changed()
        self.arp.forget_pending_from(gone)
        if self.ethernet:
            for addr in sorted(self.local_addresses):
                self.arp.announce(addr)

    def set_mtu(self, mtu: int, now: float) -> None:
        """Take a new link MTU while running (a DHCP lease whose MTU option changed or went).

        As at start, it is the MTU of every route made from now, IPv4's and IPv6's, and so
        the MSS new TCP connections offer; lowered path MTUs are forgotten (the next ICMP
        teaches them again). Connections already open take the new route, and a smaller
        MTU cuts the segments of those past their handshake as a "packet too big" would
        (Linux's TCP reads the route's MTU at every send); none grows past the MSS it agreed.
        UDP sockets ask for their route again at their next send.
        """
        if not 576 <= mtu <= 65535:
            raise ValueError(f"mtu must be between 576 and 65535, got {mtu}")
        if mtu == self.mtu:
            return
        config = self.config
        self.mtu = mtu
        self.path_mtu = PathMtuCache(mtu, config.pmtu_expires, min(config.min_pmtu, mtu), self.counters, config.secret)
        self._routes.clear()
        if self.ipv6 is not None:
            self.ipv6.set_link_mtu(mtu)
        for conn in self.tcp.connections():
            route = self.route_to(conn.remote[0], conn.local[0])
            if route is None:  # an MTU never takes a route away: an address that went does (readdress_ipv4)
                continue
            conn.reroute(route, now)
            if conn.state in SYNCHRONIZED:  # one still in its handshake keeps the MSS its SYN offered
                conn.path_mtu_lowered(route.mtu)
        self.udp.addresses_changed()

    # -- driver side -------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Announce our addresses (gratuitous ARP) so neighbours update stale caches, and start
        IPv6's address configuration; an IP-only link has no neighbours to tell."""
        if self.ethernet:
            for addr in sorted(self.local_addresses):
                self.arp.announce(addr)
        if self.ipv6 is not None:
            self.ipv6.start(now)

    def receive(self, frame: bytes | bytearray | memoryview, now: float) -> None:
        """Process one received frame (a bare IP packet on an IP-only link). Never raises for
        bad input: it counts and drops.

        Header prediction comes first: by the IP version and the IPv4 protocol byte (IPv6's
        next header), one C call recognises a valid TCP segment or UDP datagram to us and
        parses it, and if it belongs to a connection or a socket it goes straight there.
        Everything else, and anything that call is unsure of, takes the general path below,
        which classifies and counts it layer by layer.
        """
        stats = self.counters
        n = len(frame)
        stats.rx_frames += 1
        stats.rx_bytes += n
        link = self._link_len
        if n > link + 9:
            if frame[link] >> 4 != 6:
                protocol = frame[link + 9]  # IPv4's protocol field, if this is IPv4: the C calls check
                if protocol == IPPROTO_TCP:
                    predicted = rx_ipv4_tcp(frame, self.mac, self._rx_trusted, link)
                    if predicted is not None and self.tcp.receive_predicted(predicted, frame, now):
                        return
                elif protocol == IPPROTO_UDP:
                    datagram = rx_ipv4_udp(frame, self.mac, self._rx_trusted, link)
                    if datagram is not None and self.udp.receive_predicted(datagram, frame, self._local_by_int, 4):
                        return
            elif (ipv6 := self.ipv6) is not None:
                protocol = frame[link + 6]  # IPv6's next header: the C calls check the rest
                if protocol == IPPROTO_TCP:
                    predicted = rx_ipv6_tcp(frame, self.mac, self._rx_trusted, link)
                    if predicted is not None:
                        # An address that went (its SLAAC lifetime ran out) is not ours, even for the
                        # connections still on it: what comes to it is the general path's to drop.
                        # predicted[16] is the destination (layout.RX_TCP's "dst").
                        if ipv6.local_addresses is not self._local6:
                            self._learn_local6(ipv6.local_addresses)
                        if predicted[16] in self._local6_by_int and self.tcp.receive_predicted(predicted, frame, now):
                            return
                elif protocol == IPPROTO_UDP:
                    datagram = rx_ipv6_udp(frame, self.mac, self._rx_trusted, link)
                    if datagram is not None:
                        if ipv6.local_addresses is not self._local6:
                            self._learn_local6(ipv6.local_addresses)
                        if self.udp.receive_predicted(datagram, frame, self._local6_by_int, 16):
                            return
        if not link:
            version = frame[0] >> 4 if n else 0
            if version == 4:
                self._ipv4_in(memoryview(frame), now)
            elif version == 6 and self.ipv6 is not None:
                self.ipv6.receive(b"", memoryview(frame), now)  # no link-layer source on an IP-only link
            else:
                stats.ip_unknown_version += 1
            return
        try:
            eth = parse_ethernet(frame)
        except MalformedPacket:
            stats.eth_malformed += 1
            return
        dst = eth.dst
        if dst != self.mac and dst != BROADCAST_MAC and (dst[:2] != b"\x33\x33" or self.ipv6 is None):
            stats.eth_not_for_us += 1  # 33:33:...: IPv6 multicast, whose groups Ipv6 filters
            return
        kind = eth.ethertype
        if kind == ETHERTYPE_IPV4:
            self._ipv4_in(eth.payload, now)
        elif kind == ETHERTYPE_ARP:
            self.arp.receive(eth.payload, self.local_addresses, now)
        elif kind == ETHERTYPE_IPV6 and self.ipv6 is not None:
            self.ipv6.receive(eth.src, eth.payload, now)
        else:
            stats.eth_unknown_type += 1

    def poll(self, now: float) -> None:
        """Run what is due: ARP retries and give-ups, TCP timers, reassembly and path MTU expiry, IPv6's."""
        self.arp.poll(now)
        self.tcp.poll(now)
        due = self._reassembler.deadline
        if due is not None and due <= now:
            self.reassembly.poll(now)
        due = self.path_mtu.deadline
        if due is not None and due <= now:
            self.path_mtu.poll(now)
        if self.ipv6 is not None:
            self.ipv6.poll(now)

    def flush(self, now: float) -> None:
        """Turn work the user side queued since the last call into frames: TCP segments and ACKs."""
        self.tcp.flush(now)

    def next_deadline(self) -> float | None:
        """When `poll` must next be called, or None when nothing is pending."""
        a = self.arp.next_deadline()
        b = self.tcp.next_deadline()
        if a is None or (b is not None and b < a):
            a = b
        for c in (self._reassembler.deadline, self.path_mtu.deadline):
            if c is not None and (a is None or c < a):
                a = c
        if self.ipv6 is not None:
            c = self.ipv6.next_deadline()
            if a is None or (c is not None and c < a):
                return c
        return a

    def take_output(self) -> list[bytearray | bytes]:
        """The frames to send, oldest first; the interface forgets them."""
        if not self._out:
            return []
        out = self._out[:]
        self._out.clear()
        return out

    def take_ready(self) -> list[Socket]:
        """Sockets that received data or errors since the last call."""
        if not self._ready:
            return []
        ready = cast(list[Socket], list(self._ready))
        self._ready.clear()
        return ready

    def stats(self) -> dict[str, int]:
        """A snapshot of every counter (reassembly's as `ipv4_reasm_*` and `ipv6_reasm_*`)."""
        counters = self.counters.as_dict() | self._reassembler.counters.as_dict("ipv4_reasm_")
        return counters if self.ipv6 is None else counters | self.ipv6.reassembly_counters()

    # -- user side -----------------------------------------------------------------------

    def open_udp(self, local: tuple[bytes, int] | None = None, *, reuse_address: bool = False) -> UdpSocket:
        return self.udp.open(local, reuse_address=reuse_address)

    def open_ping(self, ident: int | None = None) -> PingSocket:
        return self.icmp.open_ping(ident)

    # -- shared by the protocol layers ---------------------------------------------------

    def mark_ready(self, sock: object) -> None:
        self._ready[sock] = None

    def is_local(self, addr: bytes) -> bool:
        if len(addr) == 16:
            return self.ipv6 is not None and addr in self.ipv6.local_addresses
        return addr in self.local_addresses

    def is_broadcast(self, addr: bytes) -> bool:
        return addr in self._broadcasts

    def is_unicast(self, addr: bytes) -> bool:
        """False for addresses no reply may go to: 0.0.0.0, broadcasts, multicast, class E; ::, ff00::/8."""
        if len(addr) == 16:
            return addr[0] != 0xFF and addr != ANY6
        return addr[0] != 0 and addr[0] < 224 and addr not in self._broadcasts

    def route_to(self, dst: bytes, source: bytes | None = None) -> Route | None:
        """The route to `dst` from `source` (one of ours; None: the preferred one), None if unreachable.

        The next hop is `dst` on a local network, the gateway otherwise, BROADCAST_IP for a
        broadcast destination (which needs no ARP). Routes are cached by (dst, source):
        sockets ask once per peer and keep what they get.
        """
        key = (dst, source)
        route = self._routes.get(key)
        if route is not None:
            return route
        if source is not None and len(source) != len(dst):
            return None  # no route between families: the socket says so (route.no_route_message)
        if len(dst) == 16:
            return None if self.ipv6 is None else self.ipv6.route_to(dst, source)
        if not self._subnets or (source is not None and source not in self.local_addresses):
            return None  # no IPv4 address (IPv6 alone, a lost DHCP lease), or a source that went with one
        if dst in self._broadcasts:
            hop, preferred = BROADCAST_IP, self._on_link_source(dst) or self._subnets[0][2]
        else:
            on_link = self._on_link_source(dst)
            if on_link is not None:
                hop, preferred = dst, on_link
            elif self._gateway is not None:
                hop, preferred = self._gateway
            else:
                return None
        config = self.config
        route = Route(
            dst,
            preferred if source is None else source,
            hop,
            self._link_header,
            config.ttl,
            self.mtu,
            self.arp.send if self._link_len else self.transmit,
            tx_checksum_partial=config.tx_checksum_partial,
            tso_max=config.tso_max,
            path=self.path_mtu.entry(dst),
        )
        if len(self._routes) >= _ROUTE_CACHE_LIMIT:
            self._routes.clear()
        self._routes[key] = route
        return route

    def _on_link_source(self, dst: bytes) -> bytes | None:
        value = int.from_bytes(dst, "big")
        for net, mask, addr in self._subnets:
            if value & mask == net:
                return addr
        return None

    def transmit(self, frame: bytearray, next_hop: bytes, src: bytes, now: float) -> None:
        """An IP-only link's routes' way out (`route.Deliver`): the packet leaves as it is, no
        link header to fill. Routes on Ethernet deliver to `ArpTable.send` instead, which fills
        the destination MAC or holds the frame for ARP."""
        self.counters.tx_frames += 1
        self.counters.tx_bytes += len(frame)
        self._out.append(frame)

    # -- receive path --------------------------------------------------------------------

    def _ipv4_in(self, datagram: memoryview, now: float) -> None:
        stats = self.counters
        try:
            ip = parse_ipv4(datagram, verify_checksum=False)
        except MalformedPacket:
            stats.ipv4_malformed += 1
            return
        if internet_checksum(datagram[: ip.header_length]) != 0:
            stats.ipv4_bad_checksum += 1
            return
        dst = ip.dst
        if dst not in self.local_addresses and dst not in self._broadcasts:
            stats.ipv4_not_for_us += 1
            return
        if ip.is_fragment:
            stats.ipv4_fragments += 1
            whole = self.reassembly.add(ip, datagram, now)
            if whole is None:
                return
            ip, datagram = whole
        protocol = ip.protocol
        if protocol == IPPROTO_TCP:
            if dst in self._broadcasts:
                stats.tcp_not_unicast += 1
                return
            self.tcp.receive(ip, now)
        elif protocol == IPPROTO_UDP:
            self._udp_in(ip, datagram, now)
        elif protocol == IPPROTO_ICMP:
            if dst in self._broadcasts:
                stats.icmp_unhandled += 1  # like Linux's icmp_echo_ignore_broadcasts
                return
            self.icmp.receive(ip, now)
        else:
            stats.ipv4_unknown_protocol += 1
            self.icmp.send_error(ICMP_DEST_UNREACH, UNREACH_PROTOCOL, ip, datagram, now)

    def _udp_in(self, ip: IPv4Packet, datagram: memoryview, now: float) -> None:
        stats = self.counters
        try:
            dgram = parse_udp(ip.payload, ip.src, ip.dst, verify_checksum=False)
        except MalformedPacket:
            stats.udp_malformed += 1
            return
        if (
            dgram.checksum
            and not self._rx_trusted  # the kernel's may be partial
            and l4_checksum_v4(ip.src, ip.dst, IPPROTO_UDP, ip.payload[: dgram.length]) != 0
        ):
            stats.udp_bad_checksum += 1
            return
        sock = self.udp.lookup(ip.dst, dgram.dport)
        if sock is None:
            stats.udp_no_socket += 1
            self.icmp.send_error(ICMP_DEST_UNREACH, UNREACH_PORT, ip, datagram, now)
            return
        self._udp_deliver(sock, dgram.payload, (ip.src, dgram.sport))

    def _tcp6_in(self, ip: IPv6Packet, now: float) -> bool:
        if ip.dst[0] == 0xFF:
            self.counters.tcp_not_unicast += 1
        else:
            self.tcp.receive(ip, now)
        return True

    def _udp6_in(self, ip: IPv6Packet, now: float) -> bool:
        """A UDP datagram over IPv6: the checksum is mandatory (RFC 8200 §8.1), 0 is no excuse.
        False for a port nobody is bound to."""
        stats = self.counters
        segment = ip.payload
        try:
            dgram = parse_udp(segment, ip.src, ip.dst, verify_checksum=False)
        except MalformedPacket:
            stats.udp_malformed += 1
            return True
        length = dgram.length
        if not dgram.checksum or (
            not self._rx_trusted
            and sum16(segment[:length], pseudo_sum_v6(ip.src, ip.dst, IPPROTO_UDP, length)) != 0xFFFF
        ):
            stats.udp_bad_checksum += 1
            return True
        sock = self.udp.lookup(ip.dst, dgram.dport)
        if sock is None:
            stats.udp_no_socket += 1
            return False
        self._udp_deliver(sock, dgram.payload, (ip.src, dgram.sport))
        return True

    def _udp_deliver(self, sock: UdpSocket, payload: memoryview, source: tuple[bytes, int]) -> None:
        stats = self.counters
        if sock.remote is not None and sock.remote != source:
            stats.udp_wrong_peer += 1
            return
        if sock.deliver(bytes(payload), source):
            stats.udp_delivered += 1
            self._ready[sock] = None
        else:
            stats.udp_queue_full += 1
