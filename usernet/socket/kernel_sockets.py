"""A kernel socket behind `usernet.socket.Socket`: non-blocking, waited on with the loop's add_reader/add_writer."""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from typing import Any

from usernet.socket.base import Address, Impl, Received, add_waiter, would_block

__all__ = ["KernelSocket", "tcp_info"]


class KernelSocket(Impl):
    """A non-blocking kernel socket, waited on with the loop's add_reader/add_writer."""

    backend = "kernel"

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._loop = loop
        self._sock = sock
        self.family, self.type, self.protocol = sock.family, sock.type, sock.proto
        self._waiters: tuple[list[asyncio.Future[None]], list[asyncio.Future[None]]] = ([], [])
        self._connecting = False
        self._listening = False
        self._closed = False

    def bind(self, address: Address) -> None:
        self._sock.bind(address)

    def listen(self, backlog: int) -> None:
        self._sock.listen(backlog)
        self._listening = True

    def accept(self) -> tuple[Impl, Address]:
        sock, address = self._sock.accept()
        return KernelSocket(self._loop, sock), address

    def connect(self, address: Address) -> None:
        if self._connecting:
            code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._connecting = False
                raise OSError(code, f"connect to {address} failed: {errno.errorcode.get(code, code)}")
            try:
                self._sock.getpeername()
            except OSError:
                raise would_block(errno.EALREADY) from None
            self._connecting = False
            return
        code = self._sock.connect_ex(address)
        if code == errno.EINPROGRESS:
            self._connecting = True
            raise would_block(errno.EINPROGRESS)
        if code:
            raise OSError(code, f"connect to {address} failed: {errno.errorcode.get(code, code)}")

    def receive(self, size: int, flags: int) -> Received:
        if self.type == socket.SOCK_STREAM:
            return self._sock.recv(size or 65536, flags), None, 0
        data, _, msg_flags, address = self._sock.recvmsg(size or 65536, 0, flags)
        return data, address, msg_flags

    def send(self, data: memoryview, address: Address | None, flags: int) -> int:
        if address is None:
            return self._sock.send(data, flags)
        return self._sock.sendto(data, flags, address)

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def close(self) -> None:
        self._closed = True
        fd = self._sock.fileno()
        if fd >= 0:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
        self._sock.close()
        for waiters in self._waiters:
            for future in waiters:
                if not future.done():
                    future.set_result(None)
            waiters.clear()

    def sockname(self) -> Address:
        return self._sock.getsockname()

    def peername(self) -> Address:
        return self._sock.getpeername()

    def setopt(self, level: int, name: int, value: int | bytes) -> None:
        self._sock.setsockopt(level, name, value)

    def getopt(self, level: int, name: int) -> int:
        return self._sock.getsockopt(level, name)

    def wait(self, write: bool) -> asyncio.Future[None]:
        waiters = self._waiters[write]
        if not waiters:
            add = self._loop.add_writer if write else self._loop.add_reader
            add(self._sock.fileno(), self._ready, write)
        return add_waiter(waiters, self._loop)

    def _ready(self, write: bool) -> None:
        (self._loop.remove_writer if write else self._loop.remove_reader)(self._sock.fileno())
        waiters = self._waiters[write]
        for future in waiters:
            if not future.done():
                future.set_result(None)
        waiters.clear()

    def state(self) -> str:
        if self._closed:
            return "closed"
        if self._listening:
            return "listening"
        try:
            self._sock.getpeername()
        except OSError:
            return "connecting" if self._connecting else "open"
        return "connected"

    def details(self) -> dict[str, Any]:
        if self.type != socket.SOCK_STREAM or self._closed or self._listening:
            return {}
        try:
            raw = self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO.size)
        except OSError:
            return {}
        if len(raw) < _TCP_INFO.size:
            return {}
        return {"tcp": tcp_info(raw)}


#: The start of Linux's struct tcp_info (linux/tcp.h): 8 one-byte fields, then 24 u32s.
_TCP_INFO = struct.Struct("=8B24I")
_KERNEL_STATES = (
    "", "ESTABLISHED", "SYN_SENT", "SYN_RECEIVED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT", "CLOSED",
    "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING",
)  # fmt: skip  # Linux's enum in order, several a line


def tcp_info(raw: bytes) -> dict[str, Any]:
    """The fields of a kernel TCP_INFO that usernet's TcpConnection.info() also has, in its units
    (seconds; cwnd and ssthresh in bytes), so info() reads alike on both backends."""
    b = _TCP_INFO.unpack_from(raw)
    u8, u32 = b[:8], b[8:]
    rto, mss, unacked, rtt, rttvar, ssthresh, cwnd, total_retrans = (
        u32[0], u32[2], u32[4], u32[15], u32[16], u32[17], u32[18], u32[23],
    )  # fmt: skip  # the names beside the indexes they come from
    return {
        "state": _KERNEL_STATES[u8[0]] if u8[0] < len(_KERNEL_STATES) else str(u8[0]),
        "rtt": rtt / 1e6, "rttvar": rttvar / 1e6, "rto": rto / 1e6, "mss": mss, "cwnd": cwnd * mss,
        "ssthresh": ssthresh * mss, "retransmits": total_retrans, "unacked": unacked,
    }  # fmt: skip  # the fields grouped as TcpConnection.info() groups them
