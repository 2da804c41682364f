"""Proportional Rate Reduction (RFC 6937, PRR-SSRB): how much to send per ACK in SACK recovery.

Without it, entering recovery sets cwnd to ssthresh at once: nothing goes out until the
pipe has drained below the new window, then a burst. PRR spreads the reduction over the
round trip instead, sending ssthresh/RecoverFS of what each ACK reports delivered while
the pipe is above ssthresh, and, once it is below (more was lost than the cut), growing
back towards ssthresh by at most what was delivered plus one segment (slow-start
reduction bound). The caller turns the allowance into a window: cwnd = pipe + sndcnt,
as Linux's tcp_cwnd_reduction does, so the sending loop stays the RFC 6675 one.
"""

from __future__ import annotations

from usernet.stack.tcp.frozen import Freezable


class Prr(Freezable):
    """prr_delivered, prr_out and RecoverFS of the current recovery (RFC 6937 §3)."""

    __slots__ = ("delivered", "out", "recover_fs")
    FROZEN = __slots__

    def __init__(self) -> None:
        self.delivered = 0
        self.out = 0
        self.recover_fs = 1

    def start(self, flight_size: int) -> None:
        """Recovery begins with `flight_size` bytes outstanding (RecoverFS)."""
        self.delivered = 0
        self.out = 0
        self.recover_fs = flight_size if flight_size > 0 else 1

    def sndcnt(self, delivered: int, pipe: int, ssthresh: int, smss: int) -> int:
        """Bytes that may be sent on this ACK, which reported `delivered` bytes delivered."""
        self.delivered += delivered
        if pipe > ssthresh:  # proportional part
            n = -(-self.delivered * ssthresh // self.recover_fs) - self.out
        else:  # slow-start reduction bound
            limit = self.delivered - self.out
            if limit < delivered:
                limit = delivered
            n = min(ssthresh - pipe, limit + smss)
        if n <= 0:
            n = 0 if self.out else smss  # the fast retransmit always goes (RFC 6937 §3.1)
        return n
