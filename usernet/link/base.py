"""The interface every link shares, its counters, and the base of links that wrap another link.

A driver (asyncio loop, select loop, simulator) only ever talks to a `Link`: it watches
`fileno()` when there is one, calls `poll(now)` at `next_deadline()`, drains `receive()`
and hands the stack's output to `send()`. Links never call the stack, and the stack never
calls a link.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias, runtime_checkable

__all__ = ["BytesLike", "ETHERNET_OVERHEAD", "Link", "LinkCounters", "LinkWrapper"]

BytesLike: TypeAlias = bytes | bytearray | memoryview

#: Bytes a frame may carry beyond the IP MTU: the Ethernet header (14) and one VLAN tag (4).
ETHERNET_OVERHEAD = 14 + 4


@runtime_checkable
class Link(Protocol):
    """A device that moves Ethernet frames (no FCS) between usernet and something else.

    Buffers: the frames `receive()` returns may be memoryviews into buffers the link
    preallocated and reuses; they stay valid only until the next `receive()` call on the
    same link. A caller that keeps a frame longer copies it (`bytes(frame)`).

    `send()` copies what it needs before it returns, so the caller may reuse its buffer at
    once. It never blocks: when the device cannot take the frame right now, the frame is
    dropped and counted in `dropped_tx`, exactly as a NIC with a full ring would do, and
    the transport protocol above recovers.

    Time: a link that holds frames back (a delay, a rate limit) releases them in
    `poll(now)`, which the driver calls at `next_deadline()`; frames released on the
    receive side are then returned by the next `receive()`, so a driver calls `receive()`
    after `poll()` as well as when `fileno()` is readable.

    Counters are plain int attributes so that the per-frame path never builds a dict:
    frames and bytes handed out by `receive()` (`rx_*`), accepted by `send()` (`tx_*`),
    and frames dropped on the way out (`dropped_tx`) or in (`dropped_rx`).
    """

    @property
    def mtu(self) -> int:
        """IP MTU: the largest IPv4 packet a frame on this link may carry."""
        ...

    @property
    def mac(self) -> bytes:
        """usernet's own 6-byte MAC address on this link."""
        ...

    rx_frames: int
    rx_bytes: int
    tx_frames: int
    tx_bytes: int
    dropped_tx: int
    dropped_rx: int

    def fileno(self) -> int | None:
        """The fd to watch for readability, or None when only `next_deadline()` says when to look."""
        ...

    def receive(self, max_frames: int = 64) -> list[memoryview | bytes]:
        """Up to `max_frames` frames that are there now; [] when none (never blocks)."""
        ...

    def send(self, frame: BytesLike) -> None:
        """Queue one frame for transmission; drop and count in `dropped_tx` if the device is full."""
        ...

    def next_deadline(self) -> float | None:
        """When `poll()` must next be called for frames the link holds back; None if it holds none."""
        ...

    def poll(self, now: float) -> None:
        """Release whatever the link held back until `now` (a delay, a rate limit)."""
        ...

    def close(self) -> None:
        """Release the device; calling it again does nothing."""
        ...


class LinkCounters:
    """Counter attributes shared by every concrete link, kept in slots for cheap increments."""

    __slots__ = ("rx_frames", "rx_bytes", "tx_frames", "tx_bytes", "dropped_tx", "dropped_rx")

    def __init__(self) -> None:
        self.rx_frames = 0
        self.rx_bytes = 0
        self.tx_frames = 0
        self.tx_bytes = 0
        self.dropped_tx = 0
        self.dropped_rx = 0


class LinkWrapper(LinkCounters):
    """A link that sits in front of another one (fault injection, capture).

    The wrapper counts what passes through it; the inner link keeps its own counters, so
    comparing the two tells what the wrapper did. Everything a wrapper does not change is
    the inner link's: MTU, MAC, fd, deadlines, closing.
    """

    __slots__ = ("inner",)

    def __init__(self, inner: Link) -> None:
        super().__init__()
        self.inner = inner

    @property
    def mtu(self) -> int:
        return self.inner.mtu

    @property
    def mac(self) -> bytes:
        return self.inner.mac

    def fileno(self) -> int | None:
        return self.inner.fileno()

    def next_deadline(self) -> float | None:
        return self.inner.next_deadline()

    def poll(self, now: float) -> None:
        self.inner.poll(now)

    def close(self) -> None:
        self.inner.close()
