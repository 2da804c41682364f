"""IPv6 in the sans-IO stack: DAD, the neighbour cache's states, SLAAC lifetimes, errors, on a virtual clock."""

from __future__ import annotations

import errno

import pytest

from tests.stack.simpair import Pair, make_pair
from usernet.stack import Interface, InterfaceConfig
from usernet.stack.slaac import StableIds
from usernet.wire.ethernet import ETHERTYPE_IPV6, emit_ethernet, parse_ethernet
from usernet.wire.icmpv6 import ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, ICMPV6_PARAM_PROBLEM, emit_icmpv6, parse_icmpv6
from usernet.wire.ipv6 import (
    ALL_NODES,
    IPPROTO_ICMPV6,
    UNSPECIFIED,
    emit_ipv6_header,
    multicast_mac,
    parse_ipv6,
    solicited_node,
)
from usernet.wire.ndp import (
    NA_OVERRIDE,
    ND_NEIGHBOR_SOLICIT,
    ND_REDIRECT,
    PrefixInfo,
    emit_neighbor_advert,
    emit_router_advert,
)

MAC = bytes.fromhex("020000000001")
ROUTER_MAC = bytes.fromhex("02000000aaaa")
ROUTER = bytes.fromhex("fe80000000000000000000000000aaaa")
PREFIX = bytes.fromhex("20010db8000000070000000000000000")
SECRET = b"k" * 16


def iface(*addresses: str, **options: object) -> Interface:
    config = InterfaceConfig.from_strings(
        MAC, ["192.0.2.2/24", *addresses], ipv6=True, ipv6_stable_secret=SECRET, **options
    )
    return Interface(config)


def settled(i: Interface, now: float = 0.0) -> Interface:
    """Started and past DAD of its link-local address (and of any static address)."""
    i.start(now)
    i.poll(now + 1.0)
    i.take_output()
    return i


def frame(src: bytes, dst: bytes, next_header: int, body: bytes, hop_limit: int = 64, dst_mac: bytes = MAC) -> bytes:
    out = bytearray(54 + len(body))
    emit_ethernet(out, 0, dst_mac, ROUTER_MAC, ETHERTYPE_IPV6)
    emit_ipv6_header(out, 14, src, dst, next_header, len(body), hop_limit=hop_limit)
    out[54:] = body
    return bytes(out)


def icmpv6(src: bytes, dst: bytes, kind: int, code: int, rest: int, body: bytes, **kw: object) -> bytes:
    message = bytearray(8 + len(body))
    emit_icmpv6(message, 0, src, dst, kind, code, rest, body)
    return frame(src, dst, IPPROTO_ICMPV6, bytes(message), **kw)  # type: ignore[arg-type]  # hop_limit, dst_mac


def router_advert(lifetime: int = 1800, valid: int = 86400, preferred: int = 14400, mtu: int | None = None) -> bytes:
    message = bytearray(120)
    prefix = PrefixInfo(PREFIX, 64, True, True, valid, preferred)
    n = emit_router_advert(message, 0, ROUTER, ALL_NODES, lifetime, ROUTER_MAC, (prefix,), mtu)
    return frame(ROUTER, ALL_NODES, IPPROTO_ICMPV6, bytes(message[:n]), hop_limit=255, dst_mac=multicast_mac(ALL_NODES))


def sent_icmpv6(i: Interface) -> list[tuple[bytes, bytes, bytes, int, int, int]]:
    """(dst MAC, src, dst, type, code, rest) of every ICMPv6 message the interface sent."""
    out = []
    for f in i.take_output():
        eth = parse_ethernet(f)
        if eth.ethertype != ETHERTYPE_IPV6:
            continue
        ip = parse_ipv6(eth.payload)
        msg = parse_icmpv6(ip.payload, ip.src, ip.dst)
        out.append((eth.dst, ip.src, ip.dst, msg.type, msg.code, msg.rest))
    return out


def addresses(i: Interface) -> dict[bytes, str]:
    assert i.ipv6 is not None
    return {a: state for a, _, state in i.ipv6.addresses()}


def link_local(i: Interface) -> bytes:
    (address,) = [a for a in addresses(i) if a[:2] == b"\xfe\x80"]
    return address


def test_dad_solicits_from_the_unspecified_address_then_the_address_is_usable():
    i = iface()
    i.start(0.0)
    (ns,) = [m for m in sent_icmpv6(i) if m[3] == ND_NEIGHBOR_SOLICIT]
    address = link_local(i)
    assert ns[:3] == (multicast_mac(solicited_node(address)), UNSPECIFIED, solicited_node(address))
    assert addresses(i)[address] == "TENTATIVE"
    assert i.route_to(ROUTER) is None  # no usable source yet
    i.poll(0.999)
    assert addresses(i)[address] == "TENTATIVE"
    i.poll(1.0)
    assert addresses(i)[address] == "PREFERRED" and i.route_to(ROUTER) is not None
    assert address == StableIds(SECRET, MAC).address(address[:8], 0)[0]


def test_a_duplicate_generated_address_is_retried_with_the_next_counter():
    i = iface()
    i.start(0.0)
    first = link_local(i)
    message = bytearray(32)
    n = emit_neighbor_advert(message, 0, first, ALL_NODES, first, NA_OVERRIDE, ROUTER_MAC)
    i.receive(frame(first, ALL_NODES, IPPROTO_ICMPV6, bytes(message[:n]), 255, multicast_mac(ALL_NODES)), 0.5)
    second = link_local(i)
    assert second != first and second == StableIds(SECRET, MAC).address(first[:8], 1)[0]
    assert i.stats()["dad_duplicates"] == 1 and i.next_deadline() == 0.5  # its DAD starts at once
    i.poll(0.5)
    i.poll(1.5)
    assert addresses(i) == {second: "PREFERRED"}


def test_a_solicitation_from_another_node_doing_dad_makes_the_static_address_go():
    i = iface("2001:db8::2/64")
    i.start(0.0)
    static = bytes.fromhex("20010db8000000000000000000000002")
    message = bytearray(32)
    emit_icmpv6(message, 0, UNSPECIFIED, solicited_node(static), ND_NEIGHBOR_SOLICIT, 0, 0, static)
    group = solicited_node(static)
    i.receive(frame(UNSPECIFIED, group, IPPROTO_ICMPV6, bytes(message[:24]), 255, multicast_mac(group)), 0.3)
    i.poll(2.0)
    assert static not in addresses(i) and i.stats()["dad_duplicates"] == 1


def _ping(pair: Pair, dst: bytes) -> None:
    assert pair.a.iface.ipv6 is not None
    sock = pair.a.iface.ipv6.open_ping()
    sock.send(dst, 1, b"x", pair.now())
    pair.a.flush(pair.now())
    pair.sim.run(0.1)
    assert sock.receive() is not None
    sock.close()


def test_neighbour_cache_goes_through_its_five_states():
    pair = make_pair(ipv6=True)
    pair.sim.run(1.5)
    a, b = pair.a.iface, pair.b.iface
    assert a.ipv6 is not None
    target = link_local(b)
    assert a.ipv6.neighbors.lookup(target) is None
    _ping(pair, target)
    states = a.ipv6.neighbors.entries()
    assert states[target] == (pair.b.link.mac, "REACHABLE")
    pair.sim.run(31.0)
    assert a.ipv6.neighbors.entries()[target][1] == "STALE"
    _ping(pair, target)  # a stale entry still sends, and starts the wait for confirmation
    assert a.ipv6.neighbors.entries()[target][1] == "DELAY"
    before = len(pair.a_link.sent)
    pair.sim.run(5.0)  # DELAY ends: a unicast probe to the cached MAC, answered
    probes = [f for _, f in pair.a_link.sent[before:] if f[:6] == pair.b.link.mac and f[54] == ND_NEIGHBOR_SOLICIT]
    assert len(probes) == 1
    assert a.ipv6.neighbors.entries()[target][1] == "REACHABLE"


def test_an_unanswered_resolution_gives_up_after_three_solicitations():
    i = settled(iface())
    assert i.ipv6 is not None
    nobody = bytes.fromhex("fe80000000000000000000000000dead")
    sock = i.ipv6.open_ping()
    sock.send(nobody, 1, b"x", 10.0)
    times = []
    now = 10.0
    while now < 20.0:
        if any(m[3] == ND_NEIGHBOR_SOLICIT and m[2] == solicited_node(nobody) for m in sent_icmpv6(i)):
            times.append(round(now - 10.0, 3))
        deadline = i.next_deadline()
        if deadline is None:
            break
        now = deadline
        i.poll(now)
    assert times == [0.0, 0.2, 1.2]
    assert i.stats()["nd_unresolved"] == 1 and i.ipv6.neighbors.lookup(nobody) is None


def test_router_advertisement_gives_prefix_address_router_and_mtu():
    i = settled(iface())
    assert i.ipv6 is not None
    i.receive(router_advert(mtu=1400), 5.0)
    (formed,) = [a for a in addresses(i) if a[:8] == PREFIX[:8]]
    assert addresses(i)[formed] == "TENTATIVE"
    i.poll(5.0)
    i.poll(6.0)
    assert addresses(i)[formed] == "PREFERRED" and i.ipv6.default_router == ROUTER
    far = bytes.fromhex("20010db8ffff00000000000000000001")
    route = i.route_to(far)
    assert route is not None and (route.source, route.next_hop, route.mtu) == (formed, ROUTER, 1400)
    on_link = i.route_to(PREFIX[:15] + b"\x09")
    assert on_link is not None and on_link.next_hop == PREFIX[:15] + b"\x09"
    # the preferred lifetime ends, then the router's, then the valid lifetime
    i.poll(5.0 + 14400)
    assert addresses(i)[formed] == "DEPRECATED"
    i.poll(5.0 + 14400 + 1)
    assert i.ipv6.default_router is None and i.route_to(far) is None
    i.poll(5.0 + 86400)
    assert formed not in addresses(i)


def test_a_short_valid_lifetime_only_cuts_what_is_left_to_two_hours():
    i = settled(iface())
    i.receive(router_advert(), 5.0)
    i.poll(5.0)
    i.poll(6.0)
    i.receive(router_advert(valid=60, preferred=30), 10.0)  # RFC 4862 §5.5.3 e
    i.poll(10.0 + 7199)
    assert any(a[:8] == PREFIX[:8] for a in addresses(i))
    i.poll(10.0 + 7200)
    assert not any(a[:8] == PREFIX[:8] for a in addresses(i))


def test_router_solicitations_stop_when_an_advertisement_comes():
    i = iface()
    i.start(0.0)
    solicits = []
    now = 0.0
    for _ in range(20):
        solicits += [now for m in sent_icmpv6(i) if m[3] == 133]
        if now >= 5.0 and i.ipv6 is not None and not i.ipv6.default_router:
            i.receive(router_advert(), now)
        deadline = i.next_deadline()
        if deadline is None:
            break
        now = deadline
        i.poll(now)
    assert solicits == [1.0, 5.0]


def test_unknown_next_header_and_routing_header_get_parameter_problems():
    i = settled(iface())
    me = link_local(i)
    i.receive(frame(ROUTER, me, 253, b"\0" * 8), 2.0)
    i.receive(frame(ROUTER, me, 43, bytes([59, 2, 0, 1]) + bytes(4) + PREFIX), 2.0)
    problems = [m for m in sent_icmpv6(i) if m[3] == ICMPV6_PARAM_PROBLEM]
    # the first also needed the router's MAC: the error waits for resolution, the second joins it
    assert problems == [] and i.stats()["icmpv6_errors_sent"] == 2
    na = bytearray(32)
    n = emit_neighbor_advert(na, 0, ROUTER, me, ROUTER, 0x60000000, ROUTER_MAC)
    i.receive(frame(ROUTER, me, IPPROTO_ICMPV6, bytes(na[:n]), 255), 2.1)
    problems = [m[3:] for m in sent_icmpv6(i) if m[3] == ICMPV6_PARAM_PROBLEM]
    assert problems == [(ICMPV6_PARAM_PROBLEM, 1, 6), (ICMPV6_PARAM_PROBLEM, 0, 42)]


def test_no_error_toward_multicast_for_an_option_with_action_11():
    i = settled(iface())
    options = bytes([59, 0, 0xDE, 0, 1, 2, 0, 0])
    i.receive(frame(ROUTER, ALL_NODES, 60, options, dst_mac=multicast_mac(ALL_NODES)), 2.0)
    assert i.stats()["ipv6_param_problems"] == 1 and i.stats()["icmpv6_errors_sent"] == 0


def test_echo_to_all_nodes_is_answered_from_the_link_local_address_and_redirects_are_ignored():
    i = settled(iface())
    me = link_local(i)
    i.receive(
        icmpv6(ROUTER, ALL_NODES, ICMPV6_ECHO_REQUEST, 0, 0x00070001, b"hi", dst_mac=multicast_mac(ALL_NODES)), 2.0
    )
    i.receive(icmpv6(ROUTER, me, ND_REDIRECT, 0, 0, bytes(32), hop_limit=255), 2.0)
    assert i.stats()["icmpv6_echo_answered"] == 1 and i.stats()["nd_redirects_ignored"] == 1
    na = bytearray(32)
    n = emit_neighbor_advert(na, 0, ROUTER, me, ROUTER, 0x60000000, ROUTER_MAC)
    i.receive(frame(ROUTER, me, IPPROTO_ICMPV6, bytes(na[:n]), 255), 2.1)
    replies = [m for m in sent_icmpv6(i) if m[3] == ICMPV6_ECHO_REPLY]
    assert replies == [(ROUTER_MAC, me, ROUTER, ICMPV6_ECHO_REPLY, 0, 0x00070001)]


@pytest.mark.parametrize("hop_limit", [64, 254])
def test_ndp_from_off_the_link_is_dropped(hop_limit: int):
    i = settled(iface())
    i.receive(router_advert()[:21] + bytes([hop_limit]) + router_advert()[22:], 2.0)
    assert i.stats()["nd_malformed"] == 1 and i.ipv6 is not None and i.ipv6.default_router is None


def test_without_ipv6_multicast_frames_are_not_for_us():
    i = Interface(InterfaceConfig.from_strings(MAC, ["192.0.2.2/24"]))
    assert i.ipv6 is None
    i.receive(router_advert(), 1.0)
    assert i.stats()["eth_not_for_us"] == 1
    assert i.route_to(ROUTER) is None


def _global_pair() -> tuple[Pair, bytes, bytes]:
    pair = make_pair(ipv6=True)
    pair.sim.run(1.5)
    return pair, link_local(pair.a.iface), link_local(pair.b.iface)


def test_tcp_over_ipv6_link_local_moves_bytes_both_ways():
    pair, a_ip, b_ip = _global_pair()
    listener = pair.b.iface.tcp.listen((bytes(16), 8080))
    client = pair.a.iface.tcp.connect((b_ip, 8080), pair.now())
    pair.sim.run(0.1)
    server = listener.accept()
    assert server is not None and server.remote == (a_ip, client.local[1]) and client.local[0] == a_ip
    assert client.info()["mss"] == 1500 - 40 - 20 - 12  # IPv6 and TCP headers, timestamps
    data = bytes(range(256)) * 4000
    sent = 0
    got = b""
    for _ in range(400):
        if sent < len(data):
            sent += client.send(data[sent:], pair.now())
        pair.a.flush(pair.now())
        pair.sim.run(0.01)
        got += server.receive()
        if len(got) == len(data):
            break
    assert got == data
    server.send(b"reply over IPv6", pair.now())
    pair.b.flush(pair.now())
    pair.sim.run(0.05)
    assert client.receive() == b"reply over IPv6"
    stats = pair.b.iface.stats()
    assert stats["tcp_rx_segments"] > 100 and stats["tcp_rx_predicted"] >= stats["tcp_rx_segments"] - 3  # predicted


def test_udp_over_ipv6_and_port_unreachable_to_the_connected_socket():
    pair, a_ip, b_ip = _global_pair()
    server = pair.b.iface.open_udp((bytes(16), 5353))
    client = pair.a.iface.open_udp((bytes(16), 0))
    client.sendto(b"question", (b_ip, 5353), pair.now())
    pair.a.flush(pair.now())
    pair.sim.run(0.05)
    assert server.recvfrom() == (b"question", (a_ip, client.local[1]))
    server.sendto(b"answer", (a_ip, client.local[1]), pair.now())
    pair.b.flush(pair.now())
    pair.sim.run(0.05)
    assert client.recvfrom() == (b"answer", (b_ip, 5353))
    lonely = pair.a.iface.open_udp((bytes(16), 0))
    lonely.connect((b_ip, 9999))
    assert lonely.local[0] == a_ip  # connect fixes the source, as with IPv4
    lonely.sendto(b"anyone?", None, pair.now())
    pair.a.flush(pair.now())
    pair.sim.run(0.05)
    error = lonely.take_error()
    assert error is not None and error.errno == errno.ECONNREFUSED
    assert pair.b.iface.stats()["icmpv6_errors_sent"] == 1


def test_wildcards_of_the_two_families_are_apart_and_families_do_not_mix():
    pair, _, b_ip = _global_pair()
    iface = pair.a.iface
    v4 = iface.tcp.listen((bytes(4), 80))
    v6 = iface.tcp.listen((bytes(16), 80))
    assert v4 is not v6
    with pytest.raises(OSError) as caught:
        iface.tcp.listen((bytes(16), 80))
    assert caught.value.errno == errno.EADDRINUSE
    udp4 = iface.open_udp((bytes(4), 53))
    udp6 = iface.open_udp((bytes(16), 53))
    assert udp4.local != udp6.local
    with pytest.raises(OSError) as caught:
        udp4.sendto(b"x", (b_ip, 53), pair.now())
    assert caught.value.errno == errno.EAFNOSUPPORT and "different families" in str(caught.value)
    with pytest.raises(OSError) as caught:
        iface.tcp.connect((b_ip, 80), pair.now(), (bytes(4), 0))
    assert caught.value.errno == errno.EAFNOSUPPORT


@pytest.mark.parametrize("size", [1453, 4000, 60000, 65487])
def test_udp_over_ipv6_in_fragments_both_ways(size: int):
    pair, a_ip, b_ip = _global_pair()
    server = pair.b.iface.open_udp((bytes(16), 7))
    client = pair.a.iface.open_udp((bytes(16), 0))
    client.sendto(b"warm the neighbour cache: its queue for an unresolved hop holds only 32", (b_ip, 7), pair.now())
    pair.a.flush(pair.now())
    pair.sim.run(0.05)
    assert server.recvfrom() is not None
    message = bytes(i * 7 & 0xFF for i in range(size))
    before = len(pair.a_link.sent)
    client.sendto(message, (b_ip, 7), pair.now())
    pair.a.flush(pair.now())
    pair.sim.run(0.05)
    sent = [f for _, f in pair.a_link.sent[before:] if f[12:14] == b"\x86\xdd" and f[20] == 44]
    assert len(sent) == -(-(size + 8) // 1448) and all(len(f) <= 1514 for f in sent)
    assert server.recvfrom() == (message, (a_ip, client.local[1]))
    server.sendto(message, (a_ip, client.local[1]), pair.now())
    pair.b.flush(pair.now())
    pair.sim.run(0.05)
    assert client.recvfrom() == (message, (b_ip, 7))
    assert pair.b.iface.stats()["ipv6_reasm_datagrams"] == 1


def test_an_incomplete_ipv6_datagram_times_out_with_time_exceeded():
    i = settled(iface())
    me = link_local(i)
    udp = bytes(8) + bytes(2000)
    first = bytes([17, 0, 0, 1, 0, 0, 0, 9]) + udp[:1000]  # offset 0, M set, ident 9; the rest never comes
    i.receive(frame(ROUTER, me, 44, first), 2.0)
    assert i.stats()["ipv6_fragments"] == 1
    i.poll(2.0 + 30.0)
    assert i.stats()["ipv6_reasm_timeouts"] == 1
    na = bytearray(32)
    n = emit_neighbor_advert(na, 0, ROUTER, me, ROUTER, 0x60000000, ROUTER_MAC)
    i.receive(frame(ROUTER, me, IPPROTO_ICMPV6, bytes(na[:n]), 255), 32.0)  # the error waited for it
    assert [m[3:5] for m in sent_icmpv6(i) if m[3] == 3] == [(3, 1)]  # time exceeded, reassembly


def test_overlapping_ipv6_fragments_discard_the_datagram():
    i = settled(iface())
    me = link_local(i)
    sock = i.open_udp((bytes(16), 7))
    body = bytes(8) + bytes(2000)
    i.receive(frame(ROUTER, me, 44, bytes([17, 0, 0, 1, 0, 0, 0, 5]) + body[:1000]), 2.0)
    i.receive(frame(ROUTER, me, 44, bytes([17, 0, 0x03, 0xE1, 0, 0, 0, 5]) + body[992:2008]), 2.0)  # at 992: overlap
    assert i.stats()["ipv6_reasm_overlaps"] == 1 and sock.recvfrom() is None
