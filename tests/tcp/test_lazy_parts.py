"""The parts an idle connection never needs are made at their first use, and move as absent.

An established SACK connection has no scoreboard, RACK or PRR object and shares the one
empty out-of-order queue (`NO_OOO`) until loss or reordering calls for them; the flags
that say RACK and PRR are on are decided at the handshake and migrate with it, so a
connection thawed before its first loss makes them then, as it would have where it was.
HyStart++'s round state is made by the first RTT sample and dropped when HyStart++ ends.
"""

from __future__ import annotations

import pytest

from tests.tcp.test_migration import B_IP, PORT, SIZE, App, Wire, _payload
from usernet.stack import TcpConfig, TcpConnection
from usernet.stack.tcp.congestion import Cubic
from usernet.stack.tcp.core import NO_OOO
from usernet.stack.tcp.frozen import decode_blob, encode_blob


def _pair(net: Wire) -> tuple[TcpConnection, TcpConnection]:
    listener = net.b.iface.tcp.listen((B_IP, PORT))
    client = net.a.iface.tcp.connect((B_IP, PORT), net.clock())
    net.run([], 0.05)
    server = listener.accept()
    assert server is not None
    return client, server


def _untouched(conn: TcpConnection) -> bool:
    return conn._sb is None and conn._rack is None and conn._prr is None and conn._ooo is NO_OOO


def _shared_queue_is_empty() -> bool:
    return NO_OOO.held == 0 and NO_OOO.dropped == 0 and len(NO_OOO) == 0


@pytest.mark.parametrize(("rack", "prr"), [(True, True), (False, False)])
def test_an_idle_sack_connection_has_its_recovery_parts_on_but_not_made(rack: bool, prr: bool) -> None:
    net = Wire(TcpConfig(rack=rack, prr=prr))
    client, server = _pair(net)
    net.run([], 1.0)
    for conn in (client, server):
        assert conn._sack_ok and conn._rack_ok is rack and conn._prr_ok is prr
        assert _untouched(conn)


def test_loss_makes_each_part_where_it_is_needed_and_the_shared_queue_stays_empty() -> None:
    net = Wire(TcpConfig(sndbuf=65536, rcvbuf=65536), loss=0.03)
    client_conn, server_conn = _pair(net)
    client = App(client_conn, _payload(1))
    server = App(server_conn, b"")
    net.run([client, server], 60.0, until=lambda: len(server.received) == SIZE)

    assert bytes(server.received) == client.outgoing
    # The sender (loss is on A's transmissions) needed RACK, the scoreboard and PRR; the
    # receiver got segments out of order, so a queue of its own.
    assert client_conn._rack is not None and client_conn._sb is not None and client_conn._prr is not None
    assert server_conn._ooo is not NO_OOO
    assert _shared_queue_is_empty()


def test_an_idle_connection_moves_with_its_parts_absent_and_makes_them_after_the_move() -> None:
    net = Wire(TcpConfig(sndbuf=65536, rcvbuf=65536), loss=0.03)
    client_conn, server_conn = _pair(net)
    net.run([], 1.0)
    assert _untouched(server_conn)
    frozen = server_conn.freeze(net.clock())
    assert frozen["_sb"] is None and frozen["_rack"] is None and frozen["_prr"] is None
    assert frozen["_rack_ok"] is True and frozen["_prr_ok"] is True
    assert frozen["_ooo"] == {"dropped": 0, "limit": 65536, "segments": []}
    blob = encode_blob({"connection": frozen})

    fresh = net.replace_b()
    moved = fresh.tcp.thaw_connection(decode_blob(blob)["connection"], net.clock())
    assert _untouched(moved) and moved._rack_ok and moved._prr_ok
    # Both ways after the move: A's data through the loss reaches B out of order, B's own
    # data makes its RACK at its first transmission.
    server = App(moved, _payload(2))
    client = App(client_conn, _payload(1))
    net.run([client, server], 60.0, until=lambda: len(client.received) == SIZE and len(server.received) == SIZE)
    assert bytes(client.received) == server.outgoing and bytes(server.received) == client.outgoing
    assert moved._ooo is not NO_OOO and moved._rack is not None
    assert _shared_queue_is_empty()


def test_hystart_rounds_are_made_by_the_first_sample_and_move_as_they_are() -> None:
    cc = Cubic(1000, hystart=True)
    assert cc._hs is None
    idle = Cubic.thaw(cc.freeze(0.0), 0.0)
    assert idle._hs is None and idle.hystart == cc.hystart
    cc.hystart_sample(0.05, 1000, 5000)
    cc.hystart_sample(0.04, 2000, 5000)
    assert cc._hs is not None
    frozen = cc.freeze(0.0)
    assert frozen["_hs_end"] == 5000 and frozen["_hs_cur_min"] == 0.04 and frozen["_hs_samples"] == 2
    moved = Cubic.thaw(frozen, 0.0)
    assert moved._hs is not None and moved._hs.fields() == cc._hs.fields()
    cc.on_rto(0.0, 4000)  # a loss ends HyStart++: its rounds are dropped
    assert cc._hs is None and Cubic.thaw(cc.freeze(0.0), 0.0)._hs is None
