"""`_emit` computes the TSval itself (`TimestampClock.tsval` spelled out): the value a data
segment and a pure ACK carry is the clock's, also where the offset makes it wrap."""

from __future__ import annotations

import pytest

from tests.tcp.scripted import PEER_ISN, SYN_OPTIONS
from tests.tcp.test_segments import established
from tests.tcp.test_send_predicted import acknowledge
from usernet.stack.tcp.connection import TcpConnection
from usernet.wire.tcp import ACK, PSH


@pytest.mark.parametrize("offset", [0, 12345, 0xFFFFFFFF - 3])
def test_segments_carry_the_clocks_tsval(offset: int) -> None:
    s, conn, una = established(SYN_OPTIONS)
    assert isinstance(conn, TcpConnection)
    conn._tsclock.offset = offset
    for i in range(3):
        s.now += 7.3037  # long enough for a clock of the wrong rate to show
        conn.send(b"q" * 100, s.now)
        (seg,) = s.flush()
        assert seg.timestamp is not None and seg.timestamp[0] == conn._tsclock.tsval(s.now)
        acknowledge(s, seg, 200 + i)
    s.inject(PEER_ISN + 1, una + 300, ACK | PSH, b"r" * 10, options=s.ts(300, seg.timestamp[0]))
    (ack,) = s.advance(s.now + 0.5)
    assert ack[1].timestamp is not None and ack[1].timestamp[0] == conn._tsclock.tsval(ack[0])
