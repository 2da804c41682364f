"""A socket's own TTL (IP_TTL, IPV6_UNICAST_HOPS), UDP and TCP: on everything it sends until reset."""

from __future__ import annotations

import errno

import pytest

from tests.stack.simpair import B_IP, make_pair
from usernet.stack import Interface, InterfaceConfig
from usernet.stack.tcp.frozen import decode_blob, encode_blob
from usernet.wire import ETHERTYPE_IPV4, parse_ethernet, parse_ipv4


def _ttls(pair, count: int) -> list[int]:
    """The TTLs of the last `count` IPv4 frames A sent."""
    ips = [eth.payload for _, frame in pair.a_link.sent if (eth := parse_ethernet(frame)).ethertype == ETHERTYPE_IPV4]
    return [parse_ipv4(ip).ttl for ip in ips[-count:]]


def test_the_ttl_set_is_on_each_datagram_and_reset_goes_back_to_the_interfaces() -> None:
    pair = make_pair()
    sock = pair.a.iface.open_udp()
    sock.sendto(b"warm", (B_IP, 9), pair.now())  # ARP first, so that each datagram below is one frame
    pair.sim.run(0.1)
    assert sock.effective_ttl == 64
    sock.set_ttl(3)
    for _ in range(2):
        sock.sendto(b"x", (B_IP, 9), pair.now())
    pair.sim.run(0.01)
    assert _ttls(pair, 2) == [3, 3] and sock.effective_ttl == 3
    sock.connect((B_IP, 9))  # a connect keeps it
    sock.sendto(b"x", None, pair.now())
    pair.sim.run(0.01)
    assert _ttls(pair, 1) == [3]
    sock.set_ttl(-1)  # IPV6_UNICAST_HOPS's "the default"
    sock.sendto(b"x", None, pair.now())
    pair.sim.run(0.01)
    assert _ttls(pair, 1) == [64] and sock.effective_ttl == 64


@pytest.mark.parametrize("ttl", [-2, 256, 1000])
def test_a_ttl_out_of_range_is_refused(ttl: int) -> None:
    sock = make_pair().a.iface.open_udp()
    with pytest.raises(OSError) as refused:
        sock.set_ttl(ttl)
    assert refused.value.errno == errno.EINVAL


def test_a_tcp_connection_sends_with_its_ttl_and_keeps_it_when_rerouted_or_moved() -> None:
    pair = make_pair()
    listener = pair.b.iface.tcp.listen((B_IP, 80))
    conn = pair.a.iface.tcp.connect((B_IP, 80), pair.now())
    pair.sim.run(0.1)
    assert listener.accept() is not None
    assert conn.options["ttl"] == 64
    conn.set_option("ttl", 9)
    conn.send(b"hello", pair.now())
    pair.sim.run(0.05)
    assert _ttls(pair, 1) == [9] and conn.options["ttl"] == 9
    conn.reroute(pair.a.iface.route_to(B_IP), pair.now())  # the interface's route: the TTL stays the socket's
    conn.send(b"again", pair.now())
    pair.sim.run(0.05)
    assert _ttls(pair, 1) == [9]
    frozen = decode_blob(encode_blob({"c": conn.freeze(pair.now())}))["c"]
    fresh = Interface(InterfaceConfig.from_strings(bytes.fromhex("020000000009"), ["192.0.2.1/24"]))
    assert fresh.tcp.thaw_connection(frozen, pair.now()).options["ttl"] == 9  # it moves with its TTL
    conn.set_option("ttl", 0)
    conn.send(b"default", pair.now())
    pair.sim.run(0.05)
    assert _ttls(pair, 1) == [64] and conn.options["ttl"] == 64
    with pytest.raises(ValueError, match="1-255"):
        conn.set_option("ttl", 256)
