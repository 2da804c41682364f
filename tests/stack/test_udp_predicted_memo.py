"""The predicted UDP path's tables by integer: the senders' (address, port) tuples it keeps,
bounded, and the IPv6 destination found by its integer; what they hand the user stays right
as peers come and go and sockets close and rebind."""

from __future__ import annotations

import pytest

from tests.stack.simpair import A_IP, B_IP, Pair, make_pair
from usernet.stack import udp


def test_the_sender_tuples_kept_are_bounded_and_stay_right(monkeypatch: pytest.MonkeyPatch, pair: Pair) -> None:
    """More peers than the table holds: each datagram still names its own sender, the table is
    emptied when full (never above its bound), and a known peer's datagrams share one tuple."""
    monkeypatch.setattr(udp, "SOURCE_MEMO_LIMIT", 3)
    server = pair.b.iface.open_udp((bytes(4), 5000))
    clients = [pair.a.iface.open_udp() for _ in range(8)]
    for round_ in range(2):
        for client in clients:
            client.sendto(bytes([round_]), (B_IP, 5000), pair.now())
            pair.sim.run(0.01)
            got = server.recvfrom()
            assert got == (bytes([round_]), (A_IP, client.local[1]))
            assert len(pair.b.iface.udp._sources4) <= 3
    one = clients[0]
    one.sendto(b"a", (B_IP, 5000), pair.now())
    one.sendto(b"b", (B_IP, 5000), pair.now())
    pair.sim.run(0.01)
    first, second = server.recvfrom(), server.recvfrom()
    assert first is not None and second is not None and first[1] is second[1]
    assert pair.b.iface.stats()["udp_rx_predicted"] == 18


def test_the_sender_tuples_kept_are_right_after_unbind_and_rebind(pair: Pair) -> None:
    """A peer's port closed and bound again by another socket (rebound by its connect), the server's socket closed and
    another bound where it was: the datagrams still name their sender and reach the new socket."""
    server = pair.b.iface.open_udp((B_IP, 5000))
    client = pair.a.iface.open_udp((A_IP, 4000))
    client.sendto(b"first", (B_IP, 5000), pair.now())
    pair.sim.run(0.01)
    assert server.recvfrom() == (b"first", (A_IP, 4000))
    client.close()
    server.close()
    again = pair.b.iface.open_udp((bytes(4), 5000))
    moved = pair.a.iface.open_udp((bytes(4), 4000))
    moved.connect((B_IP, 5000))  # rebinds it from the wildcard to the route's source
    assert moved.local == (A_IP, 4000)
    moved.sendto(b"second", None, pair.now())
    other = pair.a.iface.open_udp((A_IP, 4001))
    other.sendto(b"third", (B_IP, 5000), pair.now())
    pair.sim.run(0.01)
    assert again.recvfrom() == (b"second", (A_IP, 4000))
    assert again.recvfrom() == (b"third", (A_IP, 4001))
    assert server.recvfrom() is None


def test_ipv6_datagrams_are_delivered_by_the_destination_integer() -> None:
    """Over IPv6 the prediction finds our address by its integer and hands the socket the
    sender's address as bytes, the one the table keeps for that peer."""
    pair = make_pair(ipv6=True)
    pair.sim.run(1.5)
    ipv6_a, ipv6_b = pair.a.iface.ipv6, pair.b.iface.ipv6
    assert ipv6_a is not None and ipv6_b is not None
    (a_ip,) = ipv6_a.local_addresses
    (b_ip,) = ipv6_b.local_addresses
    server = pair.b.iface.open_udp((bytes(16), 5353))
    client = pair.a.iface.open_udp((bytes(16), 0))
    for payload in (b"one", b"two"):
        client.sendto(payload, (b_ip, 5353), pair.now())
        pair.sim.run(0.05)
        assert server.recvfrom() == (payload, (a_ip, client.local[1]))
    stats = pair.b.iface.stats()
    assert stats["udp_rx_predicted"] == 2 and stats["udp_delivered"] == 2
    assert type(next(iter(pair.b.iface.udp._sources6.values()))[0]) is bytes
