"""TunnelLink: IP packets the program carries itself, two usernet stacks joined by a pair of them.

The pair test runs the same script twice: in this process, and as an ordinary user
(nobody, or root without a capability, as the UDP link's test does), so it shows that
a tunnel needs no privilege and no device.
"""

from __future__ import annotations

import ipaddress
import select
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.aio.apps.tunnel_pair import run_pair
from tests.aio.test_udp_link import ROOT, as_ordinary_user
from tests.link.test_udp import free_ports
from usernet.drivers.host import Host, offload_options
from usernet.link.base import carries_ethernet
from usernet.link.tunnel import TunnelLink
from usernet.native import internet_checksum, pseudo_sum_v6, sum16
from usernet.stack import Interface, InterfaceConfig
from usernet.wire import IPPROTO_UDP
from usernet.wire.icmpv6 import (
    ICMPV6_DEST_UNREACH,
    ICMPV6_ECHO_REPLY,
    ICMPV6_ECHO_REQUEST,
    ICMPV6_PACKET_TOO_BIG,
    UNREACH6_PORT,
    emit_icmpv6,
)
from usernet.wire.ipv6 import IPPROTO_FRAGMENT, IPPROTO_ICMPV6, emit_ipv6_header
from usernet.wire.ndp import ND_NEIGHBOR_SOLICIT

SIZE = 4 * 1024 * 1024
APP = Path(__file__).resolve().parent / "apps" / "tunnel_pair.py"


def check_lines(lines: list[str]) -> None:
    tcp, udp = lines
    kind, sent, heard, echoed = tcp.split()
    assert kind == "tcp" and sent == heard == echoed, "the bytes each way are the bytes sent"
    assert udp == "udp echo:ping over the tunnel"


@pytest.mark.parametrize("family", [4, 6])
def test_tcp_and_udp_between_two_stacks_joined_by_tunnel_links(family: int) -> None:
    check_lines(run_pair(SIZE, family))


@pytest.mark.parametrize("family", [4, 6])
def test_the_same_as_an_ordinary_user(family: int) -> None:
    done = subprocess.run(
        [*as_ordinary_user(), sys.executable, str(APP), str(SIZE), str(family)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    check_lines(done.stdout.splitlines())


def test_a_tunnel_carries_bare_ip_and_its_interface_has_no_ethernet() -> None:
    link = TunnelLink(lambda packet: None)
    try:
        assert not carries_ethernet(link)
        options = offload_options(link)
        assert options["ethernet"] is False
        iface = Interface(InterfaceConfig.from_strings(link.mac, ["198.51.100.1/24"], **options))
        host = Host(link, iface)
        host.start(0.0)
        assert link.tx_frames == 0, "no gratuitous ARP on a link without Ethernet"
        with pytest.raises(ValueError, match="carries bare IP packets"):
            Host(link, Interface(InterfaceConfig.from_strings(link.mac, ["198.51.100.1/24"])))
    finally:
        link.close()


def test_packets_sent_are_bytes_the_program_may_keep_and_ping_is_answered() -> None:
    sent: list[bytes] = []
    link = TunnelLink(sent.append)
    iface = Interface(InterfaceConfig.from_strings(link.mac, ["198.51.100.1/24"], **offload_options(link)))
    host = Host(link, iface)
    try:
        # An echo request from 198.51.100.9, as a tunnel would hand it over: a bare IPv4 packet.
        icmp = bytearray(b"\x08\x00\x00\x00\x12\x34\x00\x01hello")
        icmp[2:4] = internet_checksum(icmp).to_bytes(2, "big")
        header = bytearray(b"\x45\x00" + (20 + len(icmp)).to_bytes(2, "big") + bytes(4) + b"\x40\x01\x00\x00")
        header += bytes([198, 51, 100, 9, 198, 51, 100, 1])
        header[10:12] = internet_checksum(header).to_bytes(2, "big")
        link.deliver(header + icmp)
        host.pump(0.0)
        host.flush(0.0)
        assert len(sent) == 1 and type(sent[0]) is bytes
        reply = sent[0]
        assert reply[0] == 0x45 and reply[12:16] == bytes([198, 51, 100, 1]) and reply[16:20] == header[12:16]
        assert reply[20] == 0 and reply[28:] == b"hello", "an echo reply, with no Ethernet header in front"
        assert iface.counters.icmp_echo_answered == 1
        link.deliver(b"\x60" + bytes(39))  # IPv6: not configured on this interface, counted
        host.pump(0.0)
        assert iface.counters.ip_unknown_version == 1
    finally:
        link.close()


US6, PEER6 = ipaddress.IPv6Address("2001:db8:51::1").packed, ipaddress.IPv6Address("2001:db8:51::9").packed


def ipv6_packet(src: bytes, dst: bytes, next_header: int, body: bytes, hop_limit: int = 64) -> bytes:
    """A bare IPv6 packet, as a tunnel hands it over."""
    packet = bytearray(40 + len(body))
    emit_ipv6_header(packet, 0, src, dst, next_header, len(body), hop_limit=hop_limit)
    packet[40:] = body
    return bytes(packet)


def icmpv6_packet(src: bytes, dst: bytes, kind: int, rest: int, payload: bytes, hop_limit: int = 64) -> bytes:
    message = bytearray(8 + len(payload))
    emit_icmpv6(message, 0, src, dst, kind, 0, rest, payload)
    return ipv6_packet(src, dst, IPPROTO_ICMPV6, bytes(message), hop_limit)


def test_ipv6_over_a_tunnel_without_neighbour_discovery() -> None:
    """An IPv6-only interface on a tunnel: addresses usable at once (no DAD, nothing sent at start),
    echo answered with bare packets, neighbour messages ignored, a closed port answered, and a
    packet too big lowering the path MTU so the next datagram leaves in fragments."""
    sent: list[bytes] = []
    link = TunnelLink(sent.append)
    iface = Interface(InterfaceConfig.from_strings(link.mac, ["2001:db8:51::1/64"], **offload_options(link)))
    host = Host(link, iface)
    ipv6 = iface.ipv6
    assert ipv6 is not None and not iface.config.addresses
    try:
        host.start(0.0)
        assert sent == [] and not ipv6.settling, "no DAD and no router solicitation on an IP-only link"
        states = {ipaddress.IPv6Address(a): state for a, _, state in ipv6.addresses()}
        assert set(states.values()) == {"PREFERRED"} and len(states) == 2
        assert any(a.is_link_local for a in states), "a link-local address is formed all the same"

        def exchange(packet: bytes) -> list[bytes]:
            link.deliver(packet)
            host.pump(0.0)
            host.flush(0.0)
            out = sent[:]
            sent.clear()
            return out

        (reply,) = exchange(icmpv6_packet(PEER6, US6, ICMPV6_ECHO_REQUEST, 0x12340001, b"hello"))
        assert reply[0] >> 4 == 6 and reply[8:24] == US6 and reply[24:40] == PEER6
        assert reply[40] == ICMPV6_ECHO_REPLY and reply[48:] == b"hello", "an echo reply, no Ethernet in front"
        solicit = icmpv6_packet(PEER6, US6, ND_NEIGHBOR_SOLICIT, 0, US6, hop_limit=255)  # for our address
        assert exchange(solicit) == [] and iface.counters.nd_ip_only_ignored == 1

        datagram = bytearray(b"\x0f\xa0\x00\x09\x00\x0c\x00\x00ping")  # 4000 -> 9, checksum to come
        datagram[6:8] = (0xFFFF - sum16(datagram, pseudo_sum_v6(PEER6, US6, IPPROTO_UDP, 12))).to_bytes(2, "big")
        (unreachable,) = exchange(ipv6_packet(PEER6, US6, IPPROTO_UDP, bytes(datagram)))
        assert (unreachable[40], unreachable[41]) == (ICMPV6_DEST_UNREACH, UNREACH6_PORT)

        sock = iface.open_udp((US6, 4000))
        sock.sendto(bytes(1400), (PEER6, 9), 0.0)
        host.flush(0.0)
        (big,) = sent
        sent.clear()
        assert len(big) == 40 + 8 + 1400
        assert exchange(icmpv6_packet(PEER6, US6, ICMPV6_PACKET_TOO_BIG, 1280, big[:1232])) == []
        assert iface.counters.ipv6_pmtu_lowered == 1
        sock.sendto(bytes(1400), (PEER6, 9), 0.0)
        host.flush(0.0)
        assert len(sent) == 2 and all(len(p) <= 1280 and p[6] == IPPROTO_FRAGMENT for p in sent)
    finally:
        link.close()


def test_an_interface_needs_an_address_of_some_family() -> None:
    assert InterfaceConfig.from_strings(bytes(6), [], ipv6=True, ethernet=False).wants_ipv6, "IPv6 alone will do"
    with pytest.raises(ValueError, match="needs an IPv4 address, or IPv6"):
        InterfaceConfig.from_strings(bytes(6), [], ethernet=False)


def test_deliver_from_another_thread_wakes_the_driver_and_bounds_its_queue() -> None:
    link = TunnelLink(lambda packet: None, mtu=1000, queue_limit=3)
    try:
        assert select.select([link.fileno()], [], [], 0)[0] == []
        thread = threading.Thread(target=lambda: [link.deliver(bytes([i]) * 100) for i in range(5)])
        thread.start()
        thread.join()
        assert select.select([link.fileno()], [], [], 5)[0] == [link.fileno()]
        assert link.next_deadline() == 0.0, "packets wait: the driver is asked to come at once"
        link.deliver(bytes(1001))
        assert link.dropped_rx == 3, "two beyond the queue limit and one beyond the MTU"
        assert [bytes(p) for p in link.receive(2)] == [bytes([0]) * 100, bytes([1]) * 100]
        assert link.receive() == [bytes([2]) * 100]
        assert (link.rx_frames, link.rx_bytes, link.next_deadline()) == (3, 300, None)
        assert select.select([link.fileno()], [], [], 0)[0] == [], "the wake-ups were drained"
    finally:
        link.close()
    with pytest.raises(ValueError, match="closed TunnelLink"):
        link.deliver(b"x")


def test_a_bad_mtu_or_queue_is_refused() -> None:
    with pytest.raises(ValueError, match="mtu must be between 576 and 65535"):
        TunnelLink(print, mtu=100)
    with pytest.raises(ValueError, match="queue_limit must be at least 1"):
        TunnelLink(print, queue_limit=0)


def test_the_example_tunnels_over_kernel_udp_between_two_rootless_processes() -> None:
    server_port, client_port = free_ports(2)
    example = [sys.executable, str(ROOT / "examples" / "tunnel_over_udp.py")]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    server = subprocess.Popen(
        [*as_ordinary_user(), *example, "server", str(server_port), str(client_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == "serving on 10.8.0.1:8000\n", server.stderr.read()  # type: ignore[union-attr]  # piped
        client = subprocess.run(
            [*as_ordinary_user(), *example, "client", str(client_port), str(server_port)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env=env,
        )
        assert client.returncode == 0, client.stderr
        assert client.stdout == "hello over the tunnel\n"
    finally:
        server.kill()
        server.communicate()
