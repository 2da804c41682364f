"""What the protocol layers need from the interface they run on, declared in one place.

UDP, ICMP and TCP hold their interface through this protocol, not the `Interface` class:
they import this module, `interface.py` imports them, and no module of the stack imports
one that imports it back.
"""

from __future__ import annotations

from typing import Protocol

from usernet.stack.config import InterfaceConfig
from usernet.stack.pmtu import PathMtuCache
from usernet.stack.route import Route
from usernet.stack.stats import Stats

ANY = b"\x00\x00\x00\x00"  # INADDR_ANY: bound to every IPv4 address
ANY6 = bytes(16)  # in6addr_any: bound to every IPv6 address


def unspecified(addr: bytes) -> bytes:
    """The wildcard address of `addr`'s family: where a socket bound to every address is filed."""
    return ANY6 if len(addr) == 16 else ANY


class Node(Protocol):
    """An interface as its protocol layers see it."""

    @property
    def config(self) -> InterfaceConfig: ...

    @property
    def counters(self) -> Stats: ...

    @property
    def local_addresses(self) -> frozenset[bytes]: ...

    @property
    def path_mtu(self) -> PathMtuCache:
        """The per-destination path MTUs that ICMP "fragmentation needed" lowers."""
        ...

    def route_to(self, dst: bytes, source: bytes | None = None) -> Route | None:
        """The route to `dst` (from `source`, else the preferred source address), None if unreachable."""
        ...

    def is_local(self, addr: bytes) -> bool:
        """One of our usable addresses, IPv4 or IPv6."""
        ...

    def is_broadcast(self, addr: bytes) -> bool: ...

    def is_unicast(self, addr: bytes) -> bool: ...

    def mark_ready(self, sock: object) -> None:
        """`sock` has data or an error for its user: the driver tells the user side once per batch."""
        ...
