"""Live migration on the virtual clock: freeze a connection on one interface, thaw it on a
fresh one on the same wire, and the peer never notices but a pause."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usernet.drivers.handover import Leftovers, freeze_tcp, thaw_tcp
from usernet.drivers.host import Host
from usernet.drivers.virtual import Simulation
from usernet.link.base import Link
from usernet.link.clock import VirtualClock
from usernet.link.fault import FaultInjector
from usernet.link.memory import MemoryWire
from usernet.stack import Interface, InterfaceConfig, TcpConfig, TcpConnection
from usernet.stack.tcp.buffers import ReceiveBuffer, SendBuffer
from usernet.stack.tcp.congestion import Cubic, NewReno
from usernet.stack.tcp.frozen import BLOB_VERSION, MAGIC, Freezable, MigrationError, decode_blob, encode_blob
from usernet.stack.tcp.layer import ANY
from usernet.stack.tcp.prr import Prr
from usernet.stack.tcp.rack import Rack
from usernet.stack.tcp.reassembly import Reassembly
from usernet.stack.tcp.rtt import RttEstimator, TimestampClock
from usernet.stack.tcp.scoreboard import Scoreboard
from usernet.stack.tcp.states import State

A_IP = bytes([192, 0, 2, 1])
B_IP = bytes([192, 0, 2, 2])
PORT = 7000
SIZE = 400_000


@dataclass
class App:
    """One side's application: writes `outgoing` as room allows, reads up to `read_until` bytes."""

    conn: TcpConnection
    outgoing: bytes
    read_until: int = 1 << 62
    sent: int = 0
    received: bytearray = field(default_factory=bytearray)

    def pump(self, now: float) -> None:
        conn = self.conn
        while self.sent < len(self.outgoing) and conn.state in (State.ESTABLISHED, State.CLOSE_WAIT):
            n = conn.send(memoryview(self.outgoing)[self.sent : self.sent + 65536], now)
            if not n:
                break
            self.sent += n
        if self.sent == len(self.outgoing) and conn.state in (State.ESTABLISHED, State.CLOSE_WAIT):
            conn.shutdown(now)
        while len(self.received) < self.read_until and (data := conn.receive(self.read_until - len(self.received))):
            self.received += data


class Wire:
    """Host A (the peer that keeps going) and host B (the one replaced), on one in-memory wire."""

    def __init__(self, tcp: TcpConfig, loss: float = 0.0) -> None:
        self.clock = VirtualClock()
        self.wire = MemoryWire(self.clock, latency=0.001, queue_limit=100000)
        self.sim = Simulation(self.clock)
        link_a: Link = (
            FaultInjector(self.wire.a, self.clock, seed=3, loss=loss, direction="tx") if loss else self.wire.a
        )
        self.tcp = tcp
        self.a = self.sim.add(Host(link_a, Interface(self.config(self.wire.a.mac, "192.0.2.1/24", b"a"))))
        self.b = self.sim.add(Host(self.wire.b, Interface(self.config(self.wire.b.mac, "192.0.2.2/24", b"b"))))

    def config(self, mac: bytes, address: str, secret: bytes) -> InterfaceConfig:
        return InterfaceConfig.from_strings(mac, [address], secret=secret * 16, tcp=self.tcp)

    def stop_b(self) -> None:
        """B's process stops reading: what reaches B waits on the wire for the next owner."""
        self.sim.hosts.remove(self.b)

    def replace_b(self) -> Interface:
        """A fresh interface with B's MAC and address (another secret: another process), on B's end.

        It is pumped from the next step on: thaw into it before that, as a process that took
        over a TAP thaws before it reads the TAP.
        """
        if self.b in self.sim.hosts:
            self.stop_b()
        self.b = self.sim.add(Host(self.wire.b, Interface(self.config(self.wire.b.mac, "192.0.2.2/24", b"c"))))
        return self.b.iface

    def run(self, apps: list[App], seconds: float, until: object = None) -> None:
        end = self.clock() + seconds
        while self.clock() < end:
            self.sim.run(0.002)
            for app in apps:
                app.pump(self.clock())
            if callable(until) and until():
                return


def _out_of_order(conn: TcpConnection, now: float) -> bool:
    segments: list[object] = conn.freeze(now)["_ooo"]["segments"]
    return bool(segments)


def _payload(seed: int) -> bytes:
    return random.Random(seed).randbytes(SIZE)


@pytest.mark.parametrize(("congestion", "loss"), [("newreno", 0.0), ("cubic", 0.0), ("newreno", 0.03), ("cubic", 0.03)])
def test_a_connection_moves_with_unacked_unread_and_out_of_order_bytes(congestion: str, loss: float) -> None:
    # A fixed 64 KiB receive buffer (no autotuning) that B's reads leave full.
    tcp = TcpConfig(congestion=congestion, sndbuf=65536, rcvbuf=65536, rcvbuf_max=0)
    net = Wire(tcp, loss=loss)
    listener = net.b.iface.tcp.listen((B_IP, PORT))
    client = App(net.a.iface.tcp.connect((B_IP, PORT), net.clock()), _payload(1))
    net.run([], 0.05)
    accepted = listener.accept()
    assert accepted is not None
    server = App(accepted, _payload(2) * 4, read_until=SIZE // 3)
    # B writes, and stops reading at a third: its receive buffer fills, its sent bytes are in
    # flight; with loss, also wait until B holds bytes out of order (a hole in A's stream).
    net.run(
        [client, server],
        20.0,
        until=lambda: (
            len(client.received) > SIZE // 4
            and server.conn.readable > 0
            and server.conn.info()["unacked"] > 0
            and (not loss or _out_of_order(server.conn, net.clock()))
        ),
    )
    conn = server.conn
    assert conn.readable > 0 and conn.info()["unacked"] > 0
    assert not loss or _out_of_order(conn, net.clock())
    old_info = conn.info()
    blob = encode_blob({"connection": conn.freeze(net.clock())})

    net.stop_b()
    net.run([client], 0.5)  # B is gone for half a second: A retransmits, the frames wait on the wire
    fresh = net.replace_b()
    moved = fresh.tcp.thaw_connection(decode_blob(blob)["connection"], net.clock())
    assert moved.info()["unread"] == old_info["unread"] and moved.info()["unacked"] == old_info["unacked"]
    assert moved.info()["cwnd"] == old_info["cwnd"] and moved.info()["rtt"] == old_info["rtt"]
    server.conn = moved
    server.read_until = SIZE
    net.run([client, server], 60.0, until=lambda: len(client.received) == 4 * SIZE and len(server.received) == SIZE)

    assert bytes(server.received) == client.outgoing
    assert bytes(client.received) == server.outgoing
    a_stats = net.a.iface.stats()
    assert client.conn.error is None
    assert a_stats["tcp_rst_received"] == 0
    assert a_stats["tcp_paws_rejected"] == 0  # the TSval clock went on from where it was


def test_a_listener_moves_with_its_accept_queue_and_unread_bytes_come_first() -> None:
    net = Wire(TcpConfig())
    listener = net.b.iface.tcp.listen((B_IP, PORT), backlog=7)
    client = net.a.iface.tcp.connect((B_IP, PORT), net.clock())
    net.run([], 0.05)
    client.send(b"hello before the move", net.clock())
    net.run([], 0.05)
    assert listener.pending == 1
    blob = encode_blob({"listener": listener.freeze(net.clock())})
    fresh = net.replace_b()
    moved = fresh.tcp.thaw_listener(decode_blob(blob)["listener"], net.clock())
    assert moved.local == (B_IP, PORT) and moved.backlog == 7 and moved.pending == 1
    conn = moved.accept()
    assert conn is not None and conn.receive() == b"hello before the move"
    conn.send(b"answered after it", net.clock())
    net.run([], 0.05)
    assert client.receive() == b"answered after it"
    # The moved listener takes new connections as the old one did.
    second = net.a.iface.tcp.connect((B_IP, PORT), net.clock())
    net.run([], 0.05)
    assert second.state == State.ESTABLISHED and moved.pending == 1


def test_ecn_and_fast_open_state_move_with_a_connection_and_a_listener() -> None:
    net = Wire(TcpConfig(ecn=1, fastopen=3))
    listener = net.b.iface.tcp.listen((B_IP, PORT))
    listener.fastopen = 5
    client = net.a.iface.tcp.connect((B_IP, PORT), net.clock(), fastopen=True)  # asks for a cookie
    net.run([], 0.05)
    assert listener.pending == 1
    blob = encode_blob({"listener": listener.freeze(net.clock())})
    fresh = net.replace_b()
    moved = fresh.tcp.thaw_listener(decode_blob(blob)["listener"], net.clock())
    assert moved.fastopen == 5
    conn = moved.accept()
    assert conn is not None and conn.info()["ecn"] and client.info()["ecn"]
    frozen = conn.freeze(net.clock())
    old = {key: value for key, value in frozen.items() if "ecn" in key or "fastopen" in key or key == "_syn_data"}
    assert old["_ecn_ok"] is True and old["_fastopen"] is not None  # the cookie its SYN-ACK carried
    conn.abort(net.clock())
    again = fresh.tcp.thaw_connection(decode_blob(encode_blob({"c": frozen}))["c"], net.clock())
    assert {key: value for key, value in again.freeze(net.clock()).items() if key in old} == old
    again.abort(net.clock())
    older = {key: value for key, value in frozen.items() if key not in old}  # a blob from before ECN
    thawed = fresh.tcp.thaw_connection(older, net.clock())
    assert not thawed.info()["ecn"] and thawed.info()["fastopen_data"] == 0


def test_half_open_connections_are_refused_until_the_listener_drained() -> None:
    net = Wire(TcpConfig())
    listener = net.b.iface.tcp.listen((B_IP, PORT))
    net.a.iface.tcp.connect((B_IP, PORT), net.clock())
    while listener.half_open == 0:  # until the SYN arrived: the SYN-ACK is then on its way
        net.sim.run(0.0005)
    with pytest.raises(MigrationError, match="half-open"):
        listener.freeze(net.clock())
    embryo = next(c for c in net.b.iface.tcp.connections() if c.state == State.SYN_RECEIVED)
    with pytest.raises(MigrationError, match="SYN_RECEIVED"):
        embryo.freeze(net.clock())
    listener.drain()
    late = net.a.iface.tcp.connect((B_IP, PORT), net.clock())
    net.run([], 0.05)
    assert listener.half_open == 0 and listener.pending == 1  # the first finished, the late one waits to retry
    assert late.state == State.SYN_SENT and net.b.iface.stats()["tcp_syn_draining"] == 1
    assert listener.freeze(net.clock())["queue"]


# -- the blob --------------------------------------------------------------------------------

PAYLOAD = {"n": -(1 << 70), "f": -1.5, "inf": float("-inf"), "t": True, "none": None, "s": "é", "b": b"\x00\xff",
           "l": [1, [2, {"x": b""}]]}  # fmt: skip


def test_a_blob_round_trips_every_kind_of_value() -> None:
    assert decode_blob(encode_blob(PAYLOAD)) == PAYLOAD


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_truncated_blob_is_refused(data: st.DataObject) -> None:
    blob = encode_blob(PAYLOAD)
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(MigrationError, match=r"truncated|damaged|corrupted"):
        decode_blob(blob[:cut])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_blob_with_a_flipped_bit_is_refused(data: st.DataObject) -> None:
    blob = bytearray(encode_blob(PAYLOAD))
    bit = data.draw(st.integers(0, len(blob) * 8 - 1))
    blob[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(MigrationError):
        decode_blob(blob)


def test_a_blob_of_another_version_or_kind_is_refused_by_name() -> None:
    blob = bytearray(encode_blob(PAYLOAD))
    struct.pack_into("!H", blob, len(MAGIC), BLOB_VERSION + 1)
    with pytest.raises(MigrationError, match=rf"version {BLOB_VERSION + 1}.*same usernet version"):
        decode_blob(blob)
    with pytest.raises(MigrationError, match="not a usernet migration blob"):
        decode_blob(b"GIF89a" + bytes(64))
    with pytest.raises(MigrationError, match="after its end"):
        decode_blob(encode_blob(PAYLOAD) + b"\x00")


def test_a_refused_blob_thaws_nothing_and_sends_nothing() -> None:
    net = Wire(TcpConfig())
    net.b.iface.tcp.listen((B_IP, PORT))
    net.a.iface.tcp.connect((B_IP, PORT), net.clock())
    net.run([], 0.05)
    conn = next(c for c in net.b.iface.tcp.connections())
    blob = encode_blob({"connection": conn.freeze(net.clock())})
    fresh = net.replace_b()
    fresh.take_output()  # the gratuitous ARP of its start
    for bad in (blob[:-1], blob[:10], bytes([blob[0] ^ 1]) + blob[1:], blob[:40] + bytes([blob[40] ^ 4]) + blob[41:]):
        with pytest.raises(MigrationError):
            fresh.tcp.thaw_connection(decode_blob(bad)["connection"], net.clock())
    fresh.flush(net.clock())
    assert fresh.take_output() == [] and fresh.tcp.connections() == []


def test_thawing_refuses_an_interface_without_the_old_address() -> None:
    net = Wire(TcpConfig())
    net.b.iface.tcp.listen((B_IP, PORT))
    net.a.iface.tcp.connect((B_IP, PORT), net.clock())
    net.run([], 0.05)
    frozen = next(c for c in net.b.iface.tcp.connections()).freeze(net.clock())
    other = Interface(InterfaceConfig.from_strings(net.wire.b.mac, ["198.51.100.2/24"]))
    with pytest.raises(MigrationError, match="not an address of this interface"):
        other.tcp.thaw_connection(frozen, net.clock())


def test_a_field_an_older_blob_lacks_takes_its_default_or_is_refused_by_name() -> None:
    frozen = RttEstimator().freeze(0.0)
    del frozen["backoffs"]
    with pytest.raises(MigrationError, match="lacks 'backoffs'"):
        RttEstimator.thaw(frozen, 0.0)

    class Later(RttEstimator):
        __slots__ = ()
        FROZEN_DEFAULTS = {"backoffs": 0}  # noqa: RUF012  # a ClassVar table, as in the stack

    assert Later.thaw(frozen, 0.0).backoffs == 0


# -- every field is frozen or said not to be ----------------------------------------------------


@pytest.mark.parametrize(
    "cls", [TcpConnection, SendBuffer, ReceiveBuffer, Reassembly, RttEstimator, TimestampClock, NewReno, Cubic,
            Scoreboard, Rack, Prr]
)  # fmt: skip
def test_every_slot_of_a_connection_part_is_frozen_or_excluded(cls: type[Freezable]) -> None:
    """A slot added to a connection (or a part of one) must be listed in `FROZEN`, `FROZEN_TIMES`
    or `NOT_FROZEN`: else a migrated connection would come back without it."""
    slots = {name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ())}
    listed = [*cls.FROZEN, *cls.FROZEN_TIMES, *cls.NOT_FROZEN]
    assert len(listed) == len(set(listed)), "a slot is listed twice"
    assert slots - set(listed) == set(), "slots that migration neither freezes nor excludes"
    assert set(listed) - slots == set(), "listed names that are no slot"


def test_what_a_stack_hands_over_and_what_it_leaves_behind() -> None:
    """freeze_tcp/thaw_tcp (the TCP part of a handover between processes): accepted connections
    and queued ones move, one its user closed finishes closing, one the program opened stays."""
    net = Wire(TcpConfig())
    tcp_a, tcp_b = net.a.iface.tcp, net.b.iface.tcp
    listener = tcp_b.listen((ANY, PORT))
    tcp_a.listen((A_IP, 8000))
    held_a = tcp_a.connect((B_IP, PORT), net.clock())
    closing_a = tcp_a.connect((B_IP, PORT), net.clock())
    net.run([], 0.05)
    held_b, closing_b = listener.accept(), listener.accept()
    assert held_b is not None and closing_b is not None
    queued_a = tcp_a.connect((B_IP, PORT), net.clock())
    own_b = tcp_b.connect((A_IP, 8000), net.clock())
    net.run([], 0.05)
    queued_a.send(b"waiting to be accepted", net.clock())
    closing_b.close(net.clock())  # its user is done with it: FIN_WAIT_2 once A acknowledges the FIN
    net.run([], 0.05)
    assert closing_b.state == State.FIN_WAIT_2 and listener.pending == 1 and own_b.state == State.ESTABLISHED

    frozen = freeze_tcp(tcp_b, net.clock(), {held_b: Leftovers(b"read by nobody ", b"written, not yet taken")})
    assert frozen.moved == 3
    assert len(frozen.left) == 1 and "held outside a server" in frozen.left[0]
    blob = encode_blob(frozen.payload)
    net.stop_b()
    fresh = net.replace_b()
    adopted = thaw_tcp(fresh.tcp, decode_blob(blob), net.clock())
    moved = adopted[(ANY, PORT)]
    first, second = moved.accept(), moved.accept()
    assert first is not None and second is not None
    assert first.receive() == b"waiting to be accepted"  # the queue comes first, then what was accepted
    assert second.receive() == b"read by nobody "  # what the old program had not consumed
    net.run([], 0.05)
    assert held_a.receive() == b"written, not yet taken"
    closing_a.close(net.clock())
    own_a = next(c for c in tcp_a.connections() if c.local == (A_IP, 8000))
    own_a.send(b"to the connection left behind", net.clock())
    net.run([], 0.2)
    assert closing_a.state == State.CLOSED and closing_a.error is None  # the orphan finished the close
    assert own_a.state == State.CLOSED and own_a.error is not None  # reset: nobody took it over
    second.send(b"still here", net.clock())
    net.run([], 0.05)
    assert held_a.receive() == b"still here"
