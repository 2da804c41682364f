"""Software GRO and GSO for links over a file descriptor (a TAP, a UDP socket): one place for both.

Each is one C call (`native.gro_read`, `native.gso_write`) around which a link keeps
its counters; see TapLink for what they do and why.
"""

from __future__ import annotations

import os
from typing import Protocol

from usernet.link.base import BytesLike
from usernet.native import ETHERNET_HEADER, gro_read, gso_write

__all__ = ["GroBuffer", "gso_send"]


class _RxCounted(Protocol):
    rx_frames: int
    rx_bytes: int
    rx_gro_joined: int


class _TxCounted(Protocol):
    tx_frames: int
    tx_bytes: int
    tx_gso_frames: int
    dropped_tx: int


class GroBuffer:
    """The one buffer a link's GRO reads a batch into; frames handed out are views of it.

    `link_len` is the link header in front of each IP packet: Ethernet's, or 0 on an IP-only link.
    With `merge_acks`, a batch's consecutive pure ACKs of a flow that advance reach the
    stack as the first and the newest (see `native.gro_read`): a bulk sender's Python ACK
    path then runs about twice per batch instead of once per ACK. `acks_merged` counts the
    ACKs merged away.
    """

    __slots__ = ("_buffer", "_frame_cap", "_link_len", "_merge_acks", "_view", "acks_merged")

    def __init__(
        self, frame_cap: int, frames: int = 64, link_len: int = ETHERNET_HEADER, *, merge_acks: bool = False
    ) -> None:
        self._frame_cap = frame_cap
        self._link_len = link_len
        self._merge_acks = merge_acks
        self._buffer = bytearray(frames * frame_cap)
        self._view = memoryview(self._buffer)
        self.acks_merged = 0

    def read(self, link: _RxCounted, fd: int, max_frames: int) -> tuple[list[memoryview | bytes], int]:
        """Up to `max_frames` frames read from `fd` and joined, counted on `link`; and the errno of
        a read that failed with other than EAGAIN (0 if none did)."""
        if len(self._buffer) < max_frames * self._frame_cap:
            self._buffer = bytearray(max_frames * self._frame_cap)
            self._view = memoryview(self._buffer)
        spans, read, joined, error = gro_read(
            fd, self._buffer, self._frame_cap, max_frames, self._link_len, self._merge_acks
        )
        view = self._view
        frames: list[memoryview | bytes] = []
        total = 0
        for offset, length in spans:
            frames.append(view[offset : offset + length])
            total += length
        link.rx_frames += read
        link.rx_gro_joined += joined
        link.rx_bytes += total
        self.acks_merged += read - len(spans) - joined
        return frames, error


def gso_send(
    link: _TxCounted,
    fd: int,
    frame: BytesLike,
    gso_size: int,
    drop_errnos: frozenset[int],
    link_len: int = ETHERNET_HEADER,
) -> None:
    """Software GSO: cut `frame` (a `link_len` header, then IPv4 or IPv6) and write each segment to `fd` in C,
    then count what left and what was dropped on `link`; an error outside `drop_errnos` is raised."""
    written, segments, sent, error = gso_write(fd, frame, gso_size, link_len)
    if segments > 1:
        link.tx_gso_frames += 1
    link.tx_frames += written
    link.tx_bytes += sent
    if error:
        if error not in drop_errnos:
            raise OSError(error, os.strerror(error))
        link.dropped_tx += segments - written
