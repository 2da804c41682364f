"""One queue of a multi-queue TAP, as the link of one of several workers (usernet.drivers.workers).

Linux hands each frame the kernel sends into a multi-queue TAP to the queue its flow table
names for the frame's flow (the queue that last wrote a frame of that flow; an entry
expires 3 s after that write), else to one chosen by the flow's hash
(tun_automq_select_queue in drivers/net/tun.c). A connection the kernel opens therefore
stays on the queue its SYN came in by (its hash picks it either way). One a worker opens
must be kept on the worker's queue by the worker, and `OwnFlows` does it, in two ways:

- The kernel records a flow only after it has processed a written frame, and it answers a
  SYN inside that processing, so the SYN-ACK would go by the hash, often to another worker,
  which would reset the connection. So before each SYN that opens a connection, a RST of the
  same flow (same addresses and ports, the SYN's sequence number) is written first: no
  socket has that flow yet, so the kernel drops it without an answer, but records it, and
  the SYN-ACK comes back to this queue.
- A connection this worker does not write on for a while would lose its entry, and the
  kernel's next segment might go to another worker. So every `REFRESH` seconds each such
  flow that was silent since the last sweep gets a RST with a sequence number half the
  sequence space away from the last one sent (never in the kernel's window: Linux drops an
  out-of-window RST without an answer, RFC 5961), which renews the entry.

A flow is forgotten when this worker sends its RST, `CLOSED_SWEEPS` sweeps after it sent
its FIN, or after `IDLE_SWEEPS` silent sweeps. See docs/workers.md.
"""

from __future__ import annotations

from typing import Any

from usernet.link.base import BytesLike
from usernet.link.tap import TapLink
from usernet.wire.ethernet import emit_ethernet
from usernet.wire.ipv4 import IPV4_HLEN, emit_ipv4_header
from usernet.wire.tcp import TCP_HLEN, emit_tcp

__all__ = ["CLOSED_SWEEPS", "IDLE_SWEEPS", "REFRESH", "OwnFlows", "QueueLink", "rst_frame"]

#: Seconds between sweeps: a silent flow's entry is renewed at most 2 x REFRESH after its last
#: write, inside the kernel's 3 s.
REFRESH = 1.0
#: Sweeps a flow is still kept after this worker's FIN (the peer may still send: a half-close).
CLOSED_SWEEPS = 60
#: Silent sweeps after which a flow is forgotten (a connection that ended without our FIN or RST).
IDLE_SWEEPS = 600
_TCP = 6
_FIN = 0x01
_SYN = 0x02
_RST = 0x04
_ACK = 0x10
_HALF = 1 << 31
_MASK = 0xFFFFFFFF


def rst_frame(frame: BytesLike, tcp: int, seq: int) -> bytes:
    """A RST of the flow of TCP/IPv4 `frame` (its TCP header at `tcp`), same direction, with `seq`."""
    src, dst = bytes(frame[26:30]), bytes(frame[30:34])
    sport = int.from_bytes(frame[tcp : tcp + 2])
    dport = int.from_bytes(frame[tcp + 2 : tcp + 4])
    out = bytearray(14 + IPV4_HLEN + TCP_HLEN)
    emit_ethernet(out, 0, bytes(frame[0:6]), bytes(frame[6:12]), 0x0800)
    emit_ipv4_header(out, 14, src, dst, _TCP, TCP_HLEN)
    emit_tcp(out, 14 + IPV4_HLEN, src, dst, sport, dport, seq, 0, _RST, 0)
    return bytes(out)


class _Flow:
    """What a sweep needs of one flow: a frame of it to copy the headers from, its last sequence
    number, and whether (and for how long) it was silent."""

    __slots__ = ("closing", "frame", "sent", "seq", "silent", "tcp")

    def __init__(self, frame: bytes, tcp: int, seq: int) -> None:
        self.frame = frame
        self.tcp = tcp
        self.seq = seq
        self.sent = True
        self.silent = 0
        self.closing = False


class OwnFlows:
    """The connections this worker opened, kept on its queue (see the module); sans-IO.

    `sent(frame)` is told every frame the worker writes and returns the steering frame to
    write first, if any; `sweep(now)` returns the frames that renew silent flows when one is due.
    """

    __slots__ = ("_due", "_flows")

    def __init__(self) -> None:
        self._flows: dict[bytes, _Flow] = {}
        self._due: float | None = None

    def __len__(self) -> int:
        return len(self._flows)

    def sent(self, frame: BytesLike) -> bytes | None:
        if len(frame) < 14 + IPV4_HLEN + TCP_HLEN or frame[23] != _TCP or frame[12] != 0x08 or frame[13] != 0:
            return None
        tcp = 14 + (frame[14] & 0x0F) * 4
        if len(frame) < tcp + TCP_HLEN:
            return None
        flags = frame[tcp + 13]
        if flags & (_SYN | _ACK) == _SYN:
            seq = int.from_bytes(frame[tcp + 4 : tcp + 8])
            self._flows[bytes(frame[26:34]) + bytes(frame[tcp : tcp + 4])] = _Flow(
                bytes(frame[: tcp + TCP_HLEN]), tcp, seq
            )
            return rst_frame(frame, tcp, seq)
        if not self._flows:  # a server's usual case: only connections the kernel opened
            return None
        key = bytes(frame[26:34]) + bytes(frame[tcp : tcp + 4])
        flow = self._flows.get(key)
        if flow is None:
            return None
        if flags & _RST:
            del self._flows[key]
            return None
        flow.sent = True
        flow.seq = int.from_bytes(frame[tcp + 4 : tcp + 8])
        if flags & _FIN:
            flow.closing = True
        return None

    def next_deadline(self) -> float | None:
        return self._due if self._flows else None

    def sweep(self, now: float) -> list[bytes]:
        """The renewing RSTs of the flows silent for a whole sweep interval, when a sweep is due."""
        if not self._flows:
            self._due = None
            return []
        if self._due is None:
            self._due = now + REFRESH
        if now < self._due:
            return []
        self._due = now + REFRESH
        frames: list[bytes] = []
        done: list[bytes] = []
        for key, flow in self._flows.items():
            if flow.sent:
                flow.sent = False
                flow.silent = 0
                continue
            flow.silent += 1
            if flow.silent >= (CLOSED_SWEEPS if flow.closing else IDLE_SWEEPS):
                done.append(key)
                continue
            frames.append(rst_frame(flow.frame, flow.tcp, (flow.seq + _HALF) & _MASK))
        for key in done:
            del self._flows[key]
        return frames


class QueueLink(TapLink):
    """A TAP queue that keeps the connections its worker opens on itself (see the module)."""

    __slots__ = ("own",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # TapLink's, passed through (from_fd calls it)
        super().__init__(*args, **kwargs)
        self.own = OwnFlows()

    def send(self, frame: BytesLike) -> None:
        steer = self.own.sent(frame)
        if steer is not None:
            super().send(steer)  # counted in tx_frames like any frame
        super().send(frame)

    def next_deadline(self) -> float | None:
        return self.own.next_deadline()

    def poll(self, now: float) -> None:
        for frame in self.own.sweep(now):
            super().send(frame)
