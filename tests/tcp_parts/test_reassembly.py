"""The out-of-order queue: any arrival order of a stream's segments rebuilds the stream,
the SACK blocks it reports match what it holds, and the byte limit holds."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tcp_parts.footprint import NOTHING, bytes_beyond_itself
from usernet.stack.tcp.reassembly import Reassembly

M = 1 << 32
isns = st.integers(0, M - 1) | st.integers(M - 4000, M - 1)


def _runs(positions: set[int]) -> list[tuple[int, int]]:
    """Maximal runs [start, end) of a set of integers, lowest first."""
    runs: list[tuple[int, int]] = []
    for p in sorted(positions):
        if runs and runs[-1][1] == p:
            runs[-1] = (runs[-1][0], p + 1)
        else:
            runs.append((p, p + 1))
    return runs


class Receiver:
    """The caller's half of the contract, as the state machine will do it."""

    def __init__(self, isn: int, limit: int) -> None:
        self.isn = isn
        self.rcv_nxt = isn
        self.delivered = bytearray()
        self.q = Reassembly(limit)

    def segment(self, offset: int, data: bytes) -> bool | None:
        seq = (self.isn + offset) % M
        skip = (self.rcv_nxt - seq) % M
        if skip < (1 << 31):  # starts at or before RCV.NXT: trim the old part
            if skip >= len(data):
                return None
            data = data[skip:]
            seq = self.rcv_nxt
        if seq == self.rcv_nxt:
            self.delivered += data
            self.rcv_nxt = (self.rcv_nxt + len(data)) % M
            ready, self.rcv_nxt = self.q.pop_ready(self.rcv_nxt)
            self.delivered += ready
            return None
        return self.q.insert(seq, data)


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, int]]]:
    """A stream and segments (offset, length) covering it, in arbitrary order, with
    duplicates and overlapping retransmissions of other sizes."""
    n = draw(st.integers(1, 3000))
    stream = random.Random(draw(st.integers(0, 1 << 30))).randbytes(n)
    cuts = sorted(set(draw(st.lists(st.integers(1, n - 1), max_size=40)) if n > 1 else []))
    edges = [0, *cuts, n]
    segs = [(a, b - a) for a, b in itertools.pairwise(edges)]
    extra = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 600)), max_size=15))
    segs += [(a, min(k, n - a)) for a, k in extra]
    segs += draw(st.lists(st.sampled_from(segs), max_size=10))  # exact duplicates
    order = draw(st.permutations(segs))
    return stream, list(order)


@settings(max_examples=300, deadline=None)
@given(isns, arrivals())
def test_any_arrival_order_rebuilds_the_stream(isn: int, case: tuple[bytes, list[tuple[int, int]]]) -> None:
    stream, segs = case
    rx = Receiver(isn, limit=1 << 20)
    held: set[int] = set()  # model: offsets held out of order
    for offset, length in segs:
        data = stream[offset : offset + length]
        assert rx.segment(offset, data) in (True, None)
        base = (rx.rcv_nxt - isn) % M
        held = {p for p in held if p >= base} | {p for p in range(offset, offset + length) if p > base}
        assert len(rx.q) == len(held)
        expected = [((isn + a) % M, (isn + b) % M) for a, b in _runs(held)]
        assert rx.q.sack_blocks(max_blocks=1000, most_recent_first=False) == expected
        if offset > base and offset + length > base:
            # RFC 2018: the first block reported holds the segment that just arrived.
            left, right = rx.q.sack_blocks()[0]
            assert (offset + length - 1 + isn - left) % M < (right - left) % M
    assert bytes(rx.delivered) == stream
    assert rx.rcv_nxt == (isn + len(stream)) % M
    assert len(rx.q) == 0 and rx.q.dropped == 0


@settings(max_examples=200, deadline=None)
@given(isns, arrivals(), st.integers(0, 2000))
def test_limit_is_never_exceeded_and_drops_are_counted(
    isn: int, case: tuple[bytes, list[tuple[int, int]]], limit: int
) -> None:
    stream, segs = case
    q = Reassembly(limit)
    held: set[int] = set()  # model: the lowest new bytes that fit are kept
    dropped = 0
    for offset, length in segs:
        if offset == 0:
            continue  # keep a hole at the front so nothing is delivered
        new = sorted(set(range(offset, offset + length)) - held)
        kept = new[: max(0, limit - len(held))]
        held |= set(kept)
        dropped += len(new) - len(kept)
        full = q.insert((isn + offset) % M, stream[offset : offset + length])
        assert full == (len(kept) == len(new))
        assert len(q) == len(held) <= limit
        assert q.dropped == dropped
        expected = [((isn + a) % M, (isn + b) % M) for a, b in _runs(held)]
        assert q.sack_blocks(max_blocks=1000, most_recent_first=False) == expected
    # Whatever was kept is the right data, at the right place.
    rcv_nxt = (isn + 1) % M
    while True:
        data, new_nxt = q.pop_ready(rcv_nxt)
        if not data:
            if not len(q):
                break
            left, _ = q.sack_blocks(most_recent_first=False)[0]
            rcv_nxt = left  # jump the hole, as if it had been filled
            continue
        start = (rcv_nxt - isn) % M
        assert bytes(data) == stream[start : start + len(data)]
        assert new_nxt == (rcv_nxt + len(data)) % M
        rcv_nxt = new_nxt


def test_kept_bytes_are_the_lowest_new_ones() -> None:
    q = Reassembly(10)
    assert q.insert(100, b"a" * 4)
    assert q.insert(110, b"b" * 4)
    # [98, 116) brings 10 new bytes; only 2 fit, taken from the lowest gap.
    assert not q.insert(98, b"c" * 18)
    assert q.dropped == 8
    assert q.sack_blocks(most_recent_first=False) == [(98, 104), (110, 114)]


def test_sack_blocks_by_recency() -> None:
    q = Reassembly(1 << 16)
    q.insert(1000, b"a" * 10)  # A
    q.insert(2000, b"b" * 10)  # B
    q.insert(3000, b"c" * 10)  # C
    q.insert(4000, b"d" * 10)  # D
    q.insert(5000, b"e" * 10)  # E
    q.insert(1010, b"a" * 10)  # A grows: it holds the latest segment
    assert q.sack_blocks() == [(1000, 1020), (5000, 5010), (4000, 4010), (3000, 3010)]
    assert q.sack_blocks(max_blocks=2, most_recent_first=False) == [(1000, 1020), (2000, 2010)]
    q.insert(2005, b"b" * 2)  # a duplicate inside B still makes B the latest
    assert q.sack_blocks(max_blocks=1) == [(2000, 2010)]
    assert q.sack_blocks(max_blocks=0) == []


def test_bridging_segment_merges_blocks_and_reports_the_merge_first() -> None:
    q = Reassembly(1 << 16)
    q.insert(10, b"B" * 10)
    q.insert(30, b"D" * 10)
    q.insert(50, b"F" * 5)
    assert q.insert(5, b"x" * 40)  # covers [5, 45): joins the first two, overlaps both
    assert q.sack_blocks() == [(5, 45), (50, 55)]
    data, nxt = q.pop_ready(5)
    assert bytes(data) == b"x" * 5 + b"B" * 10 + b"x" * 10 + b"D" * 10 + b"x" * 5
    assert nxt == 45 and len(q) == 5


def test_pop_ready_trims_and_discards_what_is_behind_rcv_nxt() -> None:
    q = Reassembly(1 << 16)
    q.insert(100, b"0123456789")
    q.insert(200, b"abcdefghij")
    assert q.pop_ready(95) == (b"", 95)  # still a hole
    data, nxt = q.pop_ready(205)  # the first block is behind, the second straddles
    assert bytes(data) == b"fghij" and nxt == 210
    assert len(q) == 0 and q.pop_ready(210) == (b"", 210)


def test_across_the_wrap() -> None:
    q = Reassembly(1 << 16)
    isn = M - 6
    assert q.insert((isn + 4) % M, b"EFGH")  # crosses zero
    assert q.sack_blocks() == [(M - 2, 2)]
    assert q.insert(2, b"IJ")
    assert q.sack_blocks() == [(M - 2, 4)]
    data, nxt = q.pop_ready((isn + 4) % M)
    assert bytes(data) == b"EFGHIJ" and nxt == 4


def test_empty_segment_and_negative_limit() -> None:
    q = Reassembly(0)
    assert q.insert(5, b"")
    assert not q.insert(5, b"x") and q.dropped == 1 and len(q) == 0
    with pytest.raises(ValueError):
        Reassembly(-1)


def test_an_unused_queue_holds_no_lists() -> None:
    assert bytes_beyond_itself(lambda: Reassembly(100_000)) < NOTHING  # most connections never see a hole


def test_a_queue_first_used_behaves_as_always() -> None:
    q = Reassembly(100)
    assert len(q) == 0 and q.sack_blocks() == [] and q.pop_ready(5) == (b"", 5)
    assert q.insert(20, b"")  # an empty segment makes nothing
    assert q.sack_blocks() == []
    assert q.insert(20, b"cd") and q.insert(10, b"a")
    assert q.sack_blocks() == [(10, 11), (20, 22)] and len(q) == 3
    assert q.pop_ready(10) == (bytearray(b"a"), 11)
    assert q.pop_ready(11) == (b"", 11)
    assert q.pop_ready(20) == (bytearray(b"cd"), 22)
    assert len(q) == 0 and q.sack_blocks() == []
    assert q.insert(30, b"again") and q.sack_blocks() == [(30, 35)]  # emptied, then used again
