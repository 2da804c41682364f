"""`input_predicted`, header prediction with the fields `receive_predicted` holds, leaves a
connection as `input` would.

It takes a segment only when `input`'s own prediction would, and otherwise hands it to
`input` with nothing changed. `test_ack_all`'s lossy request/response exchanges run twice,
once as they are and once with every segment sent to `input`, and both connections' every
field after each exchange, and every counter, must be the same; the exchanges must take
segments both ways (predicted, and handed on after the state and sequence tests passed).
Scripted segments in sequence with the flags header prediction leaves to `input` (FIN,
ECE, RST: the C parser predicts those too) show its flags test.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.tcp.scripted import PEER_ISN
from tests.tcp.test_ack_all import FAULTS, assert_same, run
from tests.tcp.test_segments import established
from usernet.stack import TcpConfig
from usernet.stack.tcp.connection import TcpConnection
from usernet.stack.tcp.input import ConnectionInput
from usernet.stack.tcp.states import State
from usernet.wire.tcp import ACK, ECE, FIN, PSH, RST


def never(self: ConnectionInput, *fields: Any) -> bool:
    return False


@pytest.mark.parametrize(
    "tcp",
    [TcpConfig(), TcpConfig(sack=False), TcpConfig(timestamps=False), TcpConfig(ecn=1)],
    ids=["default", "no-sack", "no-timestamps", "ecn"],
)
def test_the_predicted_input_changes_nothing_an_exchange_shows(tcp: TcpConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[bool] = []
    handed_on: list[bool] = []
    predicted = ConnectionInput.input_predicted
    fast_path = ConnectionInput._fast_path

    def counted(self: ConnectionInput, *fields: Any) -> bool:
        took = predicted(self, *fields)
        taken.append(took)
        return took

    def fast_path_counted(self: ConnectionInput, *fields: Any) -> bool:
        took = fast_path(self, *fields)
        handed_on.append(took)
        return took

    monkeypatch.setattr(ConnectionInput, "input_predicted", counted)
    monkeypatch.setattr(ConnectionInput, "_fast_path", fast_path_counted)
    fast = [run(seed, faults, tcp) for seed in range(3) for faults in FAULTS]
    assert any(taken) and not all(taken)
    assert not all(handed_on)  # some got past the state and sequence tests and were handed on
    monkeypatch.setattr(ConnectionInput, "input_predicted", never)
    slow = [run(seed, faults, tcp) for seed in range(3) for faults in FAULTS]
    assert_same(fast, slow)


def flagged(flags: int) -> tuple[Any, ...]:
    """Data, then an in-sequence segment with `flags` and data: the connection after both
    (its state once a RST closed it), what it sent and the host's counters."""
    s, conn, una = established()
    assert isinstance(conn, TcpConnection)
    s.inject(PEER_ISN + 1, una, ACK | PSH, b"d" * 100)
    s.inject(PEER_ISN + 101, una, flags, b"e" * 100)
    s.advance(s.now + 0.5)
    segments = [(seg.seq, seg.flags, bytes(seg.payload)) for seg in s.flush()]
    after = conn.freeze(s.now) if conn.state != State.CLOSED else conn.state
    return after, segments, sorted(s.iface.stats().items())


@pytest.mark.parametrize(
    "flags", [ACK | FIN, ACK | PSH | FIN, ACK | ECE, ACK | RST], ids=["fin", "psh-fin", "ece", "rst"]
)
def test_flags_prediction_leaves_to_input_go_there(flags: int, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = flagged(flags)
    monkeypatch.setattr(ConnectionInput, "input_predicted", never)
    assert flagged(flags) == fast
