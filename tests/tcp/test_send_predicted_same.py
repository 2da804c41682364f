"""The send prediction's segment (`_send_predicted`) leaves a connection as the general
`_send_segment` and `_transmit` would.

`_output_data` hands it a write only with nothing in flight and no FIN queued, so SND.NXT
is SND.UNA and SND.MAX and the write is all the buffer holds: the tests it leaves out
cannot come out otherwise. `test_ack_all`'s lossy request/response exchanges (requests of
64 and 900 bytes are predicted sends, the rest are not) run twice, once as they are and
once with `_send_segment(n, now, True)` in its place, and both connections' every field
after each exchange, and every counter, must be the same: with and without timestamps
(the timed-segment RTT), SACK, RACK, tail loss probes, and with ECN asked for. A scripted
case adds the persist timer armed at a predicted send (a zero window reopened).
"""

from __future__ import annotations

import pytest

from tests.tcp.scripted import PEER_ISN
from tests.tcp.test_ack_all import FAULTS, assert_same, run
from tests.tcp.test_segments import established
from usernet.stack import TcpConfig
from usernet.stack.tcp.connection import TcpConnection
from usernet.stack.tcp.output import ConnectionOutput
from usernet.wire.tcp import ACK


def general_way(self: ConnectionOutput, n: int, now: float) -> None:
    self._send_segment(n, now, True)


@pytest.mark.parametrize(
    "tcp",
    [
        TcpConfig(),
        TcpConfig(sack=False),
        TcpConfig(rack=False, tlp=False),
        TcpConfig(timestamps=False),
        TcpConfig(timestamps=False, sack=False),
        TcpConfig(ecn=1),
    ],
    ids=["default", "no-sack", "no-rack", "no-timestamps", "no-timestamps-no-sack", "ecn"],
)
def test_the_predicted_send_changes_nothing_an_exchange_shows(tcp: TcpConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    predicted = [run(seed, faults, tcp) for seed in range(3) for faults in FAULTS]
    monkeypatch.setattr(ConnectionOutput, "_send_predicted", general_way)
    general = [run(seed, faults, tcp) for seed in range(3) for faults in FAULTS]
    assert_same(predicted, general)


def window_reopened() -> tuple[dict[str, object], list[tuple[int, int, bytes]], bool]:
    """A write queued behind a zero window (the persist timer armed), sent by the window
    update that opens it: a predicted send with that timer still armed, which it stops."""
    s, conn, una = established()
    assert isinstance(conn, TcpConnection)
    conn.send(b"a" * 100, s.now)
    assert len(s.flush()) == 1
    s.inject(PEER_ISN + 1, una + 100, ACK, window=0)
    conn.send(b"b" * 100, s.now)
    assert s.flush() == []
    armed = conn._persist_at is not None
    s.inject(PEER_ISN + 1, una + 100, ACK, window=65535)
    segments = [(seg.seq, seg.flags, bytes(seg.payload)) for seg in s.flush()]
    return conn.freeze(s.now), segments, armed and conn._persist_at is None


def test_a_predicted_send_stops_the_persist_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    predicted = ConnectionOutput._send_predicted

    def counted(self: ConnectionOutput, n: int, now: float) -> None:
        calls.append(n)
        predicted(self, n, now)

    monkeypatch.setattr(ConnectionOutput, "_send_predicted", counted)
    fast = window_reopened()
    assert calls == [100, 100] and fast[2]
    monkeypatch.setattr(ConnectionOutput, "_send_predicted", general_way)
    assert window_reopened() == fast
