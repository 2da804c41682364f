"""The services of `usernet up` (UDP echo, TCP echo/discard/chargen) on two simulated hosts."""

from __future__ import annotations

import errno
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from usernet.apps.services import CHARGEN_PORT, CHUNK, DISCARD_PORT, ECHO_PORT, EchoSession, Services
from usernet.drivers.host import Host
from usernet.drivers.virtual import Simulation
from usernet.link.clock import VirtualClock
from usernet.link.memory import MemoryWire
from usernet.stack import Interface, InterfaceConfig, TcpConnection
from usernet.stack.interface import Socket
from usernet.stack.tcp.states import State

CLIENT_IP = bytes([192, 0, 2, 1])
SERVER_IP = bytes([192, 0, 2, 2])


@dataclass
class Client:
    """A usernet client: writes `outgoing` as the connection lets it, keeps what arrives while `reading`."""

    conn: TcpConnection
    outgoing: bytes = b""
    shut_when_sent: bool = True
    reading: bool = True
    sent: int = 0
    received: bytearray = field(default_factory=bytearray)
    wakeups: int = 0

    def pump(self, now: float) -> None:
        self.wakeups += 1
        conn = self.conn
        if conn.state in (State.SYN_SENT, State.CLOSED):
            return
        while self.sent < len(self.outgoing):
            n = conn.send(memoryview(self.outgoing)[self.sent : self.sent + CHUNK], now)
            self.sent += n
            if not n:
                break
        if self.sent == len(self.outgoing) and self.shut_when_sent:
            conn.shutdown(now)
        while self.reading and (data := conn.receive()):
            self.received += data


class Pair:
    """A server host running `Services` and a client host, on a wire with 1 ms latency."""

    def __init__(self, history: int = 64) -> None:
        self.clock = VirtualClock()
        wire = MemoryWire(self.clock, latency=0.001, queue_limit=100000)
        self.client_host = Host(
            wire.a, Interface(InterfaceConfig.from_strings(wire.a.mac, ["192.0.2.1/24"], secret=b"c" * 16))
        )
        self.server_host = Host(
            wire.b, Interface(InterfaceConfig.from_strings(wire.b.mac, ["192.0.2.2/24"], secret=b"s" * 16))
        )
        self.services = Services(self.server_host.iface, history=history)
        self.sim = Simulation(self.clock)
        self.sim.add(self.client_host)
        self.sim.add(self.server_host)
        self.clients: dict[Socket, Client] = {}
        self.sim.on_ready = self._ready

    def _ready(self, host: Host, sock: Socket) -> None:
        now = self.clock()
        if host is self.server_host:
            self.services.handle(sock, now)
        elif (client := self.clients.get(sock)) is not None:
            client.pump(now)

    def connect(self, port: int, outgoing: bytes = b"", **kwargs: bool) -> Client:
        conn = self.client_host.iface.tcp.connect((SERVER_IP, port), self.clock())
        client = self.clients[conn] = Client(conn, outgoing, **kwargs)
        return client

    def run_until(self, done: Callable[[], bool], limit: float = 120.0) -> None:
        end = self.clock() + limit
        while not done():
            assert self.clock() < end, "the exchange did not finish in virtual time"
            self.sim.run(0.05)


@pytest.fixture
def pair() -> Pair:
    return Pair()


def test_tcp_echo_returns_every_byte_and_closes(pair: Pair):
    data = random.Random(1).randbytes(3_000_000)
    client = pair.connect(ECHO_PORT, data)
    pair.run_until(lambda: client.conn.at_eof)
    assert client.received == data
    client.conn.close(pair.clock())
    pair.run_until(lambda: not pair.services.echo.sessions)
    [record] = pair.services.records()
    assert (record.service, record.moved, record.error, record.live) == ("echo", len(data), None, False)
    assert record.info["bytes_received"] == record.info["bytes_sent"] == len(data)
    assert record.remote == (CLIENT_IP, client.conn.local[1])


def test_a_receiver_that_stops_reading_causes_no_retransmission(pair: Pair):
    """Lossless wire, server application blocked: the window must close cleanly, nothing is ever resent."""
    client = pair.connect(ECHO_PORT, bytes(4_000_000), reading=False)
    for _ in range(200):
        pair.sim.run(0.025)
        for session in pair.services.echo.sessions.values():
            info = session.conn.info()
            assert info["rcv_wnd"] + info["unread"] <= session.conn.options["rcvbuf"], info
    assert client.conn.info()["retransmits"] == 0, client.conn.info()


def test_echo_stops_reading_while_the_peer_does_not_read(pair: Pair):
    """A client that writes without reading: the echo's memory stays bounded and the client is pushed back.

    More than every buffer on the way can grow to (TcpConfig's sndbuf_max and rcvbuf_max)."""
    data = random.Random(2).randbytes(16_000_000)
    client = pair.connect(ECHO_PORT, data, reading=False)
    pair.sim.run(5.0)
    [session] = pair.services.echo.sessions.values()
    assert isinstance(session, EchoSession)
    server_conn = session.conn
    assert server_conn.send_space() == 0 and server_conn.readable <= server_conn.options["rcvbuf"]
    assert len(session._pending) <= CHUNK
    assert client.sent < len(data), "the client was never pushed back"
    stalled = session.moved
    pair.sim.run(5.0)
    assert session.moved == stalled, "the echo kept sending to a peer whose window is closed"
    client.reading = True
    client.pump(pair.clock())
    pair.run_until(lambda: client.conn.at_eof)
    assert client.received == data


def test_discard_swallows_everything_and_answers_the_fin(pair: Pair):
    data = bytes(1_000_000)
    client = pair.connect(DISCARD_PORT, data)
    pair.run_until(lambda: client.conn.at_eof)
    assert client.received == b""
    client.conn.close(pair.clock())
    pair.run_until(lambda: not pair.services.discard.sessions)
    [record] = pair.services.discard.records()
    assert record.moved == len(data) and record.error is None


def _chargen_lines(data: bytes) -> list[bytes]:
    lines = bytes(data).split(b"\r\n")
    return lines[:-1]  # the last one may be cut short


def test_chargen_sends_the_rfc_864_pattern(pair: Pair):
    client = pair.connect(CHARGEN_PORT, shut_when_sent=False)
    pair.run_until(lambda: len(client.received) >= 200_000)
    lines = _chargen_lines(client.received)
    assert len(lines) > 2000
    printable = bytes(range(32, 127)) * 2
    for k, line in enumerate(lines):
        start = k % 95
        assert line == printable[start : start + 72], f"line {k}"


def test_chargen_stops_when_the_peer_shuts_down(pair: Pair):
    client = pair.connect(CHARGEN_PORT, shut_when_sent=False)
    pair.run_until(lambda: len(client.received) >= 50_000)
    client.conn.shutdown(pair.clock())
    pair.run_until(lambda: client.conn.at_eof)
    pair.run_until(lambda: not pair.services.chargen.sessions)
    [record] = pair.services.chargen.records()
    assert record.error is None and record.info["state"] == "CLOSED"
    assert record.moved == len(client.received)


def test_chargen_fills_no_more_than_the_send_buffer(pair: Pair):
    client = pair.connect(CHARGEN_PORT, shut_when_sent=False, reading=False)
    pair.sim.run(5.0)
    [session] = pair.services.chargen.sessions.values()
    limit = session.conn.options["sndbuf"]
    assert session.conn.unsent <= limit
    assert session.moved <= limit + client.conn.options["rcvbuf"]
    wakeups = client.wakeups
    moved = session.moved
    pair.sim.run(5.0)
    assert session.moved == moved and client.wakeups - wakeups < 10, "chargen spins against a closed window"


def test_a_reset_ends_the_session_with_econnreset(pair: Pair):
    client = pair.connect(CHARGEN_PORT, shut_when_sent=False)
    pair.run_until(lambda: len(client.received) >= 10_000)
    client.conn.abort(pair.clock())
    pair.run_until(lambda: not pair.services.chargen.sessions)
    [record] = pair.services.chargen.records()
    assert record.error is not None and record.error.errno == errno.ECONNRESET
    assert not record.live


def test_history_is_bounded_and_live_connections_are_reported():
    pair = Pair(history=3)
    clients = [pair.connect(ECHO_PORT, b"x" * 10) for _ in range(5)]
    pair.run_until(lambda: all(c.conn.at_eof for c in clients))
    for c in clients:
        c.conn.close(pair.clock())
    pair.run_until(lambda: not pair.services.echo.sessions)
    live = pair.connect(DISCARD_PORT, shut_when_sent=False)
    pair.run_until(lambda: bool(pair.services.discard.sessions))
    records = pair.services.records()
    assert [r.live for r in records] == [False] * 3 + [True]
    assert records[-1].remote[1] == live.conn.local[1]


def test_close_resets_live_connections(pair: Pair):
    client = pair.connect(DISCARD_PORT, b"hello", shut_when_sent=False)
    pair.run_until(lambda: pair.services.discard.records() and pair.services.discard.records()[0].moved == 5)
    pair.services.close(pair.clock())
    pair.server_host.flush(pair.clock())
    pair.run_until(lambda: client.conn.state == State.CLOSED)
    assert client.conn.error is not None and client.conn.error.errno == errno.ECONNRESET
    assert not pair.services.discard.sessions


def test_udp_echo_and_foreign_sockets(pair: Pair):
    sock = pair.client_host.iface.open_udp()
    sock.sendto(b"ping", (SERVER_IP, ECHO_PORT), pair.clock())
    pair.sim.run(0.1)
    assert sock.recvfrom() == (b"ping", (SERVER_IP, ECHO_PORT))
    assert pair.services.udp_echo.echoed == 1
    assert not pair.services.handle(pair.server_host.iface.open_udp(), pair.clock())
