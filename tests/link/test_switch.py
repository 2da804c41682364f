"""The in-memory switch: forwarding by MAC, flooding, per-pair cables that cut, hold and fault."""

from __future__ import annotations

import pytest

from usernet.link import VirtualClock
from usernet.link.switch import HOLD_LIMIT, Switch, SwitchPort

BROADCAST = b"\xff" * 6


def frame(dst: bytes, src: bytes, body: bytes = b"x" * 46) -> bytes:
    return dst + src + b"\x08\x00" + body


def drain(port: SwitchPort) -> list[bytes]:
    return [bytes(f) for f in port.receive(1000)]


def switch_of(*names: str, latency: float = 0.0) -> tuple[Switch, VirtualClock, list[SwitchPort]]:
    clock = VirtualClock()
    switch = Switch(clock, seed=1, latency=latency)
    return switch, clock, [switch.add_port(n) for n in names]


def test_unicast_reaches_only_its_port_and_broadcast_all_others() -> None:
    _, _, (a, b, c) = switch_of("a", "b", "c")
    arrivals: list[str] = []
    b.on_arrival = lambda: arrivals.append("b")
    a.send(frame(b.mac, a.mac, b"1" * 46))
    a.send(frame(BROADCAST, a.mac, b"2" * 46))
    assert [f[14:15] for f in drain(b)] == [b"1", b"2"]
    assert [f[14:15] for f in drain(c)] == [b"2"]
    assert drain(a) == []  # a flooded frame does not come back to its sender
    assert arrivals == ["b"]  # once: the inbox went from empty to not empty once


def test_arrival_is_signalled_when_the_inbox_stops_being_empty() -> None:
    _, _, (a, b) = switch_of("a", "b")
    arrivals: list[int] = []
    b.on_arrival = lambda: arrivals.append(1)
    a.send(frame(b.mac, a.mac))
    a.send(frame(b.mac, a.mac))
    assert len(arrivals) == 1
    drain(b)
    a.send(frame(b.mac, a.mac))
    assert len(arrivals) == 2


def test_unknown_destination_is_dropped_and_counted() -> None:
    _, _, (a, b) = switch_of("a", "b")
    a.send(frame(b"\x02\x00\x00\x00\x99\x99", a.mac))
    assert drain(b) == [] and a.dropped_tx == 1


def test_latency_holds_frames_until_the_sender_polls_at_their_time() -> None:
    _, clock, (a, b) = switch_of("a", "b", latency=0.01)
    a.send(frame(b.mac, a.mac))
    assert drain(b) == [] and a.next_deadline() == 0.01
    clock.set(0.01)
    a.poll(clock())
    assert len(drain(b)) == 1


def test_cut_loses_frames_in_flight_and_hold_delivers_them_in_order_on_release() -> None:
    switch, clock, (a, b) = switch_of("a", "b", latency=0.01)
    cable = switch.cable("a", "b")
    a.send(frame(b.mac, a.mac, b"lost" + bytes(42)))
    cable.cut = True
    clock.set(0.01)
    a.poll(clock())
    assert drain(b) == [] and cable.dropped_tx == 1
    cable.cut = False
    cable.hold()
    for tag in (b"1", b"2"):
        a.send(frame(b.mac, a.mac, tag * 46))
    clock.set(0.02)
    a.poll(clock())
    assert drain(b) == [] and cable.holding == 2
    cable.release()
    assert [f[14:15] for f in drain(b)] == [b"1", b"2"]
    b.send(frame(a.mac, b.mac))  # the other direction has its own cable, untouched
    clock.set(0.03)
    b.poll(clock())
    assert len(drain(a)) == 1


def test_a_held_cable_has_a_bounded_queue() -> None:
    switch, _, (a, b) = switch_of("a", "b")
    cable = switch.cable("a", "b")
    cable.hold()
    for _ in range(HOLD_LIMIT + 3):
        a.send(frame(b.mac, a.mac))
    assert cable.holding == HOLD_LIMIT and cable.dropped_tx == 3


def test_a_port_that_is_down_neither_sends_nor_receives() -> None:
    _, _, (a, b) = switch_of("a", "b")
    a.send(frame(b.mac, a.mac))
    b.set_up(False)  # what waited in its inbox is lost
    a.send(frame(b.mac, a.mac))
    b.send(frame(a.mac, b.mac))
    b.set_up(True)
    assert drain(b) == [] and b.dropped_rx == 2 and b.dropped_tx == 1
    assert drain(a) == []


def test_cable_faults_are_seeded_per_pair_and_the_trace_fingerprints_every_frame() -> None:
    def run(seed: int) -> tuple[list[int], str]:
        clock = VirtualClock()
        switch = Switch(clock, seed=seed)
        a, b = switch.add_port("a"), switch.add_port("b")
        switch.injector("a", "b").update(loss=0.5)
        kept = []
        for i in range(200):
            a.send(frame(b.mac, a.mac, i.to_bytes(2, "big") + bytes(44)))
            kept.extend(int.from_bytes(f[14:16], "big") for f in drain(b))
        return kept, switch.trace_digest()

    assert run(1) == run(1)
    assert run(1)[0] != run(2)[0]
    assert 50 < len(run(1)[0]) < 150


def test_ports_have_unique_names_and_fixed_macs() -> None:
    switch, _, (a, b) = switch_of("a", "b")
    assert (a.mac, b.mac) == (bytes.fromhex("02005e000001"), bytes.fromhex("02005e000002"))
    with pytest.raises(ValueError, match="already"):
        switch.add_port("a")
    with pytest.raises(KeyError, match="no host named 'z'"):
        switch.port("z")
    with pytest.raises(ValueError, match="itself"):
        switch.cable("a", "a")
