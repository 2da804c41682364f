"""The SACK scoreboard against a byte-by-byte model of RFC 6675's definitions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tcp_parts.footprint import NOTHING, bytes_beyond_itself
from usernet.stack.tcp.scoreboard import Scoreboard

M = 1 << 32
SMSS = 10  # the recovery test's; the model property draws its own
isns = st.integers(0, M - 1) | st.integers(M - 500, M - 1)


class Model:
    """Offsets from the initial SND.UNA; one set element per SACKed byte."""

    def __init__(self, dup_thresh: int, smss: int = SMSS) -> None:
        self.smss = smss
        self.una = 0
        self.max = 0
        self.sacked: set[int] = set()
        self.dt = dup_thresh

    def sack(self, lo: int, hi: int) -> int:
        if hi > self.max or hi <= self.una or lo >= hi:
            return 0
        new = set(range(max(lo, self.una), hi)) - self.sacked
        self.sacked |= new
        return len(new)

    def ack(self, una: int) -> None:
        self.una = una
        self.sacked = {p for p in self.sacked if p >= una}

    def runs_above(self, s: int) -> int:
        return sum(1 for p in self.sacked if p > s and p - 1 not in self.sacked)

    def is_lost(self, s: int) -> bool:
        """IsLost exactly as RFC 6675 §4 words it, for an unSACKed outstanding byte."""
        if s in self.sacked or not self.una <= s < self.max:
            return False
        above = sum(1 for p in self.sacked if p > s)
        return self.runs_above(s) >= self.dt or above > (self.dt - 1) * self.smss

    def pipe(self, high_rxt: int) -> int:
        """SetPipe, one octet at a time."""
        total = 0
        for s in range(self.una, self.max):
            if s in self.sacked:
                continue
            if not self.is_lost(s):
                total += 1
            if s < high_rxt:
                total += 1
        return total


ops = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(1, 60)),
        st.tuples(st.just("ack"), st.integers(0, 40)),
        st.tuples(st.just("sack"), st.lists(st.tuples(st.integers(-30, 200), st.integers(0, 60)), max_size=4)),
        st.tuples(st.just("stale"), st.integers(0, 60)),
    ),
    max_size=40,
)


def _check(sb: Scoreboard, m: Model, isn: int, high_rxt: int) -> None:
    assert sb.sacked_bytes == len(m.sacked)
    expected_runs = []
    for p in sorted(m.sacked):
        if expected_runs and expected_runs[-1][1] == p:
            expected_runs[-1][1] = p + 1
        else:
            expected_runs.append([p, p + 1])
    assert sb.blocks() == [((isn + a) % M, (isn + b) % M) for a, b in expected_runs]
    for s in range(m.una - 3, m.max + 3):
        seq = (isn + s) % M
        lost = sb.is_lost(seq)
        assert lost == m.is_lost(s)
        assert sb.is_sacked(seq) == (s in m.sacked)
        assert not (lost and sb.is_sacked(seq))
    assert sb.pipe() == m.pipe(high_rxt)


@settings(max_examples=300, deadline=None)
@given(isns, st.integers(1, 4), st.sampled_from([1, 10, 100]), ops)
def test_scoreboard_matches_model(isn: int, dup_thresh: int, smss: int, steps: list[tuple]) -> None:
    # With SMSS 100 the byte rule rarely fires and the count rule decides; with 1, the reverse.
    sb = Scoreboard(smss, isn, dup_thresh)
    m = Model(dup_thresh, smss)
    for op in steps:
        if op[0] == "send":
            m.max += op[1]
            assert sb.update((isn + m.una) % M, (isn + m.max) % M, ()) == 0
        elif op[0] == "ack":
            m.ack(min(m.max, m.una + op[1]))
            sb.update((isn + m.una) % M, (isn + m.max) % M, ())
        elif op[0] == "sack":
            blocks = [(m.una + lo, m.una + lo + n) for lo, n in op[1]]
            expected = sum(m.sack(lo, hi) for lo, hi in blocks)
            seq_blocks = [((isn + lo) % M, (isn + hi) % M) for lo, hi in blocks]
            assert sb.update((isn + m.una) % M, (isn + m.max) % M, seq_blocks) == expected
        else:  # an old ACK, from before SND.UNA moved: changes nothing
            old = max(0, m.una - op[1])
            assert sb.update((isn + old) % M, (isn + m.max) % M, [((isn + old) % M, (isn + m.una) % M)]) == 0
        _check(sb, m, isn, m.una)


@settings(max_examples=200, deadline=None)
@given(
    isns,
    st.integers(20, 200),
    st.lists(st.tuples(st.integers(0, 199), st.integers(1, 40)), max_size=8),
    st.integers(0, 50),
)
def test_recovery_sends_lost_holes_first_and_never_sacked_data(
    isn: int, sent: int, sacks: list[tuple[int, int]], unsent: int
) -> None:
    sb = Scoreboard(SMSS, isn)
    m = Model(3)
    m.max = sent
    blocks = [(lo, min(lo + n, sent)) for lo, n in sacks if lo < sent]
    for lo, hi in blocks:
        m.sack(lo, hi)
    sb.update(isn, (isn + sent) % M, [((isn + lo) % M, (isn + hi) % M) for lo, hi in blocks])
    first, n = sb.enter_recovery()
    start = (first - isn) % M
    first_hole = min((s for s in range(sent) if s not in m.sacked), default=None)
    if first_hole is None:
        assert n == 0
    else:
        assert start == first_hole and 0 < n <= SMSS
        assert not m.sacked & set(range(start, start + n))
    high_rxt = start + n
    assert sb.pipe() == m.pipe(high_rxt)
    highest_sacked = max(m.sacked, default=-1) + 1
    left = unsent
    rescued = False
    for _ in range(100):
        pipe_before = sb.pipe()
        seg = sb.next_seg(left)
        lost = [s for s in range(high_rxt, highest_sacked) if s not in m.sacked and m.is_lost(s)]
        holes = [s for s in range(high_rxt, highest_sacked) if s not in m.sacked]
        if seg is None:
            assert not lost and not left and not holes
            break
        seq, n = seg
        s = (seq - isn) % M
        assert 0 < n <= SMSS
        if lost:  # rule 1
            assert s == lost[0]
        elif left:  # rule 2
            assert s == m.max and n == min(SMSS, left)
            m.max += n
            left -= n
            assert sb.pipe() == pipe_before + n
            continue
        elif holes:  # rule 3
            assert s == holes[0]
        else:  # rule 4: once, ending at the highest unSACKed byte
            assert not rescued
            rescued = True
            top = max(p for p in range(sent) if p not in m.sacked)
            assert s + n - 1 == top
            assert sb.pipe() == pipe_before
            continue
        assert not m.sacked & set(range(s, s + n))
        high_rxt = s + n
        assert sb.pipe() == pipe_before + n == m.pipe(high_rxt)
    else:
        pytest.fail("next_seg never ran out")


def test_a_classic_loss() -> None:
    sb = Scoreboard(100, 1000)
    sb.update(1000, 2000, ())  # ten segments out
    assert sb.pipe() == 1000
    # The first segment is lost; three SACKs arrive for the next three.
    for k in range(1, 4):
        assert sb.update(1000, 2000, [(1100, 1100 + 100 * k)]) == 100
        assert sb.is_lost(1000) == (k == 3)  # the byte rule: more than 2*SMSS above
    assert not sb.is_lost(1100) and not sb.is_lost(1400)
    assert sb.enter_recovery() == (1000, 100)
    assert sb.recovery_point == 2000 and sb.in_recovery
    # [1000, 1100) lost but retransmitted: 100; [1400, 2000) not lost: 600.
    assert sb.pipe() == 700
    assert sb.next_seg(0) is None  # nothing lost left, no new data, no rescue yet
    assert sb.next_seg(500) == (2000, 100)
    assert sb.pipe() == 800
    # The retransmission arrives: cumulative ACK to 1400, recovery continues to 2000.
    sb.update(1400, 2100, ())
    assert sb.sacked_bytes == 0 and sb.pipe() == 700
    sb.update(2000, 2100, ())
    sb.exit_recovery()
    assert not sb.in_recovery and sb.recovery_point == 2000


def test_a_lost_retransmission_leaves_the_pipe_and_goes_first() -> None:
    """RACK found the retransmission of [1000, 1100) lost: it counts in the pipe no more and is
    what NextSeg returns, once, before new data; a SACKed piece of it is skipped."""
    sb = Scoreboard(100, 1000, rack=True)
    sb.update(1000, 2000, [(1100, 1400)])
    sb.mark_lost(1100)
    assert sb.enter_recovery() == (1000, 100)
    assert sb.pipe() == 700
    assert not sb.mark_retransmission_lost(1400, 1500), "never retransmitted in this recovery"
    assert sb.mark_retransmission_lost(1000, 1100)
    assert sb.pipe() == 600
    assert sb.next_seg(500) == (1000, 100)
    assert sb.pipe() == 700
    assert sb.next_seg(500) == (2000, 100), "then new data, as before"
    assert sb.next_seg(0) is None
    sb.update(1000, 2100, [(1050, 1400)])
    assert not sb.mark_retransmission_lost(1050, 1100), "SACKed"
    assert sb.mark_retransmission_lost(1000, 1100)
    assert sb.next_seg(0) == (1000, 50)
    sb.exit_recovery()
    assert not sb.mark_retransmission_lost(1000, 1100), "no retransmission of this recovery is left"


def test_count_rule_with_small_sacked_ranges() -> None:
    sb = Scoreboard(100, 0)
    sb.update(0, 100, [(10, 11), (20, 21), (30, 31), (40, 41)])
    assert sb.is_lost(5) and sb.is_lost(15)  # four, then three ranges above
    assert not sb.is_lost(25) and not sb.is_lost(35)  # two, one: and only bytes, not 2*SMSS


def test_new_data_beats_a_hole_that_is_not_lost() -> None:
    sb = Scoreboard(100, 0)
    sb.update(0, 1000, [(100, 200)])  # one range, 100 bytes: nothing is lost yet
    assert sb.enter_recovery() == (0, 100)  # e.g. after three duplicate ACKs
    sb.update(250, 1000, [(300, 400)])  # a partial ACK passes HighRxt
    assert not sb.is_lost(250)
    assert sb.next_seg(100) == (1000, 100)  # rule 2 before rule 3
    assert sb.next_seg(0) == (250, 50)  # rule 3: up to the SACKed range


def test_blocks_outside_the_window_are_ignored() -> None:
    sb = Scoreboard(100, 5000)
    sb.update(5000, 6000, ())
    assert sb.update(5000, 6000, [(4000, 4500)]) == 0  # D-SACK below SND.UNA
    assert sb.update(5000, 6000, [(4500, 5000)]) == 0  # ends at SND.UNA
    assert sb.update(5000, 6000, [(5900, 6100)]) == 0  # past SND.MAX
    assert sb.update(5000, 6000, [(5500, 5400)]) == 0  # reversed
    assert sb.update(5000, 6000, [(4900, 5100)]) == 100  # straddles SND.UNA: clipped
    assert sb.blocks() == [(5000, 5100)]


def test_across_the_wrap_and_reset_on_rto() -> None:
    una = M - 150
    sb = Scoreboard(100, una)
    sb.update(una, 250, [(50, 250), ((una + 100) % M, 0)])
    assert sb.blocks() == [(M - 50, 0), (50, 250)]
    assert sb.sacked_bytes == 250
    assert sb.is_lost(una) and sb.is_lost(M - 51)
    assert not sb.is_lost(10)  # only 200 bytes, one range above it
    sb.reset()
    assert sb.sacked_bytes == 0 and sb.blocks() == [] and not sb.in_recovery
    assert sb.recovery_point == 250
    assert sb.pipe() == 400


def test_rescue_retransmission_once_per_recovery() -> None:
    sb = Scoreboard(100, 0)
    sb.update(0, 1000, [(100, 200), (300, 400), (500, 600)])
    assert sb.enter_recovery() == (0, 100)
    # Two ranges and 200 bytes above [200, 300) and [400, 500): not lost, so rule 3.
    assert not sb.is_lost(200) and not sb.is_lost(400)
    assert sb.next_seg(0) == (200, 100)
    assert sb.next_seg(0) == (400, 100)
    assert sb.next_seg(0) is None  # RescueRxt is past the first retransmission
    sb.update(150, 1000, ())  # the first retransmission is acknowledged
    assert sb.next_seg(0) == (900, 100)  # rescue: the highest unSACKed byte, 999
    assert sb.next_seg(0) is None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Scoreboard(0, 0)
    with pytest.raises(ValueError):
        Scoreboard(100, 0, dup_thresh=0)


def test_an_unused_scoreboard_holds_no_lists() -> None:
    assert bytes_beyond_itself(lambda: Scoreboard(SMSS, 0)) < NOTHING  # most connections never get a SACK block


def test_a_scoreboard_first_used_behaves_as_always() -> None:
    sb = Scoreboard(100, 1000)
    assert sb.blocks() == [] and not sb.is_sacked(1000) and not sb.is_lost(1000)
    sb.reset()  # an RTO before any SACK block
    assert sb.update(1000, 2000, ()) == 0 and sb.pipe() == 1000 and sb.blocks() == []
    assert sb.update(1000, 2000, [(1500, 1600)]) == 100
    assert sb.blocks() == [(1500, 1600)] and sb.is_sacked(1550) and sb.pipe() == 900
    sb.reset()  # forgets the block; the next one is taken as the first
    assert sb.blocks() == [] and sb.sacked_bytes == 0
    assert sb.update(1000, 2000, [(1200, 1300), (1700, 1800)]) == 200
    assert sb.blocks() == [(1200, 1300), (1700, 1800)]
