"""Addresses between the stdlib's socket tuples and the stack's bytes, for both families.

The stack names an address by its 4 or 16 bytes; asyncio programs see what a kernel
socket would give them: `(host, port)` for IPv4, `(host, port, flowinfo, scope_id)` for
IPv6 (flow and scope 0: usernet has one interface and keeps no flow labels).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from usernet.aio.routing import parse_host
from usernet.stack.node import ANY, unspecified

__all__ = ["SockAddr", "family_of", "name", "pack", "pack_local"]

SockAddr = tuple[Any, ...]  # (host, port) or (host, port, flowinfo, scope_id)
_packed: dict[str, bytes] = {}


def pack(host: str) -> bytes:
    """An address string as 4 or 16 bytes ("" and "0.0.0.0": IPv4's any, "::": IPv6's); names are
    resolved (blocking), as a kernel socket's sendto does."""
    packed = _packed.get(host)
    if packed is None:
        if host == "":
            packed = ANY
        else:
            try:
                packed = parse_host(host).packed
            except ValueError:
                packed = socket.inet_aton(socket.gethostbyname(host))
        if len(_packed) < 4096:
            _packed[host] = packed
    return packed


def pack_local(host: str | None, remote: bytes) -> bytes:
    """A local address for a socket toward `remote`: None or "" is the wildcard of `remote`'s family."""
    return unspecified(remote) if not host else pack(host)


def name(addr: tuple[bytes, int]) -> SockAddr:
    """The stdlib's tuple for a stack address: 2 items for IPv4, 4 for IPv6."""
    host, port = addr
    if len(host) == 16:
        return (str(ipaddress.IPv6Address(host)), port, 0, 0)
    return (socket.inet_ntoa(host), port)


def family_of(addr: bytes) -> int:
    return socket.AF_INET6 if len(addr) == 16 else socket.AF_INET
