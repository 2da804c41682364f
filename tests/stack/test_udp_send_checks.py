"""UdpSocket.sendto's checks once per destination, and the predicted receive path's one call.

A socket remembers the last unicast destination that passed its checks (port, broadcast
permission, route, room): these tests pin that what the checks refuse is still refused
whatever was sent before, and that the predicted delivery keeps boundaries, senders,
the connected peer's filter and the queue's bound.
"""

from __future__ import annotations

import errno

import pytest

from tests.stack.simpair import A_IP, B_IP, Pair, make_pair

BROADCAST = bytes([192, 0, 2, 255])


def test_a_broadcast_destination_is_checked_on_every_send(pair: Pair) -> None:
    """SO_BROADCAST turned off after a permitted broadcast: the same destination is refused again."""
    server = pair.b.iface.open_udp((b"\x00" * 4, 5000))
    client = pair.a.iface.open_udp()
    client.broadcast = True
    client.sendto(b"allowed", (BROADCAST, 5000), pair.now())
    client.broadcast = False
    with pytest.raises(OSError) as info:
        client.sendto(b"refused", (BROADCAST, 5000), pair.now())
    assert info.value.errno == errno.EACCES
    pair.sim.run(0.1)
    assert server.recvfrom() == (b"allowed", (A_IP, client.local[1]))
    assert server.recvfrom() is None


def test_a_checked_destination_still_refuses_what_no_datagram_holds(pair: Pair) -> None:
    client = pair.a.iface.open_udp()
    client.sendto(b"fits", (B_IP, 7), pair.now())
    with pytest.raises(OSError) as info:
        client.sendto(bytes(65_508), (B_IP, 7), pair.now())  # 20 + 8 + 65,508 > 65,535
    assert info.value.errno == errno.EMSGSIZE
    client.sendto(bytes(65_507), (B_IP, 7), pair.now())  # the largest that fits, in fragments


def test_another_destination_is_checked_again(pair: Pair) -> None:
    client = pair.a.iface.open_udp()
    client.sendto(b"x", (B_IP, 7), pair.now())
    with pytest.raises(OSError) as info:
        client.sendto(b"x", (B_IP, 0), pair.now())
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError) as info:
        client.sendto(b"x", (BROADCAST, 7), pair.now())
    assert info.value.errno == errno.EACCES
    client.sendto(b"back to the first", (B_IP, 7), pair.now())


def test_a_closed_socket_refuses_even_a_checked_destination(pair: Pair) -> None:
    client = pair.a.iface.open_udp()
    client.sendto(b"x", (B_IP, 7), pair.now())
    client.close()
    with pytest.raises(OSError) as info:
        client.sendto(b"x", (B_IP, 7), pair.now())
    assert info.value.errno == errno.EBADF


def test_a_checked_destination_is_forgotten_when_the_socket_address_goes(pair: Pair) -> None:
    """Bound to an address that a readdress takes away, the socket's next send to the same peer
    fails (no route from an address we lack), as a Linux socket's does."""
    client = pair.a.iface.open_udp((A_IP, 4000))
    client.sendto(b"x", (B_IP, 7), pair.now())
    pair.a.iface.readdress_ipv4(((bytes([192, 0, 2, 77]), 24),), None, pair.now())
    with pytest.raises(OSError):
        client.sendto(b"x", (B_IP, 7), pair.now())


def test_connect_replaces_the_checked_destination(pair: Pair) -> None:
    server = pair.b.iface.open_udp((b"\x00" * 4, 5000))
    other = pair.b.iface.open_udp((b"\x00" * 4, 5001))
    client = pair.a.iface.open_udp()
    client.sendto(b"first", (B_IP, 5000), pair.now())
    client.connect((B_IP, 5001))
    client.sendto(b"to the peer", None, pair.now())
    pair.sim.run(0.1)
    assert server.recvfrom() == (b"first", (A_IP, client.local[1]))
    assert other.recvfrom() == (b"to the peer", (A_IP, client.local[1]))


def test_predicted_delivery_keeps_boundaries_senders_and_the_queue_bound() -> None:
    """Many datagrams of one burst, from two senders, into a queue of 5: each arrives whole and
    apart with its own sender, in order, until the queue is full; the rest are counted dropped."""
    pair = make_pair(udp_queue_limit=5)
    server = pair.b.iface.open_udp((b"\x00" * 4, 5000))
    one = pair.a.iface.open_udp()
    two = pair.a.iface.open_udp()
    sent = []
    for i in range(4):
        for sock in (one, two):
            payload = bytes([i]) * (1 + i * 300)
            sock.sendto(payload, (B_IP, 5000), pair.now())
            sent.append((payload, (A_IP, sock.local[1])))
    pair.sim.run(0.1)
    got = []
    while (item := server.recvfrom()) is not None:
        got.append(item)
    assert got == sent[:5]
    stats = pair.b.iface.stats()
    assert server.dropped == 3 and stats["udp_queue_full"] == 3
    assert stats["udp_rx_predicted"] == 8 and stats["udp_delivered"] == 5


def test_predicted_delivery_follows_binds_and_closes(pair: Pair) -> None:
    """The predicted path remembers which socket a (local address, port) delivers to: a socket bound
    to the address itself after the wildcard's takes the next datagram, and once it closes the
    wildcard's does again; with neither, the port is closed (counted, answered with ICMP)."""
    wildcard = pair.b.iface.open_udp((b"\x00" * 4, 5000))
    client = pair.a.iface.open_udp()

    def send(payload: bytes) -> None:
        client.sendto(payload, (B_IP, 5000), pair.now())
        pair.sim.run(0.1)

    send(b"to the wildcard")
    exact = pair.b.iface.open_udp((B_IP, 5000), reuse_address=True)
    send(b"to the address")
    assert exact.recvfrom() == (b"to the address", (A_IP, client.local[1]))
    exact.close()
    send(b"to the wildcard again")
    assert wildcard.recvfrom() == (b"to the wildcard", (A_IP, client.local[1]))
    assert wildcard.recvfrom() == (b"to the wildcard again", (A_IP, client.local[1]))
    wildcard.close()
    send(b"to no one")
    assert pair.b.iface.stats()["udp_no_socket"] == 1
