"""Seeded, repeatable network faults in front of any link: loss, duplication, reordering,
corruption, delay with jitter, and a rate limit.

`sch_netem` is not available everywhere usernet is tested, and a kernel qdisc could not
be replayed anyway. Here every random choice comes from one `random.Random(seed)` and is
drawn when a frame enters, so the same seed and the same sequence of calls (with the
same clock readings) produce the same frames at the same times.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from typing import Literal

from usernet.link.base import ETHERNET_OVERHEAD, BytesLike, Link, LinkWrapper

__all__ = ["FaultInjector"]

Direction = Literal["both", "tx", "rx"]


class _TokenBucket:
    """Decides, when a frame arrives, when it may leave under a byte rate.

    Departure times are computed up front (a FIFO behind a token bucket is fully
    determined by arrivals), so the result does not depend on how often anyone polls.
    """

    __slots__ = ("_burst", "_limit", "_rate", "_stamp", "_tokens", "_waiting")

    def __init__(self, rate: float, burst: int, limit: int) -> None:
        self._rate = rate
        self._burst = burst
        self._limit = limit
        self._tokens = float(burst)
        self._stamp = -math.inf  # when _tokens was last right
        self._waiting: deque[float] = deque()  # departure times of frames still queued

    def departure(self, size: int, now: float) -> float | None:
        """When a frame of `size` bytes arriving at `now` leaves; None when the queue is full."""
        waiting = self._waiting
        while waiting and waiting[0] <= now:
            waiting.popleft()
        if len(waiting) >= self._limit:
            return None
        start = max(now, self._stamp)
        tokens = min(self._burst, self._tokens + (start - self._stamp) * self._rate)
        need = min(size, self._burst)  # a frame larger than the bucket waits for a full one
        if tokens < need:
            start += (need - tokens) / self._rate
            tokens = need
        self._tokens = tokens - need
        self._stamp = start
        if start > now:
            waiting.append(start)
        return start


class _Path:
    """The faults of one direction: frames wait in a heap until due, then pass the reorder stage."""

    __slots__ = ("_bucket", "_emit", "_heap", "_held", "_reorder_timeout", "_seq")

    def __init__(self, emit: Callable[[bytes], None], bucket: _TokenBucket | None, reorder_timeout: float) -> None:
        self._emit = emit
        self._bucket = bucket
        self._reorder_timeout = reorder_timeout
        self._heap: list[tuple[float, int, bool, bytes]] = []
        self._held: deque[tuple[float, bytes]] = deque()
        self._seq = 0  # keeps equal due times in arrival order

    def set_bucket(self, bucket: _TokenBucket | None) -> None:
        """Put a new rate limit (or none) in front of the frames that arrive from now on."""
        self._bucket = bucket

    def schedule(self, frame: bytes, now: float, wait: float, hold: bool) -> float | None:
        """Queue `frame` to come out `wait` seconds after the rate limit lets it go.

        Returns when the rate limit lets it go, or None if it was tail-dropped.
        """
        depart = now if self._bucket is None else self._bucket.departure(len(frame), now)
        if depart is None:
            return None
        self._seq += 1
        heapq.heappush(self._heap, (depart + wait, self._seq, hold, frame))
        return depart

    def release(self, now: float) -> None:
        """Emit, in time order, every frame due by `now`; a held frame goes out behind the next one."""
        heap = self._heap
        held = self._held
        while True:
            next_due = heap[0][0] if heap else math.inf
            next_held = held[0][0] if held else math.inf
            if next_held < next_due and next_held <= now:
                self._emit(held.popleft()[1])  # nothing overtook it in time: let it go alone
                continue
            if next_due > now:
                return
            due, _, hold, frame = heapq.heappop(heap)
            if hold:
                held.append((due + self._reorder_timeout, frame))
                continue
            self._emit(frame)
            while held:
                self._emit(held.popleft()[1])

    def next_deadline(self) -> float | None:
        # Read after every flush and pump of a simulated host: no list, no min() call.
        held = self._held
        if self._heap:
            due = self._heap[0][0]
            return held[0][0] if held and held[0][0] < due else due
        return held[0][0] if held else None


def _probability(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} is a probability between 0 and 1, not {value!r}")
    return value


class FaultInjector(LinkWrapper):
    """Wraps `link` and applies faults to frames sent (`direction="tx"`), received ("rx") or both.

    Per frame, in this order: lost with probability `loss`; a copy with 1–3 random bits
    flipped with probability `corrupt`; sent twice with probability `duplicate`; queued
    behind a token bucket of `rate` bytes/s (bucket of `burst` bytes, at most
    `rate_queue` frames waiting, tail drop counted in `dropped_tx`/`dropped_rx`); delayed
    by `delay` ± `jitter` seconds (uniform, never below zero, so jitter also reorders);
    with probability `reorder` held back until the next frame in the same direction has
    gone out, or `reorder_timeout` seconds if none comes.

    Frames held back come out from `poll(now)`, or from `send()`/`receive()` when they
    read the clock; `next_deadline()` says when. On the receive side, frames that became
    due in `poll()` wait for the next `receive()`.

    `update()` and `set_rate()` change the faults while frames flow (a simulation changing
    a link mid-run); frames already queued keep the times they were given.

    Counters, over both directions: `lost`, `corrupted`, `duplicated`, `reordered` (held
    back), `delayed` (waited delay ± jitter > 0), `rate_limited` (waited for tokens).
    `tx_*` count what was handed to `send()`, `rx_*` what `receive()` returned.
    """

    __slots__ = (
        "_bucket_size",
        "_clock",
        "_corrupt",
        "_delay",
        "_duplicate",
        "_jitter",
        "_loss",
        "_rate_queue",
        "_ready",
        "_reorder",
        "_rng",
        "_rx",
        "_tx",
        "corrupted",
        "delayed",
        "duplicated",
        "lost",
        "rate_limited",
        "reordered",
    )

    def __init__(
        self,
        link: Link,
        clock: Callable[[], float],
        *,
        seed: int,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        corrupt: float = 0.0,
        delay: float = 0.0,
        jitter: float = 0.0,
        rate: float | None = None,
        direction: Direction = "both",
        burst: int | None = None,
        rate_queue: int = 64,
        reorder_timeout: float = 0.01,
    ) -> None:
        super().__init__(link)
        if direction not in ("both", "tx", "rx"):
            raise ValueError(f'direction is "both", "tx" or "rx", not {direction!r}')
        if reorder_timeout < 0:
            raise ValueError("reorder_timeout is a duration >= 0 seconds")
        if rate_queue < 1:
            raise ValueError(f"rate_queue must be at least 1 frame, not {rate_queue!r}")
        self._clock = clock
        self._rng = random.Random(seed)
        self._loss = self._duplicate = self._reorder = self._corrupt = self._delay = self._jitter = 0.0
        self.update(loss=loss, duplicate=duplicate, reorder=reorder, corrupt=corrupt, delay=delay, jitter=jitter)
        self._ready: deque[bytes] = deque()
        self._bucket_size = burst if burst is not None else link.mtu + ETHERNET_OVERHEAD
        self._rate_queue = rate_queue
        self._tx = _Path(link.send, self._bucket(rate), reorder_timeout) if direction in ("both", "tx") else None
        self._rx = (
            _Path(self._ready.append, self._bucket(rate), reorder_timeout) if direction in ("both", "rx") else None
        )
        self.lost = 0
        self.corrupted = 0
        self.duplicated = 0
        self.reordered = 0
        self.delayed = 0
        self.rate_limited = 0

    def update(
        self,
        *,
        loss: float | None = None,
        duplicate: float | None = None,
        reorder: float | None = None,
        corrupt: float | None = None,
        delay: float | None = None,
        jitter: float | None = None,
    ) -> None:
        """Change the faults given (None keeps one as it is) for the frames that enter from now on."""
        if (delay is not None and delay < 0) or (jitter is not None and jitter < 0):
            raise ValueError("delay and jitter are durations >= 0 seconds")
        if loss is not None:
            self._loss = _probability("loss", loss)
        if duplicate is not None:
            self._duplicate = _probability("duplicate", duplicate)
        if reorder is not None:
            self._reorder = _probability("reorder", reorder)
        if corrupt is not None:
            self._corrupt = _probability("corrupt", corrupt)
        if delay is not None:
            self._delay = delay
        if jitter is not None:
            self._jitter = jitter

    def set_rate(self, rate: float | None) -> None:
        """A new rate limit in bytes/s (None: none) for the frames that enter from now on."""
        for path in (self._tx, self._rx):
            if path is not None:
                path.set_bucket(self._bucket(rate))

    def _bucket(self, rate: float | None) -> _TokenBucket | None:
        if rate is None:
            return None
        if rate <= 0:
            raise ValueError(f"rate is in bytes per second and must be > 0 (or None for no limit), not {rate!r}")
        return _TokenBucket(rate, self._bucket_size, self._rate_queue)

    def _enter(self, path: _Path, frame: bytes, now: float) -> int:
        """Apply the random faults to one frame entering `path`; return how many copies were tail-dropped."""
        rng = self._rng
        if self._loss and rng.random() < self._loss:
            self.lost += 1
            return 0
        if self._corrupt and frame and rng.random() < self._corrupt:
            flipped = bytearray(frame)
            for bit in rng.sample(range(len(frame) * 8), min(rng.randint(1, 3), len(frame) * 8)):
                flipped[bit >> 3] ^= 1 << (bit & 7)
            frame = bytes(flipped)
            self.corrupted += 1
        copies = 1
        if self._duplicate and rng.random() < self._duplicate:
            copies = 2
            self.duplicated += 1
        dropped = 0
        for _ in range(copies):
            wait = self._delay
            if self._jitter:
                wait = max(0.0, wait + rng.uniform(-self._jitter, self._jitter))
            hold = bool(self._reorder) and rng.random() < self._reorder
            depart = path.schedule(frame, now, wait, hold)
            if depart is None:
                dropped += 1
                continue
            if depart > now:
                self.rate_limited += 1
            if wait > 0:
                self.delayed += 1
            if hold:
                self.reordered += 1
        return dropped

    def send(self, frame: BytesLike) -> None:
        self.tx_frames += 1
        self.tx_bytes += len(frame)
        if self._tx is None:
            self.inner.send(frame)
            return
        now = self._clock()
        self.dropped_tx += self._enter(self._tx, bytes(frame), now)
        self._tx.release(now)

    def receive(self, max_frames: int = 64) -> list[memoryview | bytes]:
        if self._rx is None:
            frames = self.inner.receive(max_frames)
        else:
            ready = self._ready
            now = self._clock()
            if len(ready) < max_frames:
                for frame in self.inner.receive(max_frames - len(ready)):
                    self.dropped_rx += self._enter(self._rx, bytes(frame), now)
            self._rx.release(now)
            frames = [ready.popleft() for _ in range(min(max_frames, len(ready)))]
        self.rx_frames += len(frames)
        self.rx_bytes += sum(len(f) for f in frames)
        return frames

    def next_deadline(self) -> float | None:
        if self._ready:
            return self._clock()
        best = self.inner.next_deadline()  # the earliest of it and the paths', without a list
        for path in (self._tx, self._rx):
            if path is not None and (t := path.next_deadline()) is not None and (best is None or t < best):
                best = t
        return best

    def poll(self, now: float) -> None:
        self.inner.poll(now)
        for path in (self._tx, self._rx):
            if path is not None:
                path.release(now)
