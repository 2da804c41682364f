"""UDP sockets at the sans-IO level: bind, connect, send, bounded receive queues."""

from __future__ import annotations

import errno
import os
from collections import deque

from usernet.native import BytesLike, RxUdp
from usernet.stack.node import ANY, ANY6, Node, unspecified
from usernet.stack.ports import PortAllocator, PortUse, checked_port
from usernet.stack.route import Route, format_ip, no_route_message
from usernet.wire import UDP_HLEN, IPv4Packet
from usernet.wire.ipv6 import IPv6Packet

__all__ = ["ANY", "ANY6", "Address", "UdpLayer", "UdpSocket"]

Address = tuple[bytes, int]
#: Peers whose (address, port) tuple `receive_predicted` keeps per family (`UdpLayer._sources4`).
SOURCE_MEMO_LIMIT = 1024


class UdpSocket:
    """One UDP endpoint. Received datagrams and errors wait in bounded queues.

    Like a kernel socket, an unconnected socket takes datagrams from anyone and gets
    no ICMP errors; a connected one takes only its peer's datagrams and gets the
    errors its sends provoke (ECONNREFUSED for port-unreachable...), which the asyncio
    face turns into `error_received`.
    """

    __slots__ = (
        "_checked",
        "_layer",
        "_room",
        "_route",
        "broadcast",
        "closed",
        "dropped",
        "errors",
        "limit",
        "local",
        "queue",
        "remote",
        "ttl",
    )

    def __init__(self, layer: UdpLayer, local: Address, limit: int) -> None:
        self._layer = layer
        self._route: Route | None = None  # the last destination's, reused while it stays the same
        # The last destination that passed sendto's checks (a unicast one, whose checks the
        # broadcast flag cannot change), with its route and the payload it can carry: a
        # socket answering the same peer again pays one tuple comparison for all of them.
        self._checked: Address | None = None
        self._room = 0
        self.local = local
        self.remote: Address | None = None
        self.broadcast = False
        self.ttl = 0  # IP_TTL / IPV6_UNICAST_HOPS: 0 for the interface's own (`set_ttl`)
        self.queue: deque[tuple[bytes, Address]] = deque()
        self.errors: deque[OSError] = deque()
        self.dropped = 0
        self.closed = False
        self.limit = limit  # how many received datagrams may wait; more are dropped

    def connect(self, remote: Address) -> None:
        """Fix the peer: sends default to it, others' datagrams are dropped, errors are reported."""
        self._check_open()
        bound = self.local[0]
        route = self._layer.route_to(remote[0], bound)
        if bound == unspecified(bound):
            self._layer.rebind(self, (route.source, self.local[1]))
        self.remote = remote
        self._route = route.with_ttl(self.ttl) if self.ttl else route
        self._checked = None

    def set_ttl(self, ttl: int) -> None:
        """The TTL (IPv6: hop limit) of what this socket sends, 1-255, as IP_TTL and
        IPV6_UNICAST_HOPS set it; 0 (or -1) goes back to the interface's."""
        if ttl == -1:
            ttl = 0
        if not 0 <= ttl <= 255:
            raise OSError(errno.EINVAL, f"a TTL is 1-255 (0 or -1: the interface's), not {ttl}")
        self.ttl = ttl
        self._route = None  # the next send takes a route with it
        self._checked = None

    def sendto(self, data: bytes | bytearray | memoryview, remote: Address | None, now: float) -> None:
        """Queue one datagram for transmission. Raises OSError as a kernel socket would."""
        if self.closed:
            raise OSError(errno.EBADF, "the UDP socket is closed")
        if remote is None:
            if self.remote is None:
                raise OSError(errno.EDESTADDRREQ, "socket is not connected: give an address")
            remote = self.remote
        if remote != self._checked:
            self._check_destination(remote)
        route = self._route
        assert route is not None  # set with _checked
        length = len(data)
        if length > self._room:
            raise OSError(
                errno.EMSGSIZE, f"datagram of {length} bytes exceeds the {self._room} bytes a UDP datagram can carry"
            )
        # Larger than the path MTU: sent in fragments, as Linux does for a UDP socket with its
        # default IP_MTU_DISCOVER of IP_PMTUDISC_WANT (DF on what fits, fragments without it
        # for what does not); only what no IP datagram can hold is refused (above).
        route.send_udp(self.local[1], remote[1], data, now, length)

    def _check_destination(self, remote: Address) -> None:
        """What sendto checks once per destination: the port, broadcast permission, the route.

        A unicast destination that passes is remembered (`_checked`) until the next one, a
        connect or a change of our addresses; a broadcast one is checked on every send,
        since SO_BROADCAST may be turned off between two.
        """
        self._checked = None
        dst, dport = remote
        checked_port(dport, 1, "destination port")
        broadcast = self._layer.is_broadcast(dst)
        if broadcast and not self.broadcast:
            raise OSError(errno.EACCES, "broadcast needs allow_broadcast=True (SO_BROADCAST)")
        route = self._route
        if route is None or route.destination != dst:
            route = self._layer.route_to(dst, self.local[0])
            route = self._route = route.with_ttl(self.ttl) if self.ttl else route
        self._room = 0xFFFF - len(route.ip_header) - UDP_HLEN
        if not broadcast:
            self._checked = remote

    @property
    def effective_ttl(self) -> int:
        """The TTL its datagrams leave with: its own, or the interface's (what getsockopt reports)."""
        return self.ttl or self._layer.default_ttl

    def forget_route(self) -> None:
        """Drop the route kept from the last send (its source address went): the next send asks again."""
        self._route = None
        self._checked = None

    def recvfrom(self) -> tuple[bytes, Address] | None:
        """The oldest datagram and its sender, or None."""
        return self.queue.popleft() if self.queue else None

    def take_error(self) -> OSError | None:
        """The oldest pending error (as SO_ERROR would report), or None."""
        return self.errors.popleft() if self.errors else None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._layer.unbind(self)
            self.queue.clear()

    def deliver(self, data: bytes, source: Address) -> bool:
        if len(self.queue) >= self.limit:
            self.dropped += 1
            return False
        self.queue.append((data, source))
        return True

    def _check_open(self) -> None:
        if self.closed:
            raise OSError(errno.EBADF, "the UDP socket is closed")


class UdpLayer:
    """The demultiplexing table: (local address, port) → socket, wildcard second.

    `ready` is the node's set of sockets with news (what `Node.mark_ready` adds to), given
    so that the predicted receive path marks a socket without a call per datagram.
    """

    def __init__(self, node: Node, ready: dict[object, None]) -> None:
        self._node = node
        self._ready = ready
        self._sockets: dict[Address, UdpSocket] = {}
        # What `receive_predicted` found for a (local address, port) datagrams came to: the
        # socket bound there or the wildcard's, so that a server bound to the wildcard costs
        # one lookup per datagram, not a miss then a hit. Only hits are kept, for our own
        # addresses (the prediction's only destinations), so it holds at most one entry per
        # address and bound port; any bind or unbind empties it.
        # Keyed by `address << 16 | port` (the integers the prediction names the address by),
        # one table per family, so that a hit builds no key tuple.
        self._delivery4: dict[int, UdpSocket] = {}
        self._delivery6: dict[int, UdpSocket] = {}
        # The (source address, port) tuples handed to the user with datagrams from the peers seen
        # lately, by `address << 16 | port`, one table per family: a datagram from a known peer
        # makes no new address bytes and tuple. Bounded by emptying a table when it is full.
        self._sources4: dict[int, Address] = {}
        self._sources6: dict[int, Address] = {}
        self._ports = PortUse()
        self._port_alloc = PortAllocator(*node.config.ephemeral_ports, seed=node.config.secret + b"udp")

    @property
    def default_ttl(self) -> int:
        """The TTL of datagrams whose socket sets none: the interface's (InterfaceConfig.ttl)."""
        return self._node.config.ttl

    def open(self, local: Address | None = None, *, reuse_address: bool = False) -> UdpSocket:
        """Bind a new socket; port 0 (or None) picks an ephemeral port, address ANY (ANY6) all IPv4 (IPv6)
        addresses. The two wildcards are apart, as sockets with IPV6_V6ONLY are: the asyncio face
        binds both for a dual-stack socket."""
        addr, port = local if local is not None else (ANY, 0)
        port = checked_port(port)
        node = self._node
        wildcard = unspecified(addr)
        if addr != wildcard and not node.is_local(addr):
            raise OSError(errno.EADDRNOTAVAIL, f"{format_ip(addr)} is not an address of this usernet interface")
        sockets = self._sockets
        if port == 0:
            port = self._port_alloc.allocate(self._ports)
        elif (addr, port) in sockets or (
            not reuse_address
            and (
                (wildcard, port) in sockets
                or (
                    addr == wildcard
                    and port in self._ports
                    and any(p == port and len(a) == len(addr) for a, p in sockets)
                )
            )
        ):
            raise OSError(errno.EADDRINUSE, f"UDP port {port} is already bound")
        sock = UdpSocket(self, (addr, port), node.config.udp_queue_limit)
        self._add(sock)
        return sock

    def rebind(self, sock: UdpSocket, local: Address) -> None:
        if local in self._sockets:
            raise OSError(errno.EADDRINUSE, f"UDP {format_ip(local[0])}:{local[1]} is already bound")
        self.unbind(sock)
        sock.local = local
        self._add(sock)

    def unbind(self, sock: UdpSocket) -> None:
        if self._sockets.get(sock.local) is sock:
            del self._sockets[sock.local]
            self._ports.release(sock.local[1])
            self._delivery4.clear()
            self._delivery6.clear()

    def _add(self, sock: UdpSocket) -> None:
        self._sockets[sock.local] = sock
        self._ports.hold(sock.local[1])
        self._delivery4.clear()
        self._delivery6.clear()

    def lookup(self, dst: bytes, dport: int) -> UdpSocket | None:
        sockets = self._sockets
        # the wildcard of dst's family, inline: this runs once per datagram received
        return sockets.get((dst, dport)) or sockets.get((ANY if len(dst) == 4 else ANY6, dport))

    def receive_predicted(self, p: RxUdp, frame: BytesLike, local: dict[int, bytes], width: int) -> bool:
        """Deliver a datagram the header prediction found valid (rx_ipv4_udp's or rx_ipv6_udp's
        `p`, in `frame`): our destination address by its integer in `local`, the socket lookup,
        the connected peer's check and the bounded queue, in one call, as the general path's
        `lookup` and `UdpSocket.deliver` do them; `width` is the family's address length.
        False when the destination is not one of ours or no socket is bound there: the
        general path then counts it and answers with ICMP."""
        src, sport, dst_int, dport, start, length = p
        dst = local.get(dst_int)
        if dst is None:
            return False
        if width == 4:
            delivery = self._delivery4
            sources = self._sources4
        else:
            delivery = self._delivery6
            sources = self._sources6
        key = dst_int << 16 | dport
        sock = delivery.get(key)
        if sock is None:
            sockets = self._sockets
            sock = sockets.get((dst, dport)) or sockets.get((ANY if width == 4 else ANY6, dport))
            if sock is None:
                return False
            delivery[key] = sock
        key = src << 16 | sport
        source = sources.get(key)
        if source is None:
            if len(sources) >= SOURCE_MEMO_LIMIT:
                sources.clear()
            source = sources[key] = (src.to_bytes(width, "big"), sport)
        stats = self._node.counters
        stats.udp_rx_predicted += 1
        remote = sock.remote
        if remote is not None and remote != source:
            stats.udp_wrong_peer += 1
        elif len(sock.queue) >= sock.limit:
            sock.dropped += 1
            stats.udp_queue_full += 1
        else:
            payload = frame[start : start + length]  # bytes from bytes; a copy or a view from the others
            sock.queue.append((payload if type(payload) is bytes else bytes(payload), source))
            stats.udp_delivered += 1
            self._ready[sock] = None
        return True

    def sockets(self) -> list[UdpSocket]:
        return list(self._sockets.values())

    def addresses_changed(self) -> None:
        """Our addresses changed: every socket forgets the route it kept (whose source may have gone), so
        its next send asks again; from an address that went that fails, as a Linux socket's does."""
        for sock in self._sockets.values():
            sock.forget_route()

    def route_to(self, dst: bytes, bound: bytes) -> Route:
        """The route for the datagrams of a socket bound to `bound` (maybe a wildcard); OSError
        EAFNOSUPPORT for a destination of the other family, ENETUNREACH when there is none."""
        if len(dst) != len(bound):
            raise OSError(errno.EAFNOSUPPORT, no_route_message(dst, bound))
        route = self._node.route_to(dst, None if bound == unspecified(bound) else bound)
        if route is None:
            raise OSError(errno.ENETUNREACH, no_route_message(dst))
        return route

    def is_broadcast(self, addr: bytes) -> bool:
        return self._node.is_broadcast(addr)

    def icmp_error(
        self, quoted: IPv4Packet | IPv6Packet, sport: int, dport: int, code_errno: int, mtu: int, now: float
    ) -> bool:
        """An ICMP error about a datagram we sent (`IcmpLayer.ErrorHandler`): for its connected socket only.

        True when a socket is bound where the quoted datagram came from: a path MTU the
        error carries then applies (Linux updates it for unconnected sockets too).
        """
        sock = self.lookup(quoted.src, sport)
        if sock is None:
            return False
        if sock.remote == (quoted.dst, dport):  # like Linux: unconnected sockets are not told
            sock.errors.append(OSError(code_errno, os.strerror(code_errno)))
            self._node.mark_ready(sock)
        return True
