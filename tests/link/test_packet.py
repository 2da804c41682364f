"""The kernel-interop tests over an AF_PACKET link on a veth pair instead of a TAP.

The `running` fixture below replaces the TAP one of tests/interop: the kernel is on one
end of a veth pair in the test's namespace (named usernet0, as the TAP is, so the tests
that name the device run unchanged), usernet on the other through `PacketLink`. The test
functions are the interop suite's own, imported so that they run here too.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.interop.conftest import KERNEL_IP, USERNET_IP, Running, usernet_serving
from tests.interop.test_kernel_l3 import (
    test_arping_gets_answers,
    test_closed_port_is_refused,
    test_kernel_pings_usernet,
    test_malformed_frames_are_dropped_and_counted,
    test_udp_echo_of_every_size,
)
from tests.interop.test_kernel_tcp import (
    kernel_listener,
    test_1000_short_connections_kernel_to_usernet,
    test_kernel_client_100mb_through_usernet_echo,
    test_kernel_half_close_usernet_still_sends,
    test_usernet_client_100mb_through_kernel_echo,
)
from usernet.drivers.config import UsernetConfig, open_host
from usernet.link.packet import prepare_veth, veth_link
from usernet.link.sandbox import Sandbox
from usernet.link.url import PacketUrl, parse_link_url
from usernet.wire import emit_ethernet, emit_ipv4_header, emit_udp

pytestmark = pytest.mark.network

__all__ = [  # collected here, against the fixture below
    "kernel_listener",
    "test_1000_short_connections_kernel_to_usernet",
    "test_arping_gets_answers",
    "test_closed_port_is_refused",
    "test_kernel_client_100mb_through_usernet_echo",
    "test_kernel_half_close_usernet_still_sends",
    "test_kernel_pings_usernet",
    "test_malformed_frames_are_dropped_and_counted",
    "test_udp_echo_of_every_size",
    "test_usernet_client_100mb_through_kernel_echo",
]


@contextlib.contextmanager
def usernet_on_veth(sandbox: Sandbox) -> Iterator[Running]:
    link = veth_link(sandbox, host_address=f"{KERNEL_IP}/24")
    try:
        with usernet_serving(sandbox, link) as running:
            yield running
    finally:
        link.close()


@pytest.fixture
def running(sandbox: Sandbox) -> Iterator[Running]:
    with usernet_on_veth(sandbox) as r:
        yield r


def test_sends_go_out_in_batches_of_tx_batch_frames(sandbox: Sandbox) -> None:
    """100 frames with tx_batch=64: one system call at the 64th, one at the next poll; all arrive."""
    link = veth_link(sandbox, tx_batch=64)
    try:
        kernel_mac = bytes.fromhex(
            sandbox.run(["cat", "/sys/class/net/usernet0/address"], capture_output=True, text=True, check=True)
            .stdout.strip()
            .replace(":", "")
        )
        # Datagrams to a kernel socket: nothing is answered, so no ARP is needed either way.
        receiver = sandbox.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind((KERNEL_IP, 9999))
        receiver.settimeout(2.0)
        src, dst = socket.inet_aton(USERNET_IP), socket.inet_aton(KERNEL_IP)
        for i in range(100):
            frame = bytearray(14 + 20 + 8 + 4)
            emit_ethernet(frame, 0, kernel_mac, link.mac, 0x0800)
            emit_udp(frame, 34, src, dst, 5000, 9999, i.to_bytes(4, "big"))
            emit_ipv4_header(frame, 14, src, dst, 17, 12)
            link.send(frame)
        assert link.tx_kicks == 1 and link.next_deadline() == 0.0
        link.poll(time.monotonic())
        assert link.tx_kicks == 2 and link.next_deadline() is None
        got = sorted(int.from_bytes(receiver.recv(100), "big") for _ in range(100))
        assert got == list(range(100))
        assert link.tx_frames == 100 and link.dropped_tx == 0
    finally:
        link.close()


def test_frames_from_the_ring_stay_valid_until_the_next_receive(sandbox: Sandbox) -> None:
    link = veth_link(sandbox)
    try:
        sandbox.popen(["ping", "-c", "3", "-i", "0.1", USERNET_IP])
        frames: list[memoryview | bytes] = []
        deadline = time.monotonic() + 5
        while not frames and time.monotonic() < deadline:
            frames = link.receive()
            time.sleep(0.01)
        assert frames, "the kernel's ARP request never arrived"
        first = bytes(frames[0])
        assert first[12:14] == b"\x08\x06" and first[:6] == b"\xff" * 6  # the kernel's who-has 192.0.2.2
    finally:
        link.close()
    assert link.closed


def test_frames_the_kernel_could_not_queue_are_counted(sandbox: Sandbox) -> None:
    """Two one-page blocks, nobody reading while 300 datagrams arrive: the rest are counted in dropped_rx."""
    link = veth_link(sandbox, rx_block_size=4096, rx_blocks=2)
    try:
        mac = link.mac.hex(":")
        sandbox.run(["ip", "neigh", "add", USERNET_IP, "lladdr", mac, "dev", "usernet0"], check=True)
        sender = sandbox.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(300):
            sender.sendto(b"x" * 200, (USERNET_IP, 9))
        time.sleep(0.05)  # every datagram has landed in the ring or been dropped

        def drain() -> None:
            for _ in range(20):
                link.receive()
                time.sleep(0.005)

        drain()
        assert 0 < link.rx_frames < 300 and link.dropped_rx == 0  # drops are not known yet
        # The first block the kernel fills after drops says so; the link then reads the count.
        sender.sendto(b"x" * 200, (USERNET_IP, 9))
        drain()
        assert link.dropped_rx > 0 and link.rx_frames + link.dropped_rx == 301
    finally:
        link.close()


def test_a_packet_url_names_an_existing_interface() -> None:
    assert parse_link_url("packet:usernet0p") == PacketUrl("usernet0p")
    assert str(PacketUrl("eth1")) == "packet:eth1"
    with pytest.raises(ValueError, match="an interface name is 1 to 15"):
        parse_link_url("packet:")
    with pytest.raises(ValueError, match="sandbox is about a TAP or TUN device"):
        UsernetConfig(link="packet:eth1", sandbox=True)


def test_usernet_up_runs_on_a_packet_link(sandbox: Sandbox) -> None:
    """`usernet up --link packet:IFNAME` inside the namespace; the kernel on the veth's other end pings it."""
    prepare_veth(sandbox, host_address=f"{KERNEL_IP}/24")
    up = sandbox.popen(
        [sys.executable, "-m", "usernet.cli", "up", "--link", "packet:usernet0p", "--duration", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert up.stdout is not None
        first = up.stdout.readline()
        mac = sandbox.run(["cat", "/sys/class/net/usernet0p/address"], capture_output=True, text=True).stdout.strip()
        assert first.startswith("usernet up: 192.0.2.2 on") and f"MAC {mac};" in first, first
        ping = sandbox.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", USERNET_IP], capture_output=True, text=True)
        assert "3 received" in ping.stdout, ping.stdout + ping.stderr
    finally:
        up.terminate()
        up.wait(10)


def test_a_packet_link_of_another_mtu_asks_for_it(sandbox: Sandbox) -> None:
    prepare_veth(sandbox, mtu=9000)

    def open_it() -> None:
        with open_host(UsernetConfig(link="packet:usernet0p")):
            pass

    with pytest.raises(ValueError, match="usernet0p has MTU 9000: give --mtu 9000"):
        sandbox.in_namespace(open_it)
