"""What a blind sender can make the stack send is bounded: challenge ACKs (RFC 5961 §7), per
connection and per interface, and RSTs to closed ports; every refusal counted."""

from __future__ import annotations

import pytest

from tests.tcp.scripted import PEER_ISN, PEER_PORT, SYN_OPTIONS, Scripted
from usernet.stack import TcpConfig
from usernet.stack.ratelimit import TokenBucket
from usernet.wire.tcp import ACK, RST, SYN


def test_a_token_bucket_lets_a_burst_through_then_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.allow(0.25) is False  # half a token
    assert bucket.allow(0.5) is True
    assert [bucket.allow(100.0) for _ in range(4)] == [True, True, True, False]  # never more than the burst
    with pytest.raises(ValueError):
        TokenBucket(-1.0, 1.0)


def test_challenge_acks_are_limited_per_connection() -> None:
    s = Scripted()
    _, synack = s.accept_handshake(SYN_OPTIONS)
    ts = s.ts(200, synack.timestamp[0])
    for _ in range(3):  # SYNs in a synchronized state: each would earn a challenge ACK (RFC 5961 §4)
        s.inject(PEER_ISN + 1, 0, SYN, options=ts)
    assert [seg.flags for seg in s.flush()] == [ACK]
    stats = s.iface.stats()
    assert stats["tcp_challenge_acks"] == 1 and stats["tcp_challenge_acks_limited"] == 2
    s.now += 0.5
    s.inject(PEER_ISN + 1, 0, SYN, options=ts)
    assert [seg.flags for seg in s.flush()] == [ACK]  # the interval passed


def test_resets_to_closed_ports_are_limited_and_counted() -> None:
    s = Scripted(TcpConfig(reset_limit=3))
    for i in range(10):
        s.inject(PEER_ISN, 0, SYN, dport=9, sport=PEER_PORT + i)
    resets = s.flush()
    assert len(resets) == 3 and all(seg.flags == RST | ACK for seg in resets)
    stats = s.iface.stats()
    assert stats["tcp_rst_limited"] == 7 and stats["tcp_no_socket"] == 10
    s.now += 1.0
    s.inject(PEER_ISN, 0, SYN, dport=9)
    assert len(s.flush()) == 1
