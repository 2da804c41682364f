"""The two byte queues of a connection: what the user wrote and the peer has not yet
acknowledged, and what arrived in order and the user has not yet read.

Neither knows sequence numbers. The send buffer is addressed by offset from the oldest
unacknowledged byte (offset 0 is SND.UNA), so the state machine turns a sequence number
into an offset with one `seq_sub` and the buffer never worries about wrap-around.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from usernet.stack.tcp.frozen import Freezable, field

# A write at least this big is kept as its own chunk (no copy when it is `bytes`);
# smaller writes are gathered into a tail so that 64-byte writes do not make 64-byte
# chunks, and the tail is sealed into a chunk once it reaches _SEAL bytes.
_DIRECT = 4096
_SEAL = 65536
# Acknowledged chunk slots are cut off the front of the index lists once there are
# this many and they are more than half of the lists: amortised O(1) per chunk.
_COMPACT = 32

#: Stands in for a list or bytearray that an idle connection never uses (a server holds
#: thousands): an empty tuple, so every read works on it and a write raises rather than
#: change an object all connections share. The owner makes the real one on first write.
UNUSED: Any = ()
#: A time before every other, for "never happened yet": one float all connections share
#: (`-math.inf` written in a constructor makes a new 24-byte float for each).
NEVER = -math.inf
_NO_BYTES = cast(bytearray, b"")


class _Limited(Protocol):
    limit: int

    def __init__(self, limit: int) -> None: ...


Q = TypeVar("Q", bound=_Limited)


def _refilled(cls: type[Q], state: dict[str, Any], put: Callable[[Q, bytes], int]) -> Q:
    """A byte queue made from its frozen `limit` and `data`, all of the data in even if it
    exceeds the limit (the limit may have shrunk since it was taken in)."""
    data = field(state, "data", bytes, cls.__name__)
    limit = field(state, "limit", int, cls.__name__)
    queue = cls(max(limit, len(data), 1))
    put(queue, data)
    queue.limit = limit
    return queue


class SendBuffer(Freezable):
    """Bytes written by the user and not yet acknowledged by the peer.

    Stored as a list of immutable `bytes` chunks plus a `bytearray` tail for small
    writes. `peek` returns a `memoryview` of one chunk when the range lies inside it,
    so the common big segment costs no copy, and a view can be kept (for a retransmission
    queue, a pending frame) across later `write` and `ack` calls because no chunk is ever
    resized. A range inside the tail comes back as a `bytes` copy of it (the one copy
    sealing the tail into a chunk would make), and one that crosses chunks as one joined
    `bytes`.

    Costs: `write` and `ack` are amortised O(1) (plus the copy of the data written when
    it is not already `bytes`); `peek` is O(log chunks) to find its chunk.
    """

    __slots__ = ("_base", "_chunks", "_first", "_starts", "_tail", "_tail_start", "held", "limit")
    FROZEN = ("limit",)
    NOT_FROZEN = ("_base", "_chunks", "_first", "_starts", "_tail", "_tail_start", "held")  # frozen as the bytes

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError(f"send buffer limit must be positive, got {limit}")
        self.limit = limit
        # Positions are byte counts since the buffer was made: plain ints that never wrap.
        self._chunks: list[bytes] = UNUSED  # made with the first chunk
        self._starts: list[int] = UNUSED  # stream position of each chunk's first byte
        self._first = 0  # index of the oldest chunk still holding unacknowledged bytes
        self._base = 0  # position of the oldest unacknowledged byte (offset 0)
        # Bytes held, `len(buffer)`: public to read, not to change, because the engine asks on
        # every segment and ACK, and `len()` costs two calls (the builtin and `__len__`).
        # The end of what was written is `_base + held`.
        self.held = 0
        self._tail = _NO_BYTES  # a bytearray once it holds anything
        self._tail_start = 0  # position of the tail's first byte

    def __len__(self) -> int:
        return self.held

    @property
    def free(self) -> int:
        """How many more bytes `write` accepts now (0 when full, also after `limit` shrank)."""
        room = self.limit - self.held
        return room if room > 0 else 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append as much of `data` as the limit allows; return how many bytes were taken."""
        n = len(data)
        room = self.limit - self.held
        if n > room:
            if room <= 0:
                return 0
            data = memoryview(data)[:room]
            n = room
        if n >= _DIRECT:
            if self._tail:
                self._seal()
            if self._chunks is UNUSED:
                self._chunks, self._starts = [], []
            self._chunks.append(bytes(data))
            end = self._base + self.held
            self._starts.append(end)
            self.held += n
            self._tail_start = end + n
        elif n:
            if self._tail:
                self._tail += data
            else:
                self._tail = bytearray(data)
            self.held += n
            if self._base + self.held - self._tail_start >= _SEAL:  # the tail's length, with no len() call
                self._seal()
        return n

    def peek(self, offset: int, n: int) -> memoryview | bytes:
        """Up to `n` bytes starting `offset` bytes after the oldest unacknowledged one.

        Shorter than `n` (possibly empty) when the buffer ends first. The result must be
        treated as read-only.
        """
        base = self._base
        end = base + self.held
        pos = base + offset
        stop = pos + n
        if stop > end:
            stop = end
        if pos >= stop:
            return b""
        tail_start = self._tail_start
        if pos >= tail_start:
            # All in the unsealed tail (small writes, sent as they come): copy the range out.
            # Sealing would copy the tail just the same, then file it as a chunk, search
            # the index for it and, at the ACK, clear the index again (seven calls per
            # request/response round trip); the copy is a `bytes`, so it stays valid.
            if pos == tail_start and stop == end:
                return bytes(self._tail)
            return bytes(memoryview(self._tail)[pos - tail_start : stop - tail_start])
        if stop > tail_start:
            self._seal()
        chunks = self._chunks
        starts = self._starts
        i = bisect_right(starts, pos, self._first) - 1
        chunk = chunks[i]
        start = starts[i]
        lo = pos - start
        hi = stop - start
        size = len(chunk)
        if hi <= size:
            if lo == 0 and hi == size:
                return chunk
            return memoryview(chunk)[lo:hi]
        parts: list[bytes | memoryview] = [memoryview(chunk)[lo:]]
        pos = start + size
        while pos < stop:
            i += 1
            chunk = chunks[i]
            size = len(chunk)
            if pos + size <= stop:
                parts.append(chunk)
            else:
                parts.append(memoryview(chunk)[: stop - pos])
            pos += size
        return b"".join(parts)

    def ack(self, n: int) -> None:
        """Forget the `n` oldest bytes: the peer acknowledged them."""
        if not 0 <= n <= self.held:
            raise ValueError(f"cannot acknowledge {n} bytes: the send buffer holds {self.held}")
        base = self._base + n
        self._base = base
        self.held -= n
        chunks = self._chunks
        starts = self._starts
        if base >= self._tail_start:
            if chunks:
                chunks.clear()
                starts.clear()
            self._first = 0
            if base > self._tail_start:
                del self._tail[: base - self._tail_start]
                self._tail_start = base
            return
        first = self._first
        last = len(starts) - 1
        while first < last and starts[first + 1] <= base:
            chunks[first] = b""  # let the acknowledged bytes go now, not at compaction
            first += 1
        if first >= _COMPACT and first * 2 > len(starts):
            del chunks[:first]
            del starts[:first]
            first = 0
        self._first = first

    def freeze(self, now: float) -> dict[str, Any]:
        """The limit and every byte held (unacknowledged, then unsent), as one `bytes`."""
        return {"limit": self.limit, "data": bytes(self.peek(0, len(self)))}

    @classmethod
    def thaw(cls, state: dict[str, Any], now: float) -> SendBuffer:
        """A buffer holding the frozen bytes, even beyond its limit (then `free` is 0 until it drains)."""
        return _refilled(cls, state, SendBuffer.write)

    def _seal(self) -> None:
        """Turn the tail into an immutable chunk so views of it stay valid."""
        if self._chunks is UNUSED:
            self._chunks, self._starts = [], []
        self._chunks.append(bytes(self._tail))
        self._starts.append(self._tail_start)
        self._tail = _NO_BYTES
        self._tail_start = self._base + self.held


class ReceiveBuffer(Freezable):
    """In-order bytes waiting for the user; its free space is the advertised window.

    A `bytearray`: appends extend it in place, and reads delete from the front, which
    CPython does by moving the array's start (no memmove), so both are amortised O(1)
    per byte.
    """

    __slots__ = ("limit", "unread")
    FROZEN = ("limit",)
    NOT_FROZEN = ("unread",)  # frozen as `data`: the unread bytes

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError(f"receive buffer limit must be positive, got {limit}")
        self.limit = limit
        # The unread bytes: a bytearray from the first data on, kept while the connection lives.
        # Public to read, not to change: the connection's hot path takes `len(buffer.unread)`,
        # which is `len(buffer)` without the Python `__len__` between.
        self.unread = _NO_BYTES

    def __len__(self) -> int:
        return len(self.unread)

    @property
    def free(self) -> int:
        """Bytes that can still be accepted: what the receive window may offer."""
        room = self.limit - len(self.unread)
        return room if room > 0 else 0

    def append(self, data: bytes | bytearray | memoryview) -> int:
        """Add in-order data; return how many bytes fitted (the rest is dropped)."""
        buf = self.unread
        room = self.limit - len(buf)
        n = len(data)
        if n > room:
            if room <= 0:
                return 0
            data = memoryview(data)[:room]
            n = room
        if buf is _NO_BYTES:
            self.unread = bytearray(data)
        else:
            buf += data
        return n

    def freeze(self, now: float) -> dict[str, Any]:
        return {"limit": self.limit, "data": bytes(self.unread)}

    @classmethod
    def thaw(cls, state: dict[str, Any], now: float) -> ReceiveBuffer:
        return _refilled(cls, state, ReceiveBuffer.append)

    def read(self, n: int) -> bytes:
        """Take up to `n` bytes from the front."""
        buf = self.unread
        if n < len(buf):
            if n <= 0:
                return b""
            out = bytes(memoryview(buf)[:n])  # the temporary view is gone before the del
            del buf[:n]
            return out
        # `read_all` spelled out: the asyncio face reads with a limit, and most of its reads
        # take everything, so this is the common case (one call less per read).
        out = bytes(buf)
        if out:
            buf.clear()
        return out

    def read_all(self) -> bytes:
        """Take everything."""
        buf = self.unread
        out = bytes(buf)
        if out:
            buf.clear()
        return out

    def read_into(self, dest: bytearray | memoryview) -> int:
        """Copy as much as fits into `dest` (a BufferedProtocol's buffer); return the count."""
        buf = self.unread
        n = min(len(dest), len(buf))
        if n:
            memoryview(dest)[:n] = memoryview(buf)[:n]
            del buf[:n]
        return n
