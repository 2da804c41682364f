"""A next hop that never answers ARP or neighbour solicitation: its sockets hear EHOSTUNREACH.

Linux turns each packet its neighbour cache drops into a local host unreachable, so a
connect to an absent on-link address fails with "No route to host" after the resolution
retries (about 3 s there, ~2.2 s here: see stack/arp.py), not after two minutes of SYNs.
"""

from __future__ import annotations

import asyncio
import errno

from tests.stack.simpair import make_pair
from usernet import sim
from usernet.stack import InterfaceConfig

ABSENT = bytes([192, 0, 2, 9])  # on the pair's link; nobody has it
ABSENT6 = bytes.fromhex("fe800000000000000000000000000009")
_DEFAULTS = InterfaceConfig.from_strings(bytes(6), ["192.0.2.1/24"])  # the pair's timings
ARP_GIVES_UP = _DEFAULTS.arp_first_retry + (_DEFAULTS.arp_retries - 1) * _DEFAULTS.arp_retry_interval
ND_GIVES_UP = _DEFAULTS.nd_max_multicast_solicit * _DEFAULTS.nd_retrans_time


def _run_until(pair, done, limit: float) -> float:
    """Advance the pair's virtual clock in 50 ms steps until `done()`; the time it took."""
    start = pair.now()
    while not done() and pair.now() - start < limit:
        pair.sim.run(0.05)
    return pair.now() - start


def test_a_connect_to_an_absent_neighbour_fails_with_no_route_to_host():
    pair = make_pair()
    conn = pair.a.iface.tcp.connect((ABSENT, 80), pair.now())
    took = _run_until(pair, lambda: conn.error is not None, 30.0)
    assert conn.error is not None and conn.error.errno == errno.EHOSTUNREACH, conn.error
    assert ARP_GIVES_UP <= took <= ARP_GIVES_UP + 0.1
    assert conn.state.name == "CLOSED"
    assert pair.a.iface.stats()["arp_unresolved"] >= 1


def test_a_connected_udp_socket_hears_it_and_an_unconnected_one_does_not():
    pair = make_pair()
    connected = pair.a.iface.open_udp()
    connected.connect((ABSENT, 9))
    connected.sendto(b"anyone?", None, pair.now())
    unconnected = pair.a.iface.open_udp()
    unconnected.sendto(b"anyone?", (ABSENT, 9), pair.now())
    pair.sim.run(ARP_GIVES_UP + 0.1)
    error = connected.take_error()
    assert error is not None and error.errno == errno.EHOSTUNREACH
    assert unconnected.take_error() is None  # as Linux: only a connected socket is told
    assert pair.a.iface.stats()["arp_unresolved"] == 2


def test_the_same_host_answering_later_is_reached_by_a_new_connect():
    """Giving up forgets the resolution: the next connect asks again and gets through."""
    pair = make_pair()
    first = pair.a.iface.tcp.connect((ABSENT, 80), pair.now())
    _run_until(pair, lambda: first.error is not None, 30.0)
    assert first.error is not None and first.error.errno == errno.EHOSTUNREACH
    listener = pair.b.iface.tcp.listen((bytes(4), 80))
    second = pair.a.iface.tcp.connect((bytes([192, 0, 2, 2]), 80), pair.now())
    _run_until(pair, lambda: listener.accept() is not None, 5.0)
    assert second.error is None and second.state.name == "ESTABLISHED"


def test_an_ipv6_connect_to_an_absent_neighbour_fails_with_no_route_to_host():
    pair = make_pair(ipv6=True)
    pair.sim.run(1.5)  # past DAD of the link-local addresses
    conn = pair.a.iface.tcp.connect((ABSENT6, 80), pair.now())
    took = _run_until(pair, lambda: conn.error is not None, 30.0)
    assert conn.error is not None and conn.error.errno == errno.EHOSTUNREACH, conn.error
    assert took <= ND_GIVES_UP + 0.1
    assert pair.a.iface.stats()["nd_unresolved"] >= 1


def test_asyncio_programs_hear_it_as_on_linux():
    """Through the asyncio face on the simulator: open_connection raises OSError(EHOSTUNREACH,
    "Connect call failed ..."), a connected datagram endpoint's error_received gets it."""
    seen: dict[str, object] = {}

    class Endpoint(asyncio.DatagramProtocol):
        def error_received(self, exc: Exception) -> None:
            seen["udp"] = exc

    async def client() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            await asyncio.open_connection("10.0.0.9", 7)
        except OSError as exc:
            seen["tcp"] = (exc, loop.time() - start)
        transport, _ = await loop.create_datagram_endpoint(Endpoint, remote_addr=("10.0.0.9", 9))
        transport.sendto(b"anyone?")
        await asyncio.sleep(3)
        transport.close()

    async def server() -> None:
        await asyncio.sleep(3600)

    net = sim.Network(seed=1)
    net.host("server", server, address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    net.run(timeout=60)
    exc, took = seen["tcp"]  # type: ignore[misc]
    assert isinstance(exc, OSError) and exc.errno == errno.EHOSTUNREACH and "10.0.0.9" in str(exc)
    assert took < 3
    assert isinstance(seen["udp"], OSError) and seen["udp"].errno == errno.EHOSTUNREACH
