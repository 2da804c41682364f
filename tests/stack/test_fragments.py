"""Reassembly (stack/fragments.py) and UDP fragmentation on send, on the sans-IO interface."""

from __future__ import annotations

import errno
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.stack.simpair import A_IP, B_IP, Pair, make_pair
from usernet.stack.fragments import DATAGRAM_COST, FRAGMENT_COST, Reassembler, ipv4_fragments
from usernet.wire import (
    ETHERTYPE_IPV4,
    ICMP_TIME_EXCEEDED,
    IPPROTO_UDP,
    emit_udp,
    parse_ethernet,
    parse_icmp,
    parse_ipv4,
)

KEY = ("src", "dst", 17, 1)


# -- the reassembler against a model ------------------------------------------------------


class Model:
    """RFC 5722's rules written the obvious way: sets of accepted ranges, no bisect, no memory."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.end = -1
        self.dead = False

    def add(self, offset: int, end: int, more: bool) -> bool:
        """True when this fragment completes the datagram."""
        if self.dead:
            return False
        if (more and self.end >= 0 and end > self.end) or (not more and self.end >= 0 and end != self.end):
            self.dead = True
            return False
        if (offset, end) in self.ranges:
            return False
        if any(a < end and offset < b for a, b in self.ranges):
            self.dead = True
            return False
        if not more:
            if any(b > end for _, b in self.ranges):
                self.dead = True
                return False
            self.end = end
        self.ranges.append((offset, end))
        covered = sorted(self.ranges)
        return self.end >= 0 and covered[0][0] == 0 and sum(b - a for a, b in covered) == self.end


@st.composite
def fragment_streams(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, int, bool]], int]:
    """A datagram and fragments of it in any order: a proper cut, duplicates, and overlapping
    pieces (8-aligned ranges of the same bytes, as a retransmission through another path cuts them)."""
    size = draw(st.integers(9, 600))
    data = draw(st.binary(min_size=size, max_size=size))
    cuts = sorted(set(draw(st.lists(st.integers(1, (size - 1) // 8), min_size=1, max_size=8))))
    bounds = [0] + [c * 8 for c in cuts if c * 8 < size] + [size]
    pieces = [(a, b, b < size) for a, b in itertools.pairwise(bounds)]
    extra = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(("duplicate", "overlap")))
        if kind == "duplicate":
            extra.append(draw(st.sampled_from(pieces)))
        else:
            a = draw(st.integers(0, (size - 1) // 8)) * 8
            b = draw(st.sampled_from([x for x in range(a + 8, size, 8)] + [size]))
            if (a, b) != (0, size):  # that would be a whole datagram, not a fragment
                extra.append((a, b, b < size))
    order = draw(st.permutations(pieces + extra))
    return data, order, len(extra)


@settings(max_examples=400, deadline=None)
@given(stream=fragment_streams(), limit=st.sampled_from([1 << 20, 2000, 900]))
def test_reassembly_never_yields_a_wrong_datagram_nor_exceeds_its_memory(
    stream: tuple[bytes, list[tuple[int, int, bool]], int], limit: int
) -> None:
    data, order, extras = stream
    r = Reassembler(30.0, limit, limit)
    model = Model()
    done = 0
    for offset, end, more in order:
        result = r.add(KEY, "src", offset, more, memoryview(data)[offset:end], b"hdr", 0.0)
        assert r.memory <= limit and r.source_memory("src") == r.memory
        assert (r.next_deadline() is None) == (len(r) == 0)
        expected = model.add(offset, end, more)
        if limit == 1 << 20:  # with room for everything, it is exactly the model
            assert (result is not None) == expected
        if result is not None:
            assert result == (b"hdr", data)
            done += 1
            model = Model()  # a fragment after completion starts a new datagram, as in the stack
    if not extras and limit == 1 << 20:
        assert done == 1
    r.poll(30.0)
    assert r.memory == 0 and len(r) == 0 and r.source_memory("src") == 0


def test_overlap_discards_the_datagram_and_its_later_fragments() -> None:
    r = Reassembler(30.0, 1 << 20, 1 << 20)
    data = bytes(range(64))
    assert r.add(KEY, "s", 0, True, data[:32], b"h", 0.0) is None
    assert r.add(KEY, "s", 24, True, data[24:48], None, 0.0) is None  # overlaps 24..32
    assert r.counters.overlaps == 1 and r.memory == DATAGRAM_COST
    assert r.add(KEY, "s", 32, False, data[32:], None, 0.0) is None  # would have completed it
    assert r.counters.tombstoned == 1 and r.counters.datagrams == 0
    assert r.poll(30.0) == []  # a discarded datagram times out without an ICMP
    assert r.memory == 0 and r.counters.timeouts == 0


def test_duplicates_change_nothing_and_completion_is_exact() -> None:
    r = Reassembler(30.0, 1 << 20, 1 << 20)
    data = bytes(range(40))
    assert r.add(KEY, "s", 16, False, data[16:], None, 0.0) is None
    assert r.add(KEY, "s", 16, False, data[16:], None, 0.0) is None
    assert r.counters.duplicates == 1
    assert r.memory == DATAGRAM_COST + FRAGMENT_COST + 24
    assert r.add(KEY, "s", 0, True, data[:16], b"h", 0.0) == (b"h", data)
    assert r.memory == 0 and r.counters.datagrams == 1


def test_two_different_ends_are_inconsistent() -> None:
    r = Reassembler(30.0, 1 << 20, 1 << 20)
    assert r.add(KEY, "s", 8, False, bytes(8), None, 0.0) is None
    assert r.add(KEY, "s", 16, False, bytes(8), None, 0.0) is None
    assert r.counters.inconsistent == 1


def test_a_source_cannot_take_more_than_its_share() -> None:
    r = Reassembler(30.0, 10_000, 3_000)
    for ident in range(20):
        r.add(("a", ident), "a", 0, True, bytes(1000), b"h", 0.0)
    assert r.source_memory("a") <= 3_000 and r.counters.memory_limit > 0
    assert r.add(("b", 1), "b", 0, True, bytes(1000), b"h", 0.0) is None
    assert r.source_memory("b") == DATAGRAM_COST + FRAGMENT_COST + 1000  # b still has room
    assert r.memory <= 10_000


def test_timer_starts_with_the_first_fragment_and_expiry_quotes_it() -> None:
    r = Reassembler(30.0, 1 << 20, 1 << 20)
    r.add(("x", 1), "s", 8, True, bytes(8), None, 1.0)  # no first fragment: no quote
    r.add(("x", 2), "s", 0, True, b"12345678abcdefgh", b"hdr", 2.0)
    assert r.next_deadline() == 31.0
    r.add(("x", 2), "s", 16, True, bytes(8), None, 20.0)  # later fragments do not push it back
    assert r.poll(30.9) == []
    assert r.poll(31.0) == []
    assert r.counters.timeouts == 1 and r.next_deadline() == 32.0
    assert r.poll(32.0) == [(b"hdr", b"12345678abcdefgh")]
    assert r.next_deadline() is None and r.memory == 0


# -- on the interface ------------------------------------------------------------------------


def echo_back(pair: Pair, sizes: list[int]) -> list[bytes]:
    """a sends datagrams of `sizes` to b's port 7, b echoes each, a collects the echoes."""
    server = pair.b.iface.open_udp((B_IP, 7))
    client = pair.a.iface.open_udp()
    rng = random.Random(5)
    messages = [rng.randbytes(n) for n in sizes]
    for message in messages:
        client.sendto(message, (B_IP, 7), pair.now())
        pair.sim.run(0.05)
        while (got := server.recvfrom()) is not None:
            server.sendto(got[0], got[1], pair.now())
        pair.sim.run(0.05)
    echoes = []
    while (got := client.recvfrom()) is not None:
        echoes.append(got[0])
    assert echoes == messages
    return messages


def test_udp_larger_than_the_mtu_goes_in_fragments_and_comes_back_whole(pair: Pair) -> None:
    echo_back(pair, [1472, 1473, 4000, 60_000, 65_507])
    frames = [parse_ipv4(f[14:]) for _, f in pair.a_link.sent if parse_ethernet(f).ethertype == ETHERTYPE_IPV4]
    assert max(ip.total_length for ip in frames) == 1500
    assert all(not ip.dont_fragment for ip in frames if ip.is_fragment)
    assert all(ip.dont_fragment for ip in frames if not ip.is_fragment)  # what fits keeps DF (PMTUDISC_WANT)
    for host in (pair.a, pair.b):
        stats = host.iface.stats()
        assert stats["ipv4_reasm_datagrams"] == 4 and stats["ipv4_reasm_overlaps"] == 0
        assert host.iface.reassembly.reassembler.memory == 0


def test_udp_too_big_for_ipv4_is_refused(pair: Pair) -> None:
    sock = pair.a.iface.open_udp()
    with pytest.raises(OSError) as info:
        sock.sendto(bytes(65_508), (B_IP, 7), pair.now())
    assert info.value.errno == errno.EMSGSIZE


def test_a_large_ping_is_answered_in_fragments(pair: Pair) -> None:
    ping = pair.a.iface.open_ping(3)
    ping.send(B_IP, 1, bytes(range(256)) * 20, pair.now())
    pair.sim.run(0.5)
    reply = ping.receive()
    assert reply is not None and reply[2] == bytes(range(256)) * 20
    assert pair.b.iface.stats()["icmp_echo_answered"] == 1


def udp_fragments(pair: Pair, payload: bytes, ident: int, mtu: int = 1500) -> list[bytearray]:
    """Frames a would send for one UDP datagram to b's port 7, cut for `mtu`."""
    l4 = bytearray(8 + len(payload))
    emit_udp(l4, 0, A_IP, B_IP, 4000, 7, payload)
    eth = pair.wire.b.mac + pair.wire.a.mac + ETHERTYPE_IPV4.to_bytes(2, "big")
    return ipv4_fragments(eth, memoryview(l4), A_IP, B_IP, IPPROTO_UDP, 64, ident, mtu)


def test_a_lost_fragment_times_out_with_an_icmp_time_exceeded(pair: Pair) -> None:
    pair.b.iface.open_udp((B_IP, 7))
    first, *_rest = udp_fragments(pair, bytes(3000), ident=77)
    pair.b.iface.receive(first, pair.now())
    start = pair.now()
    assert pair.b.iface.next_deadline() == pytest.approx(start + 30.0)
    pair.sim.run(31.0)
    stats = pair.b.iface.stats()
    assert stats["ipv4_reasm_timeouts"] == 1 and stats["icmp_errors_sent"] == 1
    (icmp,) = [
        parse_icmp(parse_ipv4(f[14:]).payload)
        for _, f in pair.b_link.sent
        if parse_ethernet(f).ethertype == ETHERTYPE_IPV4 and parse_ipv4(f[14:]).protocol == 1
    ]
    assert (icmp.type, icmp.code) == (ICMP_TIME_EXCEEDED, 1)
    quoted = parse_ipv4(bytes(icmp.payload[:20]) + bytes(first[34 : 34 + 8]) + bytes(1472), verify_checksum=False)
    assert quoted.ident == 77 and quoted.more_fragments
    assert pair.b.iface.reassembly.reassembler.memory == 0


def test_fragments_in_any_order_with_duplicates_are_delivered_once(pair: Pair) -> None:
    server = pair.b.iface.open_udp((B_IP, 7))
    payload = bytes(range(200)) * 30
    frames = udp_fragments(pair, payload, ident=5, mtu=576)
    order = frames[::-1] + frames[:2]
    for frame in order:
        pair.b.iface.receive(frame, pair.now())
    assert server.recvfrom() == (payload, (A_IP, 4000))
    assert server.recvfrom() is None
    assert pair.b.iface.stats()["ipv4_fragments"] == len(order)


def test_malformed_and_overlapping_fragments_are_counted_and_dropped(pair: Pair) -> None:
    server = pair.b.iface.open_udp((B_IP, 7))
    frames = udp_fragments(pair, bytes(2000), ident=9, mtu=1000)
    odd = bytearray(frames[0][:-1])  # 1 byte short: not a multiple of 8 with MF set
    odd[16:18] = (len(odd) - 14).to_bytes(2, "big")
    odd[24:26] = b"\0\0"
    from usernet.native import internet_checksum

    odd[24:26] = internet_checksum(odd[14:34]).to_bytes(2, "big")
    pair.b.iface.receive(odd, pair.now())
    assert pair.b.iface.stats()["ipv4_reasm_malformed"] == 1
    overlapping = udp_fragments(pair, bytes(2000), ident=9, mtu=800)
    pair.b.iface.receive(frames[0], pair.now())
    pair.b.iface.receive(overlapping[1], pair.now())  # starts at 776, inside frames[0]'s 0..976
    for frame in frames[1:]:
        pair.b.iface.receive(frame, pair.now())
    assert server.recvfrom() is None
    stats = pair.b.iface.stats()
    assert stats["ipv4_reasm_overlaps"] == 1 and stats["ipv4_reasm_tombstoned"] == 2


def test_reassembly_limits_come_from_the_config() -> None:
    pair = make_pair(frag_memory_limit=8000, frag_source_limit=4000, frag_timeout=5.0)
    pair.b.iface.open_udp((B_IP, 7))
    for ident in range(10):
        pair.b.iface.receive(udp_fragments(pair, bytes(3000), ident)[0], pair.now())
    r = pair.b.iface.reassembly.reassembler
    assert r.memory <= 4000 and pair.b.iface.stats()["ipv4_reasm_memory_limit"] > 0
    pair.sim.run(6.0)
    assert r.memory == 0


def test_fragmented_datagrams_to_one_destination_never_share_an_ident(pair: Pair) -> None:
    """Two sockets (two routes: one bound to our address, one to any) interleave fragmented
    datagrams to b: the destination's one counter keeps their reassemblies apart."""
    server = pair.b.iface.open_udp((B_IP, 7))
    bound = pair.a.iface.open_udp((A_IP, 0))
    wildcard = pair.a.iface.open_udp()
    for i in range(5):
        bound.sendto(bytes([i]) * 3000, (B_IP, 7), pair.now())
        wildcard.sendto(bytes([100 + i]) * 3000, (B_IP, 7), pair.now())
    pair.sim.run(0.1)
    got = sorted(data[0] for data, _ in iter(server.recvfrom, None))
    assert got == [0, 1, 2, 3, 4, 100, 101, 102, 103, 104]
    sent = [parse_ipv4(f[14:]) for _, f in pair.a_link.sent if parse_ethernet(f).ethertype == ETHERTYPE_IPV4]
    idents = {ip.ident for ip in sent if ip.is_fragment}
    assert len(idents) == 10
