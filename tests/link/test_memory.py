from __future__ import annotations

import pytest

from usernet.link import Link, MemoryWire, VirtualClock


def test_endpoints_are_links_with_distinct_macs():
    wire = MemoryWire(VirtualClock())
    assert isinstance(wire.a, Link) and isinstance(wire.b, Link)
    assert wire.a.mac != wire.b.mac
    assert wire.a.fileno() is None and wire.a.mtu == 1500


def test_macs_are_configurable_but_must_differ():
    wire = MemoryWire(VirtualClock(), mac_a=b"\x02" + b"\x11" * 5, mac_b=b"\x02" + b"\x22" * 5)
    assert wire.a.mac == b"\x02" + b"\x11" * 5
    with pytest.raises(ValueError):
        MemoryWire(VirtualClock(), mac_a=b"\x02" * 6, mac_b=b"\x02" * 6)


def test_zero_latency_delivers_at_once_in_both_directions_in_order():
    wire = MemoryWire(VirtualClock())
    for i in range(5):
        wire.a.send(bytes([i]) * 60)
    wire.b.send(b"back" * 20)
    assert [bytes(f) for f in wire.b.receive()] == [bytes([i]) * 60 for i in range(5)]
    assert [bytes(f) for f in wire.a.receive()] == [b"back" * 20]
    assert wire.b.receive() == []
    assert (wire.a.tx_frames, wire.a.tx_bytes, wire.b.rx_frames, wire.b.rx_bytes) == (5, 300, 5, 300)


def test_frame_is_receivable_exactly_latency_after_it_was_sent():
    clock = VirtualClock(10.0)
    wire = MemoryWire(clock, latency=0.25)
    wire.a.send(b"x" * 60)
    clock.advance(0.1)
    wire.a.send(b"y" * 60)
    assert wire.b.next_deadline() == 10.25
    assert wire.b.receive() == []
    clock.set(10.25)
    assert wire.b.receive() == [b"x" * 60]
    assert wire.b.next_deadline() == pytest.approx(10.35)
    clock.set(wire.b.next_deadline())
    assert wire.b.receive() == [b"y" * 60]
    assert wire.b.next_deadline() is None


def test_send_copies_the_callers_buffer():
    clock = VirtualClock()
    wire = MemoryWire(clock, latency=1.0)
    buf = bytearray(b"a" * 60)
    wire.a.send(memoryview(buf))
    buf[:] = b"b" * 60
    clock.advance(1.0)
    assert wire.b.receive() == [b"a" * 60]


def test_receive_honours_max_frames():
    wire = MemoryWire(VirtualClock())
    for _ in range(10):
        wire.a.send(b"z" * 60)
    assert len(wire.b.receive(3)) == 3
    assert len(wire.b.receive()) == 7


def test_full_queue_drops_and_counts_on_the_sender():
    wire = MemoryWire(VirtualClock(), latency=1.0, queue_limit=4)
    for _ in range(6):
        wire.a.send(b"q" * 60)
    assert (wire.a.tx_frames, wire.a.dropped_tx) == (4, 2)


def test_oversized_frame_is_a_bug_not_a_drop():
    wire = MemoryWire(VirtualClock(), mtu=1500)
    wire.a.send(b"m" * (1500 + 18))
    with pytest.raises(ValueError, match="exceeds MTU"):
        wire.a.send(b"m" * (1500 + 19))


def test_frames_toward_a_closed_endpoint_are_dropped():
    wire = MemoryWire(VirtualClock())
    wire.b.close()
    wire.a.send(b"c" * 60)
    assert wire.a.dropped_tx == 1
    with pytest.raises(ValueError):
        wire.b.send(b"c" * 60)


def test_virtual_clock_only_moves_forward():
    clock = VirtualClock()
    assert clock.advance(1.5) == 1.5 and clock() == 1.5
    clock.set(2.0)
    with pytest.raises(ValueError):
        clock.set(1.0)
    with pytest.raises(ValueError):
        clock.advance(-0.1)
