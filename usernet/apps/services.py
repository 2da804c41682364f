"""Built-in services that run directly on the sans-IO sockets (no asyncio needed).

They make `usernet up` useful on its own for manual testing and quick measurements:
RFC 862 echo over UDP and TCP, RFC 863 discard and RFC 864 chargen over TCP. Each
TCP session keeps its memory bounded whatever the peer does: echo holds at most one
chunk it could not send yet and stops reading until the connection has room again
(so a peer that sends without reading sees the window close), chargen queues only
what the send buffer has room for. A connection wakes its session when data, EOF,
an error or a state change arrives, or when it has room again after a short `send`
(docs/tcp.md): sessions therefore always write until a `send` comes up short.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from usernet.stack.interface import Interface, Socket
from usernet.stack.tcp.connection import TcpConnection
from usernet.stack.tcp.layer import TcpListener
from usernet.stack.tcp.states import State
from usernet.stack.udp import ANY, ANY6

ECHO_PORT = 7
DISCARD_PORT = 9
CHARGEN_PORT = 19
CHUNK = 65536  # the most a session reads or writes in one call

_FINISHED = (State.CLOSED, State.TIME_WAIT)
_GENERATING = (State.ESTABLISHED, State.CLOSE_WAIT)


class UdpEcho:
    """RFC 862 echo over UDP: every datagram goes back to its sender unchanged (IPv6 too, when on)."""

    def __init__(self, iface: Interface, port: int = ECHO_PORT) -> None:
        self.sock = iface.open_udp((ANY, port))
        self.sock6 = iface.open_udp((ANY6, port)) if iface.ipv6 is not None else None
        self.echoed = 0

    def handle(self, sock: Socket, now: float) -> bool:
        """Answer what `sock` holds if it is one of this service's sockets; False if it is not."""
        if sock is not self.sock and sock is not self.sock6:
            return False
        udp = sock
        while (item := udp.recvfrom()) is not None:
            data, source = item
            try:
                udp.sendto(data, source, now)
            except OSError:
                continue  # e.g. the sender is off-link and there is no gateway: nothing to answer
            self.echoed += 1
        udp.errors.clear()
        return True


class Session(ABC):
    """What a TCP service does with one accepted connection; `pump` runs at each wake-up."""

    __slots__ = ("conn", "moved")

    def __init__(self, conn: TcpConnection) -> None:
        self.conn = conn
        self.moved = 0  # payload bytes the service handled (echoed, discarded, generated)

    @abstractmethod
    def pump(self, now: float) -> None:
        """Move what the connection allows now; raises OSError once the connection failed."""


class EchoSession(Session):
    """RFC 862: everything received goes back; the peer's FIN is answered once all is echoed."""

    __slots__ = ("_pending",)

    def __init__(self, conn: TcpConnection) -> None:
        super().__init__(conn)
        self._pending = memoryview(b"")

    def pump(self, now: float) -> None:
        conn = self.conn
        while True:
            pending = self._pending
            if pending:
                n = conn.send(pending, now)
                self.moved += n
                if n < len(pending):
                    self._pending = pending[n:]
                    return  # no room: reading stops until the connection wakes us with room
                self._pending = memoryview(b"")
            data = conn.receive(CHUNK)
            if not data:
                break
            self._pending = memoryview(data)
        if conn.at_eof:
            conn.shutdown(now)


class DiscardSession(Session):
    """RFC 863: everything received is thrown away; the peer's FIN is answered with ours."""

    __slots__ = ("_scratch",)

    def __init__(self, conn: TcpConnection, scratch: bytearray) -> None:
        super().__init__(conn)
        self._scratch = scratch

    def pump(self, now: float) -> None:
        conn = self.conn
        while n := conn.receive_into(self._scratch):
            self.moved += n
        if conn.at_eof:
            conn.shutdown(now)


def _chargen_pattern() -> bytes:
    """RFC 864's rotating pattern: 72 printable characters a line, each line starting one later."""
    chars = bytes(range(32, 127))
    period = b"".join((chars * 2)[k : k + 72] + b"\r\n" for k in range(len(chars)))
    return period * (2 + CHUNK // len(period))  # any CHUNK-long slice from inside the first period exists


_PATTERN = _chargen_pattern()
_PERIOD = 95 * 74
_PATTERN_VIEW = memoryview(_PATTERN)


class ChargenSession(Session):
    """RFC 864: characters until the peer goes away; what the peer sends is discarded.

    It offers one byte more than the send buffer has room for, so the last `send`
    always comes up short and the connection wakes the session when room is back.
    The peer's FIN ends the generation: the session closes its side too.
    """

    __slots__ = ("_offset", "_scratch")

    def __init__(self, conn: TcpConnection, scratch: bytearray) -> None:
        super().__init__(conn)
        self._offset = 0
        self._scratch = scratch

    def pump(self, now: float) -> None:
        conn = self.conn
        while conn.receive_into(self._scratch):
            pass
        if conn.at_eof:
            conn.close(now)
            return
        if conn.state not in _GENERATING:
            return
        offset = self._offset
        while True:
            offer = min(conn.send_space() + 1, CHUNK)
            n = conn.send(_PATTERN_VIEW[offset : offset + offer], now)
            self.moved += n
            offset = (offset + n) % _PERIOD
            if n < offer:
                break
        self._offset = offset


@dataclass(frozen=True)
class ConnectionRecord:
    """One connection of a service as `usernet up` reports it; `info` is `TcpConnection.info()`."""

    service: str
    local: tuple[bytes, int]
    remote: tuple[bytes, int]
    info: dict[str, Any]
    moved: int
    error: OSError | None
    live: bool


class TcpService:
    """A listener and the sessions of the connections it accepted.

    Finished connections leave their statistics in a bounded history, so that a report
    made after a test run still shows them.
    """

    def __init__(
        self,
        iface: Interface,
        name: str,
        port: int,
        session: Callable[[TcpConnection], Session],
        *,
        backlog: int = 128,
        history: int = 64,
    ) -> None:
        self.name = name
        self.listener: TcpListener = iface.tcp.listen((ANY, port), backlog)
        self.listener6 = iface.tcp.listen((ANY6, port), backlog) if iface.ipv6 is not None else None
        # Keyed by any socket, so that whatever `handle` is given can be looked up as it is.
        self.sessions: dict[Socket, Session] = {}
        self.finished: deque[ConnectionRecord] = deque(maxlen=history)
        self.accepted = 0
        self._new_session = session

    def handle(self, sock: Socket, now: float) -> bool:
        """Serve `sock` if it is this service's listener or one of its connections; False if not."""
        if sock is self.listener or sock is self.listener6:
            while (conn := sock.accept()) is not None:
                self.accepted += 1
                session = self.sessions[conn] = self._new_session(conn)
                self._step(session, now)  # data may have come with the handshake: nothing else will tell
            return True
        found = self.sessions.get(sock)
        if found is None:
            return False
        self._step(found, now)
        return True

    def records(self) -> list[ConnectionRecord]:
        """Finished connections, oldest first, then live ones."""
        return [*self.finished, *(self._record(s, live=True) for s in self.sessions.values())]

    def close(self, now: float) -> None:
        """Stop listening and reset every connection (the abrupt end of `usernet up`)."""
        self.listener.close(now)
        if self.listener6 is not None:
            self.listener6.close(now)
        for session in list(self.sessions.values()):
            session.conn.abort(now)
            self._finish(session)

    def _step(self, session: Session, now: float) -> None:
        conn = session.conn
        try:
            session.pump(now)
        except OSError:
            pass  # reset or timed out: conn.error says which, and the connection is CLOSED
        if conn.state in _FINISHED:
            self._finish(session)

    def _finish(self, session: Session) -> None:
        if self.sessions.pop(session.conn, None) is not None:
            self.finished.append(self._record(session, live=False))

    def _record(self, session: Session, *, live: bool) -> ConnectionRecord:
        conn = session.conn
        return ConnectionRecord(self.name, conn.local, conn.remote, conn.info(), session.moved, conn.error, live)


class Services:
    """What `usernet up` serves: UDP echo, and TCP echo, discard and chargen on their RFC ports."""

    def __init__(self, iface: Interface, *, history: int = 64) -> None:
        scratch = bytearray(CHUNK)  # sessions run one at a time: they can share what they throw away
        self.udp_echo = UdpEcho(iface)
        self.echo = TcpService(iface, "echo", ECHO_PORT, EchoSession, history=history)
        self.discard = TcpService(iface, "discard", DISCARD_PORT, lambda c: DiscardSession(c, scratch), history=history)
        self.chargen = TcpService(iface, "chargen", CHARGEN_PORT, lambda c: ChargenSession(c, scratch), history=history)
        self.tcp = (self.echo, self.discard, self.chargen)

    def handle(self, sock: Socket, now: float) -> bool:
        """The driver's `on_ready`: hand `sock` to the service it belongs to; False if none."""
        if self.udp_echo.handle(sock, now):
            return True
        return any(service.handle(sock, now) for service in self.tcp)

    def records(self) -> list[ConnectionRecord]:
        return [record for service in self.tcp for record in service.records()]

    def close(self, now: float) -> None:
        for service in self.tcp:
            service.close(now)
