"""A Linux TAP device as a link: frames in and out of the kernel through /dev/net/tun."""

from __future__ import annotations

import errno
import fcntl
import os

import pytun

from usernet.link.base import ETHERNET_OVERHEAD, BytesLike, LinkCounters

__all__ = ["TUNSETOFFLOAD", "TapLink", "random_mac"]

#: _IOW('T', 208, unsigned int): which offloads the reader of the TAP accepts.
TUNSETOFFLOAD = 0x400454D0

_DROP_ERRNOS = frozenset({errno.EAGAIN, errno.ENOBUFS, errno.EIO})
_PERMISSION_ERRNOS = frozenset({errno.EPERM, errno.EACCES})


def random_mac() -> bytes:
    """A random unicast, locally administered MAC address (the 0x02 bit set, 0x01 clear)."""
    mac = bytearray(os.urandom(6))
    mac[0] = (mac[0] & 0xFE) | 0x02
    return bytes(mac)


class TapLink(LinkCounters):
    """A TAP device (IFF_TAP | IFF_NO_PI, no offloads) read and written by usernet.

    `mac` is usernet's address on the Ethernet segment, not the kernel-side interface's:
    the TAP's own MAC belongs to the kernel's end, and usernet is a separate host behind it.

    `receive()` reads into a ring of preallocated buffers with `os.readv` and returns
    memoryviews of them, valid until the next `receive()`. TAP fds have no
    recvmmsg/sendmmsg, so batching happens around one system call per frame.
    """

    __slots__ = ("_device", "_fd", "_mtu", "_mac", "name", "_buffers", "_views")

    def __init__(self, device: pytun.TunTapDevice, *, mtu: int, mac: bytes | None) -> None:
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
        os.set_blocking(self._fd, False)
        # Offload settings survive on a persistent TAP; without this a reader that does not
        # speak vnet_hdr could be handed 64 KB GSO frames.
        fcntl.ioctl(self._fd, TUNSETOFFLOAD, 0)
        self._grow(64)

    @classmethod
    def create(cls, name: str = "usernet0", *, mtu: int = 1500, mac: bytes | None = None) -> TapLink:
        """Create TAP `name` in the calling thread's network namespace and set its MTU (needs CAP_NET_ADMIN)."""
        device = cls._open(name)
        try:
            device.mtu = mtu
            return cls(device, mtu=mtu, mac=mac)
        except BaseException:
            device.close()
            raise

    @classmethod
    def attach(cls, name: str, *, mtu: int | None = None, mac: bytes | None = None) -> TapLink:
        """Open an existing persistent TAP, e.g. one made with `ip tuntap add mode tap user $USER name NAME`.

        The owner of such a TAP needs no privilege. `mtu` defaults to the device's own; a
        smaller one is refused, since the kernel would hand over frames too big for the buffers.
        """
        device = cls._open(name)
        try:
            if mtu is not None and mtu < device.mtu:
                raise ValueError(
                    f"mtu {mtu} is below the MTU of {name} ({device.mtu}): frames would be cut short; "
                    f"lower the device's with `ip link set {name} mtu {mtu}` or pass mtu=None"
                )
            return cls(device, mtu=device.mtu if mtu is None else mtu, mac=mac)
        except BaseException:
            device.close()
            raise

    @staticmethod
    def _open(name: str) -> pytun.TunTapDevice:
        try:
            return pytun.TunTapDevice(name=name, flags=pytun.IFF_TAP | pytun.IFF_NO_PI)
        except OSError as exc:
            if exc.errno in _PERMISSION_ERRNOS:
                raise PermissionError(
                    exc.errno,
                    f"cannot open TAP {name!r}: creating a TAP needs CAP_NET_ADMIN. Run as root, or "
                    f"have root create a persistent one for you with `ip tuntap add mode tap user "
                    f"$USER name {name}` and use TapLink.attach({name!r})",
                ) from exc
            if exc.errno == errno.ENOENT:
                raise FileNotFoundError(
                    exc.errno, "/dev/net/tun is missing: load the tun module (`modprobe tun`)"
                ) from exc
            raise

    def _grow(self, count: int) -> None:
        size = self._mtu + ETHERNET_OVERHEAD
        while len(self._buffers) < count:
            buffer = bytearray(size)
            self._buffers.append(buffer)
            self._views.append(memoryview(buffer))

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
        if max_frames > len(self._buffers):
            self._grow(max_frames)
        fd = self._fd
        readv = os.readv
        buffers = self._buffers
        views = self._views
        frames: list[memoryview | bytes] = []
        total = 0
        for i in range(max_frames):
            try:
                n = readv(fd, (buffers[i],))
            except BlockingIOError:
                break
            frames.append(views[i][:n])
            total += n
        self.rx_frames += len(frames)
        self.rx_bytes += total
        return frames

    def send(self, frame: BytesLike) -> None:
        """Write one frame; when the kernel will not take it now (EAGAIN, ENOBUFS, or the TAP is down: EIO) count a drop."""
        try:
            os.write(self._fd, frame)
        except OSError as exc:
            if exc.errno not in _DROP_ERRNOS:
                raise
            self.dropped_tx += 1
            return
        self.tx_frames += 1
        self.tx_bytes += len(frame)

    def next_deadline(self) -> None:
        return None

    def poll(self, now: float) -> None:
        """A TAP holds nothing back."""

    def close(self) -> None:
        if self._fd >= 0:
            self._fd = -1
            self._device.close()

    @property
    def closed(self) -> bool:
        return self._fd < 0
