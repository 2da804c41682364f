"""Every row of the state table is a path the engine takes, and nothing else is.

The coverage test records each transition the connections make (through the one function
that changes state) while the drill scripts and the scenarios below run, then asks for
every row of `states.TRANSITIONS`: a row nothing reaches is dead and must go, a path the
table lacks raises TransitionError and fails the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import usernet.stack.tcp.core as core
from tests.drill.test_runner import profile_of
from tests.tcp import test_segments as segments
from tests.tcp.scripted import PEER, PEER_ISN, PEER_PORT, PORT, SYN_OPTIONS, Scripted
from usernet.stack import TcpConfig, TcpConnection
from usernet.stack.tcp.states import TRANSITIONS, Event, State, Transition, TransitionError, transition
from usernet.testing.drill.runner import run_file
from usernet.wire.tcp import ACK, FIN, RST, SYN

DRILL = Path(__file__).resolve().parents[1] / "drill"


def test_a_change_the_table_lacks_raises() -> None:
    with pytest.raises(TransitionError, match="CLOSED -> CLOSE_WAIT on FIN"):
        transition(State.CLOSED, Event.FIN, State.CLOSE_WAIT)
    with pytest.raises(TransitionError, match="ESTABLISHED -> TIME_WAIT on FIN"):
        transition(State.ESTABLISHED, Event.FIN, State.TIME_WAIT)  # the row exists, but leads elsewhere
    assert transition(State.ESTABLISHED, Event.FIN, State.CLOSE_WAIT).target is State.CLOSE_WAIT


def test_the_connections_fast_check_is_the_table() -> None:
    """`_set_state` checks a set made from the table: exactly its rows, each event of each."""
    rows = {(row.source, event, row.target) for row in TRANSITIONS for event in row.events}
    assert rows == core._ALLOWED
    assert (State.CLOSED, Event.FIN, State.CLOSE_WAIT) not in core._ALLOWED


# -- scenarios for the rows the drill scripts do not reach ------------------------------------


def embryo(s: Scripted) -> None:
    """A peer's SYN to a listener, answered: one connection in SYN_RECEIVED."""
    s.iface.tcp.listen((bytes(4), PORT))
    s.inject(PEER_ISN, 0, SYN, options=SYN_OPTIONS)
    s.flush()


def syn_received_reset() -> None:
    s = Scripted()
    embryo(s)
    s.inject(PEER_ISN + 1, 0, RST)
    assert s.iface.tcp.connections() == []


def syn_received_listener_closed() -> None:
    s = Scripted()
    embryo(s)
    (listener,) = s.iface.tcp.listeners()
    listener.close(s.now)
    (rst,) = s.flush()
    assert rst.flags & RST and s.iface.tcp.connections() == []


def syn_received_timeout() -> None:
    s = Scripted(TcpConfig(synack_retries=2))
    embryo(s)
    s.advance(60.0)
    assert s.iface.tcp.connections() == []


def simultaneous_open() -> tuple[Scripted, TcpConnection]:
    s = Scripted()
    conn = s.iface.tcp.connect((PEER, PEER_PORT), s.now, local=(bytes(4), PORT))
    s.flush()
    s.inject(PEER_ISN, 0, SYN, options=SYN_OPTIONS)
    assert conn.state == State.SYN_RECEIVED
    return s, conn


def syn_received_shutdown() -> None:
    s, conn = simultaneous_open()
    conn.shutdown(s.now)
    assert conn.state == State.FIN_WAIT_1


def established() -> tuple[Scripted, TcpConnection, int]:
    s = Scripted()
    conn, synack = s.accept_handshake(b"")
    return s, conn, synack.seq + 1


def fin_wait_1_abort() -> None:
    s, conn, _ = established()
    conn.shutdown(s.now)
    s.flush()
    assert conn.state == State.FIN_WAIT_1
    conn.abort(s.now)
    assert conn.state == State.CLOSED


def close_wait(s: Scripted, conn: TcpConnection, iss1: int) -> None:
    s.inject(PEER_ISN + 1, iss1, ACK | FIN)
    s.flush()
    assert conn.state == State.CLOSE_WAIT


def close_wait_reset() -> None:
    s, conn, iss1 = established()
    close_wait(s, conn, iss1)
    s.inject(PEER_ISN + 2, 0, RST)
    assert conn.state == State.CLOSED


def last_ack_timeout() -> None:
    s, conn, iss1 = established()
    close_wait(s, conn, iss1)
    conn.close(s.now)
    s.flush()
    assert conn.state == State.LAST_ACK
    s.advance(1000.0)  # the FIN is never acknowledged: retransmissions run out
    assert conn.state == State.CLOSED


def closing_abort() -> None:
    s, conn, _ = established()
    conn.shutdown(s.now)
    s.flush()
    s.inject(PEER_ISN + 1, 0, FIN)  # their FIN crosses ours, without acknowledging it
    s.inject(PEER_ISN + 1, conn.snd_una, ACK | FIN)
    assert conn.state == State.CLOSING
    conn.abort(s.now)
    assert conn.state == State.CLOSED


SCENARIOS: list[Callable[[], object]] = [
    syn_received_reset,
    syn_received_listener_closed,
    syn_received_timeout,
    syn_received_shutdown,
    fin_wait_1_abort,
    close_wait_reset,
    last_ack_timeout,
    closing_abort,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_scenario(scenario: Callable[[], object]) -> None:
    scenario()


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[Transition]]:
    """The rows taken while the fixture is active, recorded where connections change state."""
    seen: set[Transition] = set()

    def recording(state: State, event: Event, target: State) -> Transition:
        row = transition(state, event, target)
        seen.add(row)
        return row

    monkeypatch.setattr(core, "transition", recording)
    monkeypatch.setattr(core, "_ALLOWED", frozenset())  # every change asks `transition`, not the fast set
    yield seen


def test_every_row_of_the_table_is_taken(recorded: set[Transition]) -> None:
    for script in sorted((DRILL / "tcp").glob("*.pkt")):
        if "// xfail:" not in script.read_text():
            run_file(script, profile=profile_of(script))
    # Rows that other tests of this suite reach, run here again under the recorder.
    also = [
        segments.test_syn_cookie_completes_a_handshake_without_state,
        segments.test_syn_retransmissions_back_off_and_time_out,
        segments.test_icmp_port_unreachable_aborts_a_connect,
    ]
    for scenario in SCENARIOS + also:
        scenario()
    missing = [f"{row.source.name} --{row.event}--> {row.target.name}" for row in TRANSITIONS if row not in recorded]
    assert missing == [], "rows no run reached: " + "; ".join(missing)
