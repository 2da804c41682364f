"""Path MTU discovery (stack/pmtu.py): ICMP "fragmentation needed" on the sans-IO interface."""

from __future__ import annotations

import errno

from tests.stack.simpair import A_IP, B_IP, Pair, make_pair
from usernet.stack.pmtu import LOWERED_LIMIT, PathMtuCache
from usernet.stack.stats import Stats
from usernet.wire import (
    ETHERTYPE_IPV4,
    IPPROTO_TCP,
    IPPROTO_UDP,
    emit_ethernet,
    emit_icmp,
    emit_ipv4_header,
    parse_ethernet,
    parse_ipv4,
)

ROUTER = bytes([192, 0, 2, 254])


def sent_ip(pair: Pair, protocol: int, since: int = 0) -> list[bytes]:
    """The IPv4 datagrams of `protocol` a has sent, from the `since`-th frame on."""
    out = []
    for _, frame in pair.a_link.sent[since:]:
        if parse_ethernet(frame).ethertype == ETHERTYPE_IPV4 and parse_ipv4(frame[14:]).protocol == protocol:
            out.append(frame[14:])
    return out


def frag_needed(pair: Pair, datagram: bytes, mtu: int) -> None:
    """A router's ICMP "fragmentation needed" about `datagram`, handed to a."""
    quote = datagram[:28]
    frame = bytearray(14 + 20 + 8 + len(quote))
    emit_ethernet(frame, 0, pair.wire.a.mac, pair.wire.b.mac, ETHERTYPE_IPV4)
    emit_ipv4_header(frame, 14, ROUTER, A_IP, 1, 8 + len(quote), ident=1)
    emit_icmp(frame, 34, 3, 4, mtu, quote)
    pair.a.iface.receive(frame, pair.now())


def test_frag_needed_lowers_the_path_mtu_then_it_ages_out(pair: Pair) -> None:
    server = pair.b.iface.open_udp((B_IP, 7))
    sock = pair.a.iface.open_udp()
    sock.connect((B_IP, 7))
    sock.sendto(bytes(1400), None, pair.now())
    pair.sim.run(0.1)
    (first,) = sent_ip(pair, IPPROTO_UDP)
    assert parse_ipv4(first).dont_fragment
    frag_needed(pair, first, 1000)
    assert pair.a.iface.path_mtu.mtu(B_IP) == 1000
    assert pair.a.iface.stats()["ipv4_pmtu_lowered"] == 1
    err = sock.take_error()
    assert err is not None and err.errno == errno.EMSGSIZE  # as Linux tells a connected socket
    mark = len(pair.a_link.sent)
    sock.sendto(bytes(1400), None, pair.now())
    pair.sim.run(0.1)
    pieces = [parse_ipv4(d) for d in sent_ip(pair, IPPROTO_UDP, mark)]
    assert len(pieces) == 2 and max(p.total_length for p in pieces) <= 1000
    assert [len(server.recvfrom()[0]) for _ in range(2)] == [1400, 1400]  # type: ignore[index]  # both came
    # Never raised by an ICMP; the link's MTU back after Linux's mtu_expires.
    frag_needed(pair, first, 1400)
    assert pair.a.iface.path_mtu.mtu(B_IP) == 1000
    assert pair.a.iface.next_deadline() is not None
    pair.sim.run(601.0)
    assert pair.a.iface.path_mtu.mtu(B_IP) == 1500
    assert pair.a.iface.route_to(B_IP).mtu == 1500  # type: ignore[union-attr]  # B is on-link


def test_mtus_below_the_floor_or_for_no_socket_are_ignored(pair: Pair) -> None:
    sock = pair.a.iface.open_udp()
    sock.sendto(bytes(100), (B_IP, 7), pair.now())
    pair.sim.run(0.1)
    (first,) = sent_ip(pair, IPPROTO_UDP)
    for mtu in (0, 68, 551):
        frag_needed(pair, first, mtu)
    assert pair.a.iface.stats()["ipv4_pmtu_ignored"] == 3
    sock.close()
    frag_needed(pair, first, 1000)  # nothing is bound where it came from any more
    assert pair.a.iface.path_mtu.mtu(B_IP) == 1500
    assert pair.a.iface.stats()["ipv4_pmtu_lowered"] == 0


def test_tcp_resegments_at_the_new_mss_and_only_for_a_sequence_in_flight() -> None:
    pair = make_pair()
    listener = pair.b.iface.tcp.listen((B_IP, 80))
    conn = pair.a.iface.tcp.connect((B_IP, 80), pair.now())
    pair.sim.run(0.1)
    assert conn.state.name == "ESTABLISHED" and conn.info()["mss"] == 1448
    mark = len(pair.a_link.sent)
    conn.send(bytes(6000), pair.now())
    pair.a.flush(pair.now())  # on the wire, not yet at b
    data = [d for d in sent_ip(pair, IPPROTO_TCP, mark) if len(parse_ipv4(d).payload) > 32]
    assert data and all(parse_ipv4(d).dont_fragment for d in data)  # TCP sets DF
    # RFC 5927 §4.1: a quoted sequence number outside SND.UNA..SND.NXT changes nothing.
    stale = bytearray(data[0])
    stale[24:28] = ((int.from_bytes(stale[24:28], "big") + 100_000) & 0xFFFFFFFF).to_bytes(4, "big")
    frag_needed(pair, bytes(stale), 1280)
    assert conn.info()["mss"] == 1448 and pair.a.iface.path_mtu.mtu(B_IP) == 1500
    frag_needed(pair, data[0], 1280)
    assert conn.info()["mss"] == 1280 - 40 - 12  # timestamps on
    assert pair.a.iface.path_mtu.mtu(B_IP) == 1280
    mark = len(pair.a_link.sent)
    pair.sim.run(1.0)
    resent = [parse_ipv4(d) for d in sent_ip(pair, IPPROTO_TCP, mark)]
    assert resent and max(ip.total_length for ip in resent) <= 1280
    server = listener.accept()
    assert server is not None and server.receive(10_000) == bytes(6000)
    # A new connection to the same destination starts from the lowered path MTU.
    assert pair.a.iface.route_to(B_IP).mss == 1240  # type: ignore[union-attr]  # B is on-link


def test_lowered_destinations_are_bounded_the_oldest_aging_out_early() -> None:
    # Forged errors quoting datagrams to ever-new destinations must not grow the cache.
    stats = Stats()
    cache = PathMtuCache(1500, 600.0, 552, stats)
    held = [cache.entry(i.to_bytes(4, "big")) for i in range(LOWERED_LIMIT + 2)]  # routes hold them
    for i in range(LOWERED_LIMIT + 2):
        assert cache.lower(i.to_bytes(4, "big"), 1280, float(i))
    assert stats.pmtu_evicted == 2
    assert [e.mtu for e in held[:3]] == [1500, 1500, 1280]  # the two oldest back at the link's MTU
    assert held[-1].mtu == 1280
    assert cache.lower((0).to_bytes(4, "big"), 1200, 9e3)  # lowered again: it is new, one more goes
    assert stats.pmtu_evicted == 3 and held[2].mtu == 1500
    assert cache.lower((5).to_bytes(4, "big"), 1000, 9e3)  # one already kept: nothing evicted
    assert stats.pmtu_evicted == 3
    cache.poll(1e9)
    assert cache.next_deadline() is None and all(e.mtu == 1500 for e in held)
