"""Fragments and path MTU against the Linux kernel over a real TAP.

The kernel fragments what it sends to usernet (UDP larger than the MTU) and reassembles
what usernet fragments back; a kernel router in front of a narrower hop answers usernet's
too-big TCP segments with ICMP "fragmentation needed", and usernet's MSS follows.
"""

from __future__ import annotations

import random
import re
import socket
import threading

import pytest

from tests.interop.conftest import KERNEL_IP, PEER_IP, USERNET_IP, Running, routed_peer, usernet_on_tap
from tests.interop.streams import (
    CHUNK,
    KERNEL_PORT,
    MB,
    TIMEOUT,
    Pattern,
    StreamCheck,
    counters,
    kernel_socket,
    report,
    usernet_connect,
)
from tests.programs import require
from usernet.link.sandbox import Sandbox

pytestmark = pytest.mark.network


def _nstat(sandbox: Sandbox, *names: str) -> dict[str, int]:
    out = sandbox.run([require("nstat"), "-az", *names], capture_output=True, text=True, check=True).stdout
    return {name: int(m.group(1)) for name in names if (m := re.search(rf"{name}\s+(\d+)", out))}


@pytest.mark.parametrize("offloads", [False, True], ids=["plain", "vnet_hdr"])
def test_kernel_udp_larger_than_the_mtu_is_echoed_whole(sandbox: Sandbox, offloads: bool):
    """4,000- and 60,000-byte datagrams (and the largest, 65,507): the kernel fragments them
    going in, usernet reassembles, echoes, fragments coming back, the kernel reassembles."""
    with usernet_on_tap(sandbox, offloads=offloads) as running:
        _echo_large_datagrams(running)


def _echo_large_datagrams(running: Running) -> None:
    names = ("IpFragCreates", "IpReasmOKs")
    before = _nstat(running.sandbox, *names)
    sizes = [4000, 60_000, 65_507, 1473, 4000, 60_000]
    with running.sandbox.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5.0)
        rng = random.Random(13)
        for size in sizes:
            message = rng.randbytes(size)
            sock.sendto(message, (USERNET_IP, 7))
            reply, peer = sock.recvfrom(65_536)
            assert peer == (USERNET_IP, 7) and reply == message, f"the {size}-byte datagram"
    after = _nstat(running.sandbox, *names)
    stats = counters(running)
    assert stats["ipv4_reasm_datagrams"] == len(sizes)
    assert stats["ipv4_reasm_overlaps"] == stats["ipv4_reasm_timeouts"] == stats["ipv4_reasm_malformed"] == 0
    assert after["IpReasmOKs"] - before["IpReasmOKs"] == len(sizes)  # usernet's fragments, put together
    assert after["IpFragCreates"] > before["IpFragCreates"]
    assert running.loop.call(lambda now: running.host.iface.reassembly.reassembler.memory) == 0


def test_kernel_large_ping_is_answered(running: Running):
    result = running.sandbox.run(
        [require("ping"), "-c", "3", "-i", "0.2", "-W", "2", "-s", "8000", USERNET_IP], capture_output=True, text=True
    )
    assert result.returncode == 0 and "3 received" in result.stdout, result.stdout + result.stderr
    assert counters(running)["ipv4_reasm_datagrams"] == 3


@pytest.mark.parametrize("offloads", [False, True], ids=["gso", "tso"])
def test_tcp_through_a_narrower_hop_finds_the_path_mtu(sandbox: Sandbox, offloads: bool):
    """The kernel routes between the TAP (MTU 1500) and a veth of MTU 1280 toward a peer that
    advertises MSS 1460: only the kernel's ICMP "fragmentation needed" can tell usernet."""
    size = 8 * MB
    with (
        routed_peer(sandbox, mtu=1280, advmss=1460) as peer,
        usernet_on_tap(sandbox, gateway=KERNEL_IP, offloads=offloads) as running,
    ):
        with kernel_socket(peer) as listener:
            listener.bind((PEER_IP, KERNEL_PORT))
            listener.listen(1)
            pattern = Pattern(21)
            check = StreamCheck(pattern)

            def sink() -> None:
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(TIMEOUT)
                    buf = bytearray(CHUNK)
                    while n := conn.recv_into(buf):
                        check.feed(memoryview(buf)[:n])

            server = threading.Thread(target=sink, daemon=True)
            server.start()
            client = usernet_connect(running.loop, KERNEL_PORT, pattern, size, None, PEER_IP)
            assert client.done.wait(TIMEOUT), running.loop.call(lambda now: client.conn.info())
            server.join(10)
        check.assert_complete(size)
        info = running.loop.call(lambda now: client.conn.info())
        path_mtu = running.loop.call(lambda now: running.host.iface.path_mtu.mtu(socket.inet_aton(PEER_IP)))
        stats = counters(running)
    assert path_mtu == 1280
    assert info["mss"] == 1280 - 40 - 12  # down from 1448: the peer's 1460 less timestamps
    assert stats["ipv4_pmtu_lowered"] == 1 and stats["icmp_errors_received"] >= 1
    report("path MTU 1280 behind the kernel router", f"{size / MB:.0f} MB, mss {info['mss']}, usernet {stats}")
