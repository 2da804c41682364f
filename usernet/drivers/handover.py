"""Handing a running stack to another process: the TAP's file descriptor and the frozen TCP state.

The old owner listens on an AF_UNIX stream socket at a path both processes know (mode 0600,
and only a peer of the same user, or root, is answered: SO_PEERCRED). The exchange:

    new -> old   b"TAKE\\n"
    old -> new   HEADER (b"usernetH", blob length) with the TAP's descriptor (SCM_RIGHTS), then the blob
    new -> old   b"OK\\n" once everything is thawed, or b"NO <reason>\\n"

Before it answers, the old owner stops reading the TAP (and runs no timer): a frame that
arrives from then on waits in the TAP's queue, which the new owner reads once it has thawed,
so no frame is processed twice and none is lost by usernet (the kernel drops frames only
when the queue overflows, and TCP retransmits those). On "OK" the old owner never touches
the TAP again (`Host.retire`); on anything else it carries on as before.

What moves (`freeze_host`): the interface's MAC, addresses, gateway, MTU and secret (so ISNs
and SYN cookies continue), the TAP's options, every listener with its accept queue, every
connection a server accepted (`held`, with the bytes its transport had not yet given the
stack) and every connection that its user already closed (it finishes closing in the new
process). What stays behind, said in `Frozen.left`: half-open connections (their peers'
ACKs meet a RST and they connect again), connections the program opened itself or holds
outside a server (nobody in a new program would take them: their peers get a RST at their
next segment), and links other than a TAP.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from usernet.drivers.host import Host, offload_options
from usernet.link.base import Link
from usernet.link.tap import TapLink
from usernet.stack import Interface, InterfaceConfig
from usernet.stack.route import format_ip
from usernet.stack.tcp.connection import TcpConnection
from usernet.stack.tcp.frozen import MigrationError, decode_blob
from usernet.stack.tcp.frozen import field as frozen_field
from usernet.stack.tcp.layer import ANY, TcpLayer, TcpListener
from usernet.stack.tcp.states import State

__all__ = [
    "Frozen",
    "HandoverPoint",
    "Leftovers",
    "Takeover",
    "freeze_host",
    "freeze_tcp",
    "request_handover",
    "thaw_host",
    "thaw_tcp",
]

HELLO = b"TAKE\n"
HEADER = struct.Struct("!8sI")
_HEADER_MAGIC = b"usernetH"
_OK = b"OK\n"
_TIMEOUT = 10.0
#: States whose connection has no user any more once it is not held: it finishes closing on its own.
_CLOSING = frozenset((State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSING, State.LAST_ACK, State.TIME_WAIT))
_HANDSHAKE = frozenset((State.SYN_SENT, State.SYN_RECEIVED))


class Leftovers(NamedTuple):
    """What the user side of a held connection has that the stack does not."""

    unread: bytes = b""  # delivered to the program and not consumed by it (a StreamReader's buffer)
    unsent: bytes = b""  # written by the program and not yet taken by the stack (a transport's buffer)


@dataclass
class Frozen:
    """What `freeze_host` made: the payload to encode, and what stays behind, one line each."""

    payload: dict[str, Any]
    moved: int = 0
    left: list[str] = field(default_factory=list)


def _tap_of(link: Link) -> TapLink:
    inner: object = link
    while not isinstance(inner, TapLink):
        nxt = getattr(inner, "inner", None)
        if nxt is None:
            raise MigrationError(
                f"only a TAP can be handed over, and this stack runs on {type(link).__name__}: "
                "run both processes on a TAP (--tap or --link tap:NAME)"
            )
        inner = nxt
    return inner


def _name(conn: TcpConnection) -> str:
    return f"{format_ip(conn.local[0])}:{conn.local[1]} -> {format_ip(conn.remote[0])}:{conn.remote[1]}"


def freeze_host(host: Host, now: float, held: Mapping[TcpConnection, Leftovers]) -> Frozen:
    """Freeze what can move of `host` (see the module); `held` maps each connection a server
    accepted to what its user side holds of its bytes."""
    tap = _tap_of(host.link)
    config = host.iface.config
    frozen = freeze_tcp(host.iface.tcp, now, held)
    frozen.payload["interface"] = {
        "mac": config.mac,
        "addresses": [[addr, prefix] for addr, prefix in config.addresses],
        "gateway": config.gateway,
        "mtu": host.iface.mtu,  # the one it runs with now, which `Interface.set_mtu` may have changed
        "secret": config.secret,
    }
    frozen.payload["link"] = tap.options
    return frozen


def freeze_tcp(tcp: TcpLayer, now: float, held: Mapping[TcpConnection, Leftovers]) -> Frozen:
    """`freeze_host`'s TCP part: the listeners, and the connections that can move (see the module)."""
    listeners = tcp.listeners()
    frozen = Frozen({"listeners": [listener.freeze(now, leave_half_open=True) for listener in listeners]})
    connections: list[dict[str, Any]] = []
    frozen.payload["connections"] = connections
    where = {listener.local: i for i, listener in enumerate(listeners)}
    for listener in listeners:
        frozen.moved += listener.pending
        if listener.half_open:
            frozen.left.append(f"{listener.half_open} half-open connections of {listener!r}: their peers retry")
    for conn in tcp.connections():
        state = conn.state
        if conn.listener is not None or state == State.CLOSED:
            continue  # queued (its listener froze it), half-open (counted above) or gone
        if state in _HANDSHAKE:
            frozen.left.append(f"{_name(conn)}: mid-handshake ({state.name}); it is not moved, its peer retries")
            continue
        index: int | None = None
        if conn in held:
            index = where.get(conn.local, where.get((ANY, conn.local[1])))
            if index is None:
                frozen.left.append(f"{_name(conn)}: opened by the program, not accepted by a listener")
                continue
        elif state not in _CLOSING:
            frozen.left.append(f"{_name(conn)}: held outside a server (a client, or from sock_accept)")
            continue
        unread, unsent = held.get(conn, Leftovers())
        connections.append({"listener": index, "connection": conn.freeze(now, unsent, unread)})
        frozen.moved += 1
    return frozen


def thaw_host(payload: dict[str, Any], tap_fd: int, now: float) -> Host:
    """A Host on the handed-over TAP with everything `freeze_host` froze; its listeners wait in
    `Host.adopted` and the connections their servers had accepted wait in their accept queues."""
    iface = frozen_field(payload, "interface", dict, "handover")
    link_options = frozen_field(payload, "link", dict, "handover")
    try:
        link = TapLink.from_fd(
            tap_fd,
            frozen_field(link_options, "name", str, "link"),
            mtu=frozen_field(link_options, "mtu", int, "link"),
            mac=frozen_field(link_options, "mac", bytes, "link"),
            offloads=frozen_field(link_options, "offloads", bool, "link"),
            gso=frozen_field(link_options, "gso", bool, "link"),
            gro=frozen_field(link_options, "gro", bool, "link"),
        )
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(tap_fd)
        raise
    try:
        addresses = tuple((bytes(a), int(p)) for a, p in frozen_field(iface, "addresses", list, "interface"))
        config = InterfaceConfig(
            mac=frozen_field(iface, "mac", bytes, "interface"),
            addresses=addresses,
            gateway=frozen_field(iface, "gateway", (bytes, type(None)), "interface"),
            mtu=frozen_field(iface, "mtu", int, "interface"),
            secret=frozen_field(iface, "secret", bytes, "interface"),
            **offload_options(link),
        )
        host = Host(link, Interface(config))
        host.adopted.update(thaw_tcp(host.iface.tcp, payload, now))
    except BaseException:
        link.close()
        raise
    return host


def thaw_tcp(tcp: TcpLayer, payload: dict[str, Any], now: float) -> dict[tuple[bytes, int], TcpListener]:
    """`thaw_host`'s TCP part: the listeners (returned by address) and the connections, each
    held one queued in its listener as if just accepted."""
    listeners = [tcp.thaw_listener(frozen, now) for frozen in frozen_field(payload, "listeners", list, "handover")]
    for entry in frozen_field(payload, "connections", list, "handover"):
        index = frozen_field(entry, "listener", (int, type(None)), "connection entry")
        if index is not None and not 0 <= index < len(listeners):
            raise MigrationError(f"a frozen connection names listener {index}, of {len(listeners)}: damaged")
        tcp.thaw_connection(
            frozen_field(entry, "connection", dict, "connection entry"),
            now,
            None if index is None else listeners[index],
        )
    return {listener.local: listener for listener in listeners}


# -- the socket --------------------------------------------------------------------------------


def _peer_allowed(sock: socket.socket) -> bool:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    return uid in (0, os.geteuid())


def _read_exactly(sock: socket.socket, n: int, what: str) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(min(n - len(data), 1 << 20))
        if not chunk:
            raise MigrationError(
                f"the other process closed the handover socket after {len(data)} of {n} bytes of {what}"
            )
        data += chunk
    return bytes(data)


def _read_line(sock: socket.socket, limit: int = 4096) -> bytes:
    data = bytearray()
    while not data.endswith(b"\n") and len(data) < limit:
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return bytes(data)


class HandoverPoint:
    """The old owner's end: a listening AF_UNIX socket at `path` that a successor connects to.

    A socket file left at `path` by a predecessor (which has handed over and is exiting) is
    replaced; at close the file is removed only if it is still this point's.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old_mask = os.umask(0o177)
            try:
                self._sock.bind(path)
            finally:
                os.umask(old_mask)
            self._sock.listen(4)
            self._inode = os.stat(path).st_ino
        except BaseException:
            self._sock.close()
            raise

    def fileno(self) -> int:
        return self._sock.fileno()

    def accept(self, timeout: float = _TIMEOUT) -> socket.socket | None:
        """The next successor that said HELLO (blocking); None for a peer refused or a stray connect."""
        conn, _ = self._sock.accept()
        conn.settimeout(timeout)
        try:
            if _peer_allowed(conn) and _read_line(conn) == HELLO:
                return conn
        except OSError:
            pass
        conn.close()
        return None

    @staticmethod
    def offer(conn: socket.socket, tap_fd: int, blob: bytes) -> str | None:
        """Send the TAP's descriptor and `blob` to a successor; None once it thawed them, else why not."""
        try:
            socket.send_fds(conn, [HEADER.pack(_HEADER_MAGIC, len(blob))], [tap_fd])
            conn.sendall(blob)
            answer = _read_line(conn)
        except OSError as exc:
            return f"the handover socket failed: {exc}"
        finally:
            conn.close()
        if answer == _OK:
            return None
        reason = answer.decode(errors="replace").strip()
        return reason.removeprefix("NO ").strip() or "the successor closed the socket without an answer"

    @staticmethod
    def refuse(conn: socket.socket, reason: str) -> None:
        """Tell a successor that there is nothing to take now, and why."""
        with contextlib.closing(conn), contextlib.suppress(OSError):
            conn.sendall(b"NO " + reason.replace("\n", " ").encode() + b"\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept()
        self._sock.close()
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)


@dataclass
class Takeover:
    """The successor's end of one handover: the TAP's descriptor and the checked payload.

    Call `accept()` once everything is thawed (the old owner then retires), or `refuse(reason)`
    (it carries on). Until one of them, the old owner waits and nobody reads the TAP.
    """

    sock: socket.socket
    tap_fd: int
    payload: dict[str, Any]

    def accept(self) -> None:
        with contextlib.closing(self.sock):
            self.sock.sendall(_OK)

    def refuse(self, reason: str) -> None:
        HandoverPoint.refuse(self.sock, reason)


def request_handover(path: str, timeout: float = _TIMEOUT) -> Takeover | None:
    """Ask the process serving `path` for its stack; None when none does (no socket, or a stale one).

    A blob that fails its checks is refused at once (MigrationError, with the reason sent
    back to the old owner, which carries on): nothing of it is thawed.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    fds: list[int] = []
    try:
        sock.sendall(HELLO)
        header, fds, _, _ = socket.recv_fds(sock, HEADER.size, 1)
        if not header:
            raise MigrationError(f"the process at {path} closed the handover socket without handing over")
        if header.startswith(b"NO "):
            reason = (header + _read_line(sock)).decode(errors="replace")[3:].strip()
            raise MigrationError(f"the process at {path} has nothing to hand over now: {reason}")
        header += _read_exactly(sock, HEADER.size - len(header), "the header")
        magic, length = HEADER.unpack(header)
        if magic != _HEADER_MAGIC or len(fds) != 1:
            raise MigrationError(f"{path} does not speak usernet's handover (header {magic!r}, {len(fds)} descriptors)")
        payload = decode_blob(_read_exactly(sock, length, "the migration blob"))
    except BaseException as exc:
        for fd in fds:
            os.close(fd)
        HandoverPoint.refuse(sock, str(exc))
        raise
    return Takeover(sock, fds[0], payload)
