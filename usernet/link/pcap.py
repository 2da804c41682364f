"""Classic libpcap capture files: write what a link moves, read captures back.

Files are written with nanosecond timestamps (magic 0xa1b23c4d) because simulated time
is exact and microseconds would merge events that the stack tells apart; Wireshark,
tshark and tcpdump all read that format.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import BinaryIO

from usernet.link.base import BytesLike, Link
from usernet.link.observe import ObservedLink

__all__ = ["LINKTYPE_ETHERNET", "LINKTYPE_RAW", "SNAPLEN", "PcapReader", "PcapTap", "PcapWriter"]

LINKTYPE_ETHERNET = 1
#: Bare IP packets, as an IP-only link (a TUN, a tunnel) carries them: no link header.
LINKTYPE_RAW = 101
SNAPLEN = 262144
MAGIC_MICRO = 0xA1B2C3D4
MAGIC_NANO = 0xA1B23C4D
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_FILE_HEADER = struct.Struct("<IHHiIII")
_RECORD_LE = struct.Struct("<IIII")
_RECORD_BE = struct.Struct(">IIII")

PathOrFile = str | os.PathLike[str] | BinaryIO


class PcapWriter:
    """Writes frames to a pcap file (a path, which it owns, or a binary file object, which it does not close).

    `linktype` says what the frames are: Ethernet, or LINKTYPE_RAW for the packets of an IP-only link.
    """

    def __init__(self, file_or_path: PathOrFile, *, snaplen: int = SNAPLEN, linktype: int = LINKTYPE_ETHERNET) -> None:
        if isinstance(file_or_path, (str, os.PathLike)):
            self._file: BinaryIO = open(file_or_path, "wb")  # noqa: SIM115 - owned until close()
            self._owned = True
        else:
            self._file = file_or_path
            self._owned = False
        self.snaplen = snaplen
        self.frames = 0
        self._closed = False
        self._file.write(_FILE_HEADER.pack(MAGIC_NANO, 2, 4, 0, 0, snaplen, linktype))

    def write(self, frame: BytesLike, timestamp: float) -> None:
        """Append one frame seen at `timestamp` seconds (any epoch; simulations start at 0)."""
        if timestamp < 0:
            raise ValueError(f"pcap timestamps cannot be negative: {timestamp!r}")
        if self._closed:
            raise ValueError("write() on a closed PcapWriter")
        seconds, nanos = divmod(round(timestamp * 1_000_000_000), 1_000_000_000)
        if seconds > 0xFFFFFFFF:
            raise ValueError(f"pcap timestamps hold 32-bit seconds (up to 2106-02-07 from 1970), got {timestamp!r}")
        size = len(frame)
        kept = min(size, self.snaplen)
        self._file.write(_RECORD_LE.pack(seconds, nanos, kept, size))
        self._file.write(frame if kept == size else memoryview(frame)[:kept])
        self.frames += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owned:
            self._file.close()
        else:
            self._file.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class PcapReader:
    """Iterates `(timestamp, frame)` over a classic pcap file, either byte order, µs or ns timestamps.

    Raises ValueError naming the file and the problem when the file is not a classic pcap
    or is cut short, rather than yielding garbage.
    """

    def __init__(self, file_or_path: PathOrFile) -> None:
        if isinstance(file_or_path, (str, os.PathLike)):
            self._file: BinaryIO = open(file_or_path, "rb")  # noqa: SIM115 - owned until close()
            self._owned = True
            self.name = os.fspath(file_or_path)
        else:
            self._file = file_or_path
            self._owned = False
            self.name = str(getattr(file_or_path, "name", "<file>"))
        try:
            self._read_header()
        except BaseException:
            self.close()
            raise

    def _read_header(self) -> None:
        head = self._file.read(_FILE_HEADER.size)
        if head[:4] == _PCAPNG_MAGIC:
            raise ValueError(f"{self.name} is pcapng, not classic pcap; convert it with `editcap -F pcap IN OUT`")
        if len(head) < _FILE_HEADER.size:
            raise ValueError(f"{self.name} is not a pcap file: {len(head)} bytes, shorter than a pcap header")
        for order in "<>":
            magic, major, minor, _, _, snaplen, linktype = struct.unpack(order + "IHHiIII", head)
            if magic in (MAGIC_MICRO, MAGIC_NANO):
                break
        else:
            raise ValueError(f"{self.name} is not a pcap file: unknown magic number {head[:4].hex()}")
        self._record = _RECORD_LE if order == "<" else _RECORD_BE
        self._units = 1e-9 if magic == MAGIC_NANO else 1e-6
        self.nanosecond = magic == MAGIC_NANO
        self.version = (major, minor)
        self.snaplen = snaplen
        self.linktype = linktype

    def __iter__(self) -> Iterator[tuple[float, bytes]]:
        record = self._record
        while True:
            head = self._file.read(record.size)
            if not head:
                return
            if len(head) < record.size:
                raise ValueError(f"{self.name} is truncated: a record header is cut short")
            seconds, fraction, kept, _ = record.unpack(head)
            data = self._file.read(kept)
            if len(data) < kept:
                raise ValueError(f"{self.name} is truncated: a record promises {kept} bytes, {len(data)} follow")
            yield seconds + fraction * self._units, data

    def close(self) -> None:
        if self._owned:
            self._file.close()

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class PcapTap(ObservedLink):
    """Wraps `link` and records every frame in both directions, timestamped by `clock`.

    The writer belongs to the caller, who closes it after the link.
    """

    __slots__ = ()

    def __init__(self, link: Link, writer: PcapWriter, clock: Callable[[], float]) -> None:
        write = writer.write
        super().__init__(link, lambda frame, timestamp, outgoing: write(frame, timestamp), clock)
