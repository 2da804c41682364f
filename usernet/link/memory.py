"""Two in-process link endpoints joined by a wire with latency, for simulations and tests."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from usernet.link.base import ETHERNET_OVERHEAD, BytesLike, LinkCounters

__all__ = ["MemoryEndpoint", "MemoryWire"]

#: Distinct, locally administered and fixed, so that simulations are reproducible.
DEFAULT_MAC_A = bytes.fromhex("020000000001")
DEFAULT_MAC_B = bytes.fromhex("020000000002")


class MemoryEndpoint(LinkCounters):
    """One end of a `MemoryWire`; a `Link` with no fd, woken through `next_deadline()`.

    Frames in flight toward this endpoint wait in its inbox with the time they become
    receivable. The latency is the same for every frame and the clock never goes back, so
    the inbox is always in due order and a deque is enough.
    """

    __slots__ = ("_clock", "_closed", "_inbox", "_latency", "_mac", "_mtu", "_peer", "_queue_limit")

    def __init__(self, clock: Callable[[], float], mtu: int, mac: bytes, latency: float, queue_limit: int) -> None:
        super().__init__()
        self._clock = clock
        self._mtu = mtu
        self._mac = mac
        self._latency = latency
        self._queue_limit = queue_limit
        self._inbox: deque[tuple[float, bytes]] = deque()
        self._peer: MemoryEndpoint = self
        self._closed = False

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def mac(self) -> bytes:
        return self._mac

    def fileno(self) -> None:
        return None

    def send(self, frame: BytesLike) -> None:
        """Put a copy of `frame` on the wire; it reaches the peer `latency` seconds from now.

        An oversized frame raises ValueError rather than being dropped: on a simulated wire
        it can only be a bug in whoever built it, and a drop would hide it.
        """
        if self._closed:
            raise ValueError("send() on a closed MemoryWire endpoint")
        size = len(frame)
        if size > self._mtu + ETHERNET_OVERHEAD:
            raise ValueError(
                f"frame of {size} bytes exceeds MTU {self._mtu} + {ETHERNET_OVERHEAD} bytes of Ethernet header"
            )
        peer = self._peer
        if peer._closed or len(peer._inbox) >= peer._queue_limit:
            self.dropped_tx += 1
            return
        peer._inbox.append((self._clock() + self._latency, bytes(frame)))
        self.tx_frames += 1
        self.tx_bytes += size

    def receive(self, max_frames: int = 64) -> list[memoryview | bytes]:
        inbox = self._inbox
        now = self._clock()
        frames: list[memoryview | bytes] = []
        while inbox and len(frames) < max_frames and inbox[0][0] <= now:
            frame = inbox.popleft()[1]
            frames.append(frame)
            self.rx_bytes += len(frame)
        self.rx_frames += len(frames)
        return frames

    def next_deadline(self) -> float | None:
        """When the oldest frame in flight toward this endpoint becomes receivable."""
        return self._inbox[0][0] if self._inbox else None

    def poll(self, now: float) -> None:
        """Nothing to release: `receive()` reads the wire's clock itself."""

    def close(self) -> None:
        self._closed = True
        self._inbox.clear()


class MemoryWire:
    """A point-to-point Ethernet cable between `a` and `b`, timed by `clock`.

    A frame sent at time t becomes receivable at the other end at t + latency, as soon as
    the clock says so. Each direction holds at most `queue_limit` frames in flight; more
    are dropped and counted in the sender's `dropped_tx`, as a full NIC ring would.
    """

    __slots__ = ("a", "b")

    def __init__(
        self,
        clock: Callable[[], float],
        mtu: int = 1500,
        latency: float = 0.0,
        *,
        queue_limit: int = 1024,
        mac_a: bytes = DEFAULT_MAC_A,
        mac_b: bytes = DEFAULT_MAC_B,
    ) -> None:
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, not {latency!r}")
        if queue_limit < 1:
            raise ValueError(f"queue_limit must be at least 1, not {queue_limit!r}")
        if len(mac_a) != 6 or len(mac_b) != 6 or mac_a == mac_b:
            raise ValueError("mac_a and mac_b must be two different 6-byte MAC addresses")
        self.a = MemoryEndpoint(clock, mtu, bytes(mac_a), latency, queue_limit)
        self.b = MemoryEndpoint(clock, mtu, bytes(mac_b), latency, queue_limit)
        self.a._peer = self.b
        self.b._peer = self.a

    def close(self) -> None:
        self.a.close()
        self.b.close()
