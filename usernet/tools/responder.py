"""A scriptable responder: rules that say which packets to react to and what to send back.

A `Rule` is a `Query` (see usernet.tools.query), the states it applies in, an answer
function and the state it leads to. A `Responder` compiles its rules' queries into one
`Matcher` (the state is a pseudo-field, so it is dispatched on like any fixed field),
finds the first rule a frame satisfies, calls its answer with the decoded packet and the
conversation's `Context`, moves the conversation to the rule's `goto` state, and hands
back the frames to send. A conversation is whatever `conversation(packet)` returns (for
TCP, the flow's addresses and ports); each has its own state and a scratch dict. Counters
count matches per rule and frames no rule took.

The answer helpers (`arp_reply`, `echo_reply`, `tcp_answer`, `udp_answer`) build the
usual answers from the matched packet: addresses and ports swapped, sequence numbers
echoed or acknowledged, a payload added.

`serve` runs a responder on any link (a TAP, a raw AF_PACKET link); a `Station` is a
responder on a link that a simulation steps on its virtual clock (beside usernet hosts on
a MemoryWire); `simulate` runs it over a capture's frames, offline.
"""

from __future__ import annotations

import runpy
import selectors
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from usernet.link.base import Link
from usernet.tools.query import Matcher, Packet, Query
from usernet.wire import (
    ACK,
    ARP_REPLY,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    FIN,
    ICMP_ECHO_REPLY,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    SYN,
    emit_arp,
    emit_ethernet,
    emit_icmp,
    emit_ipv4_header,
    emit_tcp,
    emit_udp,
    encode_tcp_options,
)

__all__ = [
    "Answer",
    "Context",
    "Responder",
    "Rule",
    "Station",
    "arp_reply",
    "echo_reply",
    "flow",
    "load_rules",
    "serve",
    "simulate",
    "tcp_answer",
    "udp_answer",
]

Answer = Callable[[Packet, "Context"], "bytes | Iterable[bytes] | None"]


@dataclass
class Context:
    """What an answer function knows beyond the packet: the time, the conversation's state and scratch."""

    now: float
    state: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rule:
    """When `query` matches in one of `states` (None: any), send what `answer` returns, then go to `goto`."""

    name: str
    query: Query
    answer: Answer
    states: str | Iterable[str] | None = None
    goto: str | None = None
    matched: int = 0


def flow(packet: Packet) -> Hashable:
    """A conversation per TCP or UDP flow as the peer sees it (its address and port), else one for all."""
    ip = packet.ip
    l4 = packet.tcp or packet.udp
    if ip is None or l4 is None:
        return None
    return (ip.src, l4.sport, ip.dst, l4.dport)


class Responder:
    """Rules compiled into one matcher, conversations with states, counters per rule."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        initial: str = "start",
        conversation: Callable[[Packet], Hashable] = lambda packet: None,
        max_conversations: int = 4096,
    ) -> None:
        names = [rule.name for rule in rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names must be unique (they name the counters): {names}")
        self.rules = tuple(rules)
        self.initial = initial
        self._conversation = conversation
        self._max = max_conversations
        self._states: OrderedDict[Hashable, Context] = OrderedDict()
        self._state = initial  # the state of the conversation being matched, read by _lookup
        queries = []
        for rule in rules:
            states = rule.states
            if states is None:
                queries.append(rule.query)
            else:
                allowed = frozenset((states,)) if isinstance(states, str) else frozenset(states)
                queries.append(rule.query.extended("state", "name", allowed))
        self.matcher = Matcher(queries, self._lookup)
        self.unmatched = 0
        self.evicted = 0

    def _lookup(self, packet: Packet, layer: str, name: str) -> Any:
        if layer == "state":
            return self._state
        return packet.field(layer, name)

    def handle(self, frame: bytes, now: float) -> list[bytes]:
        """The frames to send in answer to `frame` (none if no rule matches it)."""
        packet = Packet(frame)
        if packet.eth is None:
            self.unmatched += 1
            return []
        key = self._conversation(packet)
        ctx = self._states.get(key)
        self._state = self.initial if ctx is None else ctx.state
        index = self.matcher.first(packet)
        if index is None:
            self.unmatched += 1
            return []
        rule = self.rules[index]
        rule.matched += 1
        if ctx is None:
            ctx = Context(now, self.initial)
            self._states[key] = ctx
            if len(self._states) > self._max:
                self._states.popitem(last=False)
                self.evicted += 1
        else:
            self._states.move_to_end(key)
        ctx.now = now
        out = rule.answer(packet, ctx)
        if rule.goto is not None:
            ctx.state = rule.goto
        if out is None:
            return []
        return [out] if isinstance(out, (bytes, bytearray)) else list(out)

    def counters(self) -> dict[str, int]:
        """Matches per rule, and frames no rule took."""
        counts = {rule.name: rule.matched for rule in self.rules}
        counts["unmatched"] = self.unmatched
        return counts

    def state_of(self, packet: Packet) -> str:
        """The state of the conversation `packet` belongs to."""
        ctx = self._states.get(self._conversation(packet))
        return self.initial if ctx is None else ctx.state


# -- answers built from the matched packet ---------------------------------------------------


def _frame(dst_mac: bytes, src_mac: bytes, ethertype: int, body_length: int) -> bytearray:
    buf = bytearray(14 + body_length)
    emit_ethernet(buf, 0, dst_mac, src_mac, ethertype)
    return buf


def arp_reply(packet: Packet, mac: bytes) -> bytes:
    """The reply to an ARP request: the asked-for address is at `mac`."""
    arp = packet.arp
    assert arp is not None, "arp_reply answers ARP requests: query arp_op=1"
    buf = _frame(arp.sha, mac, ETHERTYPE_ARP, 28)
    emit_arp(buf, 14, ARP_REPLY, mac, arp.tpa, arp.sha, arp.spa)
    return bytes(buf)


def _ip_reply(packet: Packet, protocol: int, length: int, ttl: int) -> tuple[bytearray, bytes, bytes]:
    """A frame back to the packet's sender with its IPv4 header written; the L4 part goes at 34."""
    eth, ip = packet.eth, packet.ip
    assert eth is not None and ip is not None, "an IP answer needs an IP packet to answer"
    buf = _frame(eth.src, eth.dst, ETHERTYPE_IPV4, 20 + length)
    emit_ipv4_header(buf, 14, ip.dst, ip.src, protocol, length, ttl=ttl)
    return buf, ip.dst, ip.src


def echo_reply(packet: Packet, ttl: int = 64) -> bytes:
    """The echo reply to an echo request: same identifier, sequence and payload."""
    icmp = packet.icmp
    assert icmp is not None, "echo_reply answers echo requests: query icmp_type=8"
    buf, _, _ = _ip_reply(packet, IPPROTO_ICMP, 8 + len(icmp.payload), ttl)
    emit_icmp(buf, 34, ICMP_ECHO_REPLY, 0, icmp.rest, icmp.payload)
    return bytes(buf)


def udp_answer(packet: Packet, payload: bytes, ttl: int = 64) -> bytes:
    """A datagram back to the sender's address and port, from the address and port it was sent to."""
    udp = packet.udp
    assert udp is not None, "udp_answer answers UDP datagrams"
    buf, src, dst = _ip_reply(packet, IPPROTO_UDP, 8 + len(payload), ttl)
    emit_udp(buf, 34, src, dst, udp.dport, udp.sport, payload)
    return bytes(buf)


def tcp_answer(
    packet: Packet,
    flags: int,
    payload: bytes = b"",
    *,
    seq: int | None = None,
    ack: int | None = None,
    window: int = 65535,
    mss: int | None = None,
    ttl: int = 64,
) -> bytes:
    """A segment back on the packet's flow.

    `seq` defaults to what the peer acknowledged (its ack field), which is where this
    side is; `ack` to the end of the packet's sequence space (its seq plus payload, plus
    one for a SYN and for a FIN), which acknowledges everything it carried.
    """
    seg = packet.tcp
    assert seg is not None, "tcp_answer answers TCP segments"
    if seq is None:
        seq = seg.ack
    if ack is None:
        ack = (seg.seq + len(seg.payload) + (1 if seg.flags & SYN else 0) + (1 if seg.flags & FIN else 0)) & 0xFFFFFFFF
    options = encode_tcp_options(mss=mss) if mss is not None else b""
    buf, src, dst = _ip_reply(packet, IPPROTO_TCP, 20 + len(options) + len(payload), ttl)
    emit_tcp(buf, 34, src, dst, seg.dport, seg.sport, seq, ack, flags | ACK, window, options, payload)
    return bytes(buf)


# -- running a responder ---------------------------------------------------------------------


class Station:
    """A responder on a link, stepped by whoever drives time: a real loop (`serve`) or a simulation.

    `step(now)` answers every frame that has arrived; `deadline()` is when the link wants
    to be stepped again even if nothing arrives (a wire's frame in flight, a batch to send).
    """

    def __init__(self, responder: Responder, link: Link) -> None:
        self.responder = responder
        self.link = link

    def step(self, now: float) -> int:
        """Answer what is there now; the number of frames taken in."""
        link = self.link
        handle = self.responder.handle
        link.poll(now)
        taken = 0
        while frames := link.receive():
            taken += len(frames)
            for frame in frames:
                for answer in handle(bytes(frame), now):
                    link.send(answer)
        return taken

    def deadline(self) -> float | None:
        return self.link.next_deadline()


def serve(
    responder: Responder,
    link: Link,
    *,
    until: Callable[[float], bool],
    clock: Callable[[], float] = time.monotonic,
    wait: float = 0.05,
) -> None:
    """Answer what arrives on `link` until `until(now)` is true (checked at least every `wait` seconds)."""
    station = Station(responder, link)
    fd = link.fileno()
    with selectors.DefaultSelector() as sel:
        if fd is not None:
            sel.register(fd, selectors.EVENT_READ)
        while not until(clock()):
            station.step(clock())
            deadline = station.deadline()  # a link that batches sends asks to be polled soon
            timeout = wait if deadline is None else max(0.0, min(wait, deadline - clock()))
            if fd is not None:
                sel.select(timeout)
            else:
                time.sleep(timeout)


def simulate(responder: Responder, frames: Iterable[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
    """Run the responder over recorded frames, offline; the answers with the time of what they answer."""
    out: list[tuple[float, bytes]] = []
    for ts, frame in frames:
        out.extend((ts, answer) for answer in responder.handle(frame, ts))
    return out


def load_rules(path: str) -> Responder:
    """The `responder` a rules file (a Python file, e.g. examples/responders/arp_icmp.py) defines."""
    namespace = runpy.run_path(path)
    responder = namespace.get("responder")
    if not isinstance(responder, Responder):
        raise ValueError(f"{path} must define `responder = Responder([...])` (usernet.tools.responder)")
    return responder
