"""The self-contained parts of the TCP engine, each free of I/O and clocks.

Sequence arithmetic (`seq`), the send and receive byte queues (`buffers`), the
out-of-order queue that also yields SACK blocks (`reassembly`), the sender's SACK
scoreboard for RFC 6675 loss recovery (`scoreboard`), the RTO estimator and timestamp
clock (`rtt`), congestion control (`congestion`), and ISNs and SYN cookies (`isn`).
The state machine builds on these; time is always a `now: float` in seconds handed in.
"""

from usernet.stack.tcp.buffers import ReceiveBuffer, SendBuffer
from usernet.stack.tcp.congestion import CongestionControl, Cubic, NewReno, initial_window
from usernet.stack.tcp.isn import IsnGenerator, SynCookies
from usernet.stack.tcp.reassembly import Reassembly
from usernet.stack.tcp.rtt import RttEstimator, TimestampClock
from usernet.stack.tcp.scoreboard import Scoreboard
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
    seq_offset,
    seq_sub,
    seq_unwrap,
    seq_within,
)

__all__ = [
    "CongestionControl",
    "Cubic",
    "IsnGenerator",
    "NewReno",
    "Reassembly",
    "ReceiveBuffer",
    "RttEstimator",
    "Scoreboard",
    "SendBuffer",
    "SynCookies",
    "TimestampClock",
    "initial_window",
    "seq_add",
    "seq_between",
    "seq_ge",
    "seq_gt",
    "seq_in_window",
    "seq_le",
    "seq_lt",
    "seq_max",
    "seq_min",
    "seq_offset",
    "seq_sub",
    "seq_unwrap",
    "seq_within",
]
