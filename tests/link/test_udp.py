"""The UDP link on loopback: frames cross one per datagram, and what goes wrong is counted, not raised."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import pytest

from usernet.link.base import ETHERNET_OVERHEAD, NO_OFFLOADS, Link
from usernet.link.udp import UdpLink


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out on 127.0.0.1 (closed again, so the links can bind them)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def linked_pair(**options: object) -> tuple[UdpLink, UdpLink]:
    a_port, b_port = free_ports(2)
    a = UdpLink(("127.0.0.1", a_port), ("127.0.0.1", b_port), **options)  # type: ignore[arg-type]
    b = UdpLink(("127.0.0.1", b_port), ("127.0.0.1", a_port), **options)  # type: ignore[arg-type]
    return a, b


@pytest.fixture(params=[True, False], ids=["gro", "plain"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[UdpLink, UdpLink]]:
    a, b = linked_pair(gro=request.param)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def receive_all(link: UdpLink, count: int) -> list[bytes]:
    """`count` frames, waiting on the fd between reads (loopback delivery is quick, not instant)."""
    frames: list[bytes] = []
    for _ in range(100):
        if len(frames) >= count:
            break
        select.select([link.fileno()], [], [], 5)
        frames.extend(bytes(f) for f in link.receive())
    return frames


def ethernet(payload: bytes) -> bytes:
    return bytes.fromhex("02000000000202000000000188b5") + payload  # local experimental ethertype


def test_is_a_link(pair: tuple[UdpLink, UdpLink]) -> None:
    a, _ = pair
    assert isinstance(a, Link)
    assert a.mtu == 1500 and len(a.mac) == 6 and a.fileno() >= 0
    assert a.receive() == []


def test_frames_cross_one_per_datagram_in_both_directions(pair: tuple[UdpLink, UdpLink]) -> None:
    a, b = pair
    sent = [ethernet(bytes([i]) * min(46 + i * 10, 1500)) for i in range(160)]  # up to the full MTU
    assert max(map(len, sent)) == 1500 + 14
    for frame in sent:
        a.send(frame)
    assert receive_all(b, len(sent)) == sent
    assert (a.tx_frames, a.tx_bytes) == (len(sent), sum(map(len, sent)))
    assert (b.rx_frames, b.rx_bytes) == (len(sent), sum(map(len, sent)))
    b.send(sent[3])
    assert receive_all(a, 1) == [sent[3]]


def test_a_datagram_longer_than_a_frame_is_dropped_and_counted() -> None:
    a, b = linked_pair(mtu=576, gro=False)
    try:
        too_long = ethernet(bytes(576 + ETHERNET_OVERHEAD))  # 14 bytes more than any frame
        a.send(too_long)
        a.send(ethernet(b"fits" * 20))
        assert receive_all(b, 1) == [ethernet(b"fits" * 20)]
        assert b.dropped_rx == 1 and b.rx_frames == 1
    finally:
        a.close()
        b.close()


def test_datagrams_the_kernel_had_no_room_for_are_counted() -> None:
    a, b = linked_pair(gro=False)
    try:
        assert b.kernel_dropped_rx == 0
        frame = ethernet(bytes(1500))
        for _ in range(6000):  # about 14 MB of socket memory: more than any receive buffer takes
            a.send(frame)
        received = 0
        while frames := b.receive():
            received += len(frames)
        dropped = b.kernel_dropped_rx
        assert dropped is not None and dropped > 0
        assert received + dropped == a.tx_frames == 6000
    finally:
        a.close()
        b.close()


def test_a_missing_peer_is_a_cable_with_nothing_at_the_end() -> None:
    a_port, absent = free_ports(2)
    link = UdpLink(("127.0.0.1", a_port), ("127.0.0.1", absent))
    try:
        for _ in range(4):
            link.send(ethernet(b"anyone there?" * 4))  # the ICMP port unreachable is not reported
            assert link.receive() == []
        assert (link.tx_frames, link.dropped_tx) == (4, 0)
        # ... so the fd never turns to an error state a loop would give up on (libuv does)
        assert select.select([], [], [link.fileno()], 0) == ([], [], [])
    finally:
        link.close()


def test_the_socket_filter_keeps_the_peers_address_and_port_only(pair: tuple[UdpLink, UdpLink]) -> None:
    a, b = pair
    peer_port = a.local_address[1]
    for address, port in (("127.0.0.1", 0), ("127.0.0.2", peer_port)):  # the right port from another address too
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind((address, port))
            stranger.sendto(ethernet(b"not from the peer" * 4), b.local_address)
    a.send(ethernet(b"from the peer" * 5))
    assert receive_all(b, 1) == [ethernet(b"from the peer" * 5)]
    assert b.receive() == [] and b.kernel_dropped_rx == 2  # the kernel counts what the filter drops


def test_options_and_errors() -> None:
    assert linked_pair()[0].capabilities == NO_OFFLOADS
    with pytest.raises(ValueError, match=r"MTU is 576\.\.65489"):
        UdpLink(("127.0.0.1", 1), ("127.0.0.1", 2), mtu=65490)
    with pytest.raises(ValueError, match="not of one address family"):
        UdpLink(("127.0.0.1", 0), ("::1", 2))
    with pytest.raises(ValueError, match="cannot resolve"):
        UdpLink(("no-such-host.invalid", 1), ("127.0.0.1", 2))
    a_port, b_port = free_ports(2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", a_port))
        with pytest.raises(OSError, match=f"cannot bind the UDP link to 127.0.0.1:{a_port}"):
            UdpLink(("127.0.0.1", a_port), ("127.0.0.1", b_port))


def test_ipv6_loopback_carries_frames_too() -> None:
    a_port, b_port = free_ports(2)
    a = UdpLink(("::1", a_port), ("::1", b_port))
    b = UdpLink(("::1", b_port), ("::1", a_port))
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as stranger:
            stranger.sendto(ethernet(b"not from the peer" * 4), ("::1", b_port))
        a.send(ethernet(b"over ::1" * 8))
        assert receive_all(b, 1) == [ethernet(b"over ::1" * 8)]
        assert b.receive() == [] and b.kernel_dropped_rx == 1
        assert b.peer_address == ("::1", a_port)
    finally:
        a.close()
        b.close()
