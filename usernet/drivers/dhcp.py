"""The DHCP client at work (`--dhcp`): a lease before the interface exists, renewals after.

Acquiring (`acquire`) happens on the bare link, before there is an interface: the
client's DISCOVER and REQUEST leave as broadcast Ethernet frames from 0.0.0.0, and the
answers are picked out of whatever the link receives, until the client is bound or the
time allowed is up. The interface is then built with the lease's address, prefix, router
(its gateway) and MTU.

Keeping the lease (`DhcpAgent`) happens through that interface, as one of the Host's
agents: a UDP socket on port 68 of the leased address carries the renewals (unicast to
the server at T1, broadcast at T2) and their answers. The interface's address is fixed
for its life, so when the lease ends without renewal (or a server NAKs it) the agent
raises LinkFailed: the program stops with a message saying so, rather than go on
using an address that is no longer its own. On exit the lease is released.
"""

from __future__ import annotations

import select
from collections.abc import Callable

from usernet.link.base import Link, LinkFailed, carries_ethernet
from usernet.native import CSUM_FULL, build_udp
from usernet.stack.dhcp import BROADCAST, DhcpClient, Lease, Outgoing
from usernet.stack.interface import Interface
from usernet.stack.route import format_ip, ipv4_template
from usernet.stack.udp import UdpSocket
from usernet.wire import ETHERTYPE_IPV4, IPPROTO_UDP, MalformedPacket, parse_ethernet, parse_ipv4, parse_udp
from usernet.wire.dhcp import CLIENT_PORT, SERVER_PORT

__all__ = ["DhcpAgent", "DhcpTimeout", "acquire"]

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


class DhcpAgent:
    """Keeps a lease through the interface built from it: renewals at T1 and T2, release on exit."""

    def __init__(self, client: DhcpClient, iface: Interface) -> None:
        lease = client.lease
        if lease is None:
            raise ValueError("the agent keeps a lease the client already holds: acquire() first")
        self.client = client
        self.lease = lease
        self._sock: UdpSocket = iface.open_udp((lease.address, CLIENT_PORT))
        self._sock.broadcast = True  # rebinding asks every server

    def next_deadline(self) -> float | None:
        return self.client.next_deadline()

    def poll(self, now: float) -> None:
        """Hand the client what came to port 68, run its timers, send what it says; raise once the lease is gone."""
        client = self.client
        sock = self._sock
        while (datagram := sock.recvfrom()) is not None:
            client.receive(datagram[0], now)
        client.poll(now)
        self._send(now)
        for event in client.take_events():
            if event.kind == "renewed":
                self.lease = event.lease
                continue
            address = format_ip(self.lease.address)
            raise LinkFailed(
                0,
                f"the DHCP lease of {address} ended ({event.kind}) and the interface cannot change its address: "
                "restart to get a new lease",
            )

    def release(self, now: float) -> None:
        """Give the lease back on exit (the caller flushes the interface's output)."""
        self.client.release(now)
        self._send(now)
        self._sock.close()

    def _send(self, now: float) -> None:
        for out in self.client.take_output():
            self._sock.sendto(out.payload, (out.destination, SERVER_PORT), now)
