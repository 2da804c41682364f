"""Quick-ACK mode (Linux's tcp_incr_quickack): at the start and after idle, ACKs go at once."""

from __future__ import annotations

from tests.tcp.scripted import PEER_ISN, Scripted
from usernet.stack import TcpConfig
from usernet.wire.tcp import ACK, PSH, encode_tcp_options

OPTIONS = encode_tcp_options(mss=1460, sack_permitted=True, wscale=0)


def ack_delays(tcp: TcpConfig, gaps: list[float]) -> list[float]:
    """Small segments from the peer, `gaps[i]` + 0.1 s apart (the RTO is 0.2 s): how long
    each waited for its ACK."""
    s = Scripted(tcp)
    _, synack = s.accept_handshake(OPTIONS)
    seq = PEER_ISN + 1
    delays = []
    for gap in gaps:
        s.advance(s.now + gap)
        sent = s.now
        s.inject(seq, synack.seq + 1, ACK | PSH, payload=b"q" * 100)
        seq += 100
        acks = [t for t, seg in s.advance(s.now + 0.1) if seg.ack == seq]
        delays.append(round(acks[0] - sent, 6))
    return delays


def test_the_first_segments_are_acknowledged_at_once_then_acks_are_delayed() -> None:
    assert ack_delays(TcpConfig(quickack=2), [0.01, 0.01, 0.01]) == [0.0, 0.0, 0.04]


def test_after_an_idle_rto_quick_acks_return() -> None:
    assert ack_delays(TcpConfig(quickack=2), [0.01, 0.01, 0.01, 5.0, 0.01]) == [0.0, 0.0, 0.04, 0.0, 0.0]


def test_without_quickack_every_lone_segment_waits_for_the_delayed_ack_timer() -> None:
    assert ack_delays(TcpConfig(quickack=0), [0.01, 0.01]) == [0.04, 0.04]
