"""Sequence-number arithmetic modulo 2**32 (RFC 9293 §3.4).

The TCP engine does its sequence arithmetic through these. Each is one expression with
literal constants (a literal is a constant load; a module global is a dictionary lookup),
so a call costs the call and nothing more; docs/performance.md has what that costs.

Ordering follows Linux's `before()`/`after()`: `a` precedes `b` when the signed 32-bit
difference `a - b` is negative. `seq_lt` and `seq_ge` are exact complements and
`seq_gt(a, b) == seq_lt(b, a)`. Two numbers exactly 2**31 apart are each "less" than
the other: no comparison is meaningful there, and TCP never compares numbers that far
apart because windows are at most 2**30 bytes (RFC 7323 §2.3).

The window tests (`seq_between`, `seq_in_window`) use the unsigned distance from the
window's start instead, which is exact for any span below 2**32.
"""

from __future__ import annotations

SEQ_MOD = 1 << 32
SEQ_MASK = 0xFFFFFFFF


def seq_lt(a: int, b: int) -> bool:
    """a < b in sequence space."""
    return ((a - b) & 0xFFFFFFFF) >= 0x80000000


def seq_le(a: int, b: int) -> bool:
    """a <= b in sequence space."""
    return ((b - a) & 0xFFFFFFFF) < 0x80000000


def seq_gt(a: int, b: int) -> bool:
    """a > b in sequence space."""
    return ((b - a) & 0xFFFFFFFF) >= 0x80000000


def seq_ge(a: int, b: int) -> bool:
    """a >= b in sequence space."""
    return ((a - b) & 0xFFFFFFFF) < 0x80000000


def seq_add(a: int, n: int) -> int:
    """a + n wrapped to 32 bits (n may be negative)."""
    return (a + n) & 0xFFFFFFFF


def seq_offset(a: int, base: int) -> int:
    """How far `a` lies past `base`, in [0, 2**32): an offset into a window or buffer starting at `base`."""
    return (a - base) & 0xFFFFFFFF


def seq_sub(a: int, b: int) -> int:
    """The signed distance a - b, in [-2**31, 2**31)."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def seq_between(a: int, x: int, b: int) -> bool:
    """a <= x < b: x lies in the half-open range that starts at a and ends before b.

    Half-open because that is the shape of every TCP window (RFC 9293 §3.10.7.4:
    RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND). An empty range (a == b) holds nothing.
    """
    return ((x - a) & 0xFFFFFFFF) < ((b - a) & 0xFFFFFFFF)


def seq_within(a: int, x: int, b: int) -> bool:
    """a <= x <= b: the closed form, for tests like SND.UNA =< SEG.ACK =< SND.NXT."""
    return ((x - a) & 0xFFFFFFFF) <= ((b - a) & 0xFFFFFFFF)


def seq_in_window(x: int, start: int, length: int) -> bool:
    """start <= x < start + length, for a window given by its length (0 <= length < 2**32)."""
    return ((x - start) & 0xFFFFFFFF) < length


def seq_max(a: int, b: int) -> int:
    """The later of a and b in sequence space."""
    return b if ((a - b) & 0xFFFFFFFF) >= 0x80000000 else a


def seq_min(a: int, b: int) -> int:
    """The earlier of a and b in sequence space."""
    return a if ((a - b) & 0xFFFFFFFF) >= 0x80000000 else b


def seq_unwrap(seq: int, ref_seq: int, ref_pos: int) -> int:
    """The unbounded stream position of `seq`, given that `ref_seq` sits at `ref_pos`.

    Queues that sort by sequence number (reassembly, the SACK scoreboard) keep plain
    integers that never wrap, so they can use `bisect`; this maps a 32-bit number onto
    them. Exact while `seq` is within 2**31 of `ref_seq`.
    """
    return ref_pos + ((seq - ref_seq + 0x80000000) & 0xFFFFFFFF) - 0x80000000
