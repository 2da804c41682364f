"""A link on an existing Ethernet interface through AF_PACKET sockets, with mmap'ed rings both ways.

Receiving uses a TPACKET_V2 ring: the kernel writes each frame into the next free slot and
hands it over at once, so a wake-up drains every frame that arrived without a system call
each; `receive()` returns memoryviews straight into the ring and gives the slots back to
the kernel at the next `receive()` (the Link contract: frames stay valid until then).
Not TPACKET_V3: its blocks reach the reader only when full or after a retire timeout of at
least 1 ms, which capped lockstep request/response at ~1,000 round trips a second.
Sending uses a PACKET_TX_RING (TPACKET_V2 slots) on a second socket with
PACKET_QDISC_BYPASS: `send()` copies a frame into the next free slot, and one `send()`
system call hands every filled slot to the driver — when `tx_batch` frames are waiting,
or at the latest at the next `poll()`/`receive()`, which `next_deadline()` asks for at
once (it returns 0.0) while frames wait. A frame that finds no free slot is dropped and
counted, as a NIC with a full ring would; frames the kernel could not put in a full
receive ring are counted in `dropped_rx` (from PACKET_STATISTICS, read when a frame says
there were some), and so is a frame too big for a slot.

The interface keeps its kernel stack, which must stay out of usernet's way. The set-up
(see docs/tools.md): the usernet end has no kernel address, `arp off`, no IPv6; the peer
sends plain MTU-sized frames with full checksums, so on a veth pair the peer end's
transmit checksum offload (and with it TSO) is off — `disable_tx_offloads` does that
without ethtool. Outgoing frames of the interface are not looped back into the ring
(PACKET_IGNORE_OUTGOING).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import socket
import struct
from typing import TYPE_CHECKING

from usernet.link.base import BytesLike, LinkCounters

if TYPE_CHECKING:
    from usernet.link.sandbox import Sandbox

__all__ = ["PacketLink", "disable_tx_offloads", "prepare_veth", "veth_link"]

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_TX_RING = 13
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
TPACKET_V2 = 1
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_LOSING = 4  # on a frame: the kernel dropped frames since the statistics were last read
TP_STATUS_AVAILABLE = 0
TP_STATUS_SEND_REQUEST = 1
TP_STATUS_WRONG_FORMAT = 4
SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17

_U32 = struct.Struct("=I")
_REQ = struct.Struct("=4I")  # block_size, block_nr, frame_size, frame_nr
_PKT2 = struct.Struct("=IIIH")  # at a V2 slot: tp_status, tp_len, tp_snaplen, tp_mac
_TX_DATA = 32  # TPACKET2_HDRLEN - sizeof(struct sockaddr_ll): where a V2 slot's frame starts
_STATS = struct.Struct("=II")  # tpacket_stats: tp_packets, tp_drops
_TX_LEN = struct.Struct("=II")  # at +4 of a V2 slot: tp_len, tp_snaplen


def _ifreq(name: str, tail: bytes = b"") -> bytes:
    encoded = name.encode()
    if not 0 < len(encoded) < 16:
        raise ValueError(f"interface name {name!r} must be 1-15 bytes")
    return struct.pack("16s", encoded) + tail.ljust(24, b"\0")


def disable_tx_offloads(name: str) -> None:
    """Turn transmit checksum offload (and the TSO that depends on it) off on `name`, in this
    thread's network namespace: its frames then carry full checksums and are at most MTU-sized.

    What `ethtool -K NAME tx off` does, through the legacy ETHTOOL_STXCSUM ioctl.
    """
    value = ctypes.create_string_buffer(_U32.pack(ETHTOOL_STXCSUM) + _U32.pack(0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, SIOCETHTOOL, _ifreq(name, struct.pack("P", ctypes.addressof(value))))


def _ring_geometry(frame_size: int, frames: int) -> tuple[int, int]:
    """(block size, block count) for `frames` slots of `frame_size`: whole pages per block."""
    per_block = max(1, mmap.PAGESIZE * 4 // frame_size)
    block_size = per_block * frame_size
    if block_size % mmap.PAGESIZE:
        block_size = -(-block_size // mmap.PAGESIZE) * mmap.PAGESIZE
    return block_size, max(1, -(-frames // per_block))


class PacketLink(LinkCounters):
    """usernet on interface `name` (opened in the calling thread's network namespace).

    `mac` defaults to the interface's own, so the peer's frames to it are accepted without
    promiscuous mode. `rx_blocks` blocks of `rx_block_size` bytes make the receive ring (each
    block holds as many slots of one MTU-sized frame as fit); `tx_frames` slots the transmit ring.
    """

    __slots__ = (
        "_mac",
        "_mtu",
        "_rx",
        "_rx_map",
        "_rx_next",
        "_rx_release",
        "_rx_slots",
        "_rx_view",
        "_tx",
        "_tx_frame",
        "_tx_frames",
        "_tx_map",
        "_tx_next",
        "_tx_pending",
        "_tx_view",
        "closed",
        "name",
        "tx_batch",
        "tx_kicks",
    )

    def __init__(
        self,
        name: str,
        *,
        mac: bytes | None = None,
        rx_block_size: int = 1 << 20,
        rx_blocks: int = 16,
        tx_frames: int = 1024,
        tx_batch: int = 64,
    ) -> None:
        super().__init__()
        self.name = name
        self.closed = False
        self.tx_batch = tx_batch
        self.tx_kicks = 0
        # Protocol 0 until bound: no frame is queued before the ring is there to take it.
        try:
            self._rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise PermissionError(
                errno.EPERM, "an AF_PACKET link needs CAP_NET_RAW: run as root (or grant the capability)"
            ) from None
        self._tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self._mtu = struct.unpack_from("=i", fcntl.ioctl(self._rx, SIOCGIFMTU, _ifreq(name)), 16)[0]
            hwaddr = fcntl.ioctl(self._rx, SIOCGIFHWADDR, _ifreq(name))
            self._mac = mac if mac is not None else hwaddr[18:24]
            if len(self._mac) != 6:
                raise ValueError(f"mac must be 6 bytes, got {len(self._mac)}")
            self._open_rx(rx_block_size, rx_blocks)
            self._open_tx(tx_frames)
        except BaseException:
            self._rx.close()
            self._tx.close()
            raise

    def _open_rx(self, block_size: int, blocks: int) -> None:
        sock = self._rx
        # A slot holds the V2 header, the kernel's alignment of the network header and a frame.
        frame_size = 1 << (self._mtu + 18 + 128 - 1).bit_length()
        if block_size % mmap.PAGESIZE or block_size < frame_size:
            raise ValueError(
                f"rx_block_size must be a multiple of the page size and hold a {frame_size}-byte slot, not {block_size}"
            )
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        per_block = block_size // frame_size
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, _REQ.pack(block_size, blocks, frame_size, per_block * blocks))
        self._rx_map = mmap.mmap(sock.fileno(), block_size * blocks, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._rx_view = memoryview(self._rx_map)
        # Slots never straddle blocks: index them block by block, as the kernel fills them.
        self._rx_slots = [b * block_size + i * frame_size for b in range(blocks) for i in range(per_block)]
        self._rx_next = 0
        self._rx_release: list[int] = []
        try:
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        except OSError as exc:
            raise OSError(exc.errno, f"PACKET_IGNORE_OUTGOING needs Linux 4.20 or later: {exc.strerror}") from None
        sock.bind((self.name, ETH_P_ALL))
        sock.setblocking(False)

    def _open_tx(self, frames: int) -> None:
        sock = self._tx
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        frame_size = 1 << (_TX_DATA + self._mtu + 18 - 1).bit_length()
        block_size, blocks = _ring_geometry(frame_size, frames)
        per_block = block_size // frame_size
        sock.setsockopt(SOL_PACKET, PACKET_TX_RING, _REQ.pack(block_size, blocks, frame_size, per_block * blocks))
        self._tx_map = mmap.mmap(sock.fileno(), block_size * blocks, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._tx_view = memoryview(self._tx_map)
        self._tx_frame = frame_size
        # Slots never straddle blocks: index them block by block.
        self._tx_frames = [b * block_size + i * frame_size for b in range(blocks) for i in range(per_block)]
        self._tx_next = 0
        self._tx_pending = 0
        sock.bind((self.name, 0))  # protocol 0: this socket only sends
        sock.setblocking(False)

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def mac(self) -> bytes:
        return self._mac

    def fileno(self) -> int:
        return self._rx.fileno()

    def receive(self, max_frames: int = 64) -> list[memoryview | bytes]:
        view = self._rx_view
        release = self._rx_release
        for slot in release:  # the previous call's frames are done with: their slots go back
            _U32.pack_into(view, slot, TP_STATUS_KERNEL)
        release.clear()
        if self._tx_pending:
            self._kick()
        out: list[memoryview | bytes] = []
        slots = self._rx_slots
        count = len(slots)
        limit = min(max_frames, count)  # never the same slot twice in one call
        i = self._rx_next
        while len(release) < limit:
            slot = slots[i]
            status, length, snaplen, mac = _PKT2.unpack_from(view, slot)
            if not status & TP_STATUS_USER:
                break
            if status & TP_STATUS_LOSING:
                self._count_kernel_drops()
            release.append(slot)
            i += 1
            if i == count:
                i = 0
            if snaplen < length:  # bigger than a slot (the peer sent more than the MTU): cut, so dropped
                self.dropped_rx += 1
                continue
            start = slot + mac
            out.append(view[start : start + snaplen])
            self.rx_frames += 1
            self.rx_bytes += snaplen
        self._rx_next = i
        return out

    def _count_kernel_drops(self) -> None:
        """Add the frames the kernel dropped for want of a free slot to `dropped_rx` (reading resets them)."""
        _, drops = _STATS.unpack(self._rx.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size))
        self.dropped_rx += drops

    def send(self, frame: BytesLike) -> None:
        size = len(frame)
        slot = self._tx_frames[self._tx_next]
        view = self._tx_view
        status = _U32.unpack_from(view, slot)[0]
        if status == TP_STATUS_WRONG_FORMAT:
            status = TP_STATUS_AVAILABLE  # the kernel refused what was there; the slot is ours again
        if status != TP_STATUS_AVAILABLE or size > self._tx_frame - _TX_DATA:
            self.dropped_tx += 1
            if status != TP_STATUS_AVAILABLE and self._tx_pending:
                self._kick()
            return
        view[slot + _TX_DATA : slot + _TX_DATA + size] = frame
        _TX_LEN.pack_into(view, slot + 4, size, size)
        _U32.pack_into(view, slot, TP_STATUS_SEND_REQUEST)
        self._tx_next = (self._tx_next + 1) % len(self._tx_frames)
        self.tx_frames += 1
        self.tx_bytes += size
        self._tx_pending += 1
        if self._tx_pending >= self.tx_batch:
            self._kick()

    def _kick(self) -> None:
        """Have the kernel send every filled slot (one system call for the batch)."""
        self._tx_pending = 0
        self.tx_kicks += 1
        try:
            self._tx.send(b"", socket.MSG_DONTWAIT)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ENOBUFS):
                raise
            self._tx_pending = 1  # the slots stay filled: try again at the next chance

    def next_deadline(self) -> float | None:
        return 0.0 if self._tx_pending else None  # frames waiting in the ring: poll at once

    def poll(self, now: float) -> None:
        if self._tx_pending:
            self._kick()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._tx_pending:
            self._kick()
        self._rx.close()
        self._tx.close()
        for ring, view in ((self._rx_map, self._rx_view), (self._tx_map, self._tx_view)):
            try:
                view.release()
                ring.close()
            except BufferError:
                pass  # a caller still holds frames from the ring: it is unmapped when they go


def prepare_veth(
    sandbox: Sandbox,
    kernel_end: str = "usernet0",
    usernet_end: str = "usernet0p",
    *,
    host_address: str = "192.0.2.1/24",
    mtu: int = 1500,
) -> None:
    """A veth pair in `sandbox`, the kernel on `kernel_end`, `usernet_end` left for a PacketLink.

    The documented set-up, in the namespace only: `kernel_end` gets `host_address`; the
    usernet end has no address, `arp off` and no IPv6, so its kernel stack never answers
    for usernet; transmit offloads are off on the kernel end (full checksums, MTU-sized
    frames). Deleting the namespace deletes the pair.
    """

    def run(*args: str) -> None:
        result = sandbox.run(["ip", *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise OSError(f"`ip {' '.join(args)}` in {sandbox.name} failed: {result.stderr.strip()}")

    run("link", "add", kernel_end, "mtu", str(mtu), "type", "veth", "peer", "name", usernet_end, "mtu", str(mtu))
    run("addr", "add", host_address, "dev", kernel_end)
    run("link", "set", "dev", usernet_end, "arp", "off")

    def quiet() -> None:
        for end in (kernel_end, usernet_end):
            with open(f"/proc/sys/net/ipv6/conf/{end}/disable_ipv6", "w") as knob:
                knob.write("1")
        disable_tx_offloads(kernel_end)

    sandbox.in_namespace(quiet)
    for end in (usernet_end, kernel_end):
        run("link", "set", "dev", end, "up")


def veth_link(
    sandbox: Sandbox,
    kernel_end: str = "usernet0",
    usernet_end: str = "usernet0p",
    *,
    host_address: str = "192.0.2.1/24",
    mtu: int = 1500,
    **options: int,
) -> PacketLink:
    """`prepare_veth`, then a PacketLink (with `options`) on the usernet end; the caller closes it."""
    prepare_veth(sandbox, kernel_end, usernet_end, host_address=host_address, mtu=mtu)
    return sandbox.in_namespace(lambda: PacketLink(usernet_end, **options))  # type: ignore[arg-type]  # int options
