"""A Linux TAP device as a link: frames in and out of the kernel through /dev/net/tun."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from typing import ClassVar, Self

import pytun

from usernet.link.base import ETHERNET_OVERHEAD, NO_OFFLOADS, BytesLike, LinkCapabilities, LinkCounters, LinkFailed
from usernet.link.soft import GroBuffer, gso_send

__all__ = [
    "GSO_NONE",
    "GSO_TCPV4",
    "GSO_TCPV6",
    "NEEDS_CSUM",
    "SOFTWARE_GSO",
    "TAP_OFFLOADS",
    "TUNSETOFFLOAD",
    "TUNSETVNETHDRSZ",
    "TUN_F_CSUM",
    "TUN_F_TSO4",
    "TUN_F_TSO6",
    "VNET_HDR_LEN",
    "TapLink",
    "VnetHeader",
    "decode_vnet_header",
    "encode_vnet_header",
    "open_queues",
    "random_mac",
]

#: _IOW('T', 208, unsigned int): which offloads the reader of the TAP accepts.
TUNSETOFFLOAD = 0x400454D0
_SIOCGIFFLAGS = 0x8913
_SIOCGIFADDR = 0x8915
_IFF_UP = 0x1
#: _IOW('T', 202, int): attach an open /dev/net/tun file to the device named in the ifreq.
TUNSETIFF = 0x400454CA
IFF_MULTI_QUEUE = 0x0100
_SIOCSIFMTU = 0x8922
_IFREQ_FLAGS = struct.Struct("16sH22x")
#: _IOW('T', 216, int): the size of the header in front of each frame with IFF_VNET_HDR.
TUNSETVNETHDRSZ = 0x400454D8
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04

#: struct virtio_net_hdr (linux/virtio_net.h), native endian as the TAP uses it by default.
_VNET_HDR = struct.Struct("=BBHHHH")
VNET_HDR_LEN = _VNET_HDR.size
NEEDS_CSUM = 0x01  # VIRTIO_NET_HDR_F_NEEDS_CSUM: complete the checksum at csum_start + csum_offset
GSO_NONE = 0
GSO_TCPV4 = 1  # VIRTIO_NET_HDR_GSO_TCPV4
GSO_TCPV6 = 4  # VIRTIO_NET_HDR_GSO_TCPV6
_TCP_CSUM_OFFSET = 16  # the checksum field within the TCP header
_PLAIN_HEADER = bytes(VNET_HDR_LEN)

#: What a TAP with vnet headers gives the stack: the kernel's frames are trusted (and may
#: carry partial checksums or be 64 KB super-segments); ours go out with partial checksums
#: and up to 64 KB, for the kernel to complete and split.
TAP_OFFLOADS = LinkCapabilities(checksum_rx_trusted=True, checksum_tx_partial=True, tso_max=65535)
#: What a plain TAP gives the stack with software GSO: the same transmit side, done by
#: `native.gso_write` just before the write instead of by the kernel after it.
SOFTWARE_GSO = LinkCapabilities(checksum_tx_partial=True, tso_max=65535)

VnetHeader = tuple[int, int, int, int, int, int]  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset


def encode_vnet_header(frame: BytesLike, gso_size: int, link_len: int = 14) -> bytes:
    """The virtio_net_hdr for a TCP `frame` (over IPv4, or IPv6 without extension headers, as
    the stack sends them) whose checksum field holds the pseudo-header sum.

    The kernel completes the checksum from the TCP header on (NEEDS_CSUM) and, when
    `gso_size` is set, cuts the payload into segments of that many bytes (TSO4 or TSO6).
    `link_len`: the link header in front of the IP header (14 on a TAP, 0 on a TUN).
    """
    first = frame[link_len]
    v6 = first >> 4 == 6
    csum_start = link_len + (40 if v6 else (first & 0x0F) * 4)
    if not gso_size:
        return _VNET_HDR.pack(NEEDS_CSUM, GSO_NONE, 0, 0, csum_start, _TCP_CSUM_OFFSET)
    hdr_len = csum_start + (frame[csum_start + 12] >> 4) * 4
    return _VNET_HDR.pack(NEEDS_CSUM, GSO_TCPV6 if v6 else GSO_TCPV4, hdr_len, gso_size, csum_start, _TCP_CSUM_OFFSET)


def decode_vnet_header(header: BytesLike) -> VnetHeader:
    """The fields of a virtio_net_hdr, for tests and debugging; the receive path reads none of them."""
    return _VNET_HDR.unpack_from(header)


_DROP_ERRNOS = frozenset({errno.EAGAIN, errno.ENOBUFS, errno.EIO})
_PERMISSION_ERRNOS = frozenset({errno.EPERM, errno.EACCES})
#: What reads and writes fail with once the device is gone (deleted, or its namespace
#: destroyed): EBADFD from a detached tun file, the others for good measure.
_GONE_ERRNOS = frozenset({errno.EBADFD, errno.EBADF, errno.ENODEV, errno.ENXIO})


def _device_exists(name: str) -> bool:
    """Whether a network device `name` exists in the calling thread's namespace."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def random_mac() -> bytes:
    """A random unicast, locally administered MAC address (the 0x02 bit set, 0x01 clear)."""
    mac = bytearray(os.urandom(6))
    mac[0] = (mac[0] & 0xFE) | 0x02
    return bytes(mac)


class _Descriptor:
    """A TAP file descriptor received from another process (SCM_RIGHTS), standing in for a pytun device."""

    __slots__ = ("_fd", "name")

    def __init__(self, fd: int, name: str) -> None:
        self._fd = fd
        self.name = name

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def open_queues(name: str, count: int, *, mtu: int, offloads: bool = False) -> list[int]:
    """Create (or attach to) the multi-queue TAP `name` and open `count` queues of it (needs CAP_NET_ADMIN).

    Each descriptor is one queue (IFF_MULTI_QUEUE): a frame written into it is received by
    the kernel as if from the one device, and the kernel hands each frame it sends to one
    queue, chosen per flow (see docs/workers.md). The device lives while any queue is open.
    Each becomes a link with `TapLink.from_fd(fd, name, mtu=mtu, offloads=offloads, ...)`.
    """
    if count < 1:
        raise ValueError(f"a TAP has at least one queue, not {count}")
    flags = pytun.IFF_TAP | pytun.IFF_NO_PI | IFF_MULTI_QUEUE | (pytun.IFF_VNET_HDR if offloads else 0)
    request = _IFREQ_FLAGS.pack(name.encode(), flags)
    fds: list[int] = []
    try:
        for _ in range(count):
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
            fds.append(fd)
            try:
                fcntl.ioctl(fd, TUNSETIFF, request)
            except OSError as exc:
                if exc.errno in _PERMISSION_ERRNOS:
                    raise PermissionError(
                        exc.errno,
                        f"cannot open the queues of TAP {name!r}: creating a TAP needs CAP_NET_ADMIN; run as root",
                    ) from exc
                if exc.errno == errno.EINVAL and _device_exists(name):
                    raise OSError(
                        exc.errno,
                        f"cannot open {name!r} as a multi-queue TAP: a device of that name exists without "
                        "IFF_MULTI_QUEUE (or is not a TAP); choose another name (--tap NAME)",
                    ) from exc
                raise
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            fcntl.ioctl(sock, _SIOCSIFMTU, struct.pack("16si20x", name.encode(), mtu))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds


class TapLink(LinkCounters):
    """A TAP device (IFF_TAP | IFF_NO_PI, optionally IFF_VNET_HDR) read and written by usernet.

    `mac` is usernet's address on the Ethernet segment, not the kernel-side interface's:
    the TAP's own MAC belongs to the kernel's end, and usernet is a separate host behind it.

    `receive()` reads into a ring of preallocated buffers with `os.readv` and returns
    memoryviews of them, valid until the next `receive()`. TAP fds have no
    recvmmsg/sendmmsg, so batching happens around one system call per frame.

    With `offloads`, every frame crosses the fd behind a virtio_net_hdr, and the TAP
    tells the kernel (TUNSETOFFLOAD) that usernet takes partial checksums and 64 KB TCP
    super-segments over IPv4 and IPv6 (TSO4, TSO6): the kernel then skips checksumming and segmenting what it sends us,
    and does both for what we send (see `capabilities`). The headers are read into their
    own buffers, so the frames handed out are plain Ethernet either way.
    `rx_gso_frames` counts received frames longer than the MTU allows (super-segments),
    `tx_gso_frames` frames sent for the kernel to segment.

    Without `offloads`, `gso` (the default) still lets the stack hand over 64 KB TCP
    frames (IPv4 or IPv6) with partial checksums: software GSO cuts each into MTU-sized frames, completes
    their checksums and writes them, all in one C call, as Linux does for a device without
    TSO. The wire sees the same frames; the stack does its per-segment Python work once
    per 64 KB instead of once per 1,448 bytes. `tx_gso_frames` then counts the big frames
    cut. `gso=False` keeps the plain path: one frame from the stack, one write.

    Without `offloads`, `gro` (the default) is the receive side of the same idea: one C
    call reads a batch of frames back to back into one buffer and joins each in-order
    TCP segment onto the one before it (same flow, next sequence number, identical
    headers, valid checksums), as a NIC's GRO does for Linux; the stack gets one segment
    with fresh checksums where the wire carried several. `rx_gro_joined` counts the
    frames joined onto another; `rx_bytes` then counts the bytes handed to the stack.
    `gro=False` reads one frame per `readv` into the ring, as with offloads.

    The same C call merges pure ACKs: of a batch's consecutive pure ACKs of one flow that
    each advance the cumulative ACK, the stack gets the first and the newest (newest
    window and timestamps; duplicates, SACK-bearing and flagged ones are never merged:
    see `native.gro_read`). Sending bulk at MTU 1500 the kernel ACKs every ~3 segments,
    and each ACK was one pass through the stack's Python ACK path; `rx_acks_merged`
    counts those merged away. It is part of GRO: `gro=False` (or offloads) turns it off.
    """

    __slots__ = (
        "_buffers",
        "_device",
        "_fd",
        "_frame_cap",
        "_gro",
        "_headers",
        "_mac",
        "_mtu",
        "_offloads",
        "_views",
        "capabilities",
        "name",
        "rx_gro_joined",
        "rx_gso_frames",
        "tx_gso_frames",
    )

    #: What the device is, for messages, and how it is opened: TUNSETIFF's mode flag and
    #: the link header in front of each IP packet (a TUN subclass changes all three).
    KIND: ClassVar[str] = "TAP"
    _MODE: ClassVar[int] = pytun.IFF_TAP
    _LINK_HEADER: ClassVar[int] = 14

    def __init__(
        self,
        device: pytun.TunTapDevice | _Descriptor,
        *,
        mtu: int,
        mac: bytes | None,
        offloads: bool = False,
        gso: bool = True,
        gro: bool = True,
    ) -> None:
        super().__init__()
        if mac is not None and len(mac) != 6:
            raise ValueError(f"a MAC address is 6 bytes, not {len(mac)}")
        self._device = device
        self._fd: int = device.fileno()
        self.name: str = device.name
        self._mtu = mtu
        self._mac = bytes(mac) if mac is not None else random_mac()
        self._buffers: list[bytearray] = []
        self._views: list[memoryview] = []
        self._headers: list[bytearray] = []
        self._offloads = offloads
        self.capabilities: LinkCapabilities = TAP_OFFLOADS if offloads else SOFTWARE_GSO if gso else NO_OFFLOADS
        self.rx_gso_frames = 0
        self.tx_gso_frames = 0
        self.rx_gro_joined = 0
        self._frame_cap = mtu + self._overhead()
        self._gro: GroBuffer | None = None
        os.set_blocking(self._fd, False)
        if offloads:
            fcntl.ioctl(self._fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
            fcntl.ioctl(self._fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
        else:
            # Offload settings survive on a persistent TAP; without this a reader that does
            # not speak vnet_hdr could be handed 64 KB GSO frames.
            fcntl.ioctl(self._fd, TUNSETOFFLOAD, 0)
        if gro and not offloads:
            self._gro = GroBuffer(self._frame_cap, link_len=self._LINK_HEADER, merge_acks=True)
        else:
            self._grow(64)

    @classmethod
    def _overhead(cls) -> int:
        """Bytes a frame carries beyond the IP MTU: Ethernet's header and a VLAN tag, or none on a TUN."""
        return ETHERNET_OVERHEAD if cls._LINK_HEADER else 0

    @classmethod
    def create(
        cls,
        name: str = "usernet0",
        *,
        mtu: int = 1500,
        mac: bytes | None = None,
        offloads: bool = False,
        gso: bool = True,
        gro: bool = True,
    ) -> Self:
        """Create TAP `name` in the calling thread's network namespace and set its MTU (needs CAP_NET_ADMIN).

        `offloads` turns on vnet headers with checksum offload and TSO in both directions;
        `gso` and `gro` are software segmentation and receive merging when they are off
        (see the class).
        """
        device = cls._open(name, offloads)
        try:
            device.mtu = mtu
            return cls(device, mtu=mtu, mac=mac, offloads=offloads, gso=gso, gro=gro)
        except BaseException:
            device.close()
            raise

    @classmethod
    def attach(
        cls,
        name: str,
        *,
        mtu: int | None = None,
        mac: bytes | None = None,
        offloads: bool = False,
        gso: bool = True,
        gro: bool = True,
    ) -> Self:
        """Open an existing persistent TAP, e.g. one made with `ip tuntap add mode tap user $USER name NAME`.

        The owner of such a TAP needs no privilege. `mtu` defaults to the device's own; a
        smaller one is refused, since the kernel would hand over frames too big for the buffers.
        """
        device = cls._open(name, offloads)
        try:
            if mtu is not None and mtu < device.mtu:
                raise ValueError(
                    f"mtu {mtu} is below the MTU of {name} ({device.mtu}): frames would be cut short; "
                    f"lower the device's with `ip link set {name} mtu {mtu}` or pass mtu=None"
                )
            return cls(device, mtu=device.mtu if mtu is None else mtu, mac=mac, offloads=offloads, gso=gso, gro=gro)
        except BaseException:
            device.close()
            raise

    @classmethod
    def from_fd(
        cls,
        fd: int,
        name: str,
        *,
        mtu: int,
        mac: bytes,
        offloads: bool = False,
        gso: bool = True,
        gro: bool = True,
    ) -> TapLink:
        """A TAP opened by another process and handed over as a file descriptor (usernet.drivers.handover).

        `offloads` must say what the opener asked for: IFF_VNET_HDR belongs to the open file,
        so it cannot be changed here. The link owns `fd` from now on and closes it.
        """
        device = _Descriptor(fd, name)
        try:
            return cls(device, mtu=mtu, mac=mac, offloads=offloads, gso=gso, gro=gro)
        except BaseException:
            device.close()
            raise

    @property
    def options(self) -> dict[str, object]:
        """What `from_fd` needs besides the descriptor to carry on where this link is."""
        return {
            "name": self.name,
            "mtu": self._mtu,
            "mac": self._mac,
            "offloads": self._offloads,
            "gso": self.capabilities is not NO_OFFLOADS,
            "gro": self._gro is not None,
        }

    @classmethod
    def _open(cls, name: str, offloads: bool) -> pytun.TunTapDevice:
        flags = cls._MODE | pytun.IFF_NO_PI | (pytun.IFF_VNET_HDR if offloads else 0)
        kind = cls.KIND
        option = f"--link {kind.lower()}:NAME"
        try:
            return pytun.TunTapDevice(name=name, flags=flags)
        except OSError as exc:
            if exc.errno in _PERMISSION_ERRNOS:
                raise PermissionError(
                    exc.errno,
                    f"cannot open {kind} {name!r}: creating a {kind} needs CAP_NET_ADMIN. Run as root, or "
                    f"have root create a persistent one for you with `ip tuntap add mode {kind.lower()} user "
                    f"$USER name {name}` and use {cls.__name__}.attach({name!r})",
                ) from exc
            if exc.errno == errno.ENOENT:
                raise FileNotFoundError(
                    exc.errno, "/dev/net/tun is missing: load the tun module (`modprobe tun`)"
                ) from exc
            if exc.errno == errno.EINVAL and _device_exists(name):
                raise OSError(
                    exc.errno,
                    f"cannot open {name!r} as a {kind}: a network device of that name exists and is not a {kind} "
                    f"(a TAP is not a TUN, nor the other way round); choose another name ({option}), e.g. usernet0",
                ) from exc
            if exc.errno == errno.EBUSY:
                raise OSError(
                    exc.errno,
                    f"{kind} {name!r} is busy: something else has it open (a {kind} has one reader); close that "
                    f"or choose another name ({option})",
                ) from exc
            raise

    def _grow(self, count: int) -> None:
        # A super-segment is one IPv4 packet of up to 64 KB: the MTU does not bound it.
        size = (65535 if self._offloads else self._mtu) + self._overhead()
        while len(self._buffers) < count:
            buffer = bytearray(size)
            self._buffers.append(buffer)
            self._views.append(memoryview(buffer))
            self._headers.append(bytearray(VNET_HDR_LEN))

    @property
    def rx_acks_merged(self) -> int:
        """Pure ACKs the reader merged into a newer one of their flow (0 without GRO)."""
        return self._gro.acks_merged if self._gro is not None else 0

    @property
    def gro(self) -> bool:
        """True when `receive` joins in-order TCP segments (software GRO, see the class)."""
        return self._gro is not None

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def mac(self) -> bytes:
        return self._mac

    def fileno(self) -> int:
        return self._fd

    def receive(self, max_frames: int = 64) -> list[memoryview | bytes]:
        """Drain up to `max_frames` frames; stops early when the TAP has no more (EAGAIN)."""
        if self._gro is not None:
            merged, error = self._gro.read(self, self._fd, max_frames)
            if error and not merged:
                raise self._failure(error, "reading")
            return merged
        if max_frames > len(self._buffers):
            self._grow(max_frames)
        fd = self._fd
        readv = os.readv
        buffers = self._buffers
        views = self._views
        frames: list[memoryview | bytes] = []
        total = 0
        if not self._offloads:
            for i in range(max_frames):
                try:
                    n = readv(fd, (buffers[i],))
                except BlockingIOError:
                    break
                except OSError as exc:
                    raise self._failure(exc.errno or 0, "reading") from exc
                frames.append(views[i][:n])
                total += n
        else:
            # The header is not consulted: partial checksums are what `capabilities` promised
            # the stack, and a super-segment's IPv4 total length covers all of it.
            headers = self._headers
            limit = self._mtu + self._LINK_HEADER
            big = 0
            for i in range(max_frames):
                try:
                    n = readv(fd, (headers[i], buffers[i])) - VNET_HDR_LEN
                except BlockingIOError:
                    break
                except OSError as exc:
                    raise self._failure(exc.errno or 0, "reading") from exc
                frames.append(views[i][:n])
                total += n
                if n > limit:
                    big += 1
            self.rx_gso_frames += big
        self.rx_frames += len(frames)
        self.rx_bytes += total
        return frames

    def send(self, frame: BytesLike) -> None:
        """Write one frame; count a drop when the kernel will not take it now (EAGAIN, ENOBUFS, a TAP down: EIO).

        A frame with a `gso_size` attribute (see LinkCapabilities) has a partial TCP
        checksum: with offloads it goes with a header asking the kernel to complete it and,
        if `gso_size` is set, to segment the frame; without, software GSO does both here.
        """
        gso_size = getattr(frame, "gso_size", None)
        try:
            if gso_size is None:
                if self._offloads:
                    os.writev(self._fd, (_PLAIN_HEADER, frame))
                else:
                    os.write(self._fd, frame)
            elif self._offloads:
                os.writev(self._fd, (encode_vnet_header(frame, gso_size, self._LINK_HEADER), frame))
                if gso_size:
                    self.tx_gso_frames += 1
            else:
                gso_send(self, self._fd, frame, gso_size, _DROP_ERRNOS, self._LINK_HEADER)
                return
        except OSError as exc:
            if exc.errno not in _DROP_ERRNOS:
                raise self._failure(exc.errno or 0, "writing") from exc
            self.dropped_tx += 1
            return
        self.tx_frames += 1
        self.tx_bytes += len(frame)

    def _failure(self, code: int, doing: str) -> OSError:
        """The error for a failed read or write: LinkFailed when the device is gone for good."""
        if code in _GONE_ERRNOS:
            return LinkFailed(
                code,
                f"{self.KIND} {self.name} is gone ({doing} it: {os.strerror(code)}): its device was deleted "
                "or its network namespace removed",
            )
        return OSError(code, f"{doing} {self.KIND} {self.name}: {os.strerror(code)}")

    def kernel_side(self) -> tuple[bool, str | None]:
        """Whether the kernel's end of this TAP is up, and its IPv4 address (None: it has none).

        Asked of the calling thread's network namespace, which must be the TAP's. With the
        device down or without an address, nothing on the kernel side can reach usernet.
        """
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            request = struct.pack("16s24x", self.name.encode())
            flags = struct.unpack_from("H", fcntl.ioctl(sock, _SIOCGIFFLAGS, request), 16)[0]
            try:
                answer = fcntl.ioctl(sock, _SIOCGIFADDR, request)
            except OSError as exc:
                if exc.errno != errno.EADDRNOTAVAIL:
                    raise
                return bool(flags & _IFF_UP), None
        return bool(flags & _IFF_UP), socket.inet_ntoa(answer[20:24])

    def next_deadline(self) -> float | None:
        return None  # a TAP has no timers (a subclass may: usernet.link.queue)

    def poll(self, now: float) -> None:
        """A TAP holds nothing back."""

    def close(self) -> None:
        if self._fd >= 0:
            self._fd = -1
            self._device.close()

    @property
    def closed(self) -> bool:
        return self._fd < 0
