"""What a TCP connection needs from whoever owns it, declared as two small protocols.

A connection never reaches into its owner: it asks through these methods, and the owner
(the `TcpLayer`, and the `TcpListener` while a passive connection waits to be accepted)
implements them. They are generic in the connection type so that this module needs no
import of the connection, which imports it.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from usernet.stack.route import Route
from usernet.stack.stats import Stats
from usernet.stack.tcp.config import TcpConfig
from usernet.stack.tcp.isn import IsnGenerator

Address = tuple[bytes, int]
Conn = TypeVar("Conn", contravariant=True)


class ConnectionOwner(Protocol[Conn]):
    """The TCP layer as one connection sees it. The route it sends through is given at creation."""

    @property
    def config(self) -> TcpConfig: ...

    @property
    def counters(self) -> Stats: ...

    @property
    def isn_source(self) -> IsnGenerator: ...

    def touch(self, conn: Conn) -> None:
        """`conn` has output to send or its timers moved: visit it at the next flush."""
        ...

    def wake(self, conn: Conn) -> None:
        """`conn` has news for its user (data, EOF, an error, room to write)."""
        ...

    def forget(self, conn: Conn) -> None:
        """`conn` reached CLOSED: drop it from the tables and the timer heap."""
        ...

    def send_reset(
        self, route: Route, local: Address, remote: Address, seq: int, ack: int, flags: int, now: float
    ) -> None:
        """Send a RST (with `flags`) that belongs to no connection state."""
        ...

    def challenge_allowed(self, now: float) -> bool:
        """RFC 5961 §7: may one more challenge ACK be sent now (an interface-wide budget)?"""
        ...


class AcceptQueue(Protocol[Conn]):
    """The listener a passive connection belongs to until `accept()` takes it."""

    def established(self, conn: Conn) -> None:
        """The handshake completed: queue `conn` for accept()."""
        ...

    def forget(self, conn: Conn) -> None:
        """`conn` closed before it was accepted."""
        ...
