"""Send prediction (`_output_data`): one write of at most an MSS with nothing in flight
leaves without the segmentation loop; each condition it tests sends the write the general
way instead, and what goes out is what the loop would send."""

from __future__ import annotations

from tests.tcp.scripted import PEER_ISN, Scripted
from tests.tcp.test_segments import established
from usernet.stack import TcpConfig
from usernet.stack.tcp.connection import TcpConnection
from usernet.wire.tcp import ACK, FIN, PSH, TcpSegment


def acknowledge(s: Scripted, seg: TcpSegment, tsval: int = 102) -> None:
    """The peer's pure ACK of everything `seg` carried."""
    end = seg.seq + len(seg.payload) + (1 if seg.flags & FIN else 0)
    s.inject(PEER_ISN + 1, end, ACK, options=s.ts(tsval, seg.timestamp[0]) if seg.timestamp else b"")


def test_a_small_write_with_nothing_in_flight_is_one_psh_segment_with_its_timer() -> None:
    s, conn, una = established()
    assert isinstance(conn, TcpConnection)
    conn.send(b"q" * 100, s.now)
    (seg,) = s.flush()
    assert (seg.seq, seg.flags, bytes(seg.payload)) == (una, ACK | PSH, b"q" * 100)
    assert conn.snd_nxt == conn.snd_max == una + 100
    # Its timer is armed: unacknowledged, the data goes again (a tail loss probe, then the RTO).
    again = [seg for _, seg in s.advance(3.0) if seg.payload]
    assert again and bytes(again[0].payload) == b"q" * 100 and again[0].seq == una


def test_a_write_with_data_in_flight_waits_for_its_ack_as_nagle_says() -> None:
    s, conn, una = established()
    assert isinstance(conn, TcpConnection)
    conn.send(b"a" * 100, s.now)
    (first,) = s.flush()
    conn.send(b"b" * 100, s.now)
    assert s.flush() == []  # Minshall's Nagle: one small segment unacknowledged at a time
    acknowledge(s, first)
    (second,) = s.flush()
    assert (second.seq, second.flags, bytes(second.payload)) == (una + 100, ACK | PSH, b"b" * 100)


def test_a_write_of_more_than_an_mss_goes_the_general_way_with_psh_on_its_end() -> None:
    s, conn, una = established()
    assert isinstance(conn, TcpConnection)
    conn.send(b"m" * 2000, s.now)
    first, second = s.flush()
    assert (first.seq, first.flags, len(first.payload)) == (una, ACK, 1460)
    assert (second.seq, second.flags, len(second.payload)) == (una + 1460, ACK | PSH, 540)


def test_a_corked_write_waits_for_the_cork_to_come_off() -> None:
    s, conn, una = established()
    assert isinstance(conn, TcpConnection)
    conn.set_option("cork", True)
    conn.send(b"c" * 100, s.now)
    assert s.flush() == []
    conn.set_option("cork", False)
    (seg,) = s.flush()
    assert (seg.seq, seg.flags, len(seg.payload)) == (una, ACK | PSH, 100)


def test_a_write_with_the_fin_after_it_carries_the_fin() -> None:
    s, conn, una = established()
    assert isinstance(conn, TcpConnection)
    conn.send(b"f" * 100, s.now)
    conn.shutdown(s.now)
    (seg,) = s.flush()
    assert (seg.seq, seg.flags, len(seg.payload)) == (una, ACK | PSH | FIN, 100)


def test_a_write_after_an_idle_rto_restarts_the_congestion_window() -> None:
    s, conn, _ = established()
    assert isinstance(conn, TcpConnection)
    conn.send(b"i" * 100, s.now)
    (seg,) = s.flush()
    acknowledge(s, seg)
    s.now += 5.0  # well past the RTO, short of the keepalive
    conn.send(b"j" * 100, s.now)
    (again,) = s.flush()
    assert again.flags == ACK | PSH
    assert s.iface.counters.tcp_cwnd_restarts == 1


def test_without_restart_after_idle_the_window_stays() -> None:
    s, conn, _ = established(tcp=TcpConfig(slow_start_after_idle=False))
    assert isinstance(conn, TcpConnection)
    conn.send(b"i" * 100, s.now)
    (seg,) = s.flush()
    acknowledge(s, seg)
    s.now += 5.0
    conn.send(b"j" * 100, s.now)
    (again,) = s.flush()
    assert again.flags == ACK | PSH
    assert s.iface.counters.tcp_cwnd_restarts == 0


def test_a_write_larger_than_the_peers_window_goes_in_window_sized_pieces() -> None:
    s, conn, una = established(options=b"", window=50)  # no window scaling: the window is 50 bytes
    assert isinstance(conn, TcpConnection)
    conn.send(b"w" * 100, s.now)
    segs = s.flush()
    assert [len(seg.payload) for seg in segs] == [50]  # the rest waits for the window to open
    assert segs[0].seq == una
