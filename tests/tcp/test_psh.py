"""PSH where Linux puts it (tcp_sendmsg_locked, tcp_push, forced_push): at the end of each
write and at every full skb that ends more than half the peer's largest window after the
last PSH, kept through TSO frames and retransmissions."""

from __future__ import annotations

from tests.tcp.test_tso import MSS, OFFLOADS, Offloaded, ack, established
from usernet.wire.tcp import PSH, encode_tcp_options

# A peer without window scaling whose window is 65535: skbs of 22 segments (half of it,
# whole MSS), and PSH on each second one, where more than 32767 bytes were written since
# the last; and at the end.
GOAL = 32767 - 32767 % MSS
MARKS = [2 * GOAL, 4 * GOAL, 6 * GOAL, 8 * GOAL, 262144]


def test_a_large_write_in_tso_frames_has_psh_where_linux_puts_it() -> None:
    s = Offloaded(**OFFLOADS)
    conn, synack = s.accept_handshake(encode_tcp_options(mss=1460, sack_permitted=True, timestamp=(100, 0)))
    first, tsecr = synack.seq + 1, synack.timestamp[0]
    assert conn.send(bytes(300_000), s.now) == 262144
    frames = []
    while True:
        sent = s.frames()
        if not sent:
            break
        for frame, seg in sent:
            frames.append(((seg.seq - first) & 0xFFFFFFFF, len(seg.payload), bool(seg.flags & PSH), frame))
        ack(s, sent[-1][1].seq + len(sent[-1][1].payload), tsecr)
    assert sum(n for _, n, _, _ in frames) == 262144
    # Linux's __tcp_transmit_skb also puts PSH on every frame of more than one MSS.
    for start, n, psh, _ in frames:
        assert psh == (n > conn._mss or start + n in MARKS), "PSH on TSO frames and where an skb marked PSH ends"
    assert {start + n for start, n, psh, _ in frames if psh} >= set(MARKS)
    for start, n, _, _ in frames:
        assert not any(start < mark < start + n for mark in MARKS), "no frame crosses a PSH mark"
    assert any(len(frame) > 1514 for *_, frame in frames)  # TSO frames: the device cuts them


def test_with_a_large_window_only_the_write_ends_and_tso_frames_have_psh() -> None:
    s, conn, first, tsecr = established()  # window 65535 << 7: half of it is more than any write here
    assert conn.send(bytes(300_000), s.now) == 262144
    frames = []
    while sent := s.frames():
        frames += [
            ((seg.seq - first + len(seg.payload)) & 0xFFFFFFFF, len(seg.payload), bool(seg.flags & PSH))
            for _, seg in sent
        ]
        ack(s, sent[-1][1].seq + len(sent[-1][1].payload), tsecr)
    assert all(psh == (n > conn._mss or end == 262144) for end, n, psh in frames)
    assert frames[-1][0] == 262144 and frames[-1][2]


def test_a_write_that_joins_an_unsent_tail_takes_its_psh() -> None:
    s, conn, first, tsecr = established()
    conn.send(bytes(10 * MSS), s.now)
    s.frames()  # the initial window is full
    conn.send(bytes(100), s.now)
    conn.send(bytes(100), s.now)  # joins the unsent 100: one PSH, at the end
    ack(s, first + 10 * MSS, tsecr)
    [(_, seg)] = s.frames()
    assert len(seg.payload) == 200 and seg.flags & PSH


def test_a_retransmission_keeps_the_psh_of_what_it_repeats() -> None:
    s, conn, first, _ = established()
    conn.nodelay = True
    conn.send(bytes(1000), s.now)
    segs = [seg for _, seg in s.frames()]
    conn.send(bytes(1000), s.now)
    segs += [seg for _, seg in s.frames()]
    assert [(len(x.payload), bool(x.flags & PSH)) for x in segs] == [(1000, True), (1000, True)]
    # No ACK: a tail loss probe, then the retransmission timer, which resends from the first
    # byte: that segment ends at the first write's end, with its PSH (a byte-counted window
    # of one MSS then has room for 448 more bytes, which have none).
    again = [((seg.seq - first) & 0xFFFFFFFF, len(seg.payload), bool(seg.flags & PSH)) for _, seg in s.advance(3.0)]
    assert (0, 1000, True) in again and (1000, 448, False) in again
