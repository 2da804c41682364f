"""Two usernet interfaces on a faulty in-memory wire, and applications that move bytes over TCP."""

from __future__ import annotations

import errno
import hashlib
from dataclasses import dataclass, field
from typing import Any

from usernet.drivers.host import Host
from usernet.drivers.virtual import Simulation
from usernet.link.clock import VirtualClock
from usernet.link.fault import FaultInjector
from usernet.link.memory import MemoryWire
from usernet.stack import Interface, InterfaceConfig, TcpConfig, TcpConnection, TcpListener
from usernet.stack.tcp.states import State

A_IP = bytes([192, 0, 2, 1])
B_IP = bytes([192, 0, 2, 2])
PORT = 5000
_DONE = (State.TIME_WAIT, State.CLOSED)


@dataclass
class Peer:
    """One side of a transfer: writes `outgoing` as the peer lets it, keeps what arrives."""

    conn: TcpConnection
    outgoing: bytes
    close_when_done: bool = True
    sent: int = 0
    received: bytearray = field(default_factory=bytearray)
    shut: bool = False
    closed: bool = False

    def pump(self, now: float) -> None:
        conn = self.conn
        while self.sent < len(self.outgoing) and conn.state not in (State.CLOSED, State.SYN_SENT):
            n = conn.send(memoryview(self.outgoing)[self.sent : self.sent + 65536], now)
            if not n:
                break
            self.sent += n
        if self.sent == len(self.outgoing) and not self.shut and conn.state in (State.ESTABLISHED, State.CLOSE_WAIT):
            self.shut = True
            conn.shutdown(now)
        while True:
            data = conn.receive()
            if not data:
                break
            self.received += data
        if conn.at_eof and self.shut and not self.closed and self.close_when_done:
            self.closed = True
            conn.close(now)


class Net:
    """A simulation of hosts A (192.0.2.1) and B (192.0.2.2) with faults in both directions."""

    def __init__(
        self,
        seed: int = 0,
        latency: float = 0.001,
        tcp: TcpConfig | None = None,
        tcp_b: TcpConfig | None = None,
        **faults: Any,
    ) -> None:
        self.clock = clock = VirtualClock()
        self.wire = MemoryWire(clock, latency=latency, queue_limit=100000)
        self.sim = Simulation(clock)
        tcp = tcp or TcpConfig()
        link_a = FaultInjector(self.wire.a, clock, seed=seed, direction="tx", **faults) if faults else self.wire.a
        link_b = (
            FaultInjector(self.wire.b, clock, seed=seed + 7919, direction="tx", **faults) if faults else self.wire.b
        )
        self.a = Host(
            link_a,
            Interface(InterfaceConfig.from_strings(self.wire.a.mac, ["192.0.2.1/24"], secret=b"a" * 16, tcp=tcp)),
        )
        self.b = Host(
            link_b,
            Interface(
                InterfaceConfig.from_strings(self.wire.b.mac, ["192.0.2.2/24"], secret=b"b" * 16, tcp=tcp_b or tcp)
            ),
        )
        self.sim.add(self.a)
        self.sim.add(self.b)
        self.peers: dict[TcpConnection, Peer] = {}
        self.server_data: list[bytes] = []
        self.sim.on_ready = self._ready

    def now(self) -> float:
        return self.clock()

    def _ready(self, host: Host, sock: Any) -> None:
        now = self.clock()
        if isinstance(sock, TcpListener):
            while (conn := sock.accept()) is not None:
                outgoing = self.server_data.pop(0) if self.server_data else b""
                peer = self.peers[conn] = Peer(conn, outgoing)
                peer.pump(now)
            return
        peer = self.peers.get(sock)
        if peer is not None:
            peer.pump(now)

    def transfer(self, a_to_b: bytes, b_to_a: bytes, timeout: float = 600.0) -> tuple[Peer, Peer]:
        """Connect A to B, send both ways, close both; returns (client, server) once both are done."""
        listener = self.b.iface.tcp.listen((B_IP, PORT))
        self.server_data.append(b_to_a)
        client = Peer(self.a.iface.tcp.connect((B_IP, PORT), self.now()), a_to_b)
        self.peers[client.conn] = client
        end = self.now() + timeout
        while self.now() < end:
            self.sim.run(1.0)
            server = next((p for p in self.peers.values() if p is not client), None)
            error = client.conn.error
            if server is None and error is not None and error.errno == errno.EHOSTUNREACH:
                # The wire lost every ARP request or reply of this try, and the connect failed
                # as on Linux ("No route to host"): connect again, as a program would.
                del self.peers[client.conn]
                client = Peer(self.a.iface.tcp.connect((B_IP, PORT), self.now()), a_to_b)
                self.peers[client.conn] = client
                continue
            if (
                server is not None
                and client.closed
                and server.closed
                and not server.conn.readable
                and client.conn.state in _DONE
                and server.conn.state in _DONE
            ):
                break
        listener.close(self.now())
        server = next(p for p in self.peers.values() if p is not client)
        return client, server

    def lateness(self) -> float:
        return max(self.a.iface.tcp.max_timer_lateness, self.b.iface.tcp.max_timer_lateness)


def digest(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
