"""A link over a kernel UDP socket: one Ethernet frame per datagram, no root needed.

The format is QEMU's `-netdev dgram` and `-netdev socket,udp=...,localaddr=...`: each
datagram holds exactly one Ethernet frame (no FCS), with no length prefix or header
(QEMU's stream modes add a 4-byte length, the datagram modes do not). So two usernet
processes, or usernet and a QEMU guest, can share a virtual Ethernet segment on
loopback as an ordinary user. One end:

    python -m usernet --link 'udp://127.0.0.1:5555?peer=127.0.0.1:5556' server.py

and the other, another usernet process or a QEMU guest:

    python -m usernet --link 'udp://127.0.0.1:5556?peer=127.0.0.1:5555' --address 192.0.2.1/24 client.py
    qemu-system-x86_64 -netdev dgram,id=n,local.type=inet,local.host=127.0.0.1,local.port=5556,\\
        remote.type=inet,remote.host=127.0.0.1,remote.port=5555 -device virtio-net,netdev=n ...
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct

from usernet.link.base import ETHERNET_OVERHEAD, BytesLike, LinkCounters
from usernet.link.soft import GroBuffer
from usernet.link.tap import random_mac

__all__ = ["UDP_MAX_PAYLOAD", "UdpLink", "peer_filter"]

#: The largest UDP payload over IPv4 (65,535 - 20 - 8); IPv6 allows 20 bytes more, but one bound is simpler.
UDP_MAX_PAYLOAD = 65507
#: A send that fails with these is a full device: the frame is dropped and counted.
_DROP_ERRNOS = frozenset({errno.EAGAIN, errno.ENOBUFS, errno.EMSGSIZE})
_SOCKET_BUFFER = 4 << 20
SO_ATTACH_FILTER = 26  # linux/asm-generic/socket.h
#: Classic BPF (linux/filter.h): load a word / half-word at an absolute offset, jump if equal, return.
_LD_W_ABS, _LD_H_ABS, _JEQ_K, _RET_K = 0x20, 0x28, 0x15, 0x06
#: Offsets from SKF_NET_OFF reach into the IP header; offset 0 is the UDP header.
_SKF_NET_OFF = -0x100000
_INSN = struct.Struct("=HBBI")


def _socket_address(host: str, port: int) -> tuple[int, tuple[str, int] | tuple[str, int, int, int]]:
    """(family, sockaddr) of a numeric host or a name the kernel's resolver knows, for a UDP socket."""
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve {host!r} for the UDP link: {exc.strerror}") from None
    return family, sockaddr  # type: ignore[return-value]


def peer_filter(family: int, address: str, port: int) -> bytes:
    """A classic BPF program that keeps the datagrams whose source is (`address`, `port`) and drops the rest.

    Attached with SO_ATTACH_FILTER, it does for an unconnected socket what connect()
    would: the kernel drops everyone else's datagrams before they are queued.
    """
    packed = socket.inet_pton(family, address.split("%", 1)[0])  # a link-local address may carry a %scope
    source = 12 if family == socket.AF_INET else 8  # the source address in the IPv4 / IPv6 header
    checks = [
        (_LD_W_ABS, _SKF_NET_OFF + source + i, int.from_bytes(packed[i : i + 4], "big"))
        for i in range(0, len(packed), 4)
    ]
    checks.append((_LD_H_ABS, 0, port))  # the UDP source port
    program = bytearray()
    drop = 2 * len(checks) + 1  # the index of the last instruction
    for n, (load, offset, value) in enumerate(checks):
        program += _INSN.pack(load, 0, 0, offset & 0xFFFFFFFF)
        program += _INSN.pack(_JEQ_K, 0, drop - (2 * n + 1) - 1, value)
    program += _INSN.pack(_RET_K, 0, 0, 0xFFFFFFFF)  # keep the whole datagram
    program += _INSN.pack(_RET_K, 0, 0, 0)
    return bytes(program)


def _attach(sock: socket.socket, program: bytes) -> None:
    """SO_ATTACH_FILTER takes a struct sock_fprog: the instruction count and a pointer to them."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HL", len(program) // _INSN.size, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class UdpLink(LinkCounters):
    """A UDP socket bound to `local`, moving one frame per datagram to and from `peer`.

    The socket is not connected: a connected UDP socket turns the ICMP "port unreachable"
    of a peer that is not (yet) listening into a socket error, and libuv (uvloop) stops
    watching an fd for good on the first error. Instead a socket filter (`peer_filter`)
    makes the kernel drop every datagram that does not come from `peer`, as connect()
    would, and frames go out with `sendto`; a frame sent while nobody listens is lost, as
    on a cable with nothing at the other end.

    `gro` (default) reads a batch of datagrams in one C call and joins in-order TCP
    segments, as on the TAP (see TapLink). Without GRO, datagrams are read into a ring of
    preallocated buffers, one `recv_into` each, and one longer than the MTU allows is
    dropped and counted in `dropped_rx`; with GRO such a datagram is cut at the buffer's
    end and the stack drops the truncated packet. Both ends must agree on the MTU, as on
    any Ethernet segment. There is no software GSO: the C core writes segments only to a
    connected fd, so the stack builds every MTU-sized frame itself.

    The kernel drops datagrams when the socket's receive buffer is full (TCP above then
    retransmits) and counts them, with those the filter refused (`kernel_dropped_rx`); the
    socket asks for 4 MB each way, which the kernel caps at net.core.rmem_max / wmem_max.
    """

    __slots__ = ("_buffers", "_frame_cap", "_gro", "_mac", "_mtu", "_peer", "_sock", "_views", "rx_gro_joined")

    def __init__(
        self,
        local: tuple[str, int],
        peer: tuple[str, int],
        *,
        mtu: int = 1500,
        mac: bytes | None = None,
        gro: bool = True,
    ) -> None:
        super().__init__()
        largest = UDP_MAX_PAYLOAD - ETHERNET_OVERHEAD
        if not 576 <= mtu <= largest:
            raise ValueError(f"a UDP link's MTU is 576..{largest} (a frame must fit in one datagram), not {mtu}")
        if mac is not None and len(mac) != 6:
            raise ValueError(f"a MAC address is 6 bytes, not {len(mac)}")
        family, local_addr = _socket_address(*local)
        peer_family, peer_addr = _socket_address(*peer)
        if family != peer_family:
            raise ValueError(f"the UDP link's local {local[0]!r} and peer {peer[0]!r} are not of one address family")
        self._mtu = mtu
        self._mac = bytes(mac) if mac is not None else random_mac()
        self._frame_cap = mtu + ETHERNET_OVERHEAD
        self._peer = peer_addr
        self.rx_gro_joined = 0
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            _attach(sock, peer_filter(family, peer_addr[0], peer_addr[1]))  # before bind: no stranger slips in
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
            try:
                sock.bind(local_addr)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot bind the UDP link to {local[0]}:{local[1]}: {exc.strerror}") from None
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._gro = GroBuffer(self._frame_cap) if gro else None
        self._buffers: list[bytearray] = []
        self._views: list[memoryview] = []

    @property
    def local_address(self) -> tuple[str, int]:
        """The (host, port) the socket is bound to: the address the peer sends to."""
        host, port = self._sock.getsockname()[:2]
        return host, port

    @property
    def peer_address(self) -> tuple[str, int]:
        """The (host, port) frames go to, and the only source frames are taken from."""
        return self._peer[0], self._peer[1]

    @property
    def kernel_dropped_rx(self) -> int | None:
        """Datagrams the kernel dropped for this socket before usernet read them: its receive buffer was
        full, or they came from someone other than the peer (the socket filter). From /proc/net/udp or
        udp6, read on demand only; None where that is not readable."""
        inode = str(os.fstat(self._sock.fileno()).st_ino)
        path = "/proc/net/udp6" if self._sock.family == socket.AF_INET6 else "/proc/net/udp"
        try:
            with open(path, encoding="ascii") as table:
                for line in table:
                    fields = line.split()
                    if len(fields) >= 13 and fields[9] == inode:
                        return int(fields[12])
        except (OSError, ValueError):
            return None
        return None

    @property
    def gro(self) -> bool:
        return self._gro is not None

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def mac(self) -> bytes:
        return self._mac

    def fileno(self) -> int:
        return self._sock.fileno()

    def receive(self, max_frames: int = 64) -> list[memoryview | bytes]:
        """Up to `max_frames` frames that are queued on the socket now; stops at EAGAIN."""
        if self._gro is not None:
            return self._receive_gro(self._gro, max_frames)
        buffers = self._buffers
        while len(buffers) < max_frames:
            # One byte more than a frame may have, so that a longer datagram shows itself.
            buffer = bytearray(self._frame_cap + 1)
            buffers.append(buffer)
            self._views.append(memoryview(buffer))
        recv_into = self._sock.recv_into
        views = self._views
        cap = self._frame_cap
        frames: list[memoryview | bytes] = []
        total = 0
        for i in range(max_frames):
            try:
                n = recv_into(buffers[i])
            except BlockingIOError:
                break
            if n > cap:
                self.dropped_rx += 1
                continue
            frames.append(views[i][:n])
            total += n
        self.rx_frames += len(frames)
        self.rx_bytes += total
        return frames

    def _receive_gro(self, gro: GroBuffer, max_frames: int) -> list[memoryview | bytes]:
        frames, error = gro.read(self, self._sock.fileno(), max_frames)
        if error and not frames:
            raise OSError(error, f"reading the UDP link: {os.strerror(error)}")
        return frames

    def send(self, frame: BytesLike) -> None:
        """Send one frame as one datagram to the peer; count a drop when the kernel will not take it now."""
        try:
            self._sock.sendto(frame, self._peer)
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
        """A socket holds nothing back."""

    def close(self) -> None:
        self._sock.close()

    @property
    def closed(self) -> bool:
        return self._sock.fileno() < 0
