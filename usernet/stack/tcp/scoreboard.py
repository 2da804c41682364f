"""The sender's SACK scoreboard and the loss-recovery queries of RFC 6675.

RFC 6675 names bytes inclusively (HighACK is the highest byte acknowledged, HighData
the highest byte sent). Here every edge is exclusive, the way sequence numbers travel
in headers: SND.UNA is the first unacknowledged byte, SND.MAX is one past the highest
byte ever sent, `high_rxt` is one past the highest byte retransmitted in this
recovery. The rules come out the same; for example rule (1.a) "S2 > HighRxt" reads
`s2 >= high_rxt`.

As in the reassembly queue, sequence numbers are unwrapped (`seq_unwrap`) to
unbounded integer positions anchored at SND.UNA, so SACKed ranges are sorted integer
pairs and wrap-around never reaches the arithmetic.

How the state machine drives it (RFC 6675 §5):

    sb.update(snd_una, snd_max, sack_blocks)    # on every ACK
    if not sb.in_recovery and (dupacks >= 3 or sb.is_lost(snd_una)):
        seq, n = sb.enter_recovery()             # (4.1)-(4.3): send this first
    while sb.in_recovery and cc.cwnd - sb.pipe() >= smss:
        seg = sb.next_seg(unsent_in_window)      # (C): commits what it returns
        if seg is None: break
        send(*seg)
    if sb.in_recovery and seq_ge(snd_una, sb.recovery_point): sb.exit_recovery()
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable

from usernet.stack.tcp.buffers import UNUSED
from usernet.stack.tcp.frozen import Freezable
from usernet.stack.tcp.seq import seq_add, seq_unwrap


class Scoreboard(Freezable):
    """SACKed ranges above SND.UNA, plus HighRxt, RescueRxt and RecoveryPoint.

    A SACK block is used only if it ends inside (SND.UNA, SND.MAX]; a block that starts
    below SND.UNA (it covers acknowledged data) is clipped to SND.UNA, and blocks wholly
    at or below SND.UNA (D-SACK, RFC 2883, or stale) or reaching past SND.MAX (data
    never sent) are ignored. A byte that is SACKed is never reported lost.

    `IsLost` follows RFC 6675 §4 with "DupThresh discontiguous SACKed sequences" read
    as DupThresh separate SACKed ranges above the byte; the byte rule (more than
    (DupThresh - 1) * SMSS SACKed bytes above it) covers full-sized segments.
    """

    __slots__ = (
        "_ends",
        "_high_rxt",
        "_max",
        "_rack_lost",
        "_recovery_point",
        "_relost",
        "_rescue_rxt",
        "_starts",
        "_una",
        "_una_seq",
        "dup_thresh",
        "in_recovery",
        "sacked_bytes",
        "smss",
    )
    FROZEN = __slots__  # positions are relative to the anchor (_una_seq at _una), which is frozen too
    FROZEN_DEFAULTS = {"_rack_lost": None, "_relost": None}  # noqa: RUF012  # a ClassVar table, as Freezable's

    def __init__(self, smss: int, snd_una: int, dup_thresh: int = 3, rack: bool = False) -> None:
        if smss <= 0 or dup_thresh <= 0:
            raise ValueError(f"smss and dup_thresh must be positive, got {smss} and {dup_thresh}")
        self.smss = smss
        self.dup_thresh = dup_thresh
        self.sacked_bytes = 0
        self.in_recovery = False
        # SACKed positions [_starts[i], _ends[i]), disjoint, not touching; made by the first SACK block.
        self._starts: list[int] = UNUSED
        self._ends: list[int] = UNUSED
        self._una_seq = snd_una & 0xFFFFFFFF  # SND.UNA, which sits at position _una
        self._una = 0
        self._max = 0  # position of SND.MAX
        self._high_rxt = 0  # position one past the highest retransmitted byte
        self._rescue_rxt: int | None = None
        self._recovery_point: int | None = None
        # With RACK (RFC 8985) loss is decided by time, not by IsLost: unSACKed bytes below
        # this position are lost (`mark_lost`); None keeps RFC 6675's rule.
        self._rack_lost: int | None = 0 if rack else None
        # Retransmissions RACK found lost, to send again before anything else: flat
        # [start, end, start, end...] positions, oldest first; None when there are none.
        self._relost: list[int] | None = None

    def _pos(self, seq: int) -> int:
        return seq_unwrap(seq, self._una_seq, self._una)

    def _seq(self, pos: int) -> int:
        return seq_add(self._una_seq, pos - self._una)

    @property
    def recovery_point(self) -> int | None:
        """SND.MAX when recovery (or the last RTO) began, as a sequence number; None before.

        Kept after recovery ends so the caller can refuse to start a new recovery for
        losses of data sent before it (RFC 6675 §5 (4), RFC 6582 §3.2 step 2).
        """
        rp = self._recovery_point
        return None if rp is None else self._seq(rp)

    @property
    def high_rxt(self) -> int:
        """HighRxt as an exclusive sequence number (SND.UNA when nothing was retransmitted)."""
        return self._seq(self._high_rxt if self._high_rxt > self._una else self._una)

    def blocks(self) -> list[tuple[int, int]]:
        """The SACKed ranges as (left, right) sequence numbers, lowest first."""
        return [(self._seq(s), self._seq(e)) for s, e in zip(self._starts, self._ends, strict=True)]

    def update(self, snd_una: int, snd_max: int, sack_blocks: Iterable[tuple[int, int]]) -> int:
        """Take in one ACK; return how many bytes it SACKed for the first time.

        That count is what RFC 6675 §2's duplicate-ACK definition asks of an ACK
        ("contains SACK blocks that cover previously unSACKed data"). An ACK that moves
        SND.UNA backwards is old and moves nothing.
        """
        una = self._una
        useq = self._una_seq
        off = una - 0x80000000  # seq_unwrap() inlined here too: it runs for every ACK
        mx = off + ((snd_max - useq + 0x80000000) & 0xFFFFFFFF)
        if mx > self._max:
            self._max = mx
        new_una = off + ((snd_una - useq + 0x80000000) & 0xFFFFFFFF)
        if new_una > una:
            if new_una > self._max:
                self._max = new_una
            if self._starts:
                self._advance(new_una)
            self._una_seq = snd_una & 0xFFFFFFFF
            self._una = new_una
        if not sack_blocks:
            return 0
        added = 0
        una = self._una
        mx = self._max
        useq = self._una_seq
        off = una - 0x80000000  # seq_unwrap() inlined, as it runs for every block of every ACK
        for left, right in sack_blocks:
            lo = off + ((left - useq + 0x80000000) & 0xFFFFFFFF)
            hi = off + ((right - useq + 0x80000000) & 0xFFFFFFFF)
            if hi > mx or hi <= una or lo >= hi:
                continue
            added += self._add(lo if lo > una else una, hi)
        return added

    def _advance(self, una: int) -> None:
        """Forget SACK state below the new SND.UNA."""
        starts = self._starts
        ends = self._ends
        k = bisect_right(ends, una)
        removed = 0
        for i in range(k):
            removed += ends[i] - starts[i]
        if k:
            del starts[:k], ends[:k]
        if starts and starts[0] < una:
            removed += una - starts[0]
            starts[0] = una
        self.sacked_bytes -= removed

    def _add(self, lo: int, hi: int) -> int:
        """Mark [lo, hi) SACKed; return how many of its bytes were not already."""
        starts = self._starts
        ends = self._ends
        i = bisect_left(ends, lo)
        if i < len(starts) and starts[i] <= lo and hi <= ends[i]:
            return 0  # already known: receivers repeat blocks in every ACK
        j = bisect_right(starts, hi)
        if i == j:
            if starts is UNUSED:
                starts, ends = self._starts, self._ends = [], []
            starts.insert(i, lo)
            ends.insert(i, hi)
            self.sacked_bytes += hi - lo
            return hi - lo
        old = 0
        for k in range(i, j):
            old += ends[k] - starts[k]
        new_lo = lo if lo < starts[i] else starts[i]
        new_hi = hi if hi > ends[j - 1] else ends[j - 1]
        starts[i:j] = [new_lo]
        ends[i:j] = [new_hi]
        added = new_hi - new_lo - old
        self.sacked_bytes += added
        return added

    def mark_lost(self, seq: int) -> bool:
        """RACK found every unSACKed byte below `seq` lost; True if that is news."""
        p = self._pos(seq)
        lost = self._rack_lost
        if lost is None or p <= lost or p <= self._una:
            return False
        self._rack_lost = p
        return True

    def mark_retransmission_lost(self, seq: int, end: int) -> bool:
        """RACK found the retransmission of [seq, end) lost (RFC 8985 §6.2, as Linux marks
        it): it leaves the pipe and `next_seg` sends it again first. False when none of it
        is outstanding, unSACKed and retransmitted in this recovery."""
        lo = self._pos(seq)
        hi = self._pos(end)
        if lo < self._una:
            lo = self._una
        if hi > self._high_rxt:
            hi = self._high_rxt
        if lo >= hi or self._sacked_within(lo, hi) >= hi - lo:
            return False
        if self._relost is None:
            self._relost = [lo, hi]
        else:
            self._relost += (lo, hi)
        return True

    def _relost_in_pipe(self) -> int:
        """Bytes of lost retransmissions that pipe() would count as in flight."""
        relost = self._relost
        assert relost is not None
        una = self._una
        total = 0
        for i in range(0, len(relost), 2):
            lo = relost[i] if relost[i] > una else una
            hi = relost[i + 1]
            if lo < hi:
                total += hi - lo - self._sacked_within(lo, hi)
        return total

    def _next_relost(self) -> tuple[int, int] | None:
        """The next piece of a lost retransmission to send again: unSACKed, at most SMSS."""
        relost = self._relost
        assert relost is not None
        starts = self._starts
        ends = self._ends
        while relost:
            lo = relost[0] if relost[0] > self._una else self._una
            hi = relost[1]
            i = bisect_right(starts, lo)
            if i and ends[i - 1] > lo:
                lo = ends[i - 1]
            if lo >= hi:
                del relost[:2]
                continue
            end = lo + self.smss if lo + self.smss < hi else hi
            if i < len(starts) and starts[i] < end:
                end = starts[i]
            if end >= hi:
                del relost[:2]
            else:
                relost[0] = end
            return self._seq(lo), end - lo
        self._relost = None
        return None

    def first_sacked(self) -> int | None:
        """The left edge of the lowest SACKed range, or None when nothing is SACKed."""
        return self._seq(self._starts[0]) if self._starts else None

    def _lost_end(self) -> int:
        """Position L such that an unSACKed byte is lost exactly when it lies below L.

        IsLost only grows as the byte moves down (more is SACKed above it), and it can
        change only at the start of a SACKed range; so it is enough to find the highest
        range start that satisfies either rule. At most DupThresh ranges are looked at.
        """
        rack = self._rack_lost
        if rack is not None:
            return rack if rack > self._una else self._una
        starts = self._starts
        ends = self._ends
        k = len(starts)
        dt = self.dup_thresh
        lost = self._una
        stop = -1
        if k >= dt:
            lost = starts[k - dt]
            stop = k - dt - 1  # lower ranges cannot raise L further
        budget = (dt - 1) * self.smss
        total = 0
        for i in range(k - 1, stop, -1):
            total += ends[i] - starts[i]
            if total > budget:
                if starts[i] > lost:
                    lost = starts[i]
                break
        return lost

    def is_sacked(self, seq: int) -> bool:
        """Whether the byte `seq` is covered by a SACK block (SND.UNA and below are not)."""
        p = self._pos(seq)
        i = bisect_right(self._starts, p)
        return i > 0 and self._ends[i - 1] > p

    def is_lost(self, seq: int) -> bool:
        """RFC 6675 IsLost(SeqNum) for an outstanding byte; False if SACKed, acked or unsent."""
        p = self._pos(seq)
        if p < self._una or p >= self._max:
            return False
        i = bisect_right(self._starts, p)
        if i and self._ends[i - 1] > p:
            return False
        return p < self._lost_end()

    def _sacked_within(self, lo: int, hi: int) -> int:
        starts = self._starts
        ends = self._ends
        total = 0
        for i in range(bisect_right(ends, lo), len(starts)):
            s = starts[i]
            if s >= hi:
                break
            e = ends[i]
            total += (e if e < hi else hi) - (s if s > lo else lo)
        return total

    def pipe(self) -> int:
        """RFC 6675 SetPipe(): the sender's estimate of bytes still in the network.

        Each unSACKed byte between SND.UNA and SND.MAX counts once if not lost, and once
        more if it was retransmitted in this recovery (it is below HighRxt).
        """
        una = self._una
        mx = self._max
        if not self._starts:
            rx = self._high_rxt
            return mx - una + (rx - una if rx > una else 0)
        lost = self._lost_end()
        lo = lost if lost > una else una
        total = mx - lo - self._sacked_within(lo, mx)
        rx = self._high_rxt if self._high_rxt < mx else mx
        if rx > una:
            total += rx - una - self._sacked_within(una, rx)
        if self._relost is not None:
            total -= self._relost_in_pipe()
        return total

    def enter_recovery(self) -> tuple[int, int]:
        """Start loss recovery (RFC 6675 §5 steps 4.1 and 4.3).

        Sets RecoveryPoint to SND.MAX and returns (seq, length) of the first segment to
        retransmit: the first unSACKed bytes from SND.UNA, up to SMSS and never into
        SACKed data (length 0 only if every outstanding byte is SACKed). HighRxt and
        RescueRxt are set past it, so `next_seg` does not send it again.
        """
        una = self._una
        self._recovery_point = self._max
        self.in_recovery = True
        starts = self._starts
        lo = self._ends[0] if starts and starts[0] <= una else una
        end = lo + self.smss
        i = bisect_right(starts, lo)
        if i < len(starts) and starts[i] < end:
            end = starts[i]
        if end > self._max:
            end = self._max if self._max > lo else lo
        self._high_rxt = end
        self._rescue_rxt = end
        return self._seq(lo), end - lo

    def exit_recovery(self) -> None:
        """End recovery: the cumulative ACK reached the recovery point."""
        self.in_recovery = False
        self._high_rxt = self._una
        self._rescue_rxt = None
        self._relost = None

    def reset(self) -> None:
        """After a retransmission timeout: forget all SACK information (the receiver may
        have reneged, RFC 2018 §8) and end recovery; RecoveryPoint becomes SND.MAX
        (RFC 6675 §5.1)."""
        self._starts = self._ends = UNUSED
        self.sacked_bytes = 0
        self.in_recovery = False
        self._high_rxt = self._una
        self._rescue_rxt = None
        self._relost = None
        self._recovery_point = self._max
        if self._rack_lost is not None:
            self._rack_lost = self._una

    def forget_recovery_point(self) -> None:
        """The timeout that set RecoveryPoint proved spurious: recovery may start below it."""
        if not self.in_recovery:
            self._recovery_point = None

    def next_seg(self, unsent: int) -> tuple[int, int] | None:
        """RFC 6675 NextSeg(): (seq, length) of the next segment to send, or None.

        `unsent` is how many new bytes may be sent now (unsent data the peer's window
        allows). Rules, in order: (1) the lowest lost unSACKed byte at or above HighRxt;
        (2) new data at SND.MAX; (3) the lowest unSACKed byte at or above HighRxt that
        lies below the highest SACKed byte; (4) once per recovery, a rescue
        retransmission of the highest unSACKed byte (not with RACK). A segment never runs
        into SACKed data and is at most SMSS.

        What is returned is taken as sent: HighRxt (rules 1 and 3), SND.MAX (rule 2) or
        RescueRxt (rule 4) move past it, so `pipe()` counts it at once. Call this only
        when the congestion window has room for the segment.
        """
        if self._relost is not None:  # rule 0 (RFC 8985 §6.2): a retransmission found lost
            seg = self._next_relost()
            if seg is not None:
                return seg
        starts = self._starts
        ends = self._ends
        smss = self.smss
        una = self._una
        lo = una
        hole = -1
        if starts:
            lo = self._high_rxt if self._high_rxt > una else una
            i = bisect_right(starts, lo)
            if i and ends[i - 1] > lo:
                lo = ends[i - 1]
            if i < len(starts):  # lo is below the highest SACKed byte (rule 1.b)
                hole = starts[i] - lo
                if lo < self._lost_end():  # rule 1
                    n = hole if hole < smss else smss
                    self._high_rxt = lo + n
                    return self._seq(lo), n
        if unsent > 0:  # rule 2
            n = unsent if unsent < smss else smss
            start = self._max
            self._max = start + n
            return self._seq(start), n
        if hole > 0:  # rule 3
            n = hole if hole < smss else smss
            self._high_rxt = lo + n
            return self._seq(lo), n
        if self._rack_lost is not None:
            # With RACK no rescue (as Linux): time finds a lost retransmission (rule 0) and
            # the probe a lost tail; a rescue would resend what was resent a moment ago.
            return None
        return self._rescue()

    def _rescue(self) -> tuple[int, int] | None:
        """Rule 4: one segment ending at the highest unSACKed byte, once per recovery."""
        rp = self._recovery_point
        if not self.in_recovery or rp is None:
            return None
        if self._rescue_rxt is not None and self._una <= self._rescue_rxt:
            return None
        starts = self._starts
        ends = self._ends
        top = self._max
        i = len(starts)
        if i and ends[i - 1] >= top:  # SACKed up to SND.MAX: the highest hole is lower
            top = starts[i - 1]
            i -= 1
        bottom = ends[i - 1] if i else self._una
        if top <= bottom:
            return None
        lo = top - self.smss if top - self.smss > bottom else bottom
        self._rescue_rxt = rp
        return self._seq(lo), top - lo
