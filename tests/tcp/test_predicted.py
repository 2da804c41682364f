"""Header prediction at the interface: which segments take the shortcut, and that nothing is lost when one cannot."""

from __future__ import annotations

from tests.tcp.net import A_IP, B_IP, PORT, Net, digest
from tests.tcp.scripted import PEER, PEER_ISN, PEER_MAC, PEER_PORT, SYN_OPTIONS, US, US_MAC, Scripted
from tests.tcp.scripted import PORT as US_PORT
from tests.tcp.test_segments import established
from usernet.drivers.host import Host
from usernet.drivers.virtual import Simulation
from usernet.link.clock import VirtualClock
from usernet.link.memory import MemoryWire
from usernet.native import build_ipv4_tcp
from usernet.stack import Interface, InterfaceConfig
from usernet.stack.tcp.connection import TcpConnection
from usernet.stack.tcp.states import State
from usernet.wire.tcp import ACK, PSH, RST, SYN

B_SECOND_IP = bytes([192, 0, 2, 3])


def test_a_transfer_goes_almost_entirely_through_the_shortcut() -> None:
    data = bytes(range(256)) * 4000
    net = Net(seed=1)
    client, server = net.transfer(data, data[::-1])
    assert digest(server.received) == digest(data) and digest(client.received) == digest(data[::-1])
    for host in (net.a, net.b):
        stats = host.iface.stats()
        # The SYN-ACK goes to a half-open connection through the general path.
        assert stats["tcp_rx_predicted"] >= stats["tcp_rx_segments"] - 3, stats


def test_a_listeners_handshake_takes_the_shortcut() -> None:
    """The SYN and the ACK that completes the handshake are predicted: the SYN goes to the
    listener from `receive_predicted`, with the addresses its flow key carries."""
    s = Scripted()
    listener = s.iface.tcp.listen((bytes(4), US_PORT))
    s.inject(PEER_ISN, 0, SYN, options=SYN_OPTIONS)
    (synack,) = s.flush()
    assert synack.flags == SYN | ACK and synack.ack == PEER_ISN + 1
    s.inject(PEER_ISN + 1, synack.seq + 1, ACK)
    conn = listener.accept()
    assert conn is not None and conn.state == State.ESTABLISHED
    assert conn.local == (US, US_PORT) and conn.remote == (PEER, PEER_PORT)
    stats = s.iface.stats()
    assert stats["tcp_rx_predicted"] == stats["tcp_rx_segments"] == 2, stats


def syn_to(dst: bytes, dport: int) -> bytearray:
    """A SYN from the peer to `dst`:`dport`, at our MAC address."""
    frame = bytearray(54 + len(SYN_OPTIONS))
    build_ipv4_tcp(
        frame, 0, US_MAC, PEER_MAC, PEER, dst, 1, 64, PEER_PORT, dport, PEER_ISN, 0, SYN, 65535, 0, SYN_OPTIONS, b""
    )
    return frame


def test_a_syn_to_an_address_not_ours_is_not_taken_by_a_wildcard_listener() -> None:
    s = Scripted()
    listener = s.iface.tcp.listen((bytes(4), US_PORT))
    s.iface.receive(syn_to(bytes([192, 0, 2, 9]), US_PORT), s.now)
    assert s.flush() == [] and listener.half_open == 0
    stats = s.iface.stats()
    assert stats["ipv4_not_for_us"] == 1 and stats["tcp_rx_segments"] == 0, stats


def test_a_syn_for_no_listener_takes_the_general_path_and_is_answered_with_a_reset() -> None:
    s = Scripted()
    s.iface.tcp.listen((bytes(4), US_PORT))
    s.iface.receive(syn_to(US, US_PORT + 1), s.now)
    (rst,) = s.flush()
    assert rst.flags & RST and rst.ack == PEER_ISN + 1
    stats = s.iface.stats()
    assert stats["tcp_no_socket"] == 1 and stats["tcp_rx_predicted"] == 0, stats


def test_a_segment_with_a_bad_checksum_takes_the_general_path_and_is_counted() -> None:
    s, conn, iss1 = established()
    s.inject(PEER_ISN + 1, iss1, ACK | PSH, payload=b"good")
    predicted = s.iface.stats()["tcp_rx_predicted"]
    frame = bytearray(58)
    build_ipv4_tcp(
        frame,
        0,
        US_MAC,
        PEER_MAC,
        PEER,
        US,
        1,
        64,
        PEER_PORT,
        US_PORT,
        PEER_ISN + 5,
        iss1,
        ACK | PSH,
        65535,
        0,
        b"",
        b"evil",
    )
    frame[-1] ^= 0xFF
    s.iface.receive(frame, s.now)
    stats = s.iface.stats()
    assert conn.receive() == b"good"
    assert stats["tcp_bad_checksum"] == 1 and stats["tcp_rx_predicted"] == predicted


def test_connections_that_share_a_flow_key_are_told_apart_by_local_address() -> None:
    """Same remote address and port, same local port, two local addresses: one flow key, two connections."""
    clock = VirtualClock()
    wire = MemoryWire(clock, latency=0.001)
    sim = Simulation(clock)
    a = sim.add(Host(wire.a, Interface(InterfaceConfig.from_strings(wire.a.mac, ["192.0.2.1/24"], secret=b"a" * 16))))
    b = sim.add(
        Host(
            wire.b,
            Interface(InterfaceConfig.from_strings(wire.b.mac, ["192.0.2.2/24", "192.0.2.3/24"], secret=b"b" * 16)),
        )
    )
    listener = b.iface.tcp.listen((bytes(4), PORT))
    first = a.iface.tcp.connect((B_IP, PORT), clock(), local=(A_IP, 40000))
    second = a.iface.tcp.connect((B_SECOND_IP, PORT), clock(), local=(A_IP, 40000))
    sim.run(1.0)
    accepted = {conn.local[0]: conn for conn in iter(listener.accept, None)}
    assert set(accepted) == {B_IP, B_SECOND_IP}
    assert first.state == second.state == State.ESTABLISHED
    for round_ in range(20):
        first.send(b"to .2 #%d;" % round_, clock())
        second.send(b"to .3 #%d;" % round_, clock())
        accepted[B_IP].send(b"from .2 #%d;" % round_, clock())
        accepted[B_SECOND_IP].send(b"from .3 #%d;" % round_, clock())
        a.flush(clock())
        b.flush(clock())
        sim.run(0.05)
    assert accepted[B_IP].receive() == b"".join(b"to .2 #%d;" % i for i in range(20))
    assert accepted[B_SECOND_IP].receive() == b"".join(b"to .3 #%d;" % i for i in range(20))
    assert first.receive() == b"".join(b"from .2 #%d;" % i for i in range(20))
    assert second.receive() == b"".join(b"from .3 #%d;" % i for i in range(20))
    stats = b.iface.stats()
    assert 0 < stats["tcp_rx_predicted"] < stats["tcp_rx_segments"], "one of the two takes the general path"

    def predicted_of(sender: TcpConnection) -> tuple[int, int]:
        """Of the segments `sender`'s data makes B receive: how many were predicted, how many in all."""
        before = b.iface.stats()
        for round_ in range(5):
            sender.send(b"alone #%d;" % round_, clock())
            a.flush(clock())
            sim.run(0.05)
        after = b.iface.stats()
        return (
            after["tcp_rx_predicted"] - before["tcp_rx_predicted"],
            after["tcp_rx_segments"] - before["tcp_rx_segments"],
        )

    # .2's SYN came first and holds the key: .3's connection takes the general path...
    predicted, segments = predicted_of(second)
    assert segments > 0 and predicted == 0
    # ... until .2's connection closes and hands the key on.
    first.abort(clock())
    a.flush(clock())
    sim.run(0.05)
    predicted, segments = predicted_of(second)
    assert segments > 0 and predicted == segments
