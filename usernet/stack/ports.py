"""Ports in use and ephemeral port allocation, one of each per transport protocol."""

from __future__ import annotations

import errno
import random
from collections.abc import Container

PORT_MAX = 65535


class PortRangeError(OSError, ValueError):
    """A port outside 0-65535 (or not an int) given to a bind, listen, connect or send.

    An OSError with EINVAL, like every other refusal the stack's callers already handle (and
    what the destination checks raised before), and a ValueError, since the fault is the
    argument's and not the network's: the two bases io.UnsupportedOperation has.
    """


def checked_port(port: object, low: int = 0, what: str = "port") -> int:
    """`port` if it is an int from `low` (0 for a local port, where 0 asks for an ephemeral one;
    1 for a destination) to 65535. Else PortRangeError naming it, so that no caller wraps a
    port to 16 bits or listens where no segment can reach."""
    if not isinstance(port, int) or not low <= port <= PORT_MAX:
        raise PortRangeError(errno.EINVAL, f"{what} {port!r} is out of range {low}-{PORT_MAX}")
    return port


class PortAllocator:
    """Hands out free ephemeral ports, starting from a secret-seeded offset.

    A random start makes ports hard to guess (RFC 6056 in spirit); scanning forward
    from the last port given keeps the common case O(1).
    """

    def __init__(self, low: int, high: int, seed: bytes) -> None:
        if not 0 < low <= high <= PORT_MAX:
            raise ValueError(f"bad ephemeral port range {low}-{high}")
        self._low = low
        self._span = high - low + 1
        self._next = random.Random(seed).randrange(self._span)

    def allocate(self, in_use: Container[int]) -> int:
        """A port not in `in_use`; OSError(EADDRINUSE) when the range is exhausted."""
        for _ in range(self._span):
            port = self._low + self._next
            self._next = (self._next + 1) % self._span
            if port not in in_use:
                return port
        raise OSError(errno.EADDRINUSE, "no free ephemeral port left; close sockets or widen ephemeral_ports")


class PortUse:
    """How many sockets of one protocol hold each port: what `PortAllocator.allocate` skips.

    A port stays in use until the last socket on it (listener, connection, UDP socket
    on any of the interface's addresses) lets it go.
    """

    __slots__ = ("_count",)

    def __init__(self) -> None:
        self._count: dict[int, int] = {}

    def __contains__(self, port: object) -> bool:
        return port in self._count

    def hold(self, port: int) -> None:
        self._count[port] = self._count.get(port, 0) + 1

    def release(self, port: int) -> None:
        left = self._count[port] - 1
        if left:
            self._count[port] = left
        else:
            del self._count[port]
