"""The TCP connection states (RFC 9293 §3.3.2) and every transition the engine makes.

`TRANSITIONS` is the state diagram as data, and the engine's only way to change state:
a connection says which event happened and where it expects to go, `transition` looks
the pair (state, event) up in the table and raises `TransitionError` if the table does
not have it or leads elsewhere — a real error, not an assertion `python -O` removes. So
the table cannot drift from the code, and `as_markdown()` renders it for docs/tcp.md.
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


class Event(enum.Enum):
    """What makes a connection change state. With the state, it picks one row of the table.

    Hashed by identity (members are singletons), in C: Enum's own `__hash__` is a Python
    function, called on every `transition` lookup, five times a connection.
    """

    __hash__ = object.__hash__

    CONNECT = "connect()"
    SYN = "a SYN"
    SYN_ACK = "a SYN-ACK acknowledging our SYN"
    COOKIE_ACK = "an ACK carrying a valid SYN cookie"
    ACK = "the ACK of our SYN or FIN"
    FIN = "the peer's FIN"
    CLOSE = "close() or shutdown()"
    RST = "an acceptable RST"
    TIMEOUT = "a timer ran out"
    ICMP_ERROR = "an ICMP error"
    ABORT = "abort() or a reset of ours"


class Transition(NamedTuple):
    source: State
    events: tuple[Event, ...]
    event: str  # what the events mean in this state, for the documentation
    action: str
    target: State


class TransitionError(RuntimeError):
    """The engine tried a state change the table does not have: a bug in usernet, please report it."""


S = State
E = Event
TRANSITIONS: tuple[Transition, ...] = (
    Transition(S.CLOSED, (E.CONNECT,), "connect()", "send SYN", S.SYN_SENT),
    Transition(
        S.LISTEN, (E.SYN,), "SYN received", "send SYN-ACK (or a SYN cookie when the SYN queue is full)", S.SYN_RECEIVED
    ),
    Transition(S.LISTEN, (E.COOKIE_ACK,), "ACK carrying a valid SYN cookie", "create the connection", S.ESTABLISHED),
    Transition(S.SYN_SENT, (E.SYN_ACK,), "SYN-ACK acknowledging our SYN", "send ACK", S.ESTABLISHED),
    Transition(S.SYN_SENT, (E.SYN,), "SYN without ACK (simultaneous open)", "send SYN-ACK", S.SYN_RECEIVED),
    Transition(S.SYN_SENT, (E.RST,), "acceptable RST", "error ECONNREFUSED", S.CLOSED),
    Transition(S.SYN_SENT, (E.TIMEOUT,), "SYN retransmissions exhausted", "error ETIMEDOUT", S.CLOSED),
    Transition(S.SYN_SENT, (E.ICMP_ERROR,), "ICMP unreachable", "error from the ICMP code", S.CLOSED),
    Transition(S.SYN_SENT, (E.CLOSE, E.ABORT), "close() or abort()", "forget", S.CLOSED),
    Transition(S.SYN_RECEIVED, (E.ACK,), "ACK of our SYN", "queue for accept() / wake connect()", S.ESTABLISHED),
    Transition(
        S.SYN_RECEIVED, (E.SYN_ACK,), "SYN-ACK acknowledging our SYN (simultaneous open)", "send ACK", S.ESTABLISHED
    ),
    Transition(S.SYN_RECEIVED, (E.CLOSE,), "close() or shutdown()", "send FIN", S.FIN_WAIT_1),
    Transition(
        S.SYN_RECEIVED, (E.RST,), "RST with SEG.SEQ = RCV.NXT", "passive: forget; active: ECONNREFUSED", S.CLOSED
    ),
    Transition(S.SYN_RECEIVED, (E.TIMEOUT,), "SYN-ACK retransmissions exhausted", "forget (ETIMEDOUT)", S.CLOSED),
    Transition(S.SYN_RECEIVED, (E.ABORT,), "abort() or listener closed", "send RST", S.CLOSED),
    Transition(
        S.ESTABLISHED,
        (E.CLOSE,),
        "close() or shutdown(), also one made before the handshake completed",
        "send FIN after queued data",
        S.FIN_WAIT_1,
    ),
    Transition(S.ESTABLISHED, (E.FIN,), "FIN", "send ACK, EOF to the reader", S.CLOSE_WAIT),
    Transition(S.ESTABLISHED, (E.RST,), "RST with SEG.SEQ = RCV.NXT", "error ECONNRESET", S.CLOSED),
    Transition(
        S.ESTABLISHED,
        (E.TIMEOUT,),
        "retransmissions, keepalives or user timeout exhausted",
        "send RST, ETIMEDOUT",
        S.CLOSED,
    ),
    Transition(S.ESTABLISHED, (E.ABORT,), "close() with unread data, or abort()", "send RST", S.CLOSED),
    Transition(S.FIN_WAIT_1, (E.ACK,), "ACK of our FIN", "", S.FIN_WAIT_2),
    Transition(S.FIN_WAIT_1, (E.FIN,), "FIN, ours not yet acknowledged (simultaneous close)", "send ACK", S.CLOSING),
    Transition(
        S.FIN_WAIT_1,
        (E.RST, E.TIMEOUT, E.ABORT),
        "RST, timeout, abort() or data after close()",
        "error / send RST",
        S.CLOSED,
    ),
    Transition(S.FIN_WAIT_2, (E.FIN,), "FIN", "send ACK, start 2*MSL", S.TIME_WAIT),
    Transition(
        S.FIN_WAIT_2,
        (E.RST, E.TIMEOUT, E.ABORT),
        "RST, fin_timeout after close(), abort() or data after close()",
        "error / send RST",
        S.CLOSED,
    ),
    Transition(S.CLOSE_WAIT, (E.CLOSE,), "close() or shutdown()", "send FIN after queued data", S.LAST_ACK),
    Transition(S.CLOSE_WAIT, (E.RST, E.TIMEOUT, E.ABORT), "RST, timeout or abort()", "error / send RST", S.CLOSED),
    Transition(S.CLOSING, (E.ACK,), "ACK of our FIN", "start 2*MSL", S.TIME_WAIT),
    Transition(S.CLOSING, (E.RST, E.TIMEOUT, E.ABORT), "RST, timeout or abort()", "", S.CLOSED),
    Transition(S.LAST_ACK, (E.ACK,), "ACK of our FIN", "forget", S.CLOSED),
    Transition(S.LAST_ACK, (E.RST, E.TIMEOUT, E.ABORT), "RST, timeout or abort()", "", S.CLOSED),
    Transition(
        S.TIME_WAIT,
        (E.TIMEOUT, E.RST, E.ABORT),
        "2*MSL elapsed, RST, or a new SYN reusing the pair",
        "forget",
        S.CLOSED,
    ),
)


def _index(rows: tuple[Transition, ...]) -> dict[tuple[State, Event], Transition]:
    table: dict[tuple[State, Event], Transition] = {}
    for row in rows:
        for event in row.events:
            if (row.source, event) in table:
                raise ValueError(f"two rows for {row.source.name} on {event.name}: the table must be a function")
            table[(row.source, event)] = row
    return table


_TABLE = _index(TRANSITIONS)


def transition(state: State, event: Event, target: State) -> Transition:
    """The row for `event` in `state`, which must lead to `target`; TransitionError otherwise."""
    row = _TABLE.get((state, event))
    if row is None or row.target is not target:
        raise TransitionError(
            f"TCP state change {state.name} -> {target.name} on {event.name} ({event.value}) is not in the "
            "state table (usernet/stack/tcp/states.py): this is a bug in usernet, please report it"
        )
    return row


# States in which both sequence spaces are known (RFC 9293 §3.5.2).
SYNCHRONIZED = frozenset((S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK, S.TIME_WAIT))


def as_markdown() -> str:
    """The transition table as a Markdown table, for the documentation."""
    lines = ["| from | event | action | to |", "|---|---|---|---|"]
    for t in TRANSITIONS:
        lines.append(f"| {t.source.name} | {t.event} | {t.action or '—'} | {t.target.name} |")
    return "\n".join(lines)
