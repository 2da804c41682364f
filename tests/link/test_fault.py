"""Each fault on its own over many frames with fixed seeds, and determinism with all of them at once."""

from __future__ import annotations

import itertools
import math
import struct
from collections import Counter

import pytest

from usernet.link import FaultInjector, Link, MemoryWire, VirtualClock

N = 5000


def frame(i: int, size: int = 64) -> bytes:
    return struct.pack("!I", i) + bytes(size - 4)


def seq(f: bytes) -> int:
    return struct.unpack_from("!I", f)[0]


def within(observed: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    """`observed` is a plausible draw of Binomial(n, p)."""
    return abs(observed - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


class Bench:
    """A MemoryWire with an injector on a's transmit side (or b's receive side), driven to completion."""

    def __init__(self, direction: str = "tx", **faults: object) -> None:
        self.clock = VirtualClock()
        self.wire = MemoryWire(self.clock, queue_limit=100_000)
        wrapped = self.wire.a if direction == "tx" else self.wire.b
        self.fi = FaultInjector(wrapped, self.clock, direction=direction, **faults)  # type: ignore[arg-type]  # keywords from a dict
        self.sender: Link = self.fi if direction == "tx" else self.wire.a
        self.receiver: Link = self.wire.b if direction == "tx" else self.fi
        self.out: list[tuple[float, bytes]] = []

    def _collect(self) -> None:
        for f in self.receiver.receive(1000):
            self.out.append((self.clock(), bytes(f)))

    def _drive_until(self, t: float) -> None:
        while True:
            deadlines = [d for d in (self.fi.next_deadline(), self.wire.b.next_deadline()) if d is not None]
            if not deadlines or min(deadlines) > t:
                break
            self.clock.set(max(self.clock(), min(deadlines)))
            self.fi.poll(self.clock())
            self._collect()
        if t != math.inf:
            self.clock.set(max(self.clock(), t))

    def run(self, frames: list[bytes], spacing: float = 0.001) -> list[tuple[float, bytes]]:
        for i, f in enumerate(frames):
            self._drive_until(i * spacing)
            self.sender.send(f)
            self._collect()
        self._drive_until(math.inf)
        return self.out


ALL_FAULTS = dict(loss=0.05, duplicate=0.05, reorder=0.05, corrupt=0.05, delay=0.002, jitter=0.001, rate=100_000)


@pytest.mark.parametrize("direction", ["tx", "rx"])
def test_same_seed_same_output_different_seed_different_output(direction: str):
    frames = [frame(i) for i in range(2000)]
    first = Bench(direction, seed=7, **ALL_FAULTS).run(frames)
    again = Bench(direction, seed=7, **ALL_FAULTS).run(frames)
    other = Bench(direction, seed=8, **ALL_FAULTS).run(frames)
    assert first == again
    assert first != other


def test_no_faults_is_transparent():
    frames = [frame(i) for i in range(100)]
    bench = Bench(seed=1)
    assert bench.run(frames) == [(i * 0.001, f) for i, f in enumerate(frames)]


def test_loss_drops_the_configured_share():
    bench = Bench(seed=3, loss=0.2)
    out = bench.run([frame(i) for i in range(N)])
    assert within(N - len(out), N, 0.2)
    assert bench.fi.lost == N - len(out)
    assert [seq(f) for _, f in out] == sorted(seq(f) for _, f in out)


def test_duplicate_sends_some_frames_twice():
    bench = Bench(seed=4, duplicate=0.1)
    out = bench.run([frame(i) for i in range(N)])
    counts = Counter(seq(f) for _, f in out)
    assert set(counts) == set(range(N)) and set(counts.values()) == {1, 2}
    twice = sum(1 for c in counts.values() if c == 2)
    assert twice == bench.fi.duplicated and within(twice, N, 0.1)


def test_corrupt_flips_one_to_three_bits_in_a_copy():
    frames = [frame(i) for i in range(N)]
    originals = [bytes(f) for f in frames]
    bench = Bench(seed=5, corrupt=0.1)
    out = bench.run(frames)
    assert frames == originals  # the sender's frames are untouched
    assert len(out) == N
    flipped = [sum(bin(x ^ y).count("1") for x, y in zip(f, originals[i], strict=True)) for i, (_, f) in enumerate(out)]
    damaged = [bits for bits in flipped if bits]
    assert len(damaged) == bench.fi.corrupted and within(len(damaged), N, 0.1)
    assert set(damaged) == {1, 2, 3}


def test_reorder_holds_a_frame_behind_the_next_one():
    bench = Bench(seed=6, reorder=0.1)
    out = [seq(f) for _, f in bench.run([frame(i) for i in range(N)])]
    assert sorted(out) == list(range(N))
    descents = sum(1 for x, y in itertools.pairwise(out) if x > y)
    assert 0 < descents <= bench.fi.reordered and within(bench.fi.reordered, N, 0.1)
    # frames only trade places with close neighbours: a held frame goes out right behind the next
    assert max(abs(position - number) for position, number in enumerate(out)) < 10


def test_reorder_releases_a_held_frame_when_nothing_follows():
    bench = Bench(seed=0, reorder=1.0, reorder_timeout=0.5)
    out = bench.run([frame(0)])
    assert out == [(0.5, frame(0))]


def test_delay_shifts_every_frame_and_jitter_stays_in_bounds():
    out = Bench(seed=1, delay=0.05).run([frame(i) for i in range(100)], spacing=0.01)
    assert [t for t, _ in out] == pytest.approx([i * 0.01 + 0.05 for i in range(100)])
    bench = Bench(seed=1, delay=0.05, jitter=0.02)
    jittered = bench.run([frame(i) for i in range(N)], spacing=0.001)
    lags = [t - seq(f) * 0.001 for t, f in jittered]
    assert min(lags) >= 0.03 - 1e-9 and max(lags) <= 0.07 + 1e-9
    assert max(lags) - min(lags) > 0.03  # the spread is used, not a constant
    assert [seq(f) for _, f in jittered] != list(range(N))  # 1 ms apart with ±20 ms jitter: reordered
    assert bench.fi.delayed == N


def test_rate_limit_paces_frames_as_a_token_bucket():
    bench = Bench(seed=1, rate=1000.0, burst=100)
    out = bench.run([frame(i, 100) for i in range(10)], spacing=0.0)
    assert [t for t, _ in out] == pytest.approx([i * 0.1 for i in range(10)])
    assert bench.fi.rate_limited == 9


def test_rate_limit_queue_is_bounded_with_tail_drop():
    bench = Bench(seed=1, rate=1000.0, burst=100, rate_queue=5)
    out = bench.run([frame(i, 100) for i in range(10)], spacing=0.0)
    assert [seq(f) for _, f in out] == [0, 1, 2, 3, 4, 5]
    assert bench.fi.dropped_tx == 4


def test_rx_direction_leaves_transmit_alone():
    clock = VirtualClock()
    wire = MemoryWire(clock)
    fi = FaultInjector(wire.b, clock, seed=1, loss=1.0, direction="rx")
    wire.a.send(frame(1))
    fi.send(frame(2))
    assert fi.receive() == [] and fi.lost == 1
    assert wire.a.receive() == [frame(2)]


@pytest.mark.parametrize(
    "bad", [dict(loss=1.5), dict(reorder=-0.1), dict(delay=-1.0), dict(rate=0), dict(direction="up")]
)
def test_bad_parameters_are_refused(bad: dict[str, object]):
    clock = VirtualClock()
    with pytest.raises(ValueError):
        FaultInjector(MemoryWire(clock).a, clock, seed=1, **bad)  # type: ignore[arg-type]  # keywords from a dict


def test_update_changes_faults_for_frames_entering_from_then_on():
    bench = Bench(seed=1, delay=0.01)
    bench.sender.send(frame(0))
    bench.fi.update(delay=0.05, loss=1.0)
    bench.sender.send(frame(1))  # lost: the new loss applies to it
    bench.fi.update(loss=0.0)  # delay stays 0.05
    bench.sender.send(frame(2))
    assert bench.run([]) == [(0.01, frame(0)), (0.05, frame(2))]
    assert bench.fi.lost == 1
    with pytest.raises(ValueError, match="probability"):
        bench.fi.update(duplicate=1.5)


def test_set_rate_replaces_the_limit_and_none_lifts_it():
    bench = Bench(seed=1, burst=64)
    bench.fi.set_rate(1000.0)  # bytes/s, a bucket of one 64-byte frame: they leave 64 ms apart
    for i in range(3):
        bench.sender.send(frame(i))
    bench.fi.set_rate(None)
    bench.sender.send(frame(3))  # passes at once, unpaced
    times = {seq(f): t for t, f in bench.run([])}
    assert times == {0: 0.0, 1: pytest.approx(0.064), 2: pytest.approx(0.128), 3: 0.0}
    with pytest.raises(ValueError, match="bytes per second"):
        bench.fi.set_rate(0)


@pytest.mark.parametrize("delay", [0.2, 0.9])
def test_the_deadline_is_the_earlier_of_a_held_frame_and_a_delayed_one(delay: float):
    """A held frame (out at 0.5 if nothing follows) and a delayed one behind it: the injector's
    deadline is whichever is due first, and each frame leaves at that deadline."""
    bench = Bench(seed=0, reorder=1.0, reorder_timeout=0.5)
    bench.sender.send(frame(0))  # held
    assert bench.fi.next_deadline() == 0.5
    bench.fi.update(reorder=0.0, delay=delay)
    bench.sender.send(frame(1))
    assert bench.fi.next_deadline() == min(0.5, delay)
    # the delayed frame overtakes the held one, which leaves right behind it (or alone, at 0.5)
    expected = [(0.2, frame(1)), (0.2, frame(0))] if delay < 0.5 else [(0.5, frame(0)), (0.9, frame(1))]
    assert bench.run([]) == expected
