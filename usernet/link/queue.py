"""One queue of a multi-queue TAP, as the link of one of several workers (usernet.drivers.workers).

Linux hands each frame the kernel sends into a multi-queue TAP to the queue its flow table
names for the frame's flow (the queue that last wrote a frame of that flow, for up to 3 s),
else to one chosen by the flow's hash (tun_automq_select_queue in drivers/net/tun.c). A
connection the kernel opens therefore stays on the queue its SYN came in by, and one a
worker opens follows the worker's frames back to it, with one gap: the kernel records the
flow only after it has processed a written frame, and it answers a SYN inside that
processing, so the SYN-ACK would go by the hash, often to another worker, which would
reset the connection. `QueueLink` closes the gap: before each SYN it opens a connection
with, it writes a RST of the same flow (same addresses and ports, the SYN's sequence
number), which the kernel drops without an answer (no socket has that flow yet) but
records, so the SYN-ACK comes back to this queue. See docs/workers.md.
"""

from __future__ import annotations

from usernet.link.base import BytesLike
from usernet.link.tap import TapLink
from usernet.wire.ethernet import emit_ethernet
from usernet.wire.ipv4 import IPV4_HLEN, emit_ipv4_header
from usernet.wire.tcp import TCP_HLEN, emit_tcp

__all__ = ["QueueLink", "steering_frame"]

_TCP = 6
_SYN = 0x02
_RST = 0x04
_ACK = 0x10


def steering_frame(frame: BytesLike) -> bytes | None:
    """The RST that steers `frame`'s flow to the writer's queue, when `frame` is an opening SYN (else None)."""
    if len(frame) < 14 + IPV4_HLEN + TCP_HLEN or frame[23] != _TCP or frame[12] != 0x08 or frame[13] != 0:
        return None
    tcp = 14 + (frame[14] & 0x0F) * 4
    if len(frame) < tcp + TCP_HLEN or frame[tcp + 13] & (_SYN | _ACK) != _SYN:
        return None
    src, dst = bytes(frame[26:30]), bytes(frame[30:34])
    sport = int.from_bytes(frame[tcp : tcp + 2])
    dport = int.from_bytes(frame[tcp + 2 : tcp + 4])
    seq = int.from_bytes(frame[tcp + 4 : tcp + 8])
    out = bytearray(14 + IPV4_HLEN + TCP_HLEN)
    emit_ethernet(out, 0, bytes(frame[0:6]), bytes(frame[6:12]), 0x0800)
    emit_ipv4_header(out, 14, src, dst, _TCP, TCP_HLEN)
    emit_tcp(out, 14 + IPV4_HLEN, src, dst, sport, dport, seq, 0, _RST, 0)
    return bytes(out)


class QueueLink(TapLink):
    """A TAP queue whose opening SYNs are preceded by a steering RST (see the module)."""

    __slots__ = ()

    def send(self, frame: BytesLike) -> None:
        steer = steering_frame(frame)
        if steer is not None:
            super().send(steer)  # counted in tx_frames like any frame
        super().send(frame)
