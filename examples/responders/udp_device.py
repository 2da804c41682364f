"""A device double: a thermostat at 192.0.2.70 speaking a small text protocol over UDP port 4210.

    usernet respond examples/responders/udp_device.py --sandbox
    ip netns exec usernet-respond-... socat - UDP:192.0.2.70:4210    # type: HELLO, GET temp, ...

Requests are one line each. `HELLO` opens a session ("ready"); then `GET temp` and
`GET id` answer readings, `SET target N` changes the set point (remembered per session)
and `BYE` ends the session. Anything before HELLO, or unknown, gets `ERR`. Each peer
(address and port) is its own conversation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from usernet.tools.query import Packet, Query
from usernet.tools.responder import Answer, Context, Responder, Rule, arp_reply, flow, udp_answer

ADDRESS = "192.0.2.70"
PORT = 4210
MAC = bytes.fromhex("02005e000246")


def starts(prefix: bytes) -> Callable[[Any], bool]:
    return lambda payload: payload.startswith(prefix)


def say(text: bytes) -> Answer:
    return lambda packet, ctx: udp_answer(packet, text)


def set_target(packet: Packet, ctx: Context) -> bytes:
    assert packet.udp is not None
    words = bytes(packet.udp.payload).split()
    if len(words) != 3 or not words[2].isdigit():
        return udp_answer(packet, b"ERR usage: SET target N\n")
    ctx.data["target"] = int(words[2])
    return udp_answer(packet, b"OK target " + words[2] + b"\n")


def get_target(packet: Packet, ctx: Context) -> bytes:
    return udp_answer(packet, b"target %d\n" % ctx.data.get("target", 20))


def arp(packet: Packet, ctx: Context) -> bytes:
    return arp_reply(packet, MAC)


udp: dict[str, Any] = {"ip_dst": ADDRESS, "udp_dport": PORT}
responder = Responder(
    [
        Rule("arp who-has", Query(arp_op=1, arp_tpa=ADDRESS), arp),
        Rule("hello", Query(udp_payload=starts(b"HELLO"), **udp), say(b"HELLO thermostat 1.0\n"), goto="ready"),
        Rule("temp", Query(udp_payload=starts(b"GET temp"), **udp), say(b"temp 21.5\n"), states="ready"),
        Rule("id", Query(udp_payload=starts(b"GET id"), **udp), say(b"id usernet-double-0001\n"), states="ready"),
        Rule("get target", Query(udp_payload=starts(b"GET target"), **udp), get_target, states="ready"),
        Rule("set target", Query(udp_payload=starts(b"SET target"), **udp), set_target, states="ready"),
        Rule("bye", Query(udp_payload=starts(b"BYE"), **udp), say(b"BYE\n"), states="ready", goto="start"),
        Rule("error", Query(**udp), say(b"ERR\n")),
    ],
    conversation=flow,
)
