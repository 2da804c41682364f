"""UDP for asyncio programs: `create_datagram_endpoint` on usernet and its DatagramTransport."""

from __future__ import annotations

import asyncio
import operator
import socket
import threading
from collections.abc import Callable

from usernet.aio.addresses import SockAddr, family_of, name, pack, pack_local
from usernet.aio.driver import Driver
from usernet.aio.transport import Address, UsernetTransport
from usernet.stack.udp import Address as StackAddress
from usernet.stack.udp import UdpSocket

#: How many peers' names a transport remembers (see DatagramTransport._names); past that it starts over.
NAME_CACHE = 256
_get_ident = threading.get_ident

__all__ = ["DatagramTransport", "get_option", "open_endpoint", "open_udp", "readiness", "set_option", "stack_address"]


_TTL_OPTIONS = ((socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS))


def set_option(sock: UdpSocket, level: int, optname: int, value: int | bytes) -> bool:
    """Apply the options that change a usernet UDP socket: SO_BROADCAST, and IP_TTL or
    IPV6_UNICAST_HOPS (traceroute's); False for the others, which the socket object keeps."""
    number = int.from_bytes(value, "little", signed=True) if isinstance(value, bytes) else int(value)
    if level == socket.SOL_SOCKET and optname == socket.SO_BROADCAST:
        sock.broadcast = bool(number)
        return True
    if (level, optname) in _TTL_OPTIONS:
        sock.set_ttl(number)
        return True
    return False


def get_option(sock: UdpSocket, level: int, optname: int) -> int | None:
    if level == socket.SOL_SOCKET and optname == socket.SO_BROADCAST:
        return int(sock.broadcast)
    if (level, optname) in _TTL_OPTIONS:
        return sock.effective_ttl
    return None


def readiness(sock: UdpSocket) -> tuple[bool, bool]:
    """(readable, writable): a datagram or an error waits; a UDP socket can always send."""
    return bool(sock.queue) or bool(sock.errors), True


def stack_address(addr: object, family: int) -> StackAddress:
    """The stack address for `sendto(data, addr)` on a socket of `family`, checked as CPython's
    socket module checks a kernel socket's (getsockaddrarg, in the same order), so a malformed
    one raises the same exception with the same words: asyncio's transport reports that as a
    fatal write error, and a program ported between the two sees no difference.

    A tuple of 2 (IPv4) or 2 to 4 items (IPv6: flowinfo and scope id, which usernet does not
    use); a str, bytes or bytearray host, resolved if it is a name (OSError, for
    error_received); integer port, flowinfo and scope id, the port in 0-65535 and the flowinfo
    in 20 bits.
    """
    ipv6 = family == socket.AF_INET6
    kind = "AF_INET6" if ipv6 else "AF_INET"
    if not isinstance(addr, tuple):
        raise TypeError(f"sendto(): {kind} address must be tuple, not {type(addr).__name__}")
    if not (2 <= len(addr) <= 4 if ipv6 else len(addr) == 2):
        shape = "a tuple (host, port[, flowinfo[, scopeid]])" if ipv6 else "a pair (host, port)"
        raise TypeError(f"{kind} address must be {shape}")
    host = addr[0]
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("ascii")
    elif not isinstance(host, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if "\0" in host:
        raise TypeError("host name must not contain null character")
    port = operator.index(addr[1])
    flowinfo = operator.index(addr[2]) & 0xFFFFFFFF if len(addr) > 2 else 0  # an unsigned int, as C reads it
    if len(addr) > 3:
        operator.index(addr[3])  # the scope id: unused, but it must be an integer all the same
    packed = pack(host)  # the name is resolved before the numbers are checked, as in CPython
    if not 0 <= port <= 0xFFFF:
        raise OverflowError("sendto(): port must be 0-65535.")
    if flowinfo > 0xFFFFF:
        raise OverflowError("sendto(): flowinfo must be 0-1048575.")
    return packed, port


class DatagramTransport(UsernetTransport, asyncio.DatagramTransport):
    """A usernet UDP socket behind asyncio's DatagramTransport interface.

    Sends go straight into the stack (nothing is buffered here, so the write buffer is
    always 0) and leave with the loop iteration's flush. Datagrams are handed to
    `datagram_received` in arrival order, all those waiting at once; ICMP errors that a
    connected endpoint provokes come to `error_received`, as do OSErrors of `sendto`.

    A server mostly answers the peers it hears from, so the transport keeps, per peer,
    the stdlib name it handed to `datagram_received` and the stack address behind it
    (`_names`, `_peers`): the reply's `sendto(data, addr)` finds the stack address of
    that very tuple without parsing it, and the next datagram from the peer reuses the
    name. Both are bounded by NAME_CACHE.
    """

    __slots__ = ("_address", "_names", "_peers")

    _sock_type = socket.SOCK_DGRAM
    _sock: UdpSocket

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        driver: Driver,
        sock: UdpSocket,
        protocol: asyncio.DatagramProtocol,
        waiter: asyncio.Future[None] | None,
        address: Address | None,
        kernel_sock: socket.socket | None = None,
    ) -> None:
        super().__init__(loop, driver, sock, protocol, waiter, None, kernel_sock)
        self._address = address
        self._names: dict[StackAddress, SockAddr] = {}  # stack address → the name programs see
        self._peers: dict[object, StackAddress] = {}  # a name programs gave or were given → stack address

    def get_write_buffer_size(self) -> int:
        return 0

    def sendto(self, data: bytes | bytearray | memoryview, addr: Address | None = None) -> None:  # type: ignore[override]  # IPv4 only
        if type(data) is not bytes and not isinstance(data, (bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        driver = self._driver
        if _get_ident() != driver.thread:
            driver.check_thread()  # raises, saying what to do instead
        if self._address is not None and addr not in (None, self._address):
            raise ValueError(f"Invalid address: must be None or {self._address}")
        if self._closing:
            return  # like asyncio's transports: writes after close are dropped
        try:
            if addr is None or self._address is not None:
                remote = None
            else:
                try:
                    remote = self._peers.get(addr) if type(addr) is tuple else None
                    hashable = True
                except TypeError:  # a tuple holding a bytearray host or worse: checked below
                    remote, hashable = None, False
                if remote is None:
                    remote = stack_address(addr, family_of(self._sock.local[0]))
                    if hashable and type(addr) is tuple:
                        self._remember(remote, addr, named=False)
            # A reply from a pump's callback is stamped with the pump's time (see Driver).
            now = driver.pump_time
            self._sock.sendto(data, remote, self._loop.time() if now is None else now)
        except OSError as exc:
            self._protocol.error_received(exc)  # type: ignore[attr-defined]  # a DatagramProtocol's
            return
        except (TypeError, ValueError, OverflowError) as exc:  # a malformed address (stack_address)
            self._fatal_error(exc, "Fatal write error on datagram transport")
            return
        if not driver.flush_pending:
            driver.request_flush()

    def _remember(self, remote: StackAddress, addr: SockAddr, *, named: bool) -> None:
        """Keep the pairing of a stack address and a name for it (bounded: past NAME_CACHE
        peers both tables start over). Only a name the transport made (`named`) is handed
        to `datagram_received` later: one a program gave may be a host name or a short
        IPv6 tuple, which a kernel socket would not report."""
        if len(self._peers) >= NAME_CACHE:
            self._peers.clear()
            self._names.clear()
        self._peers[addr] = remote
        if named:
            self._names[remote] = addr

    def stack_ready(self) -> None:
        if not self._started:
            return
        sock = self._sock
        protocol = self._protocol
        queue = sock.queue
        names = self._names
        while queue and not self._closing:
            data, source = queue.popleft()
            peer = names.get(source)
            if peer is None:
                peer = name(source)
                self._remember(source, peer, named=True)
            protocol.datagram_received(data, peer)  # type: ignore[attr-defined]  # a DatagramProtocol's
        errors = sock.errors
        while errors and not self._closing:
            protocol.error_received(errors.popleft())  # type: ignore[attr-defined]  # a DatagramProtocol's
        pseudo = self._pseudo
        if pseudo is not None and pseudo.descriptor is not None:
            pseudo.sync()

    def apply_option(self, level: int, optname: int, value: int | bytes) -> bool:
        return set_option(self._sock, level, optname, value)

    def live_option(self, level: int, optname: int) -> int | None:
        return get_option(self._sock, level, optname)

    def readiness(self) -> tuple[bool, bool]:
        return readiness(self._sock)


def open_udp(
    driver: Driver, local: Address | None, reuse_port: bool = False, toward: Address | None = None
) -> UdpSocket:
    """A usernet UDP socket bound to `local` (None: an ephemeral port; "" or "0.0.0.0": IPv4's any
    address, "::" IPv6's); with no local address, of the family of `toward`, the peer."""
    if local is None and toward is None:
        return driver.host.iface.open_udp(None, reuse_address=reuse_port)
    host, port = local if local is not None else ("", 0)
    bind = (pack(host) if toward is None else pack_local(host, pack(toward[0])), port)
    return driver.host.iface.open_udp(bind, reuse_address=reuse_port)


async def open_endpoint(
    loop: asyncio.AbstractEventLoop,
    driver: Driver,
    protocol_factory: Callable[[], asyncio.DatagramProtocol],
    local: Address | None,
    remote: Address | None,
    *,
    allow_broadcast: bool,
    reuse_port: bool,
    sock: UdpSocket | None = None,
    kernel_sock: socket.socket | None = None,
) -> tuple[DatagramTransport, asyncio.DatagramProtocol]:
    """Bind (and connect) a usernet UDP socket, or take `sock` over; addresses are IPv4 literals ("" or "0.0.0.0": any).

    `kernel_sock` is the kernel socket the program handed over (`sock=`): closed with the transport.
    """
    if remote is not None and len(pack(remote[0])) == 16:
        await driver.ipv6_settled()
    if sock is None:
        sock = open_udp(driver, local, reuse_port, remote)
    try:
        sock.broadcast = allow_broadcast
        if remote is not None:
            sock.connect((pack(remote[0]), remote[1]))
        protocol = protocol_factory()
        waiter = loop.create_future()
        transport = DatagramTransport(loop, driver, sock, protocol, waiter, remote, kernel_sock)
    except BaseException:
        sock.close()
        raise
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport, protocol
