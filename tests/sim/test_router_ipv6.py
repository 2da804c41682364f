"""The simulated router's IPv6 side frame by frame, with a hand-driven host on its "lan" port:
what it answers, forwards, refuses and advertises (RFC 4861, RFC 4443, RFC 4291)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator

import pytest

from usernet.link.clock import VirtualClock
from usernet.link.switch import Switch
from usernet.sim.loop import SimLoop
from usernet.sim.router import RouterPort, SimRouter
from usernet.wire import IPPROTO_UDP, emit_ethernet, parse_ethernet
from usernet.wire.ethernet import ETHERTYPE_IPV6
from usernet.wire.icmpv6 import (
    ICMPV6_DEST_UNREACH,
    ICMPV6_ECHO_REPLY,
    ICMPV6_ECHO_REQUEST,
    ICMPV6_TIME_EXCEEDED,
    UNREACH6_BEYOND_SCOPE,
    IcmpMessage,
    emit_icmpv6,
    parse_icmpv6,
)
from usernet.wire.ipv6 import (
    ALL_NODES,
    ALL_ROUTERS,
    IPPROTO_ICMPV6,
    IPv6Packet,
    emit_ipv6_header,
    multicast_mac,
    parse_ipv6,
)
from usernet.wire.ndp import (
    NA_OVERRIDE,
    NA_SOLICITED,
    ND_NEIGHBOR_SOLICIT,
    ND_ROUTER_ADVERT,
    ND_ROUTER_SOLICIT,
    emit_neighbor_advert,
    emit_router_solicit,
    parse_neighbor_solicit,
    parse_router_advert,
)


def _a(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


ME = _a("fd00::1")
ME_LL = _a("fe80::1")
LAN, DMZ, FAR = _a("fd00::fe"), _a("fd00:1::fe"), _a("fd00:1::1")
UDP = b"\x30\x39\x82\x9a\x00\x0d\x00\x00probe"  # ports 12345 -> 33434


def _icmp6(src: bytes, dst: bytes, kind: int, code: int, rest: int, body: bytes) -> bytes:
    buf = bytearray(8 + len(body))
    emit_icmpv6(buf, 0, src, dst, kind, code, rest, body)
    return bytes(buf)


def _virtual_loop() -> asyncio.AbstractEventLoop:
    """The simulation's loop with no hosts: waits take no real time."""
    return SimLoop(VirtualClock(), lambda name: ())


class _Bench6:
    """A router between two switches on a virtual-time loop, and one hand-driven host on "lan"
    (fd00::1, fe80::1) that writes raw frames and answers the router's neighbour solicitations."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        lan = Switch(loop.time, seed=1)
        dmz = Switch(loop.time, seed=2)
        self.router = SimRouter(
            "r",
            [
                RouterPort(lan.add_port("r"), None, ipaddress.IPv6Interface("fd00::fe/64")),
                RouterPort(dmz.add_port("r"), None, ipaddress.IPv6Interface("fd00:1::fe/64")),
            ],
        )
        self.host = lan.add_port("h")
        self.router_mac = lan.port("r").mac
        self.router.start(loop)
        self.solicited: list[bytes] = []  # the targets the router asked the host about

    def send(
        self, src: bytes, dst: bytes, next_header: int, payload: bytes, *, hops: int = 64, eth_dst: bytes | None = None
    ) -> None:
        frame = bytearray(54 + len(payload))
        emit_ethernet(frame, 0, eth_dst or self.router_mac, self.host.mac, ETHERTYPE_IPV6)
        emit_ipv6_header(frame, 14, src, dst, next_header, len(payload), hop_limit=hops)
        frame[54:] = payload
        self.host.send(frame)

    def received(self, seconds: float = 0.02) -> list[tuple[IPv6Packet, IcmpMessage | None]]:
        """What reached the host within `seconds`, parsed, the router's solicitations answered."""
        got = []
        end = self.loop.time() + seconds
        while self.loop.time() < end:
            self.loop.run_until_complete(asyncio.sleep(min(0.01, seconds)))
            for frame in self.host.receive(64):
                ip = parse_ipv6(parse_ethernet(frame).payload)
                msg = parse_icmpv6(ip.payload, ip.src, ip.dst) if ip.next_header == IPPROTO_ICMPV6 else None
                if msg is not None and msg.type == ND_NEIGHBOR_SOLICIT:
                    target = parse_neighbor_solicit(msg).target
                    self.solicited.append(target)
                    answer = bytearray(32)
                    n = emit_neighbor_advert(
                        answer, 0, target, ip.src, target, NA_SOLICITED | NA_OVERRIDE, self.host.mac
                    )
                    self.send(target, ip.src, IPPROTO_ICMPV6, bytes(answer[:n]), hops=255)
                else:
                    got.append((ip, msg))
        return got

    def icmp_received(self, seconds: float = 0.02) -> list[tuple[bytes, bytes, int, int]]:
        """(source, destination, type, code) of each ICMPv6 message that reached the host."""
        return [(ip.src, ip.dst, m.type, m.code) for ip, m in self.received(seconds) if m is not None]


@pytest.fixture
def bench() -> Iterator[_Bench6]:
    loop = _virtual_loop()
    try:
        bench = _Bench6(loop)
        bench.received()  # the start-up advertisement
        yield bench
        bench.router.stop()
    finally:
        loop.close()


def test_the_start_up_advertisement_names_the_router_and_the_prefix_on_link() -> None:
    loop = _virtual_loop()
    try:
        bench = _Bench6(loop)
        [(ip, msg)] = bench.received()
        assert msg is not None and msg.type == ND_ROUTER_ADVERT
        assert ip.src[:8] == _a("fe80::")[:8] and ip.dst == ALL_NODES and ip.hop_limit == 255
        ra = parse_router_advert(msg)
        assert ra.router_lifetime == 65535 and ra.options.source_mac == bench.router_mac
        [prefix] = ra.options.prefixes
        assert (prefix.prefix, prefix.prefix_length, prefix.on_link, prefix.autonomous) == (
            _a("fd00::"),
            64,
            True,
            False,
        )
        bench.router.stop()
    finally:
        loop.close()


def test_a_solicitation_is_answered_to_all_nodes_and_teaches_the_router_the_host(bench: _Bench6) -> None:
    rs = bytearray(16)
    n = emit_router_solicit(rs, 0, ME_LL, ALL_ROUTERS, bench.host.mac)
    bench.send(ME_LL, ALL_ROUTERS, IPPROTO_ICMPV6, bytes(rs[:n]), hops=255, eth_dst=multicast_mac(ALL_ROUTERS))
    # Within 3 s of the start-up advertisement: the answer waits for the gap to end, it is not lost.
    assert bench.icmp_received(1.0) == []
    answers = bench.icmp_received(2.6)
    assert [(dst, kind) for _, dst, kind, _ in answers] == [(ALL_NODES, ND_ROUTER_ADVERT)]
    # Its link-layer address was taken from the solicitation: a ping from fe80::1 needs no question.
    bench.send(ME_LL, LAN, IPPROTO_ICMPV6, _icmp6(ME_LL, LAN, ICMPV6_ECHO_REQUEST, 0, 1, b"x"))
    assert bench.icmp_received() == [(LAN, ME_LL, ICMPV6_ECHO_REPLY, 0)]
    assert ME_LL not in bench.solicited


@pytest.mark.parametrize(
    "src, code, option",
    [(ME_LL, 1, True), (bytes(16), 0, True)],
    ids=["code 1", "from :: with a link-layer option"],
)
def test_invalid_solicitations_are_dropped(bench: _Bench6, src: bytes, code: int, option: bool) -> None:
    body = bytes(4) + (bytes((1, 1)) + bench.host.mac if option else b"")
    bench.send(src, ALL_ROUTERS, IPPROTO_ICMPV6, _icmp6(src, ALL_ROUTERS, ND_ROUTER_SOLICIT, code, 0, body[4:]),
               hops=255, eth_dst=multicast_mac(ALL_ROUTERS))  # fmt: skip
    assert bench.icmp_received(3.6) == []
    assert bench.router.adverts_sent == 2 and bench.router.dropped == 1  # the two start-up ones only


def test_pings_to_its_addresses_and_to_all_nodes_but_not_to_strangers(bench: _Bench6) -> None:
    for dst in (LAN, DMZ):
        bench.send(ME, dst, IPPROTO_ICMPV6, _icmp6(ME, dst, ICMPV6_ECHO_REQUEST, 0, (0x1234 << 16) | 7, b"sixteen"))
        [(ip, reply)] = bench.received()
        assert reply is not None and (ip.src, ip.dst, reply.type, reply.rest, bytes(reply.payload)) == (
            dst, ME, ICMPV6_ECHO_REPLY, (0x1234 << 16) | 7, b"sixteen",
        )  # fmt: skip
    ping = _icmp6(ME, ALL_NODES, ICMPV6_ECHO_REQUEST, 0, 9, b"all")
    bench.send(ME, ALL_NODES, IPPROTO_ICMPV6, ping, eth_dst=multicast_mac(ALL_NODES))
    assert bench.icmp_received() == [(LAN, ME, ICMPV6_ECHO_REPLY, 0)]  # from its address on this link
    stranger = _a("fe80::99")
    bench.send(ME, stranger, IPPROTO_ICMPV6, _icmp6(ME, stranger, ICMPV6_ECHO_REQUEST, 0, 1, b"x"))
    assert bench.icmp_received() == []
    assert bench.router.echo_answered == 3


@pytest.mark.parametrize(
    "src, eth_group",
    [(_a("::1"), False), (_a("fe80:0:0:1::1"), False), (ME, True)],
    ids=["loopback source", "link-local source outside fe80::/64", "unicast packet in a multicast frame"],
)
def test_what_must_not_leave_its_link_is_not_forwarded(bench: _Bench6, src: bytes, eth_group: bool) -> None:
    bench.send(src, FAR, IPPROTO_UDP, UDP, eth_dst=multicast_mac(ALL_NODES) if eth_group else None)
    answered = bench.icmp_received()
    assert bench.router.forwarded == 0 and FAR not in bench.solicited
    if src[:2] == b"\xfe\x80":  # a link-local sender hears why (RFC 4443 §3.1 code 2), from fe80::
        assert [(dst, kind, code) for _, dst, kind, code in answered] == [
            (src, ICMPV6_DEST_UNREACH, UNREACH6_BEYOND_SCOPE)
        ]
        assert answered[0][0][:2] == b"\xfe\x80"
    else:
        assert answered == []


def test_an_icmpv6_error_behind_an_extension_header_gets_no_error_about_it(bench: _Bench6) -> None:
    error = _icmp6(ME, FAR, ICMPV6_DEST_UNREACH, 4, 0, bytes(48))
    options = bytes((IPPROTO_ICMPV6, 0, 1, 4, 0, 0, 0, 0))  # destination options: PadN
    bench.send(ME, FAR, 60, options + error, hops=1)
    assert bench.icmp_received() == []
    bench.send(ME, FAR, IPPROTO_UDP, UDP, hops=1)  # the same hop limit on a datagram: time exceeded
    assert bench.icmp_received() == [(LAN, ME, ICMPV6_TIME_EXCEEDED, 0)]
    assert bench.router.icmp_errors_sent == 1 and bench.router.icmp_rate_limited == 0
