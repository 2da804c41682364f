"""Sequence arithmetic against an unwrapped model, across the 2**32 wrap."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from usernet.stack.tcp.seq import (
    seq_add,
    seq_between,
    seq_ge,
    seq_gt,
    seq_in_window,
    seq_le,
    seq_lt,
    seq_max,
    seq_min,
    seq_sub,
    seq_unwrap,
    seq_within,
)

M = 1 << 32
u32 = st.integers(0, M - 1)
# Numbers near the wrap are where bugs live: draw them often.
near_wrap = st.integers(M - 5000, M - 1) | st.integers(0, 5000)
seqs = u32 | near_wrap
deltas = st.integers(-(1 << 31) + 1, (1 << 31) - 1)  # distances where order is defined

fast = settings(max_examples=300, deadline=None)


@fast
@given(seqs, deltas)
def test_order_follows_the_signed_distance(a: int, d: int) -> None:
    b = (a + d) % M  # b is d after a
    assert seq_lt(a, b) == (d > 0)
    assert seq_le(a, b) == (d >= 0)
    assert seq_gt(a, b) == (d < 0)
    assert seq_ge(a, b) == (d <= 0)
    assert seq_sub(b, a) == d
    assert seq_sub(a, b) == -d


@fast
@given(seqs, seqs)
def test_complements_and_mirrors_hold_everywhere(a: int, b: int) -> None:
    assert seq_lt(a, b) != seq_ge(a, b)
    assert seq_gt(a, b) != seq_le(a, b)
    assert seq_gt(a, b) == seq_lt(b, a)
    assert seq_le(a, b) == seq_ge(b, a)
    assert -(1 << 31) <= seq_sub(a, b) < (1 << 31)
    assert seq_add(b, seq_sub(a, b)) == a


@fast
@given(seqs, seqs, seqs)
def test_order_is_invariant_under_translation(a: int, b: int, shift: int) -> None:
    assert seq_lt(a, b) == seq_lt((a + shift) % M, (b + shift) % M)
    assert seq_sub(a, b) == seq_sub((a + shift) % M, (b + shift) % M)


def test_wrap_examples() -> None:
    assert seq_lt(0xFFFFFFF0, 0x10)
    assert seq_gt(0x10, 0xFFFFFFF0)
    assert seq_add(0xFFFFFFFF, 1) == 0
    assert seq_add(0, -1) == 0xFFFFFFFF
    assert seq_sub(0x10, 0xFFFFFFF0) == 0x20
    assert seq_max(0xFFFFFFF0, 0x10) == 0x10
    assert seq_min(0xFFFFFFF0, 0x10) == 0xFFFFFFF0


def test_half_way_round_is_less_both_ways_like_linux() -> None:
    assert seq_lt(0, 1 << 31) and seq_lt(1 << 31, 0)
    assert seq_sub(1 << 31, 0) == -(1 << 31)


@fast
@given(seqs, st.integers(0, M - 1), st.integers(0, M - 1))
def test_windows_against_the_unwrapped_model(start: int, length: int, offset: int) -> None:
    x = (start + offset) % M
    end = (start + length) % M
    assert seq_between(start, x, end) == (offset < length)
    assert seq_within(start, x, end) == (offset <= length)
    assert seq_in_window(x, start, length) == (offset < length)


@fast
@given(seqs, deltas)
def test_max_and_min_pick_by_sequence_order(a: int, d: int) -> None:
    b = (a + d) % M
    assert seq_max(a, b) == (b if d > 0 else a)
    assert seq_min(a, b) == (a if d > 0 else b)


@fast
@given(seqs, st.integers(-(1 << 40), 1 << 40), st.integers(-(1 << 31), (1 << 31) - 1))
def test_unwrap_recovers_the_position(ref: int, ref_pos: int, d: int) -> None:
    assert seq_unwrap((ref + d) % M, ref, ref_pos) == ref_pos + d
