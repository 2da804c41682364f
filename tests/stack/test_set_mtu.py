"""`Interface.set_mtu`: a link MTU that changes while running (a new DHCP lease's) sizes what follows.

New routes of both families take it, and with them the MSS new connections offer; an open
connection's segments shrink to a smaller MTU at once and never grow past the MSS it
agreed; an RA's MTU option may lower the new link MTU but not pass it.
"""

from __future__ import annotations

import pytest

from tests.stack.simpair import B_IP, make_pair
from tests.stack.test_ipv6_sim import iface, router_advert, settled
from usernet.wire import ETHERTYPE_IPV4, parse_ethernet


def _largest_ipv4_packet(frames: list[tuple[float, bytes]]) -> int:
    return max(len(f) - 14 for _, f in frames if parse_ethernet(f).ethertype == ETHERTYPE_IPV4)


def test_a_smaller_mtu_cuts_open_connections_and_sizes_new_ones() -> None:
    pair = make_pair()
    listener = pair.b.iface.tcp.listen((B_IP, 80))
    pair.sim.run(0.1)
    conn = pair.a.iface.tcp.connect((B_IP, 80), pair.now())
    pair.sim.run(0.1)
    served = listener.accept()
    assert served is not None and conn.state.name == "ESTABLISHED" and conn.peer_mss == 1460
    pair.a.iface.set_mtu(1300, pair.now())
    assert conn.peer_mss == 1260, "the open connection's segments fit the new MTU"
    pair.a_link.sent.clear()
    data = bytes(range(256)) * 400
    sent = 0
    got = bytearray()
    for _ in range(1000):  # bounded: a transfer that stalls fails below instead of hanging
        if len(got) == len(data):
            break
        if sent < len(data):
            sent += conn.send(data[sent:], pair.now())
        pair.sim.run(0.05)
        got += served.receive()
    assert bytes(got) == data and _largest_ipv4_packet(pair.a_link.sent) == 1300
    route = pair.a.iface.route_to(B_IP)
    assert route is not None and (route.mtu, route.mss) == (1300, 1260)
    second = pair.a.iface.tcp.connect((B_IP, 80), pair.now())
    pair.sim.run(0.1)
    accepted = listener.accept()
    assert second.state.name == "ESTABLISHED" and accepted is not None
    assert accepted.peer_mss == 1260, "a new connection offers the MSS of the new MTU"
    # Back up to the link's MTU: new routes take it, the open connection keeps what it agreed.
    pair.a.iface.set_mtu(1500, pair.now())
    route = pair.a.iface.route_to(B_IP)
    assert route is not None and route.mtu == 1500 and conn.peer_mss == 1260


def test_ipv6_routes_take_the_new_mtu_and_an_ra_may_only_lower_it() -> None:
    i = settled(iface())
    assert i.ipv6 is not None
    i.receive(router_advert(mtu=1400), 5.0)
    i.poll(5.0)
    i.poll(6.0)
    far = bytes.fromhex("20010db8ffff00000000000000000001")
    route = i.route_to(far)
    assert route is not None and route.mtu == 1400
    i.set_mtu(1350, 7.0)
    route = i.route_to(far)
    assert route is not None and route.mtu == 1350 and i.ipv6.path_mtu.link_mtu == 1350
    i.receive(router_advert(mtu=1400), 8.0)  # above the new link MTU: ignored
    route = i.route_to(far)
    assert route is not None and route.mtu == 1350
    i.receive(router_advert(mtu=1300), 9.0)
    route = i.route_to(far)
    assert route is not None and route.mtu == 1300


@pytest.mark.parametrize("mtu", [575, 65536])
def test_an_mtu_out_of_range_is_refused_and_nothing_changes(mtu: int) -> None:
    i = settled(iface())
    with pytest.raises(ValueError, match="mtu"):
        i.set_mtu(mtu, 1.0)
    assert i.mtu == 1500
