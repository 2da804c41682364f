"""Answer ARP and ping for addresses nobody owns: 192.0.2.50 to 192.0.2.59 appear to be hosts.

    usernet respond examples/responders/arp_icmp.py --sandbox
    ip netns exec usernet-respond-... arping -c 2 192.0.2.53   # answered from 02:00:5e:00:02:35
    ip netns exec usernet-respond-... ping -c 2 192.0.2.57

Each address answers from its own MAC (02:00:5e:00:02:<last byte in hex>), as a
subnet of separate devices would.
"""

from __future__ import annotations

from usernet.tools.query import Packet, Query
from usernet.tools.responder import Context, Responder, Rule, arp_reply, echo_reply

ADDRESSES = [f"192.0.2.{n}" for n in range(50, 60)]


def mac_for(address: bytes) -> bytes:
    return bytes((0x02, 0x00, 0x5E, 0x00, 0x02, address[3]))


def answer_arp(packet: Packet, ctx: Context) -> bytes:
    assert packet.arp is not None
    return arp_reply(packet, mac_for(packet.arp.tpa))


def answer_ping(packet: Packet, ctx: Context) -> bytes:
    return echo_reply(packet)


responder = Responder(
    [
        Rule("arp who-has", Query(arp_op=1, arp_tpa=ADDRESSES), answer_arp),
        Rule("ping", Query(ip_dst=ADDRESSES, icmp_type=8, icmp_code=0), answer_ping),
    ]
)
