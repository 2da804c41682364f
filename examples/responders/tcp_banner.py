"""A fake TCP service: 192.0.2.60 port 2323 completes every handshake and sends a banner.

    usernet respond examples/responders/tcp_banner.py --sandbox
    ip netns exec usernet-respond-... nc 192.0.2.60 2323        # prints the banner

Each connection is a conversation with its own state: a SYN gets a SYN-ACK
("syn-received"), the ACK that completes the handshake gets the banner ("open"), data
is acknowledged and thrown away, a FIN is answered with FIN-ACK ("closed"), and a RST
ends it. Sequence numbers come from the peer's segments: each answer starts where the
peer's ack says this side is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from usernet.tools.query import Packet, Query
from usernet.tools.responder import Context, Responder, Rule, arp_reply, flow, tcp_answer
from usernet.wire import ACK, FIN, PSH, RST, SYN

ADDRESS = "192.0.2.60"
PORT = 2323
MAC = bytes.fromhex("02005e00023c")
BANNER = b"220 usernet responder: nothing to see here\r\n"
ISN = 0x5EED0000


def syn(flags: int) -> bool:
    return flags & (SYN | ACK | RST) == SYN


def has(bit: int, without: int = 0) -> Callable[[Any], bool]:
    return lambda flags: flags & bit and not flags & without


def syn_ack(packet: Packet, ctx: Context) -> bytes:
    return tcp_answer(packet, SYN, seq=ISN, mss=1460)


def banner(packet: Packet, ctx: Context) -> bytes:
    return tcp_answer(packet, PSH, BANNER)


def ack_data(packet: Packet, ctx: Context) -> bytes | None:
    assert packet.tcp is not None
    return tcp_answer(packet, 0) if packet.tcp.payload else None


def fin_ack(packet: Packet, ctx: Context) -> bytes:
    return tcp_answer(packet, FIN)


def arp(packet: Packet, ctx: Context) -> bytes:
    return arp_reply(packet, MAC)


tcp: dict[str, Any] = {"ip_dst": ADDRESS, "tcp_dport": PORT}
responder = Responder(
    [
        Rule("arp who-has", Query(arp_op=1, arp_tpa=ADDRESS), arp),
        Rule("syn", Query(tcp_flags=syn, **tcp), syn_ack, goto="syn-received"),
        Rule("reset", Query(tcp_flags=has(RST), **tcp), lambda p, c: None, goto="start"),
        Rule("handshake done", Query(tcp_flags=has(ACK, FIN), **tcp), banner, states="syn-received", goto="open"),
        Rule("fin", Query(tcp_flags=has(FIN), **tcp), fin_ack, states=("open", "syn-received"), goto="closed"),
        Rule("data", Query(tcp_flags=has(ACK), **tcp), ack_data, states="open"),
    ],
    conversation=flow,
)
