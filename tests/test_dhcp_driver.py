"""`--dhcp`'s driver side: acquiring on a bare link, keeping the lease as a Host agent on a virtual
clock (renewal answered; silence until expiry, or a NAK, gives the address up, and the next lease's
address is taken live), and the settings it refuses."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import time
from collections.abc import Callable

import pytest

from tests.link.test_udp import free_ports
from tests.stack.test_dhcp import MAC, OFFERED, SERVER, bound, reply
from usernet.drivers.config import UsernetConfig, add_arguments
from usernet.drivers.dhcp import DhcpAgent, DhcpTimeout, acquire, lease_mtu
from usernet.drivers.host import Host, offload_options
from usernet.link.clock import VirtualClock
from usernet.link.memory import MemoryWire
from usernet.link.tunnel import TunnelLink
from usernet.link.udp import UdpLink
from usernet.native import CSUM_FULL, build_udp
from usernet.stack import Interface, InterfaceConfig
from usernet.stack.dhcp import ANY, BROADCAST, DhcpClient, DhcpState
from usernet.stack.route import ipv4_template
from usernet.stack.tcp.core import CLOSED
from usernet.wire import (
    ARP_REPLY,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    IPPROTO_TCP,
    emit_arp,
    emit_ethernet,
    parse_ethernet,
    parse_ipv4,
    parse_tcp,
    parse_udp,
)
from usernet.wire.dhcp import (
    ACK,
    BOOTREQUEST,
    DISCOVER,
    NAK,
    OFFER,
    OPT_DNS,
    OPT_MTU,
    OPT_ROUTER,
    RELEASE,
    REQUEST,
    DhcpMessage,
    emit_dhcp,
    parse_dhcp,
)

SERVER_MAC = bytes.fromhex("020000000001")
MOVED = bytes([192, 0, 2, 60])  # the address of the next lease


def leased_host(client: DhcpClient) -> tuple[Host, DhcpAgent, VirtualClock, MemoryWire]:
    """A Host on one end of a wire, with the interface built from the client's lease and its agent
    (the lease's MTU too, as `--dhcp` builds it)."""
    clock = VirtualClock()
    wire = MemoryWire(clock)
    link = wire.a
    lease = client.lease
    assert lease is not None
    config = InterfaceConfig(
        mac=MAC, addresses=((lease.address, lease.prefix),), gateway=lease.router, mtu=lease_mtu(lease, link.mtu),
        **offload_options(link),
    )  # fmt: skip
    host = Host(link, Interface(config))
    agent = DhcpAgent(client, host, ANNOUNCED.append)
    host.agents.append(agent)
    return host, agent, clock, wire


ANNOUNCED: list[str] = []


def server_sends(wire: MemoryWire, answer: bytes, dst: bytes = OFFERED) -> None:
    """The server's answer on the wire: unicast to `dst`, or broadcast (to a client without an address)."""
    mac = b"\xff" * 6 if dst == BROADCAST else MAC
    frame = bytearray(14 + 20 + 8 + len(answer))
    build_udp(frame, mac + SERVER_MAC + b"\x08\x00", ipv4_template(SERVER, dst, 64), 1, 67, 68, answer, CSUM_FULL)
    wire.b.send(frame)


def run_until(host: Host, clock: VirtualClock, done: Callable[[], bool], limit: float = 1000.0) -> None:
    """Pump and flush at each of the Host's deadlines until `done()` or `limit` seconds."""
    while not done() and clock() < limit:
        deadline = host.deadline()
        assert deadline is not None
        clock.advance(max(0.0, deadline - clock()))
        host.pump(clock())
        host.flush(clock())


def sent_dhcp(wire: MemoryWire) -> list[tuple[bytes, bytes, bytes]]:
    """(IPv4 destination, DHCP message type, IPv4 source) of each DHCP message on the wire's far end."""
    out = []
    for frame in wire.b.receive():
        eth = parse_ethernet(frame)
        if eth.ethertype != ETHERTYPE_IPV4:
            continue  # ARP for the server, which the wire never answers
        ip = parse_ipv4(eth.payload)
        udp = parse_udp(ip.payload, ip.src, ip.dst)
        if udp.dport == 67:
            out.append((ip.dst, bytes((parse_dhcp(udp.payload).message_type or 0,)), ip.src))
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
    server_sends(wire, reply(DhcpMessage(BOOTREQUEST, client.xid, MAC), ACK, lease=120, t1=10, t2=100))
    clock.advance(0.5)
    host.pump(clock())
    assert agent.lease is not None and agent.lease.expires == 130.5, "the lease runs from the ACK"
    assert host.failed is None and client.next_deadline() == 20.5, "the next T1"


def test_silence_until_the_lease_ends_gives_the_address_up_and_a_new_lease_is_taken_live() -> None:
    client = bound(lease=120, t1=10, t2=100)
    host, agent, clock, wire = leased_host(client)
    assert host.dns_servers == ("192.0.2.53", "192.0.2.1")
    ANNOUNCED.clear()
    run_until(host, clock, lambda: agent.lease is None)
    assert clock() == 120 and host.failed is None
    assert host.iface.local_addresses == frozenset() and host.dns_servers == ()
    assert ANNOUNCED == [
        "DHCP: the lease of 192.0.2.50 ended (expired): the address is given up while a new lease is asked for"
    ]
    with pytest.raises(OSError, match="no route"):
        host.iface.tcp.connect((SERVER, 80), clock())
    messages = sent_dhcp(wire)
    broadcasts = [kind for dst, kind, _ in messages[:-1] if dst == BROADCAST]
    assert broadcasts and set(broadcasts) == {bytes((REQUEST,))}, "rebinding asked every server"
    assert messages[-1] == (BROADCAST, bytes((DISCOVER,)), ANY), "then a new DISCOVER, from 0.0.0.0"
    # A server offers another address; the REQUEST for it leaves from 0.0.0.0 too, and its ACK binds.
    discover = DhcpMessage(BOOTREQUEST, client.xid, MAC)
    server_sends(wire, reply(discover, OFFER, lease=120, yiaddr=MOVED), BROADCAST)
    host.pump(clock())
    host.flush(clock())
    assert sent_dhcp(wire) == [(BROADCAST, bytes((REQUEST,)), ANY)]
    server_sends(wire, reply(DhcpMessage(BOOTREQUEST, client.xid, MAC), ACK, lease=120, yiaddr=MOVED), BROADCAST)
    host.pump(clock())
    assert agent.lease is not None and agent.lease.address == MOVED
    assert host.iface.local_addresses == frozenset({MOVED}) and host.dns_servers == ("192.0.2.53", "192.0.2.1")
    assert (
        ANNOUNCED[-1]
        == "DHCP: 192.0.2.60/24 from 192.0.2.1, gateway 192.0.2.1, DNS 192.0.2.53, 192.0.2.1, MTU 1400, lease 120 s"
    )
    route = host.iface.route_to(bytes([198, 51, 100, 1]))
    assert route is not None and (route.source, route.next_hop) == (MOVED, SERVER), "through the lease's router"


def test_a_renewal_that_names_other_dns_servers_and_router_puts_them_on_the_interface() -> None:
    client = bound(lease=120, t1=10, t2=100)
    host, agent, clock, wire = leased_host(client)
    run_until(host, clock, lambda: client.state is DhcpState.RENEWING)
    request = DhcpMessage(BOOTREQUEST, client.xid, MAC)
    ack = parse_dhcp(reply(request, ACK, lease=120, t1=10, t2=100))
    router = bytes([192, 0, 2, 254])
    options = {**ack.options, OPT_DNS: bytes([192, 0, 2, 99]), OPT_ROUTER: router}
    server_sends(wire, emit_dhcp(dataclasses.replace(ack, options=options)))
    host.pump(clock())
    assert agent.lease is not None and agent.lease.address == OFFERED and client.state is DhcpState.BOUND
    assert host.dns_servers == ("192.0.2.99",), "the resolver asks the servers the renewed lease names"
    route = host.iface.route_to(bytes([198, 51, 100, 1]))
    assert route is not None and route.next_hop == router, "through the renewed lease's router"


def _renewed_with(host: Host, clock: VirtualClock, wire: MemoryWire, client: DhcpClient, mtu: int | None) -> None:
    """Run to the renewal and answer it with an ACK whose MTU option says `mtu` (None: no option)."""
    run_until(host, clock, lambda: client.state is DhcpState.RENEWING)
    ack = parse_dhcp(reply(DhcpMessage(BOOTREQUEST, client.xid, MAC), ACK, lease=120, t1=10, t2=100))
    options = {k: v for k, v in ack.options.items() if k != OPT_MTU}
    if mtu is not None:
        options[OPT_MTU] = mtu.to_bytes(2, "big")
    server_sends(wire, emit_dhcp(dataclasses.replace(ack, options=options)))
    host.pump(clock())
    assert client.state is DhcpState.BOUND


FAR = bytes([198, 51, 100, 1])


def _syn_mss(host: Host, clock: VirtualClock, wire: MemoryWire) -> int | None:
    """The MSS option of the SYN the host sends through the server (ARP answered for it)."""
    host.flush(clock())
    wire.b.receive()  # the ARP request the SYN waits on
    answer = bytearray(14 + 28)
    emit_ethernet(answer, 0, MAC, SERVER_MAC, ETHERTYPE_ARP)
    emit_arp(answer, 14, ARP_REPLY, SERVER_MAC, SERVER, MAC, OFFERED)
    wire.b.send(answer)
    host.pump(clock())
    host.flush(clock())
    for frame in wire.b.receive():
        eth = parse_ethernet(frame)
        if eth.ethertype == ETHERTYPE_IPV4:
            ip = parse_ipv4(eth.payload)
            if ip.protocol == IPPROTO_TCP:
                return parse_tcp(ip.payload, ip.src, ip.dst).mss
    return None


def test_a_renewal_with_another_mtu_sizes_the_routes_and_mss_of_new_connections() -> None:
    client = bound(lease=120, t1=10, t2=100)
    host, _agent, clock, wire = leased_host(client)
    assert host.iface.mtu == 1400, "the first lease's MTU"
    ANNOUNCED.clear()
    _renewed_with(host, clock, wire, client, 1300)
    route = host.iface.route_to(FAR)
    assert host.iface.mtu == 1300 and route is not None and (route.mtu, route.mss) == (1300, 1260)
    assert ANNOUNCED[-1].endswith("MTU 1300, lease 120 s")
    host.iface.tcp.connect((FAR, 80), clock())
    assert _syn_mss(host, clock, wire) == 1260, "a new connection offers the new lease's MSS"


def test_a_renewal_without_the_mtu_option_gives_the_link_mtu_back() -> None:
    client = bound(lease=120, t1=10, t2=100)
    host, _agent, clock, wire = leased_host(client)
    _renewed_with(host, clock, wire, client, None)
    route = host.iface.route_to(FAR)
    assert host.iface.mtu == host.link.mtu == 1500 and route is not None and route.mtu == 1500


@pytest.mark.parametrize("mtu", [400, 9000])
def test_an_mtu_option_below_576_or_above_the_link_leaves_the_link_mtu(mtu: int) -> None:
    client = bound(lease=120, t1=10, t2=100)
    host, _agent, clock, wire = leased_host(client)
    _renewed_with(host, clock, wire, client, mtu)
    assert host.iface.mtu == 1500


def test_a_lease_that_ends_gives_the_link_mtu_back() -> None:
    client = bound(lease=120, t1=10, t2=100)
    host, agent, clock, _wire = leased_host(client)
    run_until(host, clock, lambda: agent.lease is None)
    assert host.iface.mtu == 1500, "as systemd-networkd resets the MTU when the lease is lost"


def test_a_renewal_acked_with_another_address_moves_the_interface_there() -> None:
    client = bound(lease=120, t1=10, t2=100)
    host, agent, clock, wire = leased_host(client)
    run_until(host, clock, lambda: client.state is DhcpState.RENEWING)
    server_sends(wire, reply(DhcpMessage(BOOTREQUEST, client.xid, MAC), ACK, lease=120, yiaddr=MOVED))
    host.pump(clock())
    assert agent.lease is not None and agent.lease.address == MOVED and host.failed is None
    assert host.iface.local_addresses == frozenset({MOVED})
    agent.release(clock())
    host.flush(clock())
    answer = bytearray(14 + 28)  # the server's MAC at last: what waited for it in ARP leaves
    emit_ethernet(answer, 0, MAC, SERVER_MAC, ETHERTYPE_ARP)
    emit_arp(answer, 14, ARP_REPLY, SERVER_MAC, SERVER, MAC, MOVED)
    wire.b.send(answer)
    host.pump(clock())
    host.flush(clock())
    assert sent_dhcp(wire) == [(SERVER, bytes((RELEASE,)), MOVED)], "nothing from the address that went"


def test_a_nak_while_renewing_ends_the_connections_of_the_address_that_goes() -> None:
    client = bound(lease=120, t1=10, t2=100)
    host, agent, clock, wire = leased_host(client)
    iface = host.iface
    conn = iface.tcp.connect((SERVER, 8080), clock())
    listener = iface.tcp.listen((ANY, 80), 8)
    bound_udp = iface.open_udp((OFFERED, 5000))
    wildcard_udp = iface.open_udp((ANY, 5001))
    run_until(host, clock, lambda: client.state is DhcpState.RENEWING)
    server_sends(wire, reply(DhcpMessage(BOOTREQUEST, client.xid, MAC), NAK))
    host.pump(clock())
    assert agent.lease is None and iface.local_addresses == frozenset()
    assert conn.state == CLOSED and conn.error is not None and conn.error.errno == errno.ECONNABORTED
    with pytest.raises(OSError) as info:
        bound_udp.sendto(b"x", (SERVER, 9), clock())
    assert info.value.errno == errno.ENETUNREACH
    assert not listener.closed and not wildcard_udp.closed, "wildcard sockets go on"


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
