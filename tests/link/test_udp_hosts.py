"""Two usernet hosts in one process, each on its own select loop, joined by two UDP links on loopback.

Host A serves what `usernet up` serves (UDP and TCP echo); host B pings it, sends UDP
datagrams to its echo and a megabyte through its TCP echo. Everything crosses kernel
UDP sockets, one frame per datagram, with ARP first: the path `--link udp://` takes.
"""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from tests.interop.conftest import LoopThread
from tests.link.test_udp import free_ports
from usernet.apps.services import ECHO_PORT, Services
from usernet.drivers.host import Host, offload_options
from usernet.link.udp import UdpLink
from usernet.stack import Interface, InterfaceConfig

T = TypeVar("T")
A_IP, B_IP = "192.0.2.2", "192.0.2.1"


def serve(link: UdpLink, address: str) -> LoopThread:
    config = InterfaceConfig.from_strings(link.mac, [f"{address}/24"], None, mtu=link.mtu, **offload_options(link))
    host = Host(link, Interface(config))
    loop = LoopThread(host, Services(host.iface))
    loop.start()
    return loop


@pytest.fixture(params=[True, False], ids=["gro", "plain"])
def loops(request: pytest.FixtureRequest) -> Iterator[tuple[LoopThread, LoopThread]]:
    a_port, b_port = free_ports(2)
    link_a = UdpLink(("127.0.0.1", a_port), ("127.0.0.1", b_port), gro=request.param)
    link_b = UdpLink(("127.0.0.1", b_port), ("127.0.0.1", a_port), gro=request.param)
    a, b = serve(link_a, A_IP), serve(link_b, B_IP)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()
        link_a.close()
        link_b.close()


def until(loop: LoopThread, step: Callable[[float], T | None], seconds: float = 30.0) -> T:
    """Run `step` on the loop's thread until it returns something other than None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = loop.call(step)
        if result is not None:
            return result
        time.sleep(0.002)
    raise AssertionError(f"nothing came within {seconds} s")


def test_ping_udp_and_tcp_cross_the_udp_links(loops: tuple[LoopThread, LoopThread]) -> None:
    a, b = loops
    iface = b.host.iface
    a_ip = socket.inet_aton(A_IP)

    pinger = b.call(lambda now: iface.open_ping())
    for seq in range(3):
        b.call(functools.partial(lambda seq, now: pinger.send(a_ip, seq, b"ping over udp", now), seq))
        assert until(b, lambda now: pinger.receive())[:3] == (a_ip, seq, b"ping over udp")

    udp = b.call(lambda now: iface.open_udp())
    sent = [bytes([i]) * (1 + i * 29) for i in range(50)]  # up to 1,422 bytes
    for datagram in sent:
        b.call(functools.partial(lambda d, now: udp.sendto(d, (a_ip, ECHO_PORT), now), datagram))
    echoed: list[bytes] = []
    while len(echoed) < len(sent):
        echoed.append(until(b, lambda now: udp.recvfrom())[0])
    assert sorted(echoed) == sorted(sent)  # a datagram link may reorder; loopback does not lose

    data = bytes(range(256)) * 4096  # 1 MB
    conn = b.call(lambda now: iface.tcp.connect((a_ip, ECHO_PORT), now))
    got = bytearray()
    offset = 0

    def step(now: float) -> bool | None:
        nonlocal offset
        if offset < len(data) and conn.send_space():
            offset += conn.send(data[offset : offset + 65536], now)
        got.extend(conn.receive())
        return True if len(got) >= len(data) else None

    until(b, step)
    assert bytes(got) == data
    links = (a.host.link, b.host.link)
    assert all(link.dropped_tx == 0 for link in links)
    assert b.host.link.tx_frames >= len(data) // 1460
