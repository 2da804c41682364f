"""ARP, ICMP and UDP between two interfaces over MemoryWire, in virtual time."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

from tests.stack.simpair import A_IP, B_IP, Pair, make_pair
from usernet.apps.services import UdpEcho
from usernet.stack import Interface, InterfaceConfig
from usernet.stack.tcp.connection import TcpConnection
from usernet.wire import ARP_REQUEST, ETHERTYPE_ARP, ETHERTYPE_IPV4, parse_arp, parse_ethernet

SYN = 0x02

NOWHERE = bytes([192, 0, 2, 99])


def test_ping_resolves_arp_and_gets_replies(pair):
    ping = pair.a.iface.open_ping(7)
    for seq in range(1, 6):
        ping.send(B_IP, seq, b"payload-%d" % seq, pair.now())
        pair.sim.run(0.1)
    replies = [ping.receive() for _ in range(5)]
    assert [(src, seq, data) for src, seq, data, _ in replies] == [
        (B_IP, seq, b"payload-%d" % seq) for seq in range(1, 6)
    ]
    assert pair.b.iface.stats()["icmp_echo_answered"] == 5
    # One resolution each way (b learned a from the request), then the cache does the work.
    assert pair.a.iface.arp.lookup(B_IP, pair.now()) == pair.wire.b.mac
    assert pair.b.iface.arp.lookup(A_IP, pair.now()) == pair.wire.a.mac


def test_arp_retries_then_gives_up_without_sleeping(pair):
    ping = pair.a.iface.open_ping(1)
    start = pair.now()
    ping.send(NOWHERE, 1, b"x", start)
    pair.sim.run(10.0)
    asked = [t - start for t, frame in pair.a_link.sent if _arp_target(frame) == NOWHERE]
    # The first request leaves with the send, the first retry 0.2 s later, the next at the 1 s interval.
    assert asked == [0.0, pytest.approx(0.2), pytest.approx(1.2)]
    assert pair.a.iface.stats()["arp_unresolved"] == 1
    assert pair.a.iface.next_deadline() is None


def _arp_target(frame: bytes) -> bytes | None:
    eth = parse_ethernet(frame)
    return parse_arp(eth.payload).tpa if eth.ethertype == ETHERTYPE_ARP else None


def test_arp_entry_expires_and_is_resolved_again():
    pair = make_pair(arp_timeout=5.0)
    ping = pair.a.iface.open_ping(1)
    ping.send(B_IP, 1, b"x", pair.now())
    pair.sim.run(1.0)
    assert pair.a.iface.arp.lookup(B_IP, pair.now()) is not None
    pair.sim.run(10.0)
    assert pair.a.iface.arp.lookup(B_IP, pair.now()) is None
    ping.send(B_IP, 2, b"y", pair.now())
    pair.sim.run(1.0)
    assert [r[1] for r in (ping.receive(), ping.receive())] == [1, 2]


def test_arp_queue_is_bounded():
    pair = make_pair(arp_queue_limit=4)
    ping = pair.a.iface.open_ping(1)
    for seq in range(10):
        ping.send(NOWHERE, seq, b"x", pair.now())
    assert pair.a.iface.stats()["arp_queue_full"] == 6
    pair.sim.run(5.0)
    assert pair.a.iface.stats()["arp_unresolved"] == 4


def test_start_announces_with_gratuitous_arp(pair):
    first = pair.b_link.sent[0][1]
    arp = parse_arp(parse_ethernet(first).payload)
    assert (arp.op, arp.spa, arp.tpa) == (ARP_REQUEST, B_IP, B_IP)


def test_udp_echo_every_size(pair):
    echo = UdpEcho(pair.b.iface)
    pair.sim.on_ready = lambda host, sock: echo.handle(sock, pair.now())
    client = pair.a.iface.open_udp()
    client.sendto(b"warm the ARP cache: the queue for an unresolved hop holds only 32", (B_IP, 7), pair.now())
    pair.sim.run(0.1)
    assert client.recvfrom() is not None
    sizes = [*range(0, 1473, 37), 1472]
    for size in sizes:
        client.sendto(bytes((size + i) & 0xFF for i in range(size)), (B_IP, 7), pair.now())
    pair.sim.run(1.0)
    got = []
    while (item := client.recvfrom()) is not None:
        data, source = item
        assert source == (B_IP, 7)
        got.append(data)
    assert got == [bytes((size + i) & 0xFF for i in range(size)) for size in sizes]
    # Datagrams to a bound port take the header prediction, both ways.
    for host in (pair.a, pair.b):
        stats = host.iface.stats()
        assert stats["udp_rx_predicted"] == stats["udp_delivered"] == len(sizes) + 1


def test_closed_port_answers_port_unreachable_to_connected_socket_only(pair):
    connected = pair.a.iface.open_udp()
    connected.connect((B_IP, 9999))
    unconnected = pair.a.iface.open_udp()
    connected.sendto(b"hello", None, pair.now())
    unconnected.sendto(b"hello", (B_IP, 9999), pair.now())
    pair.sim.run(1.0)
    err = connected.take_error()
    assert err is not None and err.errno == errno.ECONNREFUSED
    assert unconnected.take_error() is None
    assert pair.b.iface.stats()["icmp_errors_sent"] == 2
    assert pair.a.iface.stats()["icmp_errors_received"] == 2
    assert pair.b.iface.stats()["udp_no_socket"] == 2  # the general path answered
    assert pair.b.iface.stats()["udp_rx_predicted"] == 0


def test_icmp_errors_are_rate_limited():
    pair = make_pair(icmp_error_burst=5, icmp_error_rate=10.0, arp_queue_limit=64)
    sock = pair.a.iface.open_udp()
    for _ in range(50):
        sock.sendto(b"x", (B_IP, 9999), pair.now())
    pair.sim.run(0.05)
    stats = pair.b.iface.stats()
    assert stats["icmp_errors_sent"] == 5
    assert stats["icmp_errors_rate_limited"] == 45


def test_connected_socket_drops_other_peers(pair):
    server = pair.b.iface.open_udp((b"\x00" * 4, 5000))
    server.connect((A_IP, 6000))
    wrong = pair.a.iface.open_udp((b"\x00" * 4, 6001))
    right = pair.a.iface.open_udp((b"\x00" * 4, 6000))
    wrong.sendto(b"no", (B_IP, 5000), pair.now())
    right.sendto(b"yes", (B_IP, 5000), pair.now())
    pair.sim.run(0.1)
    assert server.recvfrom() == (b"yes", (A_IP, 6000))
    assert server.recvfrom() is None
    assert pair.b.iface.stats()["udp_wrong_peer"] == 1


def test_udp_receive_queue_is_bounded():
    pair = make_pair(udp_queue_limit=3)
    server = pair.b.iface.open_udp((b"\x00" * 4, 5000))
    client = pair.a.iface.open_udp()
    for i in range(10):
        client.sendto(b"%d" % i, (B_IP, 5000), pair.now())
    pair.sim.run(0.1)
    assert [server.recvfrom()[0] for _ in range(3)] == [b"0", b"1", b"2"]
    assert server.dropped == 7 and pair.b.iface.stats()["udp_queue_full"] == 7


def test_broadcast_needs_permission_and_reaches_wildcard_sockets(pair):
    server = pair.b.iface.open_udp((b"\x00" * 4, 5000))
    client = pair.a.iface.open_udp()
    with pytest.raises(OSError) as info:
        client.sendto(b"all", (b"\xff" * 4, 5000), pair.now())
    assert info.value.errno == errno.EACCES
    client.broadcast = True
    client.sendto(b"all", (b"\xff" * 4, 5000), pair.now())
    client.sendto(b"subnet", (bytes([192, 0, 2, 255]), 5000), pair.now())
    pair.sim.run(0.1)
    assert [server.recvfrom()[0], server.recvfrom()[0]] == [b"all", b"subnet"]
    assert pair.b.iface.stats()["arp_requests_answered"] == 0  # broadcast needs no ARP
    assert pair.b.iface.stats()["udp_rx_predicted"] == 0  # broadcasts take the general path


def test_port_binding_rules(pair):
    iface = pair.a.iface
    s = iface.open_udp((b"\x00" * 4, 4000))
    with pytest.raises(OSError) as info:
        iface.open_udp((A_IP, 4000))
    assert info.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as info:
        iface.open_udp((NOWHERE, 4001))
    assert info.value.errno == errno.EADDRNOTAVAIL
    s.close()
    iface.open_udp((A_IP, 4000)).close()
    ephemeral = {iface.open_udp().local[1] for _ in range(100)}
    assert len(ephemeral) == 100 and all(32768 <= p <= 60999 for p in ephemeral)
    with pytest.raises(OSError) as info:
        s.sendto(b"x", (B_IP, 7), pair.now())
    assert info.value.errno == errno.EBADF


def test_off_link_goes_through_the_gateway():
    from usernet.drivers.host import Host
    from usernet.drivers.virtual import Simulation
    from usernet.link.clock import VirtualClock
    from usernet.link.memory import MemoryWire
    from usernet.stack import Interface, InterfaceConfig

    clock = VirtualClock()
    wire = MemoryWire(clock, latency=0.001)
    sim = Simulation(clock)
    a = sim.add(
        Host(wire.a, Interface(InterfaceConfig.from_strings(wire.a.mac, ["192.0.2.1/24"], gateway="192.0.2.2")))
    )
    b = sim.add(Host(wire.b, Interface(InterfaceConfig.from_strings(wire.b.mac, ["192.0.2.2/24"]))))
    sock = a.iface.open_udp()
    sock.sendto(b"far away", (bytes([198, 51, 100, 7]), 53), clock())
    sim.run(0.1)
    # The gateway (b) got it at the Ethernet level and, being a host not a router, drops it as not for it.
    assert b.iface.stats()["ipv4_not_for_us"] == 1
    assert a.iface.arp.lookup(bytes([192, 0, 2, 2]), clock()) == wire.b.mac
    no_gw = b.iface.open_udp()
    with pytest.raises(OSError) as info:
        no_gw.sendto(b"x", (bytes([198, 51, 100, 7]), 53), clock())
    assert info.value.errno == errno.ENETUNREACH


def _deaf_to(count: int) -> Callable[[bytes], bool]:
    """A loss rule: the first `count` ARP requests are lost (a peer busy with its own start-up)."""
    lost = [0]

    def lose(frame: bytes) -> bool:
        if _arp_target(frame) == B_IP and lost[0] < count:
            lost[0] += 1
            return True
        return False

    return lose


def _syns(pair: Pair) -> list[float]:
    return [t for t, frame in pair.a_link.sent if _tcp_flags(frame) == SYN]


def _tcp_flags(frame: bytes) -> int | None:
    eth = parse_ethernet(frame)
    if eth.ethertype != ETHERTYPE_IPV4 or frame[23] != 6:
        return None
    return frame[14 + (frame[14] & 15) * 4 + 13]


def _first_connection(lost_requests: int, run: float) -> tuple[Pair, float, TcpConnection]:
    """A connects to B, whose first `lost_requests` ARP requests from A are lost; run `run` seconds."""
    pair = make_pair()
    pair.a_link.lose = _deaf_to(lost_requests)
    pair.b.iface.tcp.listen((B_IP, 80))
    pair.sim.run(0.1)  # past B's start-up announcement, which would answer A's question
    start = pair.now()
    conn = pair.a.iface.tcp.connect((B_IP, 80), start)
    pair.sim.run(run)
    assert conn.state.name == "ESTABLISHED"
    return pair, start, conn


def test_one_ignored_arp_request_costs_the_first_connection_only_the_first_retry():
    pair, start, _ = _first_connection(1, 0.5)
    assert _syns(pair) == [pytest.approx(start + 0.2, abs=0.01)]  # held for ARP, sent once when the retry was answered


def test_a_syn_retransmitted_while_held_for_arp_leaves_once():
    # Two requests lost: resolution at 1.2 s, after the SYN's 1 s RTO queued a second copy.
    pair, start, _ = _first_connection(2, 2.0)
    assert _syns(pair) == [pytest.approx(start + 1.2, abs=0.01)]
    assert pair.a.iface.stats()["arp_superseded"] == 1


def test_readdressing_with_a_gateway_off_the_new_networks_changes_nothing() -> None:
    """readdress_ipv4 refuses a gateway none of the new addresses reaches, as the constructor
    does, and leaves the interface as it was: its addresses, gateway and routes."""
    iface = Interface(InterfaceConfig.from_strings(bytes.fromhex("020000000001"), ["192.0.2.2/24"], "192.0.2.1"))
    far = bytes([198, 51, 100, 1])
    with pytest.raises(ValueError, match="gateway"):
        iface.readdress_ipv4(((bytes([10, 0, 0, 5]), 24),), bytes([192, 0, 2, 1]), 1.0)
    assert iface.local_addresses == frozenset({bytes([192, 0, 2, 2])})
    route = iface.route_to(far)
    assert route is not None and (route.source, route.next_hop) == (bytes([192, 0, 2, 2]), bytes([192, 0, 2, 1]))


def test_readdressing_with_a_new_gateway_reroutes_the_connections_that_keep_their_address() -> None:
    """A renewed lease that names another router: a connection to a far peer on the address we
    keep sends its next segment through the new router (it asks ARP for it), not the old one."""
    iface = Interface(InterfaceConfig.from_strings(bytes.fromhex("020000000001"), ["192.0.2.2/24"], "192.0.2.1"))
    far, old_gw, new_gw = bytes([198, 51, 100, 1]), bytes([192, 0, 2, 1]), bytes([192, 0, 2, 254])
    conn = iface.tcp.connect((far, 80), 0.0)
    iface.flush(0.0)
    assert [_arp_target(f) for f in iface.take_output()] == [old_gw]  # the SYN waits for the old router
    iface.readdress_ipv4(((bytes([192, 0, 2, 2]), 24),), new_gw, 0.5)
    asked = set()
    # The SYN's retransmission (initial RTO 1 s) leaves through the new router. Past 2.2 s the old
    # router's ARP gives up on the first SYN it held, which must not fail a connection that has
    # moved on; the new router's gives up from 3.2 s on (nobody answers here), which would.
    for step in range(1, 30):
        now = step * 0.1
        iface.poll(now)
        iface.flush(now)
        asked |= {_arp_target(f) for f in iface.take_output()}
    assert new_gw in asked and conn.state.name == "SYN_SENT", (asked, conn.state)
