"""The DHCP client at work (`--dhcp`): a lease before the interface exists, renewals after.

Acquiring (`acquire`) happens on the bare link, before there is an interface: the
client's DISCOVER and REQUEST leave as broadcast Ethernet frames from 0.0.0.0, and the
answers are picked out of whatever the link receives, until the client is bound or the
time allowed is up. The interface is then built with the lease's address, prefix, router
(its gateway) and MTU.

Keeping the lease (`DhcpAgent`) happens through that interface, as one of the Host's
agents: a UDP socket on port 68 of the wildcard address carries the renewals (unicast to
the server at T1, broadcast at T2) and their answers, whatever address the interface has.

A lease that changes is taken live, as systemd-networkd and dhclient do: when the lease
ends without renewal or a server NAKs it, the address goes from the interface at once
(RFC 2131 section 4.4.5: the client must stop using it) and the client starts over,
its DISCOVER and REQUEST leaving as broadcast frames from 0.0.0.0 as at start; a new
lease (after that, or an ACK that hands a renewing client another address) puts its
address, router, MTU and DNS servers on the interface (`Interface.readdress_ipv4`, which
says what happens to the sockets of an address that goes: TCP connections end with
ECONNABORTED, listeners on 0.0.0.0 go on; `Interface.set_mtu`, which says what an MTU
change does to routes and connections). The MTU is the lease's MTU option (RFC 2132
section 5.1) when it is at least 576 and below the link's, else the link's: a lease
without the option, and a lease that ends, give the link's MTU back, as systemd-networkd
resets a link's MTU (dhcp_reset_mtu). The loop's routing rule (which destinations go
to usernet) stays the first lease's: a new lease on the same network, the usual case,
does not change it. On exit the lease is released.
"""

from __future__ import annotations

import ipaddress
import select
from collections.abc import Callable

from usernet.drivers.host import Host
from usernet.link.base import Link, carries_ethernet
from usernet.native import CSUM_FULL, build_udp
from usernet.stack.dhcp import ANY, BROADCAST, DhcpClient, DhcpEvent, Lease, Outgoing
from usernet.stack.route import format_ip, ipv4_template
from usernet.stack.udp import UdpSocket
from usernet.wire import ETHERTYPE_IPV4, IPPROTO_UDP, MalformedPacket, parse_ethernet, parse_ipv4, parse_udp
from usernet.wire.dhcp import CLIENT_PORT, SERVER_PORT

__all__ = ["DhcpAgent", "DhcpTimeout", "acquire", "describe_lease", "lease_gateway", "lease_mtu"]

_BROADCAST_MAC = b"\xff" * 6


class DhcpTimeout(OSError):
    """No DHCP server gave a lease in the time allowed."""


def _frame(link: Link, out: Outgoing) -> bytearray:
    """A client message as a broadcast Ethernet frame (the client has no address, so no ARP)."""
    header = _BROADCAST_MAC + link.mac + ETHERTYPE_IPV4.to_bytes(2, "big")
    ip = ipv4_template(out.source, BROADCAST, 64)
    frame = bytearray(len(header) + len(ip) + 8 + len(out.payload))
    build_udp(frame, header, ip, 0, CLIENT_PORT, SERVER_PORT, out.payload, CSUM_FULL)
    return frame


def _answer(frame: bytes | bytearray | memoryview) -> memoryview | None:
    """The UDP payload of a frame to port 68, or None for anything else on the link."""
    try:
        eth = parse_ethernet(frame)
        if eth.ethertype != ETHERTYPE_IPV4:
            return None
        ip = parse_ipv4(eth.payload, verify_checksum=True)
        if ip.protocol != IPPROTO_UDP or ip.is_fragment:
            return None
        udp = parse_udp(ip.payload, ip.src, ip.dst, verify_checksum=True)
    except MalformedPacket:
        return None
    return udp.payload if udp.dport == CLIENT_PORT else None


def acquire(link: Link, client: DhcpClient, clock: Callable[[], float], timeout: float) -> Lease:
    """Run `client` on the bare `link` until it holds a lease; DhcpTimeout after `timeout` seconds."""
    if not carries_ethernet(link):
        raise ValueError("DHCP needs a broadcast link with Ethernet; an IP-only link (a TUN) has no DHCP server")
    start = clock()
    client.start(start)
    fd = link.fileno()
    while client.lease is None:
        for out in client.take_output():
            link.send(_frame(link, out))
        now = clock()
        if now - start >= timeout:
            raise DhcpTimeout(
                f"no DHCP server answered on the link within {timeout:g} s ({client.counters.discovers} DISCOVERs, "
                f"{client.counters.offers} offers): is a server on it? Or give an address with --address"
            )
        due = [t for t in (client.next_deadline(), link.next_deadline(), start + timeout) if t is not None]
        wait = max(0.0, min(due) - now)
        if fd is not None:
            select.select([fd], [], [], wait)
        link.poll(clock())
        for frame in link.receive():
            payload = _answer(frame)
            if payload is not None:
                client.receive(payload, clock())
        client.poll(clock())
    client.take_events()  # "bound": the caller builds the interface from client.lease
    return client.lease


def lease_gateway(lease: Lease) -> bytes | None:
    """The lease's router as the gateway, when it is on the leased network (else none: it is out of reach)."""
    router = lease.router
    network = ipaddress.IPv4Interface((lease.address, lease.prefix)).network
    return router if router is not None and ipaddress.IPv4Address(router) in network else None


def lease_mtu(lease: Lease, link_mtu: int) -> int:
    """The MTU the interface runs with under `lease`: its MTU option when that is at least 576 (the
    least usernet runs with, and every IPv4 host's minimum datagram, RFC 791) and below `link_mtu`
    (a lease cannot make the link carry more), else the link's."""
    mtu = lease.mtu
    return min(mtu, link_mtu) if mtu is not None and mtu >= 576 else link_mtu


def describe_lease(lease: Lease, mtu: int) -> str:
    """What a lease gives, in the line announced when one is taken."""
    gateway = lease_gateway(lease)
    dns = ", ".join(format_ip(server) for server in lease.dns_servers) or "none"
    length = "no end" if lease.expires is None else f"{lease.lease_time} s"
    return (
        f"DHCP: {format_ip(lease.address)}/{lease.prefix} from {format_ip(lease.server)}, gateway "
        f"{'none' if gateway is None else format_ip(gateway)}, DNS {dns}, MTU {mtu}, lease {length}"
    )


def _moved(old: Lease | None, new: Lease) -> bool:
    """Whether a renewal (the same address for longer) changed what the interface and resolver
    took from the lease: the prefix, the gateway, the MTU or the DNS servers (a server may renumber them)."""
    if old is None:
        return True
    return (old.prefix, lease_gateway(old), old.mtu, old.dns_servers) != (
        new.prefix, lease_gateway(new), new.mtu, new.dns_servers,
    )  # fmt: skip


class DhcpAgent:
    """Keeps a lease through the interface built from it: renewals at T1 and T2, a new lease taken
    live (see the module), release on exit. `announce` hears of every lease taken or lost."""

    def __init__(self, client: DhcpClient, host: Host, announce: Callable[[str], None] = lambda line: None) -> None:
        lease = client.lease
        if lease is None:
            raise ValueError("the agent keeps a lease the client already holds: acquire() first")
        self.client = client
        self.lease: Lease | None = lease
        self._host = host
        self._announce = announce
        host.dns_servers = tuple(format_ip(server) for server in lease.dns_servers)
        # The wildcard: it hears the broadcast answers while there is no lease, and outlives an address.
        self._sock: UdpSocket = host.iface.open_udp((ANY, CLIENT_PORT))
        self._sock.broadcast = True  # rebinding asks every server

    def next_deadline(self) -> float | None:
        return self.client.next_deadline()

    def poll(self, now: float) -> None:
        """Hand the client what came to port 68, run its timers, send what it says, follow the lease."""
        client = self.client
        sock = self._sock
        while (datagram := sock.recvfrom()) is not None:
            client.receive(datagram[0], now)
        client.poll(now)
        self._send(now)
        for event in client.take_events():
            if event.kind == "renewed" and not _moved(self.lease, event.lease):
                self.lease = event.lease
            elif event.kind in ("renewed", "bound"):
                self._take(event.lease, now)
            else:
                self._lose(event, now)

    def release(self, now: float) -> None:
        """Give the lease back on exit (the caller flushes the interface's output)."""
        self.client.release(now)
        self._send(now)
        self._sock.close()

    def _take(self, lease: Lease, now: float) -> None:
        """A new lease (or a renewal that changed them): its address, gateway, MTU and DNS servers replace the old."""
        self.lease = lease
        host = self._host
        host.iface.set_mtu(lease_mtu(lease, host.link.mtu), now)  # first: the routes readdressing makes take it
        host.iface.readdress_ipv4(((lease.address, lease.prefix),), lease_gateway(lease), now)
        host.dns_servers = tuple(format_ip(server) for server in lease.dns_servers)
        self._announce(describe_lease(lease, host.iface.mtu))

    def _lose(self, event: DhcpEvent, now: float) -> None:
        """The lease expired or was refused (NAK): give its address up while the client asks again."""
        self.lease = None
        host = self._host
        host.iface.readdress_ipv4((), None, now)
        host.iface.set_mtu(host.link.mtu, now)  # no lease, no MTU option: the link's (IPv6 runs on)
        host.dns_servers = ()
        self._announce(
            f"DHCP: the lease of {format_ip(event.lease.address)} ended ({event.kind}): "
            "the address is given up while a new lease is asked for"
        )

    def _send(self, now: float) -> None:
        link = self._host.link
        for out in self.client.take_output():
            if out.source == ANY:  # no address of ours: from 0.0.0.0, as acquire() sends
                link.send(_frame(link, out))
            else:
                self._sock.sendto(out.payload, (out.destination, SERVER_PORT), now)
