"""Receive-buffer autotuning: Linux's dynamic right-sizing (tcp_rcv_space_adjust).

A fixed receive buffer caps a connection at one buffer per round trip: 256 KiB over a
50 ms simulated WAN is 5 MB/s whatever the link carries, and even on a TAP the
sender waits for the window a good part of the time, since the receiver reads and
ACKs in batches. Linux grows each connection's buffer toward twice what the user
read in the last receiver RTT (plus growth when that rose), up to `tcp_rmem[2]`
(6 MiB), unless the program set SO_RCVBUF. usernet does the same, with two
differences that keep it off the per-segment path: both measurements run when the
user has read (at the next flush), not as each segment arrives, and the receiver's
RTT is Linux's timestamp-free estimate (the least time one advertised window took to
arrive, tcp_rcv_rtt_measure) even when timestamps are on, since usernet's TSval ticks
in milliseconds, coarser than a TAP's round trip.
"""

from __future__ import annotations

_MASK = 0xFFFFFFFF
_INIT_CWND = 10  # Linux's TCP_INIT_CWND: the first measurement's space is ten segments


class ReceiveSpace:
    """What one connection's autotuning measures: bytes read per receiver RTT, and that RTT."""

    __slots__ = ("rtt", "rtt_seq", "rtt_time", "seq", "space", "time")

    def __init__(self, copied_seq: int, rcv_nxt: int, window: int, advmss: int, now: float) -> None:
        self.space = min(window, _INIT_CWND * advmss) or advmss  # tcp_init_buffer_space
        self.seq = copied_seq  # where the user's reads stood when this measurement began
        self.time = now
        self.rtt = 0.0  # the receiver's RTT: none until one window has arrived
        self.rtt_seq = (rcv_nxt + max(window, advmss)) & _MASK
        self.rtt_time = now

    def adjust(
        self, copied_seq: int, rcv_nxt: int, window: int, advmss: int, limit: int, ceiling: int, now: float
    ) -> int:
        """The receive buffer once the user has read up to `copied_seq`: `limit`, or more (at most `ceiling`).

        `window` is what the last ACK offered beyond `rcv_nxt`, `advmss` our MSS.
        """
        if (rcv_nxt - self.rtt_seq) & _MASK < 0x80000000:  # seq_ge: the window it waited for arrived
            sample = now - self.rtt_time
            if sample > 0 and (not self.rtt or sample < self.rtt):
                self.rtt = sample
            self.rtt_seq = (rcv_nxt + max(window, advmss)) & _MASK
            self.rtt_time = now
        rtt = self.rtt
        if not rtt or now - self.time < rtt:
            return limit
        copied = (copied_seq - self.seq) & _MASK
        space = self.space
        if copied > space:
            rcvwin = 2 * copied + 16 * advmss
            rcvwin += 2 * (rcvwin * (copied - space) // space)  # more, when the rate rose
            if rcvwin > ceiling:
                rcvwin = ceiling
            if rcvwin > limit:
                limit = rcvwin
            self.space = copied
        self.seq = copied_seq
        self.time = now
        return limit
