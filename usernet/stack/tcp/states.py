"""The TCP connection states (RFC 9293 §3.3.2) and every transition the engine makes.

`TRANSITIONS` is the state diagram as data: the engine checks each state change
against it (so the table cannot drift from the code), and `as_markdown()` renders
it for the documentation.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class State(enum.IntEnum):
    CLOSED = 0
    LISTEN = 1
    SYN_SENT = 2
    SYN_RECEIVED = 3
    ESTABLISHED = 4
    FIN_WAIT_1 = 5
    FIN_WAIT_2 = 6
    CLOSE_WAIT = 7
    CLOSING = 8
    LAST_ACK = 9
    TIME_WAIT = 10


class Transition(NamedTuple):
    source: State
    event: str
    action: str
    target: State


S = State
TRANSITIONS: tuple[Transition, ...] = (
    Transition(S.CLOSED, "connect()", "send SYN", S.SYN_SENT),
    Transition(S.LISTEN, "SYN received", "send SYN-ACK (or a SYN cookie when the SYN queue is full)", S.SYN_RECEIVED),
    Transition(S.LISTEN, "ACK carrying a valid SYN cookie", "create the connection", S.ESTABLISHED),
    Transition(S.SYN_SENT, "SYN-ACK acknowledging our SYN", "send ACK", S.ESTABLISHED),
    Transition(S.SYN_SENT, "SYN without ACK (simultaneous open)", "send SYN-ACK", S.SYN_RECEIVED),
    Transition(S.SYN_SENT, "acceptable RST", "error ECONNREFUSED", S.CLOSED),
    Transition(S.SYN_SENT, "SYN retransmissions exhausted", "error ETIMEDOUT", S.CLOSED),
    Transition(S.SYN_SENT, "ICMP unreachable", "error from the ICMP code", S.CLOSED),
    Transition(S.SYN_SENT, "close() or abort()", "forget", S.CLOSED),
    Transition(S.SYN_RECEIVED, "ACK of our SYN", "queue for accept() / wake connect()", S.ESTABLISHED),
    Transition(S.SYN_RECEIVED, "SYN-ACK acknowledging our SYN (simultaneous open)", "send ACK", S.ESTABLISHED),
    Transition(S.SYN_RECEIVED, "FIN (with the ACK of our SYN)", "send ACK", S.CLOSE_WAIT),
    Transition(S.SYN_RECEIVED, "close() or shutdown()", "send FIN", S.FIN_WAIT_1),
    Transition(S.SYN_RECEIVED, "RST with SEG.SEQ = RCV.NXT", "passive: forget; active: ECONNREFUSED", S.CLOSED),
    Transition(S.SYN_RECEIVED, "SYN-ACK retransmissions exhausted", "forget (ETIMEDOUT)", S.CLOSED),
    Transition(S.SYN_RECEIVED, "abort() or listener closed", "send RST", S.CLOSED),
    Transition(S.ESTABLISHED, "close() or shutdown()", "send FIN after queued data", S.FIN_WAIT_1),
    Transition(S.ESTABLISHED, "FIN", "send ACK, EOF to the reader", S.CLOSE_WAIT),
    Transition(S.ESTABLISHED, "RST with SEG.SEQ = RCV.NXT", "error ECONNRESET", S.CLOSED),
    Transition(S.ESTABLISHED, "retransmissions, keepalives or user timeout exhausted", "send RST, ETIMEDOUT", S.CLOSED),
    Transition(S.ESTABLISHED, "close() with unread data, or abort()", "send RST", S.CLOSED),
    Transition(S.FIN_WAIT_1, "ACK of our FIN", "", S.FIN_WAIT_2),
    Transition(S.FIN_WAIT_1, "FIN, ours not yet acknowledged (simultaneous close)", "send ACK", S.CLOSING),
    Transition(S.FIN_WAIT_1, "FIN acknowledging our FIN", "send ACK, start 2*MSL", S.TIME_WAIT),
    Transition(S.FIN_WAIT_1, "RST, timeout, abort() or data after close()", "error / send RST", S.CLOSED),
    Transition(S.FIN_WAIT_2, "FIN", "send ACK, start 2*MSL", S.TIME_WAIT),
    Transition(
        S.FIN_WAIT_2, "RST, fin_timeout after close(), abort() or data after close()", "error / send RST", S.CLOSED
    ),
    Transition(S.CLOSE_WAIT, "close() or shutdown()", "send FIN after queued data", S.LAST_ACK),
    Transition(S.CLOSE_WAIT, "RST, timeout or abort()", "error / send RST", S.CLOSED),
    Transition(S.CLOSING, "ACK of our FIN", "start 2*MSL", S.TIME_WAIT),
    Transition(S.CLOSING, "RST, timeout or abort()", "", S.CLOSED),
    Transition(S.LAST_ACK, "ACK of our FIN", "forget", S.CLOSED),
    Transition(S.LAST_ACK, "RST, timeout or abort()", "", S.CLOSED),
    Transition(S.TIME_WAIT, "2*MSL elapsed, RST, or a new SYN reusing the pair", "forget", S.CLOSED),
)

ALLOWED: frozenset[tuple[State, State]] = frozenset((t.source, t.target) for t in TRANSITIONS)

# States in which both sequence spaces are known (RFC 9293 §3.5.2).
SYNCHRONIZED = frozenset((S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK, S.TIME_WAIT))


def as_markdown() -> str:
    """The transition table as a Markdown table, for the documentation."""
    lines = ["| from | event | action | to |", "|---|---|---|---|"]
    for t in TRANSITIONS:
        lines.append(f"| {t.source.name} | {t.event} | {t.action or '—'} | {t.target.name} |")
    return "\n".join(lines)
