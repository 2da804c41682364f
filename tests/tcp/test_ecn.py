"""ECN (RFC 3168), segment by segment: negotiation, ECT(0) on new data, CE echoed until CWR,
one window reduction per window, and CE-marked frames past header prediction."""

from __future__ import annotations

import pytest

from tests.tcp.scripted import PEER, PEER_ISN, PEER_MAC, PORT, SYN_OPTIONS, US, US_MAC, Scripted, set_tos
from usernet._native import pure
from usernet.native import build_ipv4_tcp, rx_ipv4_tcp
from usernet.stack import TcpConfig
from usernet.stack.tcp.states import State
from usernet.wire.tcp import ACK, CWR, ECE, PSH, SYN, TcpSegment, encode_tcp_options, parse_tcp

PLAIN = encode_tcp_options(mss=1460, wscale=0)
NOT_ECT, ECT0, CE = 0, 2, 3


def sent(s: Scripted) -> list[tuple[int, TcpSegment]]:
    """What a flush sends: each segment with the ECN field of its IP header."""
    s.iface.flush(s.now)
    out = []
    for frame in s.iface.take_output():
        mv = memoryview(bytes(frame))
        out.append((mv[15] & 3, parse_tcp(mv[34:], US, PEER)))
    return out


def ecn_established(tcp: TcpConfig | None = None) -> tuple[Scripted, object, int]:
    """A passive connection from an ECN-setup SYN; returns (script, connection, our next seq)."""
    s = Scripted(tcp)
    listener = s.iface.tcp.listen((US, PORT))
    s.inject(PEER_ISN, 0, SYN | ECE | CWR, options=PLAIN)
    [(ecn, synack)] = sent(s)
    assert synack.flags == SYN | ACK | ECE and ecn == NOT_ECT
    s.inject(PEER_ISN + 1, synack.seq + 1, ACK)
    conn = listener.accept()
    assert conn is not None and conn.info()["ecn"]
    return s, conn, synack.seq + 1


@pytest.mark.parametrize("mode", [1, 2])
def test_a_listener_agrees_to_an_ecn_setup_syn_in_modes_1_and_2(mode: int) -> None:
    s, _conn, _ = ecn_established(TcpConfig(ecn=mode))
    assert s.iface.counters.tcp_ecn_negotiated == 1


@pytest.mark.parametrize(("mode", "flags"), [(0, SYN | ECE | CWR), (2, SYN), (2, SYN | ECE)])
def test_no_ecn_without_a_full_setup_syn_or_when_off(mode: int, flags: int) -> None:
    s = Scripted(TcpConfig(ecn=mode))
    listener = s.iface.tcp.listen((US, PORT))
    s.inject(PEER_ISN, 0, flags, options=PLAIN)
    [(_, synack)] = sent(s)
    assert synack.flags == SYN | ACK
    s.inject(PEER_ISN + 1, synack.seq + 1, ACK)
    conn = listener.accept()
    assert conn is not None and not conn.info()["ecn"]
    conn.send(b"x" * 100, s.now)
    [(ecn, data)] = sent(s)
    assert ecn == NOT_ECT and data.flags == ACK | PSH


def test_mode_1_asks_in_the_syn_and_takes_an_ecn_setup_syn_ack() -> None:
    s = Scripted(TcpConfig(ecn=1))
    conn = s.iface.tcp.connect((PEER, 8080), 0.0)
    [(ecn, syn)] = sent(s)
    assert syn.flags == SYN | ECE | CWR and ecn == NOT_ECT
    s.inject(PEER_ISN, syn.seq + 1, SYN | ACK | ECE, options=PLAIN, sport=8080, dport=conn.local[1])
    sent(s)
    assert conn.state == State.ESTABLISHED and conn.info()["ecn"]


@pytest.mark.parametrize("synack_flags", [SYN | ACK, SYN | ACK | ECE | CWR])
def test_a_syn_ack_without_ece_alone_is_not_ecn_setup(synack_flags: int) -> None:
    s = Scripted(TcpConfig(ecn=1))
    conn = s.iface.tcp.connect((PEER, 8080), 0.0)
    [(_, syn)] = sent(s)
    s.inject(PEER_ISN, syn.seq + 1, synack_flags, options=PLAIN, sport=8080, dport=conn.local[1])
    sent(s)
    assert conn.state == State.ESTABLISHED and not conn.info()["ecn"]


def test_the_default_mode_does_not_ask_and_a_retransmitted_syn_stops_asking() -> None:
    s = Scripted()
    s.iface.tcp.connect((PEER, 8080), 0.0)
    [(_, syn)] = sent(s)
    assert syn.flags == SYN
    s = Scripted(TcpConfig(ecn=1))
    s.iface.tcp.connect((PEER, 8080), 0.0)
    flags = [seg.flags for _, seg in s.advance(10.0)]
    assert flags[0] == SYN | ECE | CWR and flags[1:] and all(f == SYN for f in flags[1:])


def test_new_data_is_ect0_and_retransmissions_and_pure_acks_are_not() -> None:
    s, conn, seq = ecn_established()
    conn.send(b"a" * 1000, s.now)
    [(ecn, first)] = sent(s)
    assert ecn == ECT0 and first.seq == seq
    s.inject(PEER_ISN + 1, seq, ACK | PSH, b"hello")  # data from the peer, our ACK of it
    s.now += 1.0
    out = s.advance(s.now + 1.0)  # the delayed ACK, then the RTO's retransmission
    pure_acks = [seg for _, seg in out if not seg.payload]
    assert pure_acks
    again = [seg for _, seg in out if seg.payload]
    assert again and again[0].seq == seq
    s2, conn2, seq2 = ecn_established()
    conn2.send(b"b" * 1000, s2.now)
    sent(s2)
    s2.now = 5.0
    s2.iface.poll(s2.now)
    [(ecn, retransmitted)] = sent(s2)
    assert retransmitted.seq == seq2 and ecn == NOT_ECT
    s2.inject(PEER_ISN + 1, seq2 + 1000, ACK)
    conn2.send(b"c" * 10, s2.now)
    [(ecn, new)] = sent(s2)
    assert ecn == ECT0 and new.seq == seq2 + 1000


def test_a_ce_mark_is_acked_at_once_and_echoed_until_cwr() -> None:
    s, conn, seq = ecn_established()
    s.inject(PEER_ISN + 1, seq, ACK | PSH, b"x" * 100, tos=CE)
    [(_, ack)] = sent(s)  # at once, not after the delayed-ACK time
    assert ack.flags == ACK | ECE and ack.ack == PEER_ISN + 101
    assert s.iface.counters.tcp_ecn_ce_received == 1
    s.inject(PEER_ISN + 101, seq, ACK | PSH, b"y" * 100)
    s.inject(PEER_ISN + 201, seq, ACK | PSH, b"z" * 100)
    [ack] = [seg for _, seg in s.advance(s.now + 0.1)]  # the delayed ACK echoes too
    assert ack.flags & ECE
    s.inject(PEER_ISN + 301, seq, ACK | PSH | CWR, b"w" * 100)
    s.inject(PEER_ISN + 401, seq, ACK | PSH, b"v" * 100)
    [ack] = [seg for _, seg in s.advance(s.now + 0.1)]
    assert not ack.flags & ECE and ack.ack == PEER_ISN + 501
    assert conn.receive() == b"x" * 100 + b"y" * 100 + b"z" * 100 + b"w" * 100 + b"v" * 100


def test_a_ce_mark_on_a_non_ecn_connection_is_ignored() -> None:
    s = Scripted()
    conn, synack = s.accept_handshake(PLAIN)
    s.inject(PEER_ISN + 1, synack.seq + 1, ACK | PSH, b"x" * 100, tos=CE)
    s.inject(PEER_ISN + 101, synack.seq + 1, ACK | PSH, b"y" * 100)
    [ack] = [seg for _, seg in s.advance(s.now + 0.1)]
    assert not ack.flags & ECE and conn.receive() == b"x" * 100 + b"y" * 100


def test_ece_cuts_the_window_once_per_window_and_the_next_new_data_carries_cwr() -> None:
    s, conn, seq = ecn_established()
    conn.send(b"d" * 8000, s.now)
    segs = sent(s)
    assert len(segs) > 2 and all(ecn == ECT0 for ecn, _ in segs)
    cwnd = conn.info()["cwnd"]
    s.inject(PEER_ISN + 1, seq + 1000, ACK | ECE)
    assert s.iface.counters.tcp_ecn_reductions == 1
    reduced = conn.info()["cwnd"]
    assert reduced < cwnd and conn.info()["ssthresh"] == reduced
    s.inject(PEER_ISN + 1, seq + 2000, ACK | ECE)  # the same window: no second cut
    assert s.iface.counters.tcp_ecn_reductions == 1 and conn.info()["cwnd"] >= reduced
    s.inject(PEER_ISN + 1, seq + 8000, ACK)
    conn.send(b"e" * 100, s.now)
    new = [seg for ecn, seg in sent(s) if seg.payload]
    assert new and new[0].flags & CWR and not any(seg.flags & CWR for seg in new[1:])
    s.inject(PEER_ISN + 1, seq + 8100, ACK | ECE)  # a mark on data sent after the CWR: a new event
    assert s.iface.counters.tcp_ecn_reductions == 2
    assert conn.info()["retransmits"] == 0


def test_ce_marked_frames_skip_header_prediction_in_c_and_in_the_twin() -> None:
    for tos, expect_predicted in ((NOT_ECT, True), (ECT0, True), (CE, False)):
        frame = bytearray(54 + 10)
        build_ipv4_tcp(frame, 0, US_MAC, PEER_MAC, PEER, US, 1, 64, 1, 2, 3, 4, ACK, 100, 0, b"", b"0123456789")
        set_tos(frame, tos)
        for rx in (rx_ipv4_tcp, pure.rx_ipv4_tcp):
            assert (rx(frame, US_MAC, False) is not None) == expect_predicted, (rx, tos)


def test_ecn_off_keeps_ece_and_cwr_from_a_peer_harmless() -> None:
    s = Scripted(TcpConfig(ecn=0))
    conn, synack = s.accept_handshake(SYN_OPTIONS)
    assert not conn.info()["ecn"]
    conn.send(b"f" * 100, s.now)
    sent(s)
    before = conn.info()["cwnd"]
    s.inject(PEER_ISN + 1, synack.seq + 101, ACK | ECE, options=s.ts(200, 0))
    assert conn.info()["cwnd"] >= before and s.iface.counters.tcp_ecn_reductions == 0
