"""The usernet event loops: the stdlib selector loop and uvloop, with one mixin doing the usernet part.

Each loop method first asks the Router which stack the socket belongs on; kernel
sockets go to the base class untouched, so everything a program does off usernet's
networks behaves exactly as on the base loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import inspect
import ipaddress
import selectors
import socket
import ssl as ssl_module
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any

from usernet import interrupts
from usernet.aio import shared, sockets, tls
from usernet.aio.addresses import pack
from usernet.aio.datagram import open_endpoint, open_udp
from usernet.aio.driver import Driver
from usernet.aio.resolver import Resolver, network_search, network_servers
from usernet.aio.routing import WILDCARDS, Router
from usernet.aio.server import Server, kernel_fastopen, listen
from usernet.aio.stream import StreamTransport, connect, kernel_fastopen_connect, open_stream
from usernet.aio.transport import PseudoSocket
from usernet.drivers.config import UsernetConfig, open_host
from usernet.drivers.host import Host
from usernet.stack.tcp.connection import TcpConnection

__all__ = ["UsernetLoopMixin", "UsernetSelectorEventLoop"]

Address = tuple[str, int]
_base_parameters: dict[tuple[type, str], frozenset[str]] = {}


def _is_ipv4(host: object) -> bool:
    if not isinstance(host, str):
        return False
    try:
        socket.inet_pton(socket.AF_INET, host)
    except OSError:
        return False
    return True


def _is_ip_literal(host: str | bytes) -> bool:
    """An IPv4 or IPv6 address (with or without a %scope): nothing for a resolver to look up."""
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else host
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _v6only(sock: socket.socket) -> bool:
    """IPV6_V6ONLY of an AF_INET6 kernel socket: without it, one on "::" takes both families."""
    return bool(sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))


def _port_number(port: int | str | None, type: int) -> int:
    """A port given as int, digits or a service name (like the stdlib's bind would take it); a name is
    looked up for the protocol of socket type `type`: "tftp" is 69 for UDP and no TCP service."""
    if port is None:
        return 0
    if isinstance(port, str) and not port.isdigit():
        return socket.getservbyname(port, "udp" if type == socket.SOCK_DGRAM else "tcp")
    return _in_range(int(port))


def _in_range(port: int) -> int:
    """`port` if it is one, else OverflowError as a kernel socket's bind or connect raises it
    (getaddrinfo would cut 70000 to 4464 and reach another port)."""
    if not 0 <= port <= 0xFFFF:
        raise OverflowError(f"port must be 0-65535, not {port}")
    return port


class _Kernel(Exception):
    """Internal signal: this call belongs to the base loop."""


if TYPE_CHECKING:
    # What the mixin is mixed into: checked as the stdlib loop it must sit in front of.
    _LoopBase = asyncio.BaseEventLoop
else:
    _LoopBase = object


class UsernetLoopMixin(_LoopBase):
    """The usernet half of a loop class; put it before the base loop in the bases.

    Where the stack comes from, in order: `host=` (driven, not owned: tests and
    embedders); `config=` (the loop opens its own link on first use and closes it with
    the loop); the process's installed SharedHost (`python -m usernet`); else
    `UsernetConfig.from_env()`, owned as with `config=`.
    """

    _usernet_driver: Driver | None

    def _usernet_setup(self, config: UsernetConfig | None, host: Host | None) -> None:
        self._usernet_driver = None
        self._usernet_holders = sockets.Holders()
        self._usernet_exit = contextlib.ExitStack()
        self._usernet_host = host
        self._usernet_shared: shared.SharedHost | None = None
        if host is not None:
            only = config.only if config is not None else False
            self.usernet_router = Router.for_interface(host.iface.config, only=only)
            self.usernet_config = config
            return
        if config is None:
            self._usernet_shared = shared.current()
            config = self._usernet_shared.config if self._usernet_shared else UsernetConfig.from_env()
        self.usernet_config = config
        if config.dhcp:
            # The address is the lease's: the stack starts now, and routing follows what it got.
            self.usernet_router = Router((), only=config.only)  # a stand-in that usernet_driver() follows
            iface = self.usernet_driver().host.iface
            self.usernet_router = Router.for_interface(iface.config, only=config.only)
            self.usernet_router.follow(iface)
            return
        gateway, gateway6 = config.gateway_of(4), config.gateway_of(6)
        self.usernet_router = Router(
            config.addresses,
            None if gateway is None else ipaddress.IPv4Address(gateway),
            only=config.only,
            gateway6=None if gateway6 is None else ipaddress.IPv6Address(gateway6),
            ipv6=config.wants_ipv6,
            slaac=config.autoconfigures_ipv6,
        )

    def usernet_driver(self) -> Driver:
        """The driver of this loop's stack, opening the link and attaching on first use."""
        driver = self._usernet_driver
        if driver is None:
            if self.is_closed():
                raise RuntimeError("Event loop is closed")
            driver = Driver(self, self._usernet_acquire())
            driver.attach()
            self._usernet_driver = driver
            self.usernet_router.follow(driver.host.iface)  # its SLAAC addresses are usernet's too
            if self._usernet_shared is not None:
                self._usernet_shared.driven_by(driver)  # control requests and handovers run on this loop now
        return driver

    def _usernet_acquire(self) -> Host:
        if self._usernet_host is not None:
            return self._usernet_host
        if self._usernet_shared is not None:
            return self._usernet_shared.get()
        assert self.usernet_config is not None
        return self._usernet_exit.enter_context(open_host(self.usernet_config, clock=self.time))

    def run_forever(self) -> None:
        """The base loop's, with a Ctrl-C that lands in the loop's machinery acted on between callbacks,
        and one another thread caught waking the loop.

        Raised there, asyncio.Runner's second-press KeyboardInterrupt can lose the main
        task's wakeup, and the Runner's clean-up then waits for that task for ever; caught
        on another thread, a press left the loop asleep in select() for ever (see
        usernet.interrupts).
        """
        if self.is_running():
            super().run_forever()  # refuses, as the base loop does
            return
        # The selector loop's self-pipe (uvloop wakes itself): a signal another thread caught wakes it.
        pipe = getattr(self, "_csock", None)
        fd = pipe.fileno() if isinstance(pipe, socket.socket) else -1
        waking = interrupts.waking(fd, self._usernet_signal_handlers)
        with waking, interrupts.between_callbacks(self.call_soon_threadsafe):
            super().run_forever()

    def _usernet_signal_handlers(self) -> bool:
        """Whether the program gave the loop signal handlers (add_signal_handler): they need the wakeup fd."""
        return bool(getattr(self, "_signal_handlers", None))

    def close(self) -> None:
        with interrupts.held():  # half a close would leave the link (and a sandbox) to nobody
            if not self.is_running():
                driver, self._usernet_driver = self._usernet_driver, None
                try:
                    if driver is not None:
                        driver.detach()
                        if self._usernet_shared is not None:
                            self._usernet_shared.driven_by(None)
                finally:
                    self._usernet_exit.close()
            super().close()

    # -- UDP -------------------------------------------------------------------------------

    async def create_datagram_endpoint(  # type: ignore[override]  # typeshed's is generic in the protocol
        self,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: Any = None,
        remote_addr: Any = None,
        *,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        reuse_port: bool | None = None,
        allow_broadcast: bool | None = None,
        sock: socket.socket | None = None,
    ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
        if sock is not None and sock.type == socket.SOCK_DGRAM and self._usernet_udp(sock, None) is not None:
            held = self._usernet_holders.take(sock)
            assert held is not None
            peer = held.peername()
            return await open_endpoint(
                self, held.driver, protocol_factory, None, peer, allow_broadcast=bool(allow_broadcast),
                reuse_port=False, sock=held.udp(), kernel_sock=None if isinstance(sock, PseudoSocket) else sock,
            )  # fmt: skip
        try:
            if sock is not None or proto not in (0, socket.IPPROTO_UDP):
                raise _Kernel
            local, remote = await self._usernet_datagram_addresses(local_addr, remote_addr, family, proto, flags)
            if remote is not None and remote[0] == "":
                raise _Kernel
            specific = None if local is None or local[0] in WILDCARDS else local[0]
            if self.usernet_router.choose(specific, remote and remote[0]) == "kernel":
                raise _Kernel
        except _Kernel:
            return await super().create_datagram_endpoint(
                protocol_factory, local_addr, remote_addr, family=family, proto=proto, flags=flags,
                reuse_port=reuse_port, allow_broadcast=allow_broadcast, sock=sock,
            )  # fmt: skip  # argument groups a line, as the base method's signature reads
        return await open_endpoint(
            self, self.usernet_driver(), protocol_factory, local, remote,
            allow_broadcast=bool(allow_broadcast), reuse_port=bool(reuse_port),
        )  # fmt: skip  # argument groups a line, as the base method's signature reads

    async def _usernet_datagram_addresses(
        self, local_addr: Any, remote_addr: Any, family: int, proto: int, flags: int
    ) -> tuple[Address | None, Address | None]:
        """Both addresses as IPv4 literals, or raise _Kernel when they are not IPv4 (AF_UNIX, IPv6)."""
        self._usernet_check_family(family)
        if local_addr is None and remote_addr is None and family == 0:
            raise _Kernel  # the base loop raises its "unexpected address family"
        resolved: list[Address | None] = []
        for addr in (local_addr, remote_addr):
            if addr is None:
                resolved.append(None)
            elif not isinstance(addr, tuple) or len(addr) != 2:
                raise _Kernel
            else:
                found = await self._usernet_resolve(addr[0], addr[1], socket.SOCK_DGRAM, proto, flags, family)
                resolved.append(found[0])
        return resolved[0], resolved[1]

    def _usernet_check_family(self, family: int) -> None:
        """Raise _Kernel for families usernet does not carry (the refusal, with only=True, for IPv6 when off)."""
        if family in (0, socket.AF_INET) or (family == socket.AF_INET6 and self.usernet_router.ipv6):
            return
        if family == socket.AF_INET6 and self.usernet_router.only:
            self.usernet_router.refuse("an IPv6 socket (usernet runs without IPv6: give --ipv6 or an IPv6 --address)")
        raise _Kernel

    async def _usernet_resolve(
        self, host: str | None, port: Any, type: int, proto: int, flags: int, family: int = 0
    ) -> list[Address]:
        """The literals for `host` of the families usernet carries (and `family` asks for), in resolver
        order (None and "" stay "": any); names through getaddrinfo."""
        if host is None or host == "":
            return [("", _port_number(port, type))]
        if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
            _in_range(int(port))
        carried = (socket.AF_INET, socket.AF_INET6) if self.usernet_router.ipv6 else (socket.AF_INET,)
        infos = await self.getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags)
        found = list(dict.fromkeys((sa[0], sa[1]) for fam, _, _, _, sa in infos if fam in carried))
        if not found:
            if self.usernet_router.only:
                self.usernet_router.refuse(f"{host} (it has no address of a family usernet carries)")
            raise _Kernel
        return found

    async def _usernet_base(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the base loop's method, leaving out keywords it does not know (newer Pythons', uvloop's subset)."""
        method = getattr(super(), name)
        key = (type(self), name)
        known = _base_parameters.get(key)
        if known is None:
            known = _base_parameters[key] = frozenset(inspect.signature(method).parameters)
        return await method(*args, **{k: v for k, v in kwargs.items() if k in known})

    # -- TCP -------------------------------------------------------------------------------

    async def create_connection(  # type: ignore[override]  # one signature for typeshed's overloads, as asyncio
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int | str | None = None,
        *,
        ssl: bool | ssl_module.SSLContext | None = None,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        sock: socket.socket | None = None,
        local_addr: tuple[str, int] | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        happy_eyeballs_delay: float | None = None,
        interleave: int | None = None,
        all_errors: bool = False,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        hostname = tls.check_client_options(ssl, host, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
        elif sock is None:
            raise ValueError("host and port was not specified and no sock specified")
        try:
            if sock is not None:
                held = self._usernet_holders.take(sock)
                if held is None:
                    raise _Kernel
                return await self._usernet_take_over(
                    held, sock, protocol_factory, ssl, hostname, ssl_handshake_timeout, ssl_shutdown_timeout,
                    server_side=False,
                )  # fmt: skip
            else:
                if proto not in (0, socket.IPPROTO_TCP) or host is None:
                    raise _Kernel
                self._usernet_check_family(family)
                remotes = await self._usernet_resolve(host, port, socket.SOCK_STREAM, proto, flags, family)
                local = None
                if local_addr is not None:
                    local = (await self._usernet_resolve(local_addr[0], local_addr[1], socket.SOCK_STREAM, proto, 0))[0]
                specific = None if local is None or local[0] in WILDCARDS else local[0]
                if self.usernet_router.choose(specific, remotes[0][0]) == "kernel":
                    raise _Kernel
                conn = await self._usernet_connect_any(remotes, local, all_errors)
        except _Kernel:
            return await self._usernet_base(
                "create_connection", protocol_factory, host, port, ssl=ssl, family=family, proto=proto, flags=flags,
                sock=sock, local_addr=local_addr, server_hostname=server_hostname,
                ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
                happy_eyeballs_delay=happy_eyeballs_delay, interleave=interleave, all_errors=all_errors,
            )  # fmt: skip  # argument groups a line, as the base method's signature reads
        return await open_stream(
            self, self.usernet_driver(), conn, protocol_factory, ssl=ssl, server_hostname=hostname,
            handshake_timeout=ssl_handshake_timeout, shutdown_timeout=ssl_shutdown_timeout,
        )  # fmt: skip  # argument groups a line, as the base method's signature reads

    async def _usernet_connect_any(self, remotes: list[Address], local: Address | None, all_errors: bool) -> Any:
        """Try each address in turn, as the stdlib does without happy eyeballs; raise as it raises."""
        driver = self.usernet_driver()
        errors: list[OSError] = []
        for remote in remotes:
            try:
                return await connect(self, driver, remote, local)
            except OSError as exc:
                errors.append(exc)
        if all_errors:
            raise ExceptionGroup("create_connection failed", errors)
        if len({str(exc) for exc in errors}) == 1:
            raise errors[0]
        raise OSError(f"Multiple exceptions: {', '.join(str(exc) for exc in errors)}")

    async def create_server(  # type: ignore[override]  # one signature for typeshed's overloads, as asyncio
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | Iterable[str] | None = None,
        port: int | str | None = None,
        *,
        family: int = socket.AF_UNSPEC,
        flags: int = socket.AI_PASSIVE,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: ssl_module.SSLContext | None = None,
        reuse_address: bool | None = None,
        reuse_port: bool | None = None,
        keep_alive: bool | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        start_serving: bool = True,
    ) -> asyncio.AbstractServer:
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        if ssl_handshake_timeout is not None and ssl is None:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and ssl is None:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        kernel_sockets: list[socket.socket] = []
        try:
            if host is not None or port is not None:
                if sock is not None:
                    raise ValueError("host/port and sock can not be specified at the same time")
                self._usernet_check_family(family)
                hosts: list[str | None] = [host] if host is None or isinstance(host, str) else list(host)
                addresses = await self._usernet_server_addresses(hosts, port, flags, family)
                number = _port_number(port, socket.SOCK_STREAM)
            else:
                if sock is None:
                    raise ValueError("Neither host/port nor sock were specified")
                if sock.type != socket.SOCK_STREAM:
                    raise ValueError(f"A Stream Socket was expected, got {sock!r}")
                if sock.family not in (socket.AF_INET, socket.AF_INET6):
                    raise _Kernel
                bound, number = sock.getsockname()[:2]
                # An AF_INET6 socket on "::" without IPV6_V6ONLY is dual-stack (uvicorn's on "::"):
                # both wildcards, IPv4's alone without IPv6, as _usernet_listen does.
                dual = sock.family == socket.AF_INET6 and bound == "::" and not _v6only(sock)
                if sock.family == socket.AF_INET6 and not dual and not self.usernet_router.ipv6:
                    raise _Kernel
                addresses = await self._usernet_server_addresses([None if dual else bound], number, flags)
                kernel_sockets.append(sock)
        except _Kernel:
            return await self._usernet_base(
                "create_server", protocol_factory, host, port, family=family, flags=flags, sock=sock, backlog=backlog,
                ssl=ssl, reuse_address=reuse_address, reuse_port=reuse_port, keep_alive=keep_alive,
                ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
                start_serving=start_serving,
            )  # fmt: skip  # argument groups a line, as the base method's signature reads
        driver = self.usernet_driver()
        fastopen = kernel_fastopen(kernel_sockets[0]) if kernel_sockets else 0
        server = Server(
            self, driver, listen(driver, addresses, number, backlog, fastopen), protocol_factory,
            ssl=ssl, ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
            keep_alive=keep_alive, kernel_sockets=kernel_sockets,
        )  # fmt: skip  # argument groups a line, as the base method's signature reads
        if start_serving:
            await server.start_serving()
        return server

    async def _usernet_server_addresses(
        self, hosts: list[str | None], port: Any, flags: int, family: int = 0
    ) -> list[str | None]:
        """The addresses to listen on (None: IPv4's any, "::" IPv6's), or _Kernel when they all belong to
        the kernel. No host (or "") means every address of the families asked for, as asyncio's
        create_server binds 0.0.0.0 and :: (the latter IPV6_V6ONLY)."""
        addresses: list[str | None] = []
        for host in hosts:
            if host in (None, ""):
                if family != socket.AF_INET6:
                    addresses.append(None)
                if family != socket.AF_INET and self.usernet_router.ipv6:
                    addresses.append("::")
            elif host == "0.0.0.0":
                addresses.append(None)
            else:
                addresses.extend(
                    addr for addr, _ in await self._usernet_resolve(host, port, socket.SOCK_STREAM, 0, flags, family)
                )
        backends = {self.usernet_router.choose(addr, None) for addr in addresses}
        if backends == {"kernel"}:
            raise _Kernel
        if len(backends) > 1:
            raise OSError(
                errno.EINVAL,
                f"the addresses {hosts} are partly usernet's and partly the kernel's: create one server for each",
            )
        return addresses

    async def start_tls(
        self,
        transport: asyncio.BaseTransport,
        protocol: asyncio.BaseProtocol,
        sslcontext: ssl_module.SSLContext,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> asyncio.Transport:
        if not isinstance(transport, StreamTransport):
            return await self._usernet_base(
                "start_tls", transport, protocol, sslcontext, server_side=server_side, server_hostname=server_hostname,
                ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
            )  # fmt: skip  # argument groups a line, as the base method's signature reads
        return await tls.start_tls(
            self, transport, protocol, sslcontext, server_side=server_side, server_hostname=server_hostname,
            handshake_timeout=ssl_handshake_timeout, shutdown_timeout=ssl_shutdown_timeout,
        )  # fmt: skip  # argument groups a line, as the base method's signature reads

    async def sendfile(
        self, transport: asyncio.WriteTransport, file: IO[bytes], offset: int = 0, count: int | None = None,
        *, fallback: bool = True,
    ) -> int:  # fmt: skip  # parameters as the base method lists them
        if not isinstance(transport, StreamTransport):
            return await super().sendfile(transport, file, offset, count, fallback=fallback)
        if not fallback:
            raise asyncio.SendfileNotAvailableError("usernet has no sendfile system call: pass fallback=True")
        return await transport.sendfile(file, offset, count)

    # -- the socket-level methods ----------------------------------------------------------

    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        try:
            if isinstance(sock, PseudoSocket):
                raise OSError(errno.EISCONN, "Transport endpoint is already connected")
            families = (socket.AF_INET, socket.AF_INET6) if self.usernet_router.ipv6 else (socket.AF_INET,)
            if sock.family not in families or sock.type != socket.SOCK_STREAM or not isinstance(address, tuple):
                raise _Kernel  # an AF_INET6 socket is usernet's too with IPv6 on (aiohttp's happy eyeballs make them)
            remote = (await self._usernet_resolve(address[0], address[1], socket.SOCK_STREAM, 0, 0, sock.family))[0]
            bound, bound_port = sock.getsockname()[:2]
            specific = None if bound in WILDCARDS else bound
            if not remote[0] or self.usernet_router.choose(specific, remote[0]) == "kernel":
                raise _Kernel
        except _Kernel:
            return await super().sock_connect(sock, address)
        local = None if bound_port == 0 and specific is None else (specific or "", bound_port)
        driver = self.usernet_driver()
        conn = await connect(self, driver, remote, local, kernel_fastopen_connect(sock))
        self._usernet_holders.add(sock, sockets.Held(self, driver, conn))

    async def sock_accept(self, sock: socket.socket) -> tuple[Any, Any]:
        held = self._usernet_holders.find(sock) or self._usernet_listen(sock)
        if held is None:
            return await super().sock_accept(sock)
        return await sockets.accept(held)

    def _usernet_listen(self, sock: socket.socket) -> sockets.Held | None:
        """A usernet listener for a listening kernel socket the router sends to usernet (else None).

        Sockets by their bound address. An AF_INET6 one on "::" with IPV6_V6ONLY off
        (anyio's default listener) is dual-stack: it listens on both wildcards (IPv4's
        alone when usernet runs without IPv6), and its IPv4 connections name their peers
        `::ffff:a.b.c.d`, as the kernel's do.
        """
        if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return None
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return None  # the base loop raises the kernel's error
        bound, port = sock.getsockname()[:2]
        router = self.usernet_router
        hosts: list[str | None] = [None if bound == "0.0.0.0" else bound]
        if sock.family == socket.AF_INET6:
            if bound == "::" and not _v6only(sock):
                hosts = [None, "::"] if router.ipv6 else [None]  # both families on one socket
            elif not router.ipv6:
                return None
        if router.choose(None if bound in WILDCARDS else bound, None) == "kernel":
            return None
        driver = self.usernet_driver()
        listeners = listen(driver, hosts, port, socket.SOMAXCONN, kernel_fastopen(sock))
        held = sockets.Held(self, driver, listeners[0], sock.family, listeners[1] if len(listeners) > 1 else None)
        return self._usernet_holders.add(sock, held)

    def _usernet_udp(self, sock: socket.socket, remote: str | None) -> sockets.Held | None:
        """The Held usernet UDP socket for a kernel UDP socket the router sends to usernet (else None).

        Bound and connected as the kernel socket is (a wildcard or unbound one, with
        no peer, goes to usernet: rule 4 of the routing). An AF_INET6 one is usernet's
        with IPv6 on, bound to IPv6's wildcard when the kernel's is: it then takes IPv6
        alone, as with IPV6_V6ONLY (usernet's UDP has no dual-stack socket).
        """
        held = self._usernet_holders.find(sock)
        if held is not None or isinstance(sock, PseudoSocket):
            return held
        ipv6 = sock.family == socket.AF_INET6
        if sock.type != socket.SOCK_DGRAM or not (sock.family == socket.AF_INET or (ipv6 and self.usernet_router.ipv6)):
            return None
        bound, port = sock.getsockname()[:2]
        try:
            peer: Address | None = sock.getpeername()[:2]
        except OSError:
            peer = None
        specific = None if bound in WILDCARDS else bound
        if self.usernet_router.choose(specific, peer[0] if peer else remote) == "kernel":
            return None
        driver = self.usernet_driver()
        udp = open_udp(driver, (bound, port) if port or ipv6 else None)
        if peer is not None:
            udp.connect((pack(peer[0]), peer[1]))
        return self._usernet_holders.add(sock, sockets.Held(self, driver, udp))

    def _usernet_stream(self, sock: socket.socket) -> sockets.Held | None:
        held = self._usernet_holders.find(sock)
        if held is not None and not isinstance(held.sock, TcpConnection):
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return held

    async def sock_recv(self, sock: socket.socket, n: int) -> bytes:
        if sock.type == socket.SOCK_DGRAM:
            held = self._usernet_udp(sock, None)
            if held is None:
                return await super().sock_recv(sock, n)
            return (await sockets.recvfrom(held, n))[0]
        held = self._usernet_stream(sock)
        if held is None:
            return await super().sock_recv(sock, n)
        buf = bytearray(n)
        got = await sockets.recv_into(held, memoryview(buf))
        return bytes(buf[:got])

    async def sock_recv_into(self, sock: socket.socket, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        if sock.type == socket.SOCK_DGRAM:
            held = self._usernet_udp(sock, None)
            if held is None:
                return await super().sock_recv_into(sock, buf)
            data = (await sockets.recvfrom(held, len(view)))[0]
            view[: len(data)] = data
            return len(data)
        held = self._usernet_stream(sock)
        if held is None:
            return await super().sock_recv_into(sock, buf)
        return await sockets.recv_into(held, view)

    async def sock_sendall(self, sock: socket.socket, data: Any) -> None:
        if sock.type == socket.SOCK_DGRAM:
            held = self._usernet_udp(sock, None)
            if held is None:
                return await super().sock_sendall(sock, data)
            sockets.sendto(held, data, None)
            return None
        held = self._usernet_stream(sock)
        if held is None:
            return await super().sock_sendall(sock, data)
        await sockets.sendall(held, memoryview(data).cast("B"))
        return None

    async def sock_recvfrom(self, sock: socket.socket, bufsize: int) -> tuple[bytes, Any]:
        held = self._usernet_udp(sock, None)
        if held is None:
            return await super().sock_recvfrom(sock, bufsize)
        return await sockets.recvfrom(held, bufsize)

    async def sock_recvfrom_into(self, sock: socket.socket, buf: Any, nbytes: int = 0) -> tuple[int, Any]:
        held = self._usernet_udp(sock, None)
        if held is None:
            return await super().sock_recvfrom_into(sock, buf, nbytes)
        view = memoryview(buf).cast("B")
        data, source = await sockets.recvfrom(held, nbytes or len(view))
        view[: len(data)] = data
        return len(data), source

    async def sock_sendto(self, sock: socket.socket, data: Any, address: Any) -> int:
        held = None
        if isinstance(address, tuple) and len(address) == 2:
            remote = (await self._usernet_resolve(address[0], address[1], socket.SOCK_DGRAM, 0, 0))[0]
            held = self._usernet_udp(sock, remote[0] or None)
        if held is None:
            return await super().sock_sendto(sock, data, address)
        return sockets.sendto(held, data, remote)

    async def connect_accepted_socket(  # type: ignore[override]  # one signature for any protocol, as create_connection
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        sock: socket.socket,
        *,
        ssl: bool | ssl_module.SSLContext | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        held = self._usernet_holders.take(sock)
        if held is None:
            return await self._usernet_base(
                "connect_accepted_socket", protocol_factory, sock, ssl=ssl,
                ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
            )  # fmt: skip
        return await self._usernet_take_over(
            held, sock, protocol_factory, ssl, None, ssl_handshake_timeout, ssl_shutdown_timeout, server_side=True
        )

    async def _usernet_take_over(
        self, held: sockets.Held, sock: Any, protocol_factory: Callable[[], asyncio.BaseProtocol], ssl: Any,
        server_hostname: str | None, handshake_timeout: float | None, shutdown_timeout: float | None,
        *, server_side: bool,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:  # fmt: skip
        """A stream transport on a Held connection; it takes over the socket object the program holds."""
        if not isinstance(held.sock, TcpConnection):
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return await open_stream(
            self, held.driver, held.sock, protocol_factory, ssl=ssl, server_hostname=server_hostname,
            handshake_timeout=handshake_timeout, shutdown_timeout=shutdown_timeout, server_side=server_side,
            pseudo=held.pseudo, kernel_sock=None if isinstance(sock, PseudoSocket) else sock,
        )  # fmt: skip

    # -- names -----------------------------------------------------------------------------

    async def getaddrinfo(
        self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, ...]]:
        """IPv4 literals are answered at once (no executor round trip); names go to usernet's resolver
        when `--dns` or `--only` asks for one or the network (DHCP, RAs) names a DNS server (see
        usernet.aio.resolver), else to the base loop."""
        if _is_ipv4(host) and family in (0, socket.AF_INET):
            return socket.getaddrinfo(host, port, family, type, proto, flags)
        resolver = self.usernet_resolver
        named = isinstance(host, (str, bytes)) and host and not _is_ip_literal(host)
        if named and resolver is not None and resolver.active:
            return await resolver.getaddrinfo(host, port, family, type, proto, flags)
        return await super().getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags)

    @functools.cached_property
    def usernet_resolver(self) -> Resolver | None:
        """The stub resolver names go to (made on first use), or None: then the C library resolves them."""
        config = self.usernet_config
        if config is None:
            return None
        host = self.usernet_driver().host
        network = functools.partial(network_servers, host) if config.dhcp or config.wants_ipv6 else None
        search = functools.partial(network_search, host) if config.wants_ipv6 else None
        return Resolver.from_config(config, network=network, search=search)

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        """Addresses on usernet's networks have no names anyone could look up: they are answered numerically here."""
        if len(sockaddr) == 2 and _is_ipv4(sockaddr[0]) and self.usernet_router.on_network(sockaddr[0]):
            if flags & socket.NI_NAMEREQD:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return socket.getnameinfo(sockaddr, flags | socket.NI_NUMERICHOST)
        return await super().getnameinfo(sockaddr, flags)


class UsernetSelectorEventLoop(UsernetLoopMixin, asyncio.SelectorEventLoop):
    """asyncio's selector loop with usernet's stack for the sockets the Router sends there."""

    def __init__(
        self,
        selector: selectors.BaseSelector | None = None,
        *,
        config: UsernetConfig | None = None,
        host: Host | None = None,
    ) -> None:
        super().__init__(selector)
        self._usernet_setup(config, host)
