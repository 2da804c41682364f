"""The out-of-order queue: segments that arrived beyond RCV.NXT, kept until the hole
before them is filled, and the source of the SACK blocks the receiver reports.

The interface speaks absolute 32-bit sequence numbers. Inside, each number is unwrapped
(`seq_unwrap`) to an unbounded integer position around an anchor, so the blocks are
plain sorted integer ranges that `bisect` can search and that never wrap. That is
exact while everything held lies within 2**31 of RCV.NXT, which the receive window
(at most 2**30, RFC 7323) guarantees.

Contract with the caller: trim every segment to the receive window before `insert`
(RFC 9293 §3.10.7.4), deliver in-order data itself, and call `pop_ready` each time
RCV.NXT advances, which also discards anything left behind it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from heapq import nlargest
from typing import Any

from usernet.stack.tcp.buffers import UNUSED
from usernet.stack.tcp.frozen import Freezable, MigrationError, field
from usernet.stack.tcp.seq import seq_add, seq_unwrap


class Reassembly(Freezable):
    """Disjoint, non-touching blocks of received data ahead of RCV.NXT, bounded in bytes.

    Overlapping or adjacent segments merge into one block as they arrive, so each block
    is exactly one SACK block. When a segment brings more new bytes than `limit` leaves
    room for, the new bytes of lowest sequence are kept (they are the ones closest to
    being delivered), the rest are dropped and counted in `dropped`.
    """

    __slots__ = (
        "_data",
        "_ends",
        "_ref_pos",
        "_ref_seq",
        "_stamp",
        "_stamps",
        "_starts",
        "dropped",
        "held",
        "limit",
    )
    FROZEN = ("dropped", "limit")
    # Frozen as `segments`, each block as (sequence number, bytes), oldest-touched first, so
    # that the SACK blocks come out in the same recency order after a thaw.
    NOT_FROZEN = ("_data", "_ends", "_ref_pos", "_ref_seq", "_stamp", "_stamps", "_starts", "held")

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"reassembly limit must not be negative, got {limit}")
        self.limit = limit
        self.dropped = 0  # new bytes refused for lack of room, since creation
        # Made by the first segment out of order: most connections never see one.
        self._starts: list[int] = UNUSED  # block i holds positions [_starts[i], _ends[i])
        self._ends: list[int] = UNUSED
        self._data: list[bytearray] = UNUSED
        self._stamps: list[int] = UNUSED  # when each block last received a segment
        self._stamp = 0
        self.held = 0  # bytes held, also len(self): the per-segment checks read the attribute, no call
        self._ref_seq = 0  # sequence number that sits at position _ref_pos
        self._ref_pos = 0

    def __len__(self) -> int:
        """Bytes held."""
        return self.held

    def insert(self, seq: int, data: bytes | bytearray | memoryview) -> bool:
        """Keep a segment that starts at `seq`; False if some of its new bytes did not fit.

        Bytes already held are not new, so a duplicate always fits and returns True.
        """
        n = len(data)
        if not n:
            return True
        starts = self._starts
        ends = self._ends
        if starts:
            s = seq_unwrap(seq, self._ref_seq, self._ref_pos)
        else:
            self._ref_seq = seq
            self._ref_pos = s = 0
            if starts is UNUSED:
                starts, ends = self._starts, self._ends = [], []
                self._data, self._stamps = [], []
        e = s + n
        self._stamp += 1
        stamp = self._stamp
        if starts and s == ends[-1] and n <= self.limit - self.held:
            # The usual case during a loss: the next segment after the last block.
            self._data[-1] += data
            ends[-1] = e
            self._stamps[-1] = stamp
            self.held += n
            return True
        i = bisect_left(ends, s)  # first block that ends at or after s: it may touch
        j = bisect_right(starts, e)  # blocks i..j-1 overlap or touch [s, e)
        covered = 0
        for k in range(i, j):
            lo = starts[k] if starts[k] > s else s
            hi = ends[k] if ends[k] < e else e
            if hi > lo:
                covered += hi - lo
        new = n - covered
        room = self.limit - self.held
        complete = True
        if new > room:
            complete = False
            budget = room if room > 0 else 0
            self.dropped += new - budget
            e = self._cut(s, e, i, j, budget)
            if e <= s:
                return False
            j = bisect_right(starts, e)
            new = budget
        self.held += new
        mv = memoryview(data)
        data_list = self._data
        stamps = self._stamps
        if i == j:
            starts.insert(i, s)
            ends.insert(i, e)
            data_list.insert(i, bytearray(mv[: e - s]))
            stamps.insert(i, stamp)
            return complete
        if starts[i] <= s:
            buf = data_list[i]  # grows in place: the usual case of a segment after a block
        else:
            buf = bytearray(mv[: starts[i] - s])
            buf += data_list[i]
        cur = ends[i]
        for k in range(i + 1, j):
            buf += mv[cur - s : starts[k] - s]
            buf += data_list[k]
            cur = ends[k]
        if e > cur:
            buf += mv[cur - s : e - s]
            cur = e
        if j == i + 1:
            if s < starts[i]:
                starts[i] = s
            ends[i] = cur
            data_list[i] = buf
            stamps[i] = stamp
        else:
            starts[i:j] = [s if s < starts[i] else starts[i]]
            ends[i:j] = [cur]
            data_list[i:j] = [buf]
            stamps[i:j] = [stamp]
        return complete

    def _cut(self, s: int, e: int, i: int, j: int, budget: int) -> int:
        """The end to truncate [s, e) to so that it brings exactly `budget` new bytes."""
        starts = self._starts
        ends = self._ends
        pos = s
        for k in range(i, j):
            gap = (starts[k] if starts[k] < e else e) - pos
            if gap > 0:
                if gap >= budget:
                    return pos + budget
                budget -= gap
            if ends[k] > pos:
                pos = ends[k]
        return pos + budget

    def pop_ready(self, rcv_nxt: int) -> tuple[bytes | bytearray, int]:
        """The held data that now continues the stream at `rcv_nxt`, and the new RCV.NXT.

        Returns `(b"", rcv_nxt)` when the next byte is still missing. The data is a
        bytes-like object that the caller now owns. Blocks wholly behind `rcv_nxt` are
        dropped; a block that straddles it is trimmed.
        """
        starts = self._starts
        if not starts:
            return b"", rcv_nxt
        ends = self._ends
        p = seq_unwrap(rcv_nxt, self._ref_seq, self._ref_pos)
        k = 0
        while k < len(starts) and ends[k] <= p:
            self.held -= ends[k] - starts[k]
            k += 1
        if k:
            del starts[:k], ends[:k], self._data[:k], self._stamps[:k]
        if not starts or starts[0] > p:
            return b"", rcv_nxt
        buf = self._data[0]
        if p > starts[0]:
            del buf[: p - starts[0]]
        self.held -= ends[0] - starts[0]
        end = ends[0]
        del starts[0], ends[0], self._data[0], self._stamps[0]
        new_nxt = seq_add(rcv_nxt, end - p)
        self._ref_seq = new_nxt
        self._ref_pos = end
        return buf, new_nxt

    def freeze(self, now: float) -> dict[str, Any]:
        base = self._ref_seq - self._ref_pos
        order = sorted(range(len(self._starts)), key=self._stamps.__getitem__)
        segments = [[seq_add(base, self._starts[i]), bytes(self._data[i])] for i in order]
        return {"dropped": self.dropped, "limit": self.limit, "segments": segments}

    @classmethod
    def thaw(cls, state: dict[str, Any], now: float) -> Reassembly:
        ooo = cls(field(state, "limit", int, "Reassembly"))
        for segment in field(state, "segments", list, "Reassembly"):
            if not (len(segment) == 2 and isinstance(segment[0], int) and isinstance(segment[1], bytes)):
                raise MigrationError("a frozen out-of-order segment is not (sequence, bytes): the blob is damaged")
            ooo.insert(segment[0] & 0xFFFFFFFF, segment[1])
        ooo.dropped = field(state, "dropped", int, "Reassembly")
        return ooo

    def sack_blocks(self, max_blocks: int = 4, most_recent_first: bool = True) -> list[tuple[int, int]]:
        """Up to `max_blocks` (left edge, right edge) sequence pairs for a SACK option.

        With `most_recent_first`, the order RFC 2018 §4 asks for: the block holding the
        segment received last comes first, then the others by how recently each last
        grew, so that every block is repeated in several successive ACKs before a newer
        one pushes it out. Otherwise, the lowest blocks in sequence order.
        """
        starts = self._starts
        count = len(starts)
        if not count or max_blocks <= 0:
            return []
        order: Iterable[int]
        if most_recent_first:
            stamps = self._stamps
            order = nlargest(max_blocks, range(count), key=stamps.__getitem__)
        else:
            order = range(min(count, max_blocks))
        ends = self._ends
        base = self._ref_seq - self._ref_pos
        return [(seq_add(base, starts[i]), seq_add(base, ends[i])) for i in order]
