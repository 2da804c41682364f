"""The usernet event loops: the stdlib selector loop and uvloop, with one mixin doing the usernet part.

Each loop method first asks the Router which stack the socket belongs on; kernel
sockets go to the base class untouched, so everything a program does off usernet's
networks behaves exactly as on the base loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
from collections.abc import Callable
from typing import Any

from usernet.aio import shared
from usernet.aio.config import UsernetConfig, open_host
from usernet.aio.datagram import open_endpoint
from usernet.aio.driver import Driver
from usernet.aio.routing import Router
from usernet.host import Host

__all__ = ["UsernetLoopMixin", "UsernetSelectorEventLoop"]

Address = tuple[str, int]


class _Kernel(Exception):
    """Internal signal: this call belongs to the base loop."""


class UsernetLoopMixin:
    """The usernet half of a loop class; put it before the base loop in the bases.

    Where the stack comes from, in order: `host=` (driven, not owned: tests and
    embedders); `config=` (the loop opens its own link on first use and closes it with
    the loop); the process's installed SharedHost (`python -m usernet`); else
    `UsernetConfig.from_env()`, owned as with `config=`.
    """

    _usernet_driver: Driver | None

    def _usernet_setup(self, config: UsernetConfig | None, host: Host | None) -> None:
        self._usernet_driver = None
        self._usernet_exit = contextlib.ExitStack()
        self._usernet_host = host
        self._usernet_shared: shared.SharedHost | None = None
        if host is not None:
            ic = host.iface.config
            only = config.only if config is not None else False
            self.usernet_router = Router.from_interface_config(ic.addresses, ic.gateway, only=only)
            self.usernet_config = config
            return
        if config is None:
            self._usernet_shared = shared.current()
            config = self._usernet_shared.config if self._usernet_shared else UsernetConfig.from_env()
        self.usernet_config = config
        iface = config.interface
        gateway = None if config.gateway is None else socket.inet_aton(config.gateway)
        self.usernet_router = Router.from_interface_config([(iface.ip.packed, iface.network.prefixlen)], gateway,
                                                           only=config.only)

    def usernet_driver(self) -> Driver:
        """The driver of this loop's stack, opening the link and attaching on first use."""
        driver = self._usernet_driver
        if driver is None:
            if self.is_closed():  # type: ignore[attr-defined]
                raise RuntimeError("Event loop is closed")
            driver = Driver(self, self._usernet_acquire())  # type: ignore[arg-type]
            driver.attach()
            self._usernet_driver = driver
        return driver

    def _usernet_acquire(self) -> Host:
        if self._usernet_host is not None:
            return self._usernet_host
        if self._usernet_shared is not None:
            return self._usernet_shared.get()
        assert self.usernet_config is not None
        return self._usernet_exit.enter_context(open_host(self.usernet_config, clock=self.time))  # type: ignore[attr-defined]

    def close(self) -> None:
        if not self.is_running():  # type: ignore[attr-defined]
            driver, self._usernet_driver = self._usernet_driver, None
            try:
                if driver is not None:
                    driver.detach()
            finally:
                self._usernet_exit.close()
        super().close()  # type: ignore[misc]

    # -- UDP -------------------------------------------------------------------------------

    async def create_datagram_endpoint(  # type: ignore[override]
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
        try:
            if sock is not None or proto not in (0, socket.IPPROTO_UDP):
                raise _Kernel
            local, remote = await self._usernet_datagram_addresses(local_addr, remote_addr, family, proto, flags)
            if remote is not None and remote[0] == "":
                raise _Kernel
            wildcard = local is None or local[0] in ("", "0.0.0.0")
            if self.usernet_router.choose(None if wildcard else local[0], remote and remote[0]) == "kernel":
                raise _Kernel
        except _Kernel:
            return await super().create_datagram_endpoint(  # type: ignore[misc, no-any-return]
                protocol_factory, local_addr, remote_addr, family=family, proto=proto, flags=flags,
                reuse_port=reuse_port, allow_broadcast=allow_broadcast, sock=sock,
            )  # fmt: skip
        return await open_endpoint(
            self, self.usernet_driver(), protocol_factory, local, remote,  # type: ignore[arg-type]
            allow_broadcast=bool(allow_broadcast), reuse_port=bool(reuse_port),
        )  # fmt: skip

    async def _usernet_datagram_addresses(
        self, local_addr: Any, remote_addr: Any, family: int, proto: int, flags: int
    ) -> tuple[Address | None, Address | None]:
        """Both addresses as IPv4 literals, or raise _Kernel when they are not IPv4 (AF_UNIX, IPv6)."""
        if family not in (0, socket.AF_INET):
            if family == socket.AF_INET6 and self.usernet_router.only:
                self.usernet_router.refuse("an IPv6 endpoint")
            raise _Kernel
        if local_addr is None and remote_addr is None and family == 0:
            raise _Kernel  # the base loop raises its "unexpected address family"
        resolved = []
        for addr in (local_addr, remote_addr):
            if addr is None:
                resolved.append(None)
            elif not isinstance(addr, tuple) or len(addr) != 2:
                raise _Kernel
            else:
                resolved.append(await self._usernet_resolve(addr[0], addr[1], proto, flags))
        return resolved[0], resolved[1]

    async def _usernet_resolve(self, host: str | None, port: int, proto: int, flags: int) -> Address:
        """An IPv4 literal for `host` (None and "" stay "": any); names through the loop's getaddrinfo."""
        if host is None or host == "":
            return ("", port)
        with contextlib.suppress(OSError):
            socket.inet_pton(socket.AF_INET, host)
            return (host, port)
        infos = await self.getaddrinfo(host, port, type=socket.SOCK_DGRAM, proto=proto, flags=flags)  # type: ignore[attr-defined]
        for fam, _, _, _, sockaddr in infos:
            if fam == socket.AF_INET:
                return (sockaddr[0], sockaddr[1])
        if self.usernet_router.only:
            self.usernet_router.refuse(f"{host} (it has no IPv4 address)")
        raise _Kernel


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
