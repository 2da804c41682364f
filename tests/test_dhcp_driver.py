"""`--dhcp`'s driver side: acquiring on a bare link, keeping the lease as a Host agent on a virtual
clock (renewal answered, silence until expiry stops the Host), and the settings it refuses."""

from __future__ import annotations

import argparse
import time

import pytest

from tests.link.test_udp import free_ports
from tests.stack.test_dhcp import MAC, OFFERED, SERVER, bound, reply
from usernet.drivers.config import UsernetConfig, add_arguments
from usernet.drivers.dhcp import DhcpAgent, DhcpTimeout, acquire
from usernet.drivers.host import Host, offload_options
from usernet.link.base import LinkFailed
from usernet.link.clock import VirtualClock
from usernet.link.memory import MemoryWire
from usernet.link.tunnel import TunnelLink
from usernet.link.udp import UdpLink
from usernet.native import CSUM_FULL, build_udp
from usernet.stack import Interface, InterfaceConfig
from usernet.stack.dhcp import DhcpClient
from usernet.stack.route import ipv4_template
from usernet.wire import ETHERTYPE_IPV4, parse_ethernet, parse_ipv4, parse_udp
from usernet.wire.dhcp import ACK, BOOTREQUEST, REQUEST, DhcpMessage, parse_dhcp

SERVER_MAC = bytes.fromhex("020000000001")


def leased_host(client: DhcpClient) -> tuple[Host, DhcpAgent, VirtualClock, MemoryWire]:
    """A Host on one end of a wire, with the interface built from the client's lease and its agent."""
    clock = VirtualClock()
    wire = MemoryWire(clock)
    link = wire.a
    lease = client.lease
    assert lease is not None
    config = InterfaceConfig(mac=MAC, addresses=((lease.address, lease.prefix),), **offload_options(link))
    host = Host(link, Interface(config))
    agent = DhcpAgent(client, host.iface)
    host.agents.append(agent)
    return host, agent, clock, wire


def sent_dhcp(wire: MemoryWire) -> list[tuple[bytes, bytes]]:
    """(IPv4 destination, DHCP message type) of each DHCP message on the wire's far end."""
    out = []
    for frame in wire.b.receive():
        eth = parse_ethernet(frame)
        if eth.ethertype != ETHERTYPE_IPV4:
            continue  # ARP for the server, which the wire never answers
        ip = parse_ipv4(eth.payload)
        udp = parse_udp(ip.payload, ip.src, ip.dst)
        if udp.dport == 67:
            out.append((ip.dst, bytes((parse_dhcp(udp.payload).message_type or 0,))))
    return out


def test_a_renewal_goes_to_the_server_and_its_ack_keeps_the_host_running() -> None:
    client = bound(lease=120, t1=10, t2=100)
    host, agent, clock, wire = leased_host(client)
    assert host.deadline() == 10, "T1 is the Host's deadline"
    clock.advance(10)
    host.pump(clock())
    host.flush(clock())
    host.pump(clock())  # the renewal waits in ARP for the server's MAC; the server answers all the same
    # The server's ACK, unicast to the leased address as a kernel-side dnsmasq sends it.
    answer = reply(DhcpMessage(BOOTREQUEST, client.xid, MAC), ACK, lease=120, t1=10, t2=100)
    frame = bytearray(14 + 20 + 8 + len(answer))
    build_udp(frame, MAC + SERVER_MAC + b"\x08\x00", ipv4_template(SERVER, OFFERED, 64), 1, 67, 68, answer, CSUM_FULL)
    wire.b.send(frame)
    clock.advance(0.5)
    host.pump(clock())
    assert agent.lease.expires == 130.5, "the lease runs from the ACK"
    assert host.failed is None and client.next_deadline() == 20.5, "the next T1"


def test_silence_until_the_lease_ends_stops_the_host_with_a_message() -> None:
    client = bound(lease=120, t1=10, t2=100)
    host, _, clock, wire = leased_host(client)
    with pytest.raises(LinkFailed, match=r"the DHCP lease of 192\.0\.2\.50 ended \(expired\).*restart"):
        for _ in range(1000):
            deadline = host.deadline()
            assert deadline is not None
            clock.advance(max(0.0, deadline - clock()))
            host.pump(clock())
            host.flush(clock())
    assert host.failed is not None and host.deadline() is None
    assert clock() == 120
    broadcasts = [kind for dst, kind in sent_dhcp(wire) if dst == b"\xff" * 4]
    assert broadcasts and set(broadcasts) == {bytes((REQUEST,))}, "rebinding asked every server"


def test_with_no_server_acquire_gives_up_and_says_what_to_do() -> None:
    mine, nobody = free_ports(2)
    link = UdpLink(("127.0.0.1", mine), ("127.0.0.1", nobody))
    try:
        with pytest.raises(DhcpTimeout, match=r"no DHCP server answered on the link within 0\.3 s.*--address"):
            acquire(link, DhcpClient(link.mac, seed=1), time.monotonic, 0.3)
    finally:
        link.close()


def test_dhcp_needs_ethernet_and_learns_the_gateway_itself() -> None:
    tunnel = TunnelLink()
    try:
        with pytest.raises(ValueError, match="DHCP needs a broadcast link with Ethernet"):
            acquire(tunnel, DhcpClient(MAC), lambda: 0.0, 1.0)
    finally:
        tunnel.close()
    with pytest.raises(ValueError, match="dhcp learns the gateway"):
        UsernetConfig(dhcp=True, gateway="192.0.2.1")
    parser = argparse.ArgumentParser()
    add_arguments(parser, environ={})
    config = UsernetConfig.from_args(parser.parse_args(["--dhcp"]))
    assert config.dhcp and UsernetConfig.from_env(config.to_env()) == config
