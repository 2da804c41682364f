"""UDP sockets at the sans-IO level: bind, connect, send, bounded receive queues."""

from __future__ import annotations

import errno
from collections import deque
from typing import TYPE_CHECKING

from usernet.native import build_ipv4_udp
from usernet.stack.ports import PortUse
from usernet.wire import UDP_HLEN

if TYPE_CHECKING:
    from usernet.stack.interface import Interface

ANY = b"\x00\x00\x00\x00"
Address = tuple[bytes, int]
_HEADROOM = 14 + 20  # Ethernet + IPv4 in front of the UDP header
_NO_MAC = bytes(6)  # filled in by ARP when the frame leaves


class UdpSocket:
    """One UDP endpoint. Received datagrams and errors wait in bounded queues.

    Like a kernel socket, an unconnected socket takes datagrams from anyone and gets
    no ICMP errors; a connected one takes only its peer's datagrams and gets the
    errors its sends provoke (ECONNREFUSED for port-unreachable...), which the asyncio
    face turns into `error_received`.
    """

    __slots__ = ("_iface", "_limit", "broadcast", "closed", "dropped", "errors", "local", "queue", "remote")

    def __init__(self, iface: Interface, local: Address, limit: int) -> None:
        self._iface = iface
        self.local = local
        self.remote: Address | None = None
        self.broadcast = False
        self.queue: deque[tuple[bytes, Address]] = deque()
        self.errors: deque[OSError] = deque()
        self.dropped = 0
        self.closed = False
        self._limit = limit

    def connect(self, remote: Address) -> None:
        """Fix the peer: sends default to it, others' datagrams are dropped, errors are reported."""
        self._check_open()
        route = self._iface.route(remote[0])
        if route is None:
            raise OSError(
                errno.ENETUNREACH, f"no route to {_fmt(remote[0])}: it is on no usernet network and no gateway is set"
            )
        if self.local[0] == ANY:
            self._iface.udp.rebind(self, (route[1], self.local[1]))
        self.remote = remote

    def sendto(self, data: bytes | bytearray | memoryview, remote: Address | None, now: float) -> None:
        """Queue one datagram for transmission. Raises OSError as a kernel socket would."""
        self._check_open()
        if remote is None:
            if self.remote is None:
                raise OSError(errno.EDESTADDRREQ, "socket is not connected: give an address")
            remote = self.remote
        dst, dport = remote
        if not 0 < dport < 65536:
            raise OSError(errno.EINVAL, f"bad destination port {dport}")
        iface = self._iface
        if iface.is_broadcast(dst) and not self.broadcast:
            raise OSError(errno.EACCES, "broadcast needs allow_broadcast=True (SO_BROADCAST)")
        route = iface.route(dst)
        if route is None:
            raise OSError(
                errno.ENETUNREACH, f"no route to {_fmt(dst)}: it is on no usernet network and no gateway is set"
            )
        src = self.local[0] if self.local[0] != ANY else route[1]
        size = UDP_HLEN + len(data)
        if 20 + size > iface.mtu:
            raise OSError(
                errno.EMSGSIZE, f"datagram of {len(data)} bytes exceeds the MTU of {iface.mtu} (no fragmentation)"
            )
        frame = bytearray(_HEADROOM + size)
        # One C call writes Ethernet, IPv4 and UDP headers with both checksums.
        build_ipv4_udp(
            frame, 0, _NO_MAC, iface.mac, src, dst, iface.next_ident(), iface.config.ttl, self.local[1], dport, data
        )
        iface.transmit(frame, route[0], src, now)

    def recvfrom(self) -> tuple[bytes, Address] | None:
        """The oldest datagram and its sender, or None."""
        return self.queue.popleft() if self.queue else None

    def take_error(self) -> OSError | None:
        """The oldest pending error (as SO_ERROR would report), or None."""
        return self.errors.popleft() if self.errors else None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._iface.udp.unbind(self)
            self.queue.clear()

    def deliver(self, data: bytes, source: Address) -> bool:
        if len(self.queue) >= self._limit:
            self.dropped += 1
            return False
        self.queue.append((data, source))
        return True

    def _check_open(self) -> None:
        if self.closed:
            raise OSError(errno.EBADF, "the UDP socket is closed")


class UdpLayer:
    """The demultiplexing table: (local address, port) → socket, wildcard second."""

    def __init__(self, iface: Interface) -> None:
        self._iface = iface
        self._sockets: dict[Address, UdpSocket] = {}
        self._ports = PortUse()

    def open(self, local: Address | None = None, *, reuse_address: bool = False) -> UdpSocket:
        """Bind a new socket; port 0 (or None) picks an ephemeral port, address ANY all addresses."""
        addr, port = local if local is not None else (ANY, 0)
        iface = self._iface
        if addr != ANY and addr not in iface.local_addresses:
            raise OSError(errno.EADDRNOTAVAIL, f"{_fmt(addr)} is not an address of this usernet interface")
        if port == 0:
            port = iface.udp_ports.allocate(self._ports)
        elif (addr, port) in self._sockets or (
            not reuse_address and (port in self._ports and (addr == ANY or (ANY, port) in self._sockets))
        ):
            raise OSError(errno.EADDRINUSE, f"UDP port {port} is already bound")
        sock = UdpSocket(iface, (addr, port), iface.config.udp_queue_limit)
        self._add(sock)
        return sock

    def rebind(self, sock: UdpSocket, local: Address) -> None:
        if local in self._sockets:
            raise OSError(errno.EADDRINUSE, f"UDP {_fmt(local[0])}:{local[1]} is already bound")
        self.unbind(sock)
        sock.local = local
        self._add(sock)

    def unbind(self, sock: UdpSocket) -> None:
        if self._sockets.get(sock.local) is sock:
            del self._sockets[sock.local]
            self._ports.release(sock.local[1])

    def _add(self, sock: UdpSocket) -> None:
        self._sockets[sock.local] = sock
        self._ports.hold(sock.local[1])

    def lookup(self, dst: bytes, dport: int) -> UdpSocket | None:
        sockets = self._sockets
        return sockets.get((dst, dport)) or sockets.get((ANY, dport))

    def sockets(self) -> list[UdpSocket]:
        return list(self._sockets.values())


def _fmt(addr: bytes) -> str:
    return ".".join(str(b) for b in addr)
