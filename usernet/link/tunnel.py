"""A link for programs that carry IP packets themselves: a tunnel over QUIC, TLS or UDP, a VPN client.

No device and no privilege: the program hands the link each IP packet it received from
its tunnel (`deliver`) and gives it a function that sends one (`send_packet`); usernet's
interface on it runs without Ethernet and without ARP, as on a TUN. It works wherever
asyncio runs, since the only thing it asks of the system is a socket pair to wake the
driver: `deliver` may be called from any thread (a tunnel's own I/O thread, another
event loop) and makes `fileno()` readable, so a driver waiting on it wakes at once.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Callable

from usernet.link.base import BytesLike, LinkCounters

__all__ = ["TunnelLink"]

#: The interface on a tunnel uses no MAC, but every link has one.
_NO_MAC = bytes(6)


class TunnelLink(LinkCounters):
    """IP packets to and from a function the program supplies; see the module.

    `send_packet(packet)` is called with one complete IPv4 or IPv6 packet (a fresh `bytes`, the
    program may keep it) for each packet usernet sends, from the thread that drives the
    stack; it must not block (queue it, or write it to a non-blocking transport) and what
    it raises reaches the driver. It may be given later, by setting the attribute (a
    tunnel's transport often exists only once the loop runs): until then packets usernet
    sends are dropped and counted in `dropped_tx`, as on a link that is not up yet.
    `mtu` is the largest IP packet the tunnel carries.

    `deliver(packet)` hands in one received IP packet (copied at once, so the caller may
    reuse its buffer); up to `queue_limit` wait for the driver, more are dropped and
    counted in `dropped_rx`, as a NIC with a full ring drops them. A packet longer than
    the MTU is dropped and counted too: the interface's buffers are sized by it.
    """

    __slots__ = ("_closed", "_inbox", "_mtu", "_queue_limit", "_wake_r", "_wake_w", "send_packet")

    ethernet = False

    def __init__(
        self, send_packet: Callable[[bytes], object] | None = None, *, mtu: int = 1500, queue_limit: int = 1024
    ) -> None:
        super().__init__()
        if not 576 <= mtu <= 65535:
            raise ValueError(f"mtu must be between 576 and 65535, not {mtu}")
        if queue_limit < 1:
            raise ValueError(f"queue_limit must be at least 1, not {queue_limit}")
        self.send_packet = send_packet
        self._mtu = mtu
        self._queue_limit = queue_limit
        self._inbox: deque[bytes] = deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._closed = False

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def mac(self) -> bytes:
        return _NO_MAC

    def fileno(self) -> int:
        """Readable while delivered packets wait: the driver watches it as it watches a device."""
        return self._wake_r.fileno()

    def deliver(self, packet: BytesLike) -> None:
        """Hand in one IP packet received from the tunnel; safe from any thread (see the class)."""
        if self._closed:
            raise ValueError("deliver() on a closed TunnelLink")
        inbox = self._inbox
        if len(packet) > self._mtu or len(inbox) >= self._queue_limit:
            self.dropped_rx += 1
            return
        was_empty = not inbox
        inbox.append(bytes(packet))
        if was_empty:
            try:
                self._wake_w.send(b"\0")
            except BlockingIOError:
                pass  # the pair is full of wake-ups already: the reader is woken anyway

    def receive(self, max_frames: int = 64) -> list[memoryview | bytes]:
        """The packets delivered so far, up to `max_frames`, oldest first."""
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        inbox = self._inbox
        packets: list[memoryview | bytes] = []
        total = 0
        while inbox and len(packets) < max_frames:
            packet = inbox.popleft()
            packets.append(packet)
            total += len(packet)
        self.rx_frames += len(packets)
        self.rx_bytes += total
        return packets

    def send(self, frame: BytesLike) -> None:
        """Hand one packet to the program's `send_packet`, as `bytes` it may keep (dropped while there is none)."""
        send_packet = self.send_packet
        if send_packet is None:
            self.dropped_tx += 1
            return
        packet = bytes(frame)
        send_packet(packet)
        self.tx_frames += 1
        self.tx_bytes += len(packet)

    def next_deadline(self) -> float | None:
        """Now, while more packets wait than the last `receive` took; else nothing is held back."""
        return 0.0 if self._inbox else None

    def poll(self, now: float) -> None:
        """Nothing is held back in time: delivered packets wait only for `receive`."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._inbox.clear()
            self._wake_r.close()
            self._wake_w.close()

    @property
    def closed(self) -> bool:
        return self._closed
