"""Two stacks in simulation: wrap-around, simultaneous open and close, a SYN flood, properties."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tcp.net import A_IP, B_IP, Net, Peer, digest
from tests.tcp.scripted import FixedIsn
from tests.tcp.test_transfer import check
from usernet.native import build_ipv4_tcp
from usernet.stack import TcpConfig
from usernet.stack.tcp.states import State
from usernet.wire.tcp import SYN


def test_sequence_numbers_wrap_around_during_a_lossy_transfer() -> None:
    for seed in (0, 1):
        net = Net(seed=seed, loss=0.03, reorder=0.02)
        net.a.iface.tcp.isn_source = FixedIsn(2**32 - 300_000)
        net.b.iface.tcp.isn_source = FixedIsn(2**32 - 1000)
        rng = random.Random(seed)
        check(net, rng.randbytes(1_000_000), rng.randbytes(400_000), f"wrap seed={seed}")


def run_until(net: Net, done: object, limit: float = 300.0) -> None:
    end = net.now() + limit
    while net.now() < end and not done():  # type: ignore[operator]  # done is a callable
        net.sim.run(0.05)


def test_simultaneous_open_then_simultaneous_close() -> None:
    net = Net(seed=5)
    net.sim.on_ready = None
    now = net.now()
    ca = net.a.iface.tcp.connect((B_IP, 6000), now, local=(A_IP, 5000))
    cb = net.b.iface.tcp.connect((A_IP, 5000), now, local=(B_IP, 6000))
    run_until(net, lambda: ca.state == State.ESTABLISHED and cb.state == State.ESTABLISHED)
    assert net.a.iface.stats()["tcp_passive_opens"] == 0 and net.b.iface.stats()["tcp_passive_opens"] == 0
    assert ca.send(b"from a", net.now()) == 6 and cb.send(b"from b", net.now()) == 6
    run_until(net, lambda: ca.readable and cb.readable)
    assert ca.receive() == b"from b" and cb.receive() == b"from a"
    ca.close(net.now())
    cb.close(net.now())
    assert ca.state == State.FIN_WAIT_1 and cb.state == State.FIN_WAIT_1
    run_until(net, lambda: ca.state == State.TIME_WAIT and cb.state == State.TIME_WAIT, 5.0)
    assert net.a.iface.stats()["tcp_rst_sent"] == 0 and net.b.iface.stats()["tcp_rst_sent"] == 0
    assert net.lateness() == 0.0


def test_connect_to_a_closed_port_is_refused() -> None:
    net = Net()
    conn = net.a.iface.tcp.connect((B_IP, 9), net.now())
    run_until(net, lambda: conn.state == State.CLOSED, 5.0)
    assert conn.error is not None and conn.error.errno == 111


def test_half_close_keeps_the_other_direction_open() -> None:
    net = Net()
    net.sim.on_ready = None
    listener = net.b.iface.tcp.listen((B_IP, 7000))
    conn = net.a.iface.tcp.connect((B_IP, 7000), net.now())
    run_until(net, lambda: listener.pending == 1)
    server = listener.accept()
    assert server is not None
    conn.shutdown(net.now())
    run_until(net, lambda: server.at_eof)
    assert server.state == State.CLOSE_WAIT and conn.state == State.FIN_WAIT_2
    server.send(b"still talking", net.now())
    run_until(net, lambda: conn.readable)
    assert conn.receive() == b"still talking"
    server.close(net.now())
    run_until(net, lambda: server.state == State.CLOSED)
    assert conn.state == State.TIME_WAIT


def test_syn_flood_gets_cookies_while_an_established_connection_keeps_transferring() -> None:
    net = Net(seed=9, tcp=TcpConfig(syn_backlog=8))
    data = random.Random(9).randbytes(2_000_000)
    listener = net.b.iface.tcp.listen((B_IP, 5000))
    net.server_data.append(b"")
    conn = net.a.iface.tcp.connect((B_IP, 5000), net.now())
    client = net.peers[conn] = Peer(conn, data)
    rng = random.Random(1)
    frame = bytearray(54)
    flood = 0
    while net.now() < 60 and not (client.closed and all(p.closed for p in net.peers.values())):
        for _ in range(20):
            src = bytes([192, 0, 2, rng.randrange(100, 250)])
            build_ipv4_tcp(
                frame,
                0,
                net.wire.b.mac,
                net.wire.a.mac,
                src,
                B_IP,
                1,
                64,
                rng.randrange(1024, 65535),
                5000,
                rng.getrandbits(32),
                0,
                SYN,
                65535,
                0,
                b"",
                b"",
            )
            net.b.iface.receive(frame, net.now())
            flood += 1
        net.sim.run(0.01)
    server = next(p for p in net.peers.values() if p is not client)
    stats = net.b.iface.stats()
    assert digest(server.received) == digest(data), f"{len(server.received)} of {len(data)} bytes arrived"
    assert stats["tcp_syn_cookies_sent"] > flood // 2
    assert listener.half_open <= 8
    listener.close(net.now())


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    size=st.integers(0, 200_000),
    loss=st.sampled_from([0.0, 0.02, 0.1]),
    reorder=st.sampled_from([0.0, 0.05]),
    duplicate=st.sampled_from([0.0, 0.05]),
)
def test_any_transfer_arrives_intact(seed: int, size: int, loss: float, reorder: float, duplicate: float) -> None:
    rng = random.Random(seed)
    faults = {k: v for k, v in (("loss", loss), ("reorder", reorder), ("duplicate", duplicate)) if v}
    check(
        Net(seed=seed, **faults),
        rng.randbytes(size),
        rng.randbytes(size // 2),
        f"seed={seed} size={size} faults={faults}",
    )
