"""The route seam: TCP runs unchanged over a link without a link-layer header.

An IP-only link (a TUN device) carries bare IP packets. Nothing in TCP knows: its layer
is given a `Node` whose routes have no link header, and the same connection code
handshakes, moves data and closes over it. The node here is the whole of what such an
interface must provide (`usernet.stack.node.Node`); its packets go through the wire
parsers, which check every checksum the one C builder wrote.
"""

from __future__ import annotations

from usernet.stack import InterfaceConfig, Stats, TcpLayer
from usernet.stack.route import Route
from usernet.stack.tcp.states import State
from usernet.wire import parse_ipv4, parse_tcp

A = bytes([198, 51, 100, 1])
B = bytes([198, 51, 100, 2])


class IpOnlyNode:
    """One end of a point-to-point IP link: every destination is the peer, no neighbour to resolve."""

    def __init__(self, address: bytes) -> None:
        self.config = InterfaceConfig(mac=bytes(6), addresses=((address, 24),), secret=address * 4)
        self.counters = Stats()
        self.local_addresses = frozenset((address,))
        self.sent: list[bytearray] = []
        self.ready: list[object] = []

    def route_to(self, dst: bytes, source: bytes | None = None) -> Route:
        (address,) = self.local_addresses
        return Route(dst, source or address, dst, b"", self.config.ttl, self.config.mtu, self._deliver)

    def _deliver(self, frame: bytearray, next_hop: bytes, source: bytes, now: float) -> None:
        self.sent.append(frame)

    def is_local(self, addr: bytes) -> bool:
        return addr in self.local_addresses

    def is_broadcast(self, addr: bytes) -> bool:
        return False

    def is_unicast(self, addr: bytes) -> bool:
        return addr[0] != 0 and addr[0] < 224

    def mark_ready(self, sock: object) -> None:
        self.ready.append(sock)


def exchange(a: tuple[IpOnlyNode, TcpLayer], b: tuple[IpOnlyNode, TcpLayer], now: float) -> int:
    """Flush both sides and hand each packet to the other; the number of packets moved."""
    moved = 0
    for (node, layer), (_, peer) in ((a, b), (b, a)):
        layer.flush(now)
        packets, node.sent = node.sent, []
        for packet in packets:
            ip = parse_ipv4(packet)  # a bare IPv4 packet, header checksum verified
            parse_tcp(ip.payload, ip.src, ip.dst)  # and the TCP checksum
            peer.receive(ip, now)
            moved += 1
    return moved


def test_tcp_handshakes_transfers_and_closes_over_bare_ip() -> None:
    node_a, node_b = IpOnlyNode(A), IpOnlyNode(B)
    a, b = (node_a, TcpLayer(node_a)), (node_b, TcpLayer(node_b))
    listener = b[1].listen((bytes(4), 7))
    client = a[1].connect((B, 7), 0.0)
    now = 0.0
    while exchange(a, b, now):
        now += 0.001
    server = listener.accept()
    assert server is not None and client.state == server.state == State.ESTABLISHED
    data = bytes(range(256)) * 200  # several segments of the MSS the route allows
    sent = client.send(data, now)
    got = bytearray()
    while exchange(a, b, now) or len(got) < sent:
        got += server.receive()
        now += 0.001
    assert bytes(got) == data[:sent] and sent > 2 * (node_a.config.mtu - 40)
    client.close(now)
    server.close(now)
    while exchange(a, b, now):
        now += 0.001
    assert client.state == server.state == State.TIME_WAIT  # both closed at once: a simultaneous close
    assert node_a.counters.tcp_tx_segments > 0 and node_b.counters.tcp_rx_segments > 0
