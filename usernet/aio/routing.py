"""Which stack a socket lives on: usernet or the kernel.

The rule (see "The asyncio face" in docs/architecture.md):

- a specific local address decides: one of usernet's addresses → usernet, any other
  (127.0.0.1, a kernel interface's address) → kernel;
- otherwise the remote address decides: on one of usernet's networks, or anywhere but
  loopback and multicast when a gateway is configured → usernet; else the kernel;
- with neither (a wildcard or no local address, no remote: a server) → usernet, because
  the program was started on usernet to be reached there;
- `only=True` (`--only`, USERNET_ONLY=1) turns every "kernel" answer into ENETUNREACH.

Per call, `use_backend("kernel" | "usernet")` overrides the rule for the sockets created
inside the `with` block (a context variable: it follows the task, not the thread, and
keeps loop method signatures exactly the stdlib's).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import ipaddress
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from usernet.stack.config import InterfaceConfig
    from usernet.stack.interface import Interface

__all__ = ["WILDCARDS", "Backend", "Router", "forced_backend", "parse_host", "use_backend"]

Backend = Literal["usernet", "kernel"]
_override: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("usernet_backend", default=None)


@contextlib.contextmanager
def use_backend(backend: Backend) -> Iterator[None]:
    """Create the sockets inside this block on `backend`, whatever their addresses say.

    `with use_backend("kernel"): await loop.create_datagram_endpoint(...)` keeps one
    endpoint on the kernel in a program that otherwise runs on usernet.
    """
    if backend not in ("usernet", "kernel"):
        raise ValueError(f"backend is 'usernet' or 'kernel', not {backend!r}")
    token = _override.set(backend)
    try:
        yield
    finally:
        _override.reset(token)


def forced_backend() -> Backend | None:
    """The backend a surrounding `use_backend` block forces, or None (for usernet.socket's default)."""
    return _override.get()


IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
WILDCARDS = ("", "0.0.0.0", "::")
_LINK_LOCAL = ipaddress.IPv6Network("fe80::/10")


def parse_host(host: str) -> IPAddress:
    """An IPv4 or IPv6 literal, an IPv6 scope (`%usernet0`) left out: usernet has one interface."""
    return ipaddress.ip_address(host.split("%", 1)[0])


class Router:
    """Applies the rule for one usernet interface; addresses are IPv4 or IPv6 literals, or None for "any".

    With IPv6 on, link-local addresses are on usernet's link, and any global IPv6 address
    is reached through usernet when a gateway is set or `slaac` may bring one (a router's
    advertisement). Addresses the stack forms itself (its link-local address, SLAAC's
    from a router's prefix) or is given later (a DHCP lease that moved) exist only once it
    runs: `follow(iface)` makes them usernet's own from then on, so a socket bound to one,
    or connecting from one, goes to usernet as one bound to a configured address does.
    """

    def __init__(
        self,
        interfaces: Iterable[IPInterface],
        gateway: ipaddress.IPv4Address | None = None,
        *,
        only: bool = False,
        gateway6: ipaddress.IPv6Address | None = None,
        ipv6: bool = False,
        slaac: bool = False,
    ) -> None:
        self.interfaces = tuple(interfaces)
        self.gateway = gateway
        self.gateway6 = gateway6
        self.ipv6 = ipv6 or gateway6 is not None or any(i.version == 6 for i in self.interfaces)
        self._slaac = slaac
        self.only = only
        self._local = frozenset(i.ip for i in self.interfaces)
        self._followed: Interface | None = None

    @classmethod
    def from_interface_config(
        cls,
        addresses: Iterable[tuple[bytes, int]],
        gateway: bytes | None,
        *,
        only: bool,
        addresses6: Iterable[tuple[bytes, int]] = (),
        gateway6: bytes | None = None,
        ipv6: bool = False,
        slaac: bool = False,
    ) -> Router:
        """Build from the stack's own InterfaceConfig fields (addresses as (bytes, prefix))."""
        ifaces: list[IPInterface] = [
            ipaddress.ip_interface((ipaddress.ip_address(addr), prefix)) for addr, prefix in (*addresses, *addresses6)
        ]
        return cls(
            ifaces,
            ipaddress.IPv4Address(gateway) if gateway else None,
            only=only,
            gateway6=ipaddress.IPv6Address(gateway6) if gateway6 else None,
            ipv6=ipv6,
            slaac=slaac,
        )

    @classmethod
    def for_interface(cls, config: InterfaceConfig, *, only: bool) -> Router:
        """The rule for an interface built from `config` (its IPv4 and IPv6 addresses and gateways)."""
        return cls.from_interface_config(
            config.addresses, config.gateway, only=only, addresses6=config.addresses6, gateway6=config.gateway6,
            ipv6=config.wants_ipv6, slaac=config.wants_ipv6 and config.slaac and config.ethernet,  # no RAs on IP-only
        )  # fmt: skip

    def follow(self, iface: Interface) -> None:
        """Count the addresses `iface` has as it runs among usernet's own: those it forms (IPv6
        link-local, SLAAC) and those it is given later (a new DHCP lease).

        The driver's loop calls this once its stack exists; the rule then reads the
        stack's current sets (frozensets the stack replaces whole, safe to read from any
        thread) on each call, so an address that comes or goes counts at once.
        """
        self._followed = iface

    def is_local(self, host: str) -> bool:
        """True when `host` is one of usernet's own addresses: configured, or the followed stack's now."""
        addr = parse_host(host)
        if addr in self._local:
            return True
        iface = self._followed
        if iface is None:
            return False
        if addr.version == 4:
            return addr.packed in iface.local_addresses
        return iface.ipv6 is not None and addr.packed in iface.ipv6.local_addresses

    def on_network(self, host: str) -> bool:
        """True when `host` is on one of usernet's own networks (a neighbour, not via the gateway)."""
        addr = parse_host(host)
        if addr.version == 6 and self.ipv6 and addr in _LINK_LOCAL:
            return True
        return any(addr in i.network for i in self.interfaces if i.version == addr.version)

    def reaches(self, host: str) -> bool:
        """True when usernet can send to `host`: on one of its networks, a broadcast, or via the gateway."""
        addr = parse_host(host)
        if addr == ipaddress.IPv4Address("255.255.255.255"):
            return True
        if self.on_network(host):
            return True
        if addr.version == 6:
            gateway = self.ipv6 and (self.gateway6 is not None or self._slaac)
        else:
            gateway = self.gateway is not None
        return gateway and not (addr.is_loopback or addr.is_multicast or addr.is_unspecified)

    def choose(self, local: str | None, remote: str | None) -> Backend:
        """The stack for a socket bound to `local` (None, "0.0.0.0" or "::": any) and maybe connected to `remote`."""
        forced = _override.get()
        if forced is not None:
            backend = forced
        elif local is not None and local not in WILDCARDS:
            backend = "usernet" if self.is_local(local) else "kernel"
        elif remote is not None:
            backend = "usernet" if self.reaches(remote) else "kernel"
        else:
            backend = "usernet"
        if backend == "kernel" and self.only:
            self.refuse(remote or local or "this socket")
        return backend

    def refuse(self, what: str) -> None:
        """Raise the error `only=True` gives for anything the kernel would have to carry."""
        networks = ", ".join(str(i.network) for i in self.interfaces)
        hint = "" if self.gateway is not None else "; set a gateway (--gateway) to reach other networks through usernet"
        raise OSError(
            errno.ENETUNREACH,
            f"{what} is not reachable through usernet (networks {networks}) and the kernel is not used "
            f"(only=True, --only or USERNET_ONLY=1){hint}",
        )
