"""The interface every link shares, its counters, and the base of links that wrap another link.

A driver (asyncio loop, select loop, simulator) only ever talks to a `Link`: it watches
`fileno()` when there is one, calls `poll(now)` at `next_deadline()`, drains `receive()`
and hands the stack's output to `send()`. Links never call the stack, and the stack never
calls a link.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol, TypeAlias, runtime_checkable

__all__ = [
    "ETHERNET_OVERHEAD",
    "NO_OFFLOADS",
    "BytesLike",
    "Link",
    "LinkCapabilities",
    "LinkCounters",
    "LinkFailed",
    "LinkWrapper",
    "capabilities_of",
    "carries_ethernet",
    "counters_of",
]

BytesLike: TypeAlias = bytes | bytearray | memoryview

#: Bytes a frame may carry beyond the IP MTU: the Ethernet header (14) and one VLAN tag (4).
ETHERNET_OVERHEAD = 14 + 4


class LinkFailed(OSError):
    """The link cannot move frames any more (its device is gone): retrying would only fail again.

    Links raise it from `receive()` or `send()`; drivers then stop driving the link and end
    the program with its message, instead of calling the link again on every iteration.
    """


@dataclass(frozen=True)
class LinkCapabilities:
    """What a link does for the stack beyond moving frames, so the stack can skip that work.

    `checksum_rx_trusted`: received frames come from a local kernel that already vouched
    for their L4 checksums, and may carry only partial ones (the kernel's CHECKSUM_PARTIAL),
    so the stack must not verify TCP/UDP checksums. The IPv4 header checksum stays valid.
    `checksum_tx_partial`: the link accepts TCP frames whose checksum field holds only the
    pseudo-header sum and has the device complete it. `tso_max`: the largest IP packet
    the link takes in one TCP frame that the device cuts into MSS-sized segments (0: none);
    it implies `checksum_tx_partial`.

    How a frame asks for this: a TCP frame with a partial checksum is an object with an int
    attribute `gso_size` (the MSS to cut at, 0 for a frame that fits the MTU as it is).
    Only a link whose capabilities say so is ever handed such frames.
    """

    checksum_rx_trusted: bool = False
    checksum_tx_partial: bool = False
    tso_max: int = 0

    def __post_init__(self) -> None:
        if self.tso_max and not self.checksum_tx_partial:
            raise ValueError("TSO needs checksum_tx_partial: the device fills in each segment's checksum")
        if not (self.tso_max == 0 or 576 <= self.tso_max <= 65535):
            raise ValueError(f"tso_max is an IPv4 packet size, 576..65535 (or 0 for none), not {self.tso_max}")


#: A link that only moves frames: the stack computes and verifies every checksum itself.
NO_OFFLOADS = LinkCapabilities()


def capabilities_of(link: object) -> LinkCapabilities:
    """The link's capabilities; a link that does not declare any gets none."""
    caps = getattr(link, "capabilities", NO_OFFLOADS)
    return caps if isinstance(caps, LinkCapabilities) else NO_OFFLOADS


def carries_ethernet(link: object) -> bool:
    """Whether the link's frames are Ethernet frames (True, the default) or bare IP packets.

    An IP-only link (a TUN, a tunnel a program carries itself) says so with a class or
    instance attribute `ethernet = False`; the interface on it then uses no link header
    and no ARP. Kept out of the Link protocol, like `capabilities`, so that every existing
    link stays one.
    """
    return getattr(link, "ethernet", True) is not False


@runtime_checkable
class Link(Protocol):
    """A device that moves Ethernet frames (no FCS) between usernet and something else,
    or bare IP packets on an IP-only link (see `carries_ethernet`; everything below says
    "frame" for both).

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

    Offloads: a link may declare `capabilities` (a `LinkCapabilities`); read it with
    `capabilities_of(link)`, which gives NO_OFFLOADS for a link that has none. It is kept
    out of this protocol so that every existing link stays one.
    """

    @property
    def mtu(self) -> int:
        """IP MTU: the largest IPv4 packet a frame on this link may carry."""
        ...

    @property
    def mac(self) -> bytes:
        """usernet's own 6-byte MAC address on this link (not used on an IP-only link)."""
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


def counters_of(link: Link) -> dict[str, int]:
    """The counters every link keeps, by name: what it really moved, ARP and all.

    The interface's own counters see only what the stack handled; a frame the stack
    sends outside IPv4 (an ARP announcement or answer) shows up here.
    """
    return {name: getattr(link, name) for name in LinkCounters.__slots__}


class LinkCounters:
    """Counter attributes shared by every concrete link, kept in slots for cheap increments."""

    __slots__ = ("dropped_rx", "dropped_tx", "rx_bytes", "rx_frames", "tx_bytes", "tx_frames")

    capabilities: LinkCapabilities = NO_OFFLOADS
    #: Ethernet frames, or bare IP packets when False (see `carries_ethernet`).
    ethernet: bool = True

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
    def capabilities(self) -> LinkCapabilities:  # type: ignore[override]  # a wrapper derives what Link stores
        """The inner link's receive offloads, none on transmit.

        What the inner link hands out (super-segments, partial checksums) passes through a
        wrapper unchanged, so the stack must know; but a wrapper may copy, delay or rewrite
        what it sends, losing a frame's `gso_size`, so it never asks for transmit offloads.
        """
        return replace(capabilities_of(self.inner), checksum_tx_partial=False, tso_max=0)

    @property
    def ethernet(self) -> bool:  # type: ignore[override]  # a wrapper carries what its inner link carries
        return carries_ethernet(self.inner)

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
