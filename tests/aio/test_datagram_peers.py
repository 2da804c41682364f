"""The datagram transport's peer names: what `datagram_received` is told and where a reply goes.

The transport pairs each sender's stack address with the stdlib tuple it hands the
program, so that the reply's `sendto(data, addr)` needs no parsing; these tests pin that
the pairing never changes what a kernel socket would report or where a datagram goes.
"""

from __future__ import annotations

import errno
import ipaddress

import pytest

from tests.aio.conftest import B_IP, Pair, make_pair
from tests.aio.test_datagram import Echo, Recorder, peer
from usernet.aio import datagram


def test_a_name_the_program_gave_is_not_what_it_is_told(pair: Pair) -> None:
    """A send to a numeric host the resolver spells differently ("192.0.2.001", octal digits as
    inet_aton reads them) reaches B_IP; the answer is reported from B_IP, as a kernel socket says."""

    async def main() -> None:
        await peer(pair, Echo, 7)
        transport, proto = await pair.loop.create_datagram_endpoint(Recorder, local_addr=("0.0.0.0", 0))
        transport.sendto(b"spelled oddly", ("192.0.2.001", 7))
        assert await proto.next("data") == (b"spelled oddly", (B_IP, 7))
        transport.sendto(b"spelled plainly", (B_IP, 7))
        assert await proto.next("data") == (b"spelled plainly", (B_IP, 7))
        transport.close()

    pair.run(main())


def test_replies_reach_each_of_more_peers_than_the_cache_holds(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seven clients of one echo server whose transport remembers three peers: every client gets
    its own datagrams back, in order, and the tables stay within their bound."""
    monkeypatch.setattr(datagram, "NAME_CACHE", 3)

    async def main() -> None:
        server, _ = await peer(pair, Echo, 7)
        clients = [await pair.loop.create_datagram_endpoint(Recorder, remote_addr=(B_IP, 7)) for _ in range(7)]
        for round_ in range(3):
            for i, (transport, _) in enumerate(clients):
                transport.sendto(b"%d:%d" % (i, round_))
            for i, (_, proto) in enumerate(clients):
                assert await proto.next("data") == (b"%d:%d" % (i, round_), (B_IP, 7))
            assert len(server._names) <= 3 and len(server._peers) <= 3
        for transport, _ in clients:
            transport.close()

    pair.run(main())


def test_an_ipv6_peer_is_told_the_four_item_tuple_and_answered(loop_kind: str) -> None:
    with make_pair(loop_kind, ipv6=True) as pair:

        async def main() -> None:
            a_driver = pair.loop.usernet_driver()  # type: ignore[attr-defined]  # a usernet loop, typed as any loop
            await a_driver.ipv6_settled()
            await pair.b_driver.ipv6_settled()
            b6 = str(ipaddress.IPv6Address(next(a for a in pair.b.iface.ipv6.local_addresses if a[0] != 0xFE)))  # type: ignore[union-attr]  # made with ipv6
            await open_echo6(pair)
            transport, proto = await pair.loop.create_datagram_endpoint(Recorder, local_addr=("::", 0))
            transport.sendto(b"six", (b6, 7))  # the short tuple a program may give
            assert await proto.next("data") == (b"six", (b6, 7, 0, 0))
            transport.close()

        pair.run(main())


async def open_echo6(pair: Pair) -> None:
    await datagram.open_endpoint(
        pair.loop, pair.b_driver, Echo, ("::", 7), None, allow_broadcast=False, reuse_port=False
    )


def test_a_send_error_for_a_remembered_peer_still_reaches_error_received(pair: Pair) -> None:
    """The checks the stack skips for a remembered destination include none that can fail: the
    size still can, and goes to error_received."""

    async def main() -> None:
        await peer(pair, Echo, 7)
        transport, proto = await pair.loop.create_datagram_endpoint(Recorder, local_addr=("0.0.0.0", 0))
        transport.sendto(b"first", (B_IP, 7))
        assert await proto.next("data") == (b"first", (B_IP, 7))
        transport.sendto(bytes(65_508), (B_IP, 7))
        exc = await proto.next("error")
        assert isinstance(exc, OSError) and exc.errno == errno.EMSGSIZE
        transport.close()

    pair.run(main())
