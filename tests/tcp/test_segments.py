"""Segment-level behaviour of one connection, driven by hand-built segments."""

from __future__ import annotations

import errno
import itertools

import pytest

from tests.tcp.scripted import PEER, PEER_ISN, PEER_PORT, PORT, SYN_OPTIONS, US, Scripted
from usernet.stack import TcpConfig
from usernet.stack.tcp.states import State, as_markdown
from usernet.wire.tcp import ACK, FIN, PSH, RST, SYN, encode_tcp_options

PLAIN = encode_tcp_options(mss=1460, wscale=0)  # no SACK, no timestamps
WITH_SACK = encode_tcp_options(mss=1460, sack_permitted=True, wscale=0)


def established(
    options: bytes = PLAIN, tcp: TcpConfig | None = None, isn: int = 5_000_000, window: int = 65535
) -> tuple[Scripted, object, int]:
    s = Scripted(tcp, isn=isn)
    conn, synack = s.accept_handshake(options, window=window)
    return s, conn, synack.seq + 1


def test_passive_handshake_answers_with_the_options_offered() -> None:
    s = Scripted()
    s.iface.tcp.listen((US, PORT))
    s.inject(PEER_ISN, 0, SYN, options=SYN_OPTIONS)
    (synack,) = s.flush()
    assert synack.flags == SYN | ACK
    assert synack.ack == PEER_ISN + 1
    assert synack.seq == 5_000_000
    assert synack.mss == 1460 and synack.wscale == 7 and synack.sack_permitted
    assert synack.timestamp is not None and synack.timestamp[1] == 100


def test_passive_handshake_without_options_offers_none() -> None:
    s = Scripted()
    s.iface.tcp.listen((US, PORT))
    s.inject(PEER_ISN, 0, SYN)
    (synack,) = s.flush()
    assert synack.mss == 1460 and synack.wscale is None and not synack.sack_permitted and synack.timestamp is None


def test_active_syn_carries_linux_options_in_linux_order() -> None:
    s = Scripted()
    conn = s.iface.tcp.connect((PEER, 8080), 0.0)
    (syn,) = s.flush()
    assert syn.flags == SYN and conn.state == State.SYN_SENT
    raw = bytes(syn.payload.obj)[34 + 20 : 34 + syn.header_length]  # type: ignore[union-attr]  # not None here
    assert raw[:4] == bytes([2, 4, 0x05, 0xB4]) and raw[4:6] == bytes([4, 2]) and raw[6:8] == bytes([8, 10])
    assert raw[16:] == bytes([1, 3, 3, 7])
    s.inject(PEER_ISN, syn.seq + 1, SYN | ACK, options=PLAIN, sport=8080, dport=conn.local[1])
    (ack,) = s.flush()
    assert conn.state == State.ESTABLISHED and ack.flags == ACK and ack.ack == PEER_ISN + 1


def test_segments_to_a_closed_port_get_a_reset() -> None:
    s = Scripted()
    s.inject(PEER_ISN, 0, SYN, payload=b"")
    (rst,) = s.flush()
    assert rst.flags == RST | ACK and rst.seq == 0 and rst.ack == PEER_ISN + 1
    s.inject(PEER_ISN, 777, ACK, payload=b"abc")
    (rst,) = s.flush()
    assert rst.flags == RST and rst.seq == 777
    s.inject(PEER_ISN, 777, RST)
    assert s.flush() == [], "a RST is never answered"


def test_rst_exact_resets_in_window_challenges_outside_ignored() -> None:
    s, conn, _ = established()
    s.inject(PEER_ISN + 1 + 10**6, 0, RST)
    assert s.flush() == [] and conn.state == State.ESTABLISHED
    s.inject(PEER_ISN + 1 + 100, 0, RST)
    (challenge,) = s.flush()
    assert challenge.flags == ACK and challenge.ack == PEER_ISN + 1 and conn.state == State.ESTABLISHED
    s.inject(PEER_ISN + 1, 0, RST)
    assert conn.state == State.CLOSED and conn.error is not None and conn.error.errno == errno.ECONNRESET
    assert s.iface.tcp.connections() == []


def test_syn_on_an_established_connection_gets_a_challenge_ack() -> None:
    s, conn, _ = established()
    s.inject(PEER_ISN + 50, 0, SYN)
    (challenge,) = s.flush()
    assert challenge.flags == ACK and challenge.ack == PEER_ISN + 1 and conn.state == State.ESTABLISHED


def test_challenge_acks_are_rate_limited() -> None:
    # The interface's limit alone (no per-connection interval: tests/tcp/test_rate_limits.py has that).
    s, _conn, _ = established(tcp=TcpConfig(challenge_ack_limit=2, invalid_ack_interval=0.0))
    for _ in range(5):
        s.inject(PEER_ISN + 10, 0, RST)
    assert len(s.flush()) == 2
    assert s.iface.stats()["tcp_challenge_acks_limited"] == 3


def test_ack_for_unsent_data_is_dropped_and_acked() -> None:
    s, conn, iss1 = established()
    s.inject(PEER_ISN + 1, iss1 + 1000, ACK, payload=b"x")
    (ack,) = s.flush()
    assert conn.readable == 0 and ack.ack == PEER_ISN + 1
    assert s.iface.stats()["tcp_ack_unsent"] == 1


def test_ack_for_unsent_data_is_dropped_as_linux_drops_it() -> None:
    # ack_unsent_silent (the drill linux profile's): no answer in ESTABLISHED, as Linux's
    # tcp_rcv_established; in the other states (here CLOSE_WAIT) a challenge ACK, as its
    # tcp_rcv_state_process. The data in either is dropped.
    s, conn, iss1 = established(tcp=TcpConfig(ack_unsent_silent=True))
    s.inject(PEER_ISN + 1, iss1 + 1000, ACK | PSH, payload=b"x")
    s.inject(PEER_ISN + 1, iss1 + 1000, ACK)
    assert s.flush() == [] and conn.readable == 0
    s.inject(PEER_ISN + 1, iss1, ACK | FIN)
    s.flush()
    assert conn.state == State.CLOSE_WAIT
    s.inject(PEER_ISN + 2, iss1 + 1000, ACK, payload=b"y")
    (challenge,) = s.flush()
    assert challenge.flags == ACK and challenge.seq == iss1 and challenge.ack == PEER_ISN + 2
    stats = s.iface.stats()
    assert stats["tcp_ack_unsent"] == 3 and stats["tcp_challenge_acks"] == 1 and conn.readable == 0


def test_paws_drops_old_timestamps() -> None:
    s, conn, iss1 = established(SYN_OPTIONS)
    s.inject(PEER_ISN + 1, iss1, ACK | PSH, payload=b"new", options=s.ts(200, 0))
    s.inject(PEER_ISN + 4, iss1, ACK | PSH, payload=b"old", options=s.ts(150, 0))
    s.flush()
    assert conn.receive() == b"new"
    assert s.iface.stats()["tcp_paws_rejected"] == 1


@pytest.mark.parametrize("bad_ack", ["unsent", "too-old"])
def test_a_rejected_ack_plants_no_ts_recent(bad_ack: str) -> None:
    # RFC 7323 §4.3: TS.Recent comes only from accepted segments. A segment in sequence whose
    # ACK covers data never sent (or lies far behind) is dropped; had its far-future TSval
    # been kept, PAWS would drop every later segment of the real peer and the connection
    # would never move again.
    s, conn, iss1 = established(SYN_OPTIONS)
    ack = iss1 + 100_000 if bad_ack == "unsent" else iss1 - 10_000_000
    s.inject(PEER_ISN + 1, ack, ACK, options=s.ts(0x7FFF0000, 0))
    s.flush()
    for i, ts in enumerate((200, 210, 220)):
        s.inject(PEER_ISN + 1 + i, iss1, ACK | PSH, payload=b"x", options=s.ts(ts, 0))
    s.flush()
    stats = s.iface.stats()
    assert conn.receive() == b"xxx" and stats["tcp_paws_rejected"] == 0
    assert stats["tcp_ack_unsent" if bad_ack == "unsent" else "tcp_ack_too_old"] == 1
    conn.send(b"reply", s.now)
    [reply] = s.flush()
    assert reply.timestamp is not None and reply.timestamp[1] == 200  # the real peer's first unacknowledged TSval


def test_in_order_data_takes_the_fast_path_and_delayed_ack() -> None:
    s, conn, iss1 = established()
    s.inject(PEER_ISN + 1, iss1, ACK | PSH, payload=b"hello")
    assert s.flush() == [], "one small segment is acknowledged late"
    out = s.advance(1.0)
    assert [(round(t, 3), seg.ack) for t, seg in out] == [(0.04, PEER_ISN + 6)]
    assert conn.receive() == b"hello"
    assert s.iface.stats()["tcp_fast_path"] >= 1


@pytest.mark.parametrize("parts", [[1188, 1188], [2376]], ids=["two-segments", "joined-by-gro"])
def test_two_full_segments_of_a_small_mss_peer_are_acked_at_once(parts: list[int]) -> None:
    # The peer offers MSS 1200, below ours: two of its full segments earn an ACK at the
    # flush whether they arrive apart or joined into one by GRO (which must not teach the
    # connection a segment size the peer never uses).
    s = Scripted()
    conn, synack = s.accept_handshake(encode_tcp_options(mss=1200, sack_permitted=True, timestamp=(100, 0), wscale=7))
    first, tsecr = synack.seq + 1, synack.timestamp[0]
    s.flush()
    for _ in range(3):  # the same again later: the first run taught it nothing wrong
        seq = PEER_ISN + 1 + conn.bytes_received
        for size in parts:
            s.inject(seq, first, ACK, payload=bytes(size), options=s.ts(200, tsecr))
            seq += size
        assert [seg.ack for seg in s.flush() if seg.flags & ACK] == [seq]


def test_out_of_order_data_is_acked_at_once_with_sack_then_reassembled() -> None:
    s, conn, iss1 = established(WITH_SACK)
    s.inject(PEER_ISN + 1 + 1000, iss1, ACK, payload=b"b" * 1000)
    (dup,) = s.flush()
    assert dup.ack == PEER_ISN + 1 and dup.sack_blocks == ((PEER_ISN + 1001, PEER_ISN + 2001),)
    s.inject(PEER_ISN + 1, iss1, ACK, payload=b"a" * 1000)
    (ack,) = s.flush()
    assert ack.ack == PEER_ISN + 2001 and ack.sack_blocks == ()
    assert conn.receive() == b"a" * 1000 + b"b" * 1000


def test_zero_window_is_probed_with_backoff_then_data_flows() -> None:
    s, conn, iss1 = established(window=0)
    assert conn.send(b"z" * 3000, s.now) == 3000
    assert s.flush() == []
    out = s.advance(5.0)
    probes = [(t, seg) for t, seg in out if not seg.payload]
    assert len(probes) >= 3 and all(seg.seq == iss1 - 1 for _, seg in probes)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(probes)]
    assert all(g2 > g1 for g1, g2 in itertools.pairwise(gaps)), f"probe intervals must grow: {gaps}"
    s.inject(PEER_ISN + 1, iss1, ACK, window=65535)
    segs = s.flush()
    assert b"".join(bytes(seg.payload) for seg in segs) == b"z" * 3000
    assert s.iface.stats()["tcp_window_probes"] == len(probes)


def test_three_duplicate_acks_trigger_fast_retransmit() -> None:
    s, conn, iss1 = established()
    conn.send(bytes(1460 * 8), s.now)
    segs = s.flush()
    assert len(segs) == 8
    s.inject(PEER_ISN + 1, iss1 + 1460, ACK)
    s.flush()
    for _ in range(3):
        s.inject(PEER_ISN + 1, iss1 + 1460, ACK)
    (rtx,) = [seg for seg in s.flush() if seg.seq == iss1 + 1460]
    assert len(rtx.payload) == 1460
    assert s.iface.stats()["tcp_fast_retransmits"] == 1


def test_sack_recovery_retransmits_only_the_holes() -> None:
    s, conn, iss1 = established(WITH_SACK)
    conn.send(bytes(1460 * 10), s.now)
    s.flush()
    for i in range(3):
        blocks = ((iss1 + 2920, iss1 + 2920 + 1460 * (i + 2)),)
        s.inject(PEER_ISN + 1, iss1 + 1460, ACK, options=encode_tcp_options(sack_blocks=blocks))
    rtx = [seg.seq for seg in s.flush() if (seg.seq - iss1) % 2**32 < 1460 * 10]
    assert rtx[0] == iss1 + 1460
    assert iss1 + 2920 not in rtx, "SACKed data is not sent again"


def test_rto_backs_off_exponentially_then_times_out() -> None:
    s, conn, _iss1 = established(tcp=TcpConfig(retries=4))
    conn.send(b"q" * 100, s.now)
    out = s.advance(100.0)
    times = [t for t, seg in out if seg.payload]
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert len(times) == 5
    assert all(abs(g2 - 2 * g1) < 1e-6 for g1, g2 in itertools.pairwise(gaps)), gaps
    assert conn.state == State.CLOSED and conn.error is not None and conn.error.errno == errno.ETIMEDOUT
    assert not any(seg.flags & RST for _, seg in out), "no RST to a peer that does not answer (as Linux)"


def test_syn_retransmissions_back_off_and_time_out() -> None:
    s = Scripted(TcpConfig(syn_retries=3))
    conn = s.iface.tcp.connect((PEER, 9), 0.0)
    out = s.advance(100.0)
    times = [t for t, seg in out if seg.flags == SYN]
    assert times == [0.0, 1.0, 3.0, 7.0]
    assert conn.error is not None and conn.error.errno == errno.ETIMEDOUT
    assert s.iface.tcp.next_deadline() is None


def test_connection_refused() -> None:
    s = Scripted()
    conn = s.iface.tcp.connect((PEER, 9), 0.0)
    (syn,) = s.flush()
    s.inject(0, syn.seq + 1, RST | ACK, sport=9, dport=conn.local[1])
    assert conn.state == State.CLOSED and conn.error is not None and conn.error.errno == errno.ECONNREFUSED


def test_time_wait_acks_fin_again_and_expires_after_two_msl() -> None:
    s, conn, iss1 = established()
    conn.close(s.now)
    (fin,) = s.flush()
    assert fin.flags & FIN and conn.state == State.FIN_WAIT_1
    s.inject(PEER_ISN + 1, iss1 + 1, ACK | FIN)
    (ack,) = s.flush()
    assert conn.state == State.TIME_WAIT and ack.ack == PEER_ISN + 2
    s.now = 30.0
    s.inject(PEER_ISN + 1, iss1 + 1, ACK | FIN)
    (again,) = s.flush()
    assert again.ack == PEER_ISN + 2
    s.advance(89.0)
    assert conn.state == State.TIME_WAIT, "the retransmitted FIN restarted 2*MSL"
    s.advance(91.0)
    assert conn.state == State.CLOSED and s.iface.tcp.connections() == []


def test_fin_is_retransmitted() -> None:
    s, conn, iss1 = established()
    conn.shutdown(s.now)
    out = s.advance(4.0)
    fins = [t for t, seg in out if seg.flags & FIN and seg.seq == iss1]
    assert len(fins) >= 3 and conn.state == State.FIN_WAIT_1
    s.inject(PEER_ISN + 1, iss1 + 1, ACK)
    assert conn.state == State.FIN_WAIT_2


def test_close_with_unread_data_sends_a_reset() -> None:
    s, conn, iss1 = established()
    s.inject(PEER_ISN + 1, iss1, ACK, payload=b"unread")
    s.flush()
    conn.close(s.now)
    (rst,) = s.flush() or [None]
    assert rst is not None and rst.flags & RST and conn.state == State.CLOSED


def test_listen_backlog_drops_syns_when_the_accept_queue_is_full() -> None:
    s = Scripted()
    listener = s.iface.tcp.listen((US, PORT), backlog=1)
    s.inject(PEER_ISN, 0, SYN, sport=1000)
    (synack,) = s.flush()
    s.inject(PEER_ISN + 1, synack.seq + 1, ACK, sport=1000)
    assert s.flush() == [] and listener.pending == 1
    s.inject(PEER_ISN, 0, SYN, sport=1001)
    assert s.flush() == []
    assert s.iface.stats()["tcp_listen_overflow"] == 1
    assert listener.accept() is not None
    s.inject(PEER_ISN, 0, SYN, sport=1001)
    (synack,) = s.flush()
    assert synack.flags == SYN | ACK


def test_a_full_accept_queue_refuses_a_syn_before_the_syn_queue_earns_it_a_cookie() -> None:
    """`TcpListener.room` answers both questions at once: the accept queue's comes first, as before."""
    s = Scripted(TcpConfig(syn_backlog=1))
    listener = s.iface.tcp.listen((US, PORT), backlog=1)
    s.inject(PEER_ISN, 0, SYN, sport=1000)
    (synack,) = s.flush()
    s.inject(PEER_ISN + 1, synack.seq + 1, ACK, sport=1000)
    assert s.flush() == [] and listener.pending == 1
    s.inject(PEER_ISN, 0, SYN, sport=1001)  # both queues refuse it: the accept queue's verdict
    assert s.flush() == [] and s.iface.stats()["tcp_listen_overflow"] == 1
    assert listener.accept() is not None
    s.inject(PEER_ISN, 0, SYN, sport=1001)  # room: a handshake, and the SYN queue is full
    (synack,) = s.flush()
    assert synack.flags == SYN | ACK and listener.half_open == 1
    s.inject(PEER_ISN, 0, SYN, sport=1002)  # the SYN queue alone is full: a SYN cookie
    (cookie,) = s.flush()
    assert cookie.flags == SYN | ACK and listener.half_open == 1
    assert s.iface.stats()["tcp_listen_overflow"] == 1


def test_syn_cookie_completes_a_handshake_without_state() -> None:
    s = Scripted(TcpConfig(syn_backlog=0))
    listener = s.iface.tcp.listen((US, PORT))
    s.inject(PEER_ISN, 0, SYN, options=SYN_OPTIONS)
    (synack,) = s.flush()
    assert synack.mss == 1460 and synack.timestamp is None and synack.wscale is None
    assert s.iface.tcp.connections() == []
    s.inject(PEER_ISN + 1, synack.seq + 1, ACK | PSH, payload=b"hi")
    conn = listener.accept()
    assert conn is not None and conn.state == State.ESTABLISHED and conn.receive() == b"hi"
    s.inject(PEER_ISN + 3, 12345, ACK, sport=PEER_PORT + 1)  # a forged cookie ACK for another pair
    (rst,) = s.flush()[-1:]
    assert rst.flags & RST and s.iface.stats()["tcp_syn_cookies_invalid"] == 1


def test_keepalive_probes_then_times_out() -> None:
    s, conn, _iss1 = established()
    conn.set_option("keepalive", True)
    conn.set_option("keepidle", 10)
    conn.set_option("keepintvl", 2)
    conn.set_option("keepcnt", 3)
    out = s.advance(100.0)
    probes = [t for t, seg in out if not seg.flags & RST]
    assert probes == [10.0, 12.0, 14.0]
    assert conn.error is not None and conn.error.errno == errno.ETIMEDOUT


def test_rejected_segments_do_not_count_as_hearing_from_the_peer() -> None:
    # Keepalive idles from the last accepted segment (Linux's rcv_tstamp): out-of-window
    # segments or ACKs of unsent data, which anyone can send, do not postpone the probes.
    s, conn, iss1 = established()
    conn.set_option("keepalive", True)
    conn.set_option("keepidle", 10)
    s.advance(5.0)
    s.inject(PEER_ISN + 1_000_000, iss1, ACK, payload=b"stray")  # out of window
    s.inject(PEER_ISN + 1, iss1 + 50_000, ACK)  # acknowledges what was never sent
    out = s.advance(10.5)
    assert [t for t, seg in out if seg.seq == iss1 - 1] == [10.0]  # the probe, on time (not at 15)


def test_unknown_option_is_refused_with_the_known_names() -> None:
    _s, conn, _ = established()
    with pytest.raises(ValueError, match="nodelay"):
        conn.set_option("frobnicate", 1)


def test_state_table_renders_every_state() -> None:
    table = as_markdown()
    for state in State:
        assert state.name in table


def test_wrong_checksum_is_counted_and_dropped() -> None:
    s, conn, iss1 = established()
    frame = bytearray(54 + 3)
    from tests.tcp.scripted import PEER_MAC, US_MAC
    from usernet.native import build_ipv4_tcp

    build_ipv4_tcp(
        frame, 0, US_MAC, PEER_MAC, PEER, US, 1, 64, PEER_PORT, PORT, PEER_ISN + 1, iss1, ACK, 100, 0, b"", b"abc"
    )
    frame[-1] ^= 0xFF
    s.iface.receive(frame, s.now)
    assert conn.readable == 0 and s.iface.stats()["tcp_bad_checksum"] == 1


def icmp_about(s: Scripted, segment_frame: bytes, code: int, mtu: int = 0) -> None:
    from tests.tcp.scripted import PEER_MAC, US_MAC
    from usernet.wire import emit_ethernet, emit_icmp, emit_ipv4_header

    quote = segment_frame[14 : 14 + 20 + 28]
    frame = bytearray(14 + 20 + 8 + len(quote))
    emit_ethernet(frame, 0, US_MAC, PEER_MAC, 0x0800)
    emit_ipv4_header(frame, 14, PEER, US, 1, 8 + len(quote), ttl=64, ident=9)
    emit_icmp(frame, 34, 3, code, mtu, quote)
    s.iface.receive(frame, s.now)


def test_icmp_port_unreachable_aborts_a_connect() -> None:
    s = Scripted()
    conn = s.iface.tcp.connect((PEER, 9), 0.0)
    s.iface.flush(0.0)
    (frame,) = s.iface.take_output()
    icmp_about(s, bytes(frame), 3)
    assert conn.state == State.CLOSED and conn.error is not None and conn.error.errno == errno.ECONNREFUSED


def test_icmp_fragmentation_needed_lowers_the_segment_size() -> None:
    s, conn, _iss1 = established()
    conn.send(bytes(5000), s.now)
    s.iface.flush(s.now)
    frames = s.iface.take_output()
    icmp_about(s, bytes(frames[0]), 4, mtu=1000)
    segs = s.flush()
    assert segs and max(len(seg.payload) for seg in segs) == 960


def test_a_full_send_buffer_wakes_the_writer_when_acknowledged() -> None:
    s, conn, iss1 = established(tcp=TcpConfig(sndbuf=3000, sndbuf_max=0))  # a fixed 3,000-byte buffer
    assert conn.send(bytes(5000), s.now) == 3000
    assert conn.send(b"more", s.now) == 0
    s.flush()
    s.iface.take_ready()
    s.inject(PEER_ISN + 1, iss1 + 1460, ACK)
    assert conn in s.iface.take_ready()
    assert conn.send_space() == 1460


def test_window_update_on_an_ack_of_new_data_is_taken_even_behind_snd_wl1() -> None:
    """Linux's rule beside RFC 9293's: an ACK that advances SND.UNA also carries a fresh window.

    The peer's retransmission starts before SND.WL1, yet it acknowledges our data and opens its
    window; ignoring that window (the bare RFC test) left a sender stuck on a stale small one.
    """
    s, conn, iss1 = established(tcp=TcpConfig(nodelay=True), window=1000)
    assert conn.send(b"w" * 3000, s.now) == 3000
    assert sum(len(seg.payload) for seg in s.flush()) == 1000
    s.inject(PEER_ISN + 1, iss1, ACK, payload=b"a" * 200, window=1000)  # SND.WL1 = PEER_ISN + 1
    s.flush()
    s.inject(PEER_ISN + 201, iss1, ACK, window=1000)  # SND.WL1 = PEER_ISN + 201
    s.flush()
    # A retransmission from PEER_ISN + 1 with 100 new bytes, acknowledging ours, window wide open.
    s.inject(PEER_ISN + 1, iss1 + 1000, ACK, payload=b"a" * 300, window=65535)
    sent = sum(len(seg.payload) for seg in s.flush())
    assert sent == 2000, f"the opened window was ignored: sent {sent} of the 2000 bytes left"


def test_an_oversized_segment_does_not_stretch_the_ack_every_two_segments_rule() -> None:
    """The receiver's estimate of the peer's segment size is capped at the MSS we offered (Linux)."""
    s, _conn, iss1 = established()
    s.inject(PEER_ISN + 1, iss1, ACK, payload=b"x" * 2000)  # larger than our MSS, e.g. merged by GRO
    assert [seg for seg in s.flush() if seg.flags & ACK and not seg.payload] == []  # first one: delayed
    s.inject(PEER_ISN + 2001, iss1, ACK, payload=b"y" * 1460)
    acks = [seg for seg in s.flush() if not seg.payload]
    assert [a.ack for a in acks] == [PEER_ISN + 3461], "two full segments' worth must be acknowledged at once"


def test_a_pure_ack_sent_from_our_windows_right_edge_is_taken() -> None:
    """A peer that filled our window sends its pure ACKs with SEG.SEQ at our right edge.

    RFC 9293's "SEG.SEQ < RCV.NXT + RCV.WND" drops them, and the ACKs they carry with
    them: over a TAP with TSO this stalled an echo for one RTO per super-segment. Linux
    accepts the edge (tcp_sequence); so do we.
    """
    s, conn, iss1 = established()
    conn.send(b"d" * 1000, s.now)
    (seg,) = s.flush()
    edge = PEER_ISN + 1 + (seg.window << 7)  # we offered window scale 7 and the peer took it
    s.inject(edge, iss1 + 1000, ACK)
    s.flush()
    assert conn.info()["unacked"] == 0, "the ACK riding on a segment at the right edge was dropped"


@pytest.mark.parametrize("write_first", [False, True], ids=["flushed-between", "write-before-flush"])
def test_nodelay_while_corked_pushes_what_the_cork_holds(write_first: bool) -> None:
    # tcp(7): setting TCP_NODELAY flushes pending output even while TCP_CORK is set (Linux's
    # TCP_NAGLE_PUSH). What was queued then goes, and the cork holds what is written after,
    # also when that write comes before the flush that pushes.
    s, conn, iss1 = established()
    conn.set_option("cork", True)
    conn.send(b"a" * 40, s.now)
    conn.send(b"b" * 40, s.now)
    assert s.flush() == []
    conn.set_option("nodelay", True)
    assert conn.options["cork"] is True
    if write_first:
        conn.send(b"c" * 40, s.now)
    out = s.flush()
    if not write_first:
        conn.send(b"c" * 40, s.now)
        out += s.flush()
    assert [(seg.seq, bytes(seg.payload)) for seg in out] == [(iss1, b"a" * 40 + b"b" * 40)]
    conn.set_option("cork", False)
    (last,) = s.flush()
    assert (last.seq, bytes(last.payload)) == (iss1 + 80, b"c" * 40)
