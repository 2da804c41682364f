"""A UDP socket's own TTL (IP_TTL, IPV6_UNICAST_HOPS): on every datagram it sends until reset."""

from __future__ import annotations

import errno

import pytest

from tests.stack.simpair import B_IP, make_pair
from usernet.wire import parse_ethernet, parse_ipv4


def _ttls(pair, count: int) -> list[int]:
    return [parse_ipv4(parse_ethernet(frame).payload).ttl for _, frame in pair.a_link.sent[-count:]]


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
