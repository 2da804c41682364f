"""Packet framing in the style of Erlang's gen_tcp `packet` modes, for any asyncio stream.

A byte stream carries messages only by convention. gen_tcp offers the common ones in
the socket itself, and so does this module, on usernet's transports and the kernel's
alike (it only uses the asyncio Transport interface):

- `RAW`: no framing; a "packet" is whatever bytes are there (or exactly n, on request);
- `Line(delimiter, max_length)`: a packet is one line, delimiter included;
- `Length(size, max_size)`: a 1-, 2- or 4-byte big-endian length, then that many bytes;
  `encode` adds the prefix, the receiver strips it.

The mode can change at any time without losing what is buffered: read a header line,
switch to raw, read exactly the N bytes it announced (the memcached `get` pattern).

Three pieces, from the bottom: `Decoder` (sans-IO: bytes in, packets out), `Framed`
(an asyncio Protocol with gen_tcp's active / once / passive delivery, mapped onto
`pause_reading`/`resume_reading` so a passive or once-mode socket exerts back-pressure
on its peer), and `read_packet`/`write_packet` for asyncio's StreamReader/StreamWriter.

An oversize or malformed frame raises `FramingError` (an OSError, errno EMSGSIZE) to
the reader of that one connection; nothing is closed and, in `Decoder` and `Framed`,
nothing is consumed: the bytes stay buffered, so the owner may switch to raw to skip
them, or close.
"""

from __future__ import annotations

import asyncio
import errno
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, cast

__all__ = [
    "RAW",
    "Active",
    "Decoder",
    "Framed",
    "FramingError",
    "Length",
    "Line",
    "Mode",
    "Raw",
    "encode",
    "read_packet",
    "write_packet",
]

#: The most a raw packet delivers at once when no length is asked for.
RAW_CHUNK = 65536


@dataclass(frozen=True)
class Raw:
    """No framing: gen_tcp's `{packet, raw}` (or 0)."""


@dataclass(frozen=True)
class Line:
    """One line per packet, the delimiter included: gen_tcp's `{packet, line}` with `line_delimiter`.

    A line that grows past `max_length` bytes (delimiter included) without ending is an error.
    """

    delimiter: bytes = b"\n"
    max_length: int = 65536

    def __post_init__(self) -> None:
        if not self.delimiter:
            raise ValueError("a line delimiter must be at least one byte")
        if self.max_length < len(self.delimiter):
            raise ValueError("max_length must leave room for the delimiter")


@dataclass(frozen=True)
class Length:
    """A `size`-byte big-endian length prefix, then the payload: gen_tcp's `{packet, 1 | 2 | 4}`."""

    size: Literal[1, 2, 4] = 4
    max_size: int | None = None

    def __post_init__(self) -> None:
        if self.size not in (1, 2, 4):
            raise ValueError(f"a length prefix is 1, 2 or 4 bytes, not {self.size}")

    @property
    def limit(self) -> int:
        """The largest payload this mode carries."""
        biggest = (1 << (8 * self.size)) - 1
        return biggest if self.max_size is None else min(biggest, self.max_size)


Mode = Raw | Line | Length
RAW = Raw()

#: Delivery: True pushes every packet, "once" pushes one then pauses, False waits for `recv`.
Active = bool | Literal["once"]


class FramingError(OSError):
    """A frame this mode cannot deliver: too long, or an announced length over the limit."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EMSGSIZE, message)


def encode(mode: Mode, payload: bytes | bytearray | memoryview) -> bytes:
    """The bytes that carry `payload` as one packet: the length prefix added, or unchanged.

    As with gen_tcp, line and raw modes send what they are given: ending lines is the
    sender's business.
    """
    if isinstance(mode, Length):
        n = len(payload)
        if n > mode.limit:
            raise FramingError(
                f"a {n}-byte packet does not fit a {mode.size}-byte length prefix limited to {mode.limit}"
            )
        return n.to_bytes(mode.size, "big") + bytes(payload)
    return bytes(payload)


class Decoder:
    """Bytes in (`feed`), packets out (`next`), in a mode that may change between packets."""

    __slots__ = ("_buf", "_scan", "mode")

    def __init__(self, mode: Mode = RAW) -> None:
        self.mode = mode
        self._buf = bytearray()
        self._scan = 0  # how far a line search has already looked, so long lines are scanned once

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def set_mode(self, mode: Mode) -> None:
        """Frame what is buffered, and what comes next, by `mode`."""
        self.mode = mode
        self._scan = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next(self) -> bytes | None:
        """The next complete packet, or None until more bytes arrive. Raises FramingError, consuming nothing."""
        mode = self.mode
        buf = self._buf
        if isinstance(mode, Length):
            size = mode.size
            if len(buf) < size:
                return None
            n = int.from_bytes(buf[:size], "big")
            if n > mode.limit:
                raise FramingError(f"the peer announced a {n}-byte packet; the limit is {mode.limit}")
            end = size + n
            if len(buf) < end:
                return None
            packet = bytes(buf[size:end])
            del buf[:end]
            return packet
        if isinstance(mode, Line):
            delimiter = mode.delimiter
            found = buf.find(delimiter, max(0, self._scan - len(delimiter) + 1))
            if found < 0:
                if len(buf) > mode.max_length:
                    raise FramingError(f"a line longer than {mode.max_length} bytes has no {delimiter!r}")
                self._scan = len(buf)
                return None
            end = found + len(delimiter)
            if end > mode.max_length:
                raise FramingError(f"a {end}-byte line is longer than the limit of {mode.max_length}")
            self._scan = 0
            packet = bytes(buf[:end])
            del buf[:end]
            return packet
        return self.take(0)

    def take(self, n: int) -> bytes | None:
        """Raw: exactly `n` bytes, or (n == 0) up to RAW_CHUNK of whatever is buffered; None if not there yet."""
        buf = self._buf
        if n == 0:
            n = min(len(buf), RAW_CHUNK)
            if n == 0:
                return None
        elif len(buf) < n:
            return None
        packet = bytes(buf[:n])
        del buf[:n]
        self._scan = 0
        return packet

    def rest(self) -> bytes:
        """Everything buffered (for the end of the stream, where a partial frame is all there is)."""
        data = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        return data


class Framed(asyncio.Protocol):
    """A gen_tcp-style socket on any asyncio stream transport.

    `active=True` calls `on_packet` with each packet as it completes; `"once"` calls it
    for one packet, then turns passive (reading paused) until `setopts(active=...)`
    again: gen_tcp's `{active, once}`, the way to get back-pressure in push mode.
    `active=False` (passive) keeps reading paused except while a `recv` waits, so the
    stack's receive window closes on a peer that sends faster than it is read.

    `on_closed(exc)` hears the end of the stream (None for a clean EOF); `on_error(exc)`
    a FramingError in active mode, after which the socket is passive with the frame
    still buffered. Make one per connection, as a protocol factory:
    `loop.create_connection(lambda: Framed(Line()), host, port)`.
    """

    def __init__(
        self,
        mode: Mode = RAW,
        *,
        active: Active = False,
        on_packet: Callable[[bytes], object] | None = None,
        on_closed: Callable[[BaseException | None], object] | None = None,
        on_error: Callable[[FramingError], object] | None = None,
    ) -> None:
        if active is not False and on_packet is None:
            raise ValueError("active delivery needs on_packet=")
        self._decoder = Decoder(mode)
        self._active: Active = active
        self._on_packet = on_packet
        self._on_closed = on_closed
        self._on_error = on_error
        self._transport: asyncio.Transport | None = None
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._eof = False
        self._lost: BaseException | None = None
        self._closed = False

    # -- options ---------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._decoder.mode

    @property
    def active(self) -> Active:
        return self._active

    @property
    def transport(self) -> asyncio.Transport:
        if self._transport is None:
            raise OSError(errno.ENOTCONN, "the framed socket is not connected yet")
        return self._transport

    def setopts(self, *, packet: Mode | None = None, active: Active | None = None) -> None:
        """Change the packet mode and/or delivery, like `inet:setopts`; buffered bytes are framed anew."""
        if packet is not None:
            self._decoder.set_mode(packet)
        if active is not None:
            if active is not False and self._on_packet is None:
                raise ValueError("active delivery needs on_packet=")
            self._active = active
        self._deliver()
        self._update_reading()

    # -- sending ---------------------------------------------------------------------------

    def send(self, payload: bytes | bytearray | memoryview) -> None:
        """Send one packet (the length prefix added in Length mode)."""
        if self._closed:
            raise OSError(errno.EPIPE, "the framed socket is closed")
        self.transport.write(encode(self._decoder.mode, payload))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- passive receiving -------------------------------------------------------------------

    async def recv(self, length: int = 0, timeout: float | None = None) -> bytes:
        """Passive mode: the next packet; in raw mode exactly `length` bytes (0: whatever is there).

        Raises TimeoutError (errno ETIMEDOUT) when `timeout` seconds pass first, EOFError
        at a clean end of stream, ConnectionError when the connection broke, and
        FramingError for a bad frame (which stays buffered).
        """
        if self._active is not False:
            raise OSError(errno.EINVAL, "recv is for passive sockets: setopts(active=False) first")
        if length and not isinstance(self._decoder.mode, Raw):
            raise OSError(errno.EINVAL, "a length is only meaningful in raw mode: setopts(packet=RAW) first")
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                while True:
                    packet = self._decoder.take(length) if length else self._decoder.next()
                    if packet is not None:
                        return packet
                    if self._lost is not None:
                        raise self._lost
                    if self._eof or self._closed:
                        raise EOFError("the peer closed the stream" + self._leftover())
                    await self._wait()
        except TimeoutError:
            if not scope.expired():
                raise  # the connection's own timeout (self._lost), not this call's
            raise TimeoutError(errno.ETIMEDOUT, f"no packet within {timeout} s") from None

    def _leftover(self) -> str:
        n = self._decoder.buffered
        return f"; {n} bytes of an incomplete packet are left (switch to raw to read them)" if n else ""

    async def _wait(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._update_reading()
        try:
            await future
        finally:
            if future in self._waiters:
                self._waiters.remove(future)
            self._update_reading()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # a stream transport: Framed is for streams
        self._update_reading()
        # uvloop starts reading after connection_made returns, undoing a pause made in it.
        asyncio.get_running_loop().call_soon(self._update_reading)

    def data_received(self, data: bytes) -> None:
        self._decoder.feed(data)
        self._deliver()
        self._wake()
        self._update_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._deliver()
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if exc is not None:
            self._lost = exc
        self._wake()
        if self._on_closed is not None:
            self._on_closed(exc)

    # -- delivery ------------------------------------------------------------------------------

    def _deliver(self) -> None:
        """Push packets while active; stop at the first error (reported once, the socket turns passive)."""
        while self._active is not False:
            try:
                packet = self._decoder.next()
            except FramingError as exc:
                self._active = False
                if self._on_error is not None:
                    self._on_error(exc)
                return
            if packet is None:
                return
            if self._active == "once":
                self._active = False
            assert self._on_packet is not None
            self._on_packet(packet)

    def _wake(self) -> None:
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or self._closed or transport.is_closing():
            return
        want = self._active is not False or bool(self._waiters)
        if want != transport.is_reading():
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()


# -- asyncio streams -------------------------------------------------------------------------


async def read_packet(reader: asyncio.StreamReader, mode: Mode = RAW, length: int = 0) -> bytes | None:
    """The next packet from `reader` in `mode`; None at a clean end of stream (between packets).

    Raw mode returns exactly `length` bytes, or (0) what one read gives. An end of
    stream inside a packet raises asyncio.IncompleteReadError. An oversize packet
    raises FramingError: a line without delimiter within the limit is left unread (as
    far as the reader's own limit allows); an oversize length prefix has been read,
    its payload not. The mode is per call, so switching is just passing another one.
    """
    if isinstance(mode, Length):
        header = await reader.read(mode.size)
        if not header:
            return None
        if len(header) < mode.size:
            header += await reader.readexactly(mode.size - len(header))
        n = int.from_bytes(header, "big")
        if n > mode.limit:
            raise FramingError(f"the peer announced a {n}-byte packet; the limit is {mode.limit}")
        return await reader.readexactly(n)
    if isinstance(mode, Line):
        try:
            line = await reader.readuntil(mode.delimiter)
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                return None
            raise
        except asyncio.LimitOverrunError:
            raise FramingError(f"a line longer than the stream's limit has no {mode.delimiter!r}") from None
        if len(line) > mode.max_length:
            raise FramingError(f"a {len(line)}-byte line is longer than the limit of {mode.max_length}")
        return line
    if length:
        try:
            return await reader.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                return None
            raise
    data = await reader.read(RAW_CHUNK)
    return data or None


async def write_packet(writer: asyncio.StreamWriter, payload: bytes | bytearray | memoryview, mode: Mode = RAW) -> None:
    """Write one packet in `mode` and wait until the transport's buffer drains."""
    writer.write(encode(mode, payload))
    await writer.drain()
