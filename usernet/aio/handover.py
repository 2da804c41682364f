"""Server restarts for unmodified asyncio programs: `python -m usernet --handover PATH prog.py`.

A process started with `--handover PATH` first asks the process serving PATH, if any, for its
stack (usernet.drivers.handover): it gets the TAP, the listeners and every connection the old
program's servers had accepted. Its own program's `create_server`/`start_server` on the same
address then gets the old listener back (no EADDRINUSE), and the moved connections wait in it
as if just accepted: the protocol factory (the `start_server` callback) runs for each, the
bytes the old program had not read arrive first, and the bytes it wrote that the stack had not
yet taken go out first. Then the process serves PATH itself, for the next restart.

The old process's side, on its loop: stop taking new handshakes and let the half-open ones
finish (up to `DRAIN` seconds), stop reading the TAP, freeze, hand over, and on success retire
the TAP (nothing is sent on it any more), drop every transport without a sound, and exit with
status 0. If the successor refuses (a damaged blob, other addresses), it carries on serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

from usernet.aio.driver import Driver
from usernet.aio.stream import StreamTransport
from usernet.drivers.config import UsernetConfig, open_host
from usernet.drivers.handover import HandoverPoint, Leftovers, freeze_host, request_handover, thaw_host
from usernet.drivers.host import Host
from usernet.stack.tcp.connection import TcpConnection
from usernet.stack.tcp.frozen import MigrationError, encode_blob

__all__ = ["DRAIN", "Successors", "hand_over", "open_or_take_over"]

#: How long the old process lets half-open handshakes finish before it freezes.
DRAIN = 1.0
#: Hands the stack to the successor on a connection to the point; True once it took it.
Hand = Callable[["HandoverPoint", socket.socket], bool]


def _say(message: str) -> None:
    print(f"usernet: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def open_or_take_over(config: UsernetConfig, hand: Hand) -> Iterator[Host]:
    """The stack of the process serving `config.handover`, or, when none does, a new one
    (`open_host`); either way this process then serves the path, each successor handed the
    stack through `hand` (see `Successors`)."""
    path = config.handover
    assert path is not None
    takeover = request_handover(path)
    if takeover is None:
        with open_host(config, clock=time.monotonic) as opened, contextlib.closing(Successors(path, hand)):
            yield opened
        return
    host: Host | None = None
    try:
        host = thaw_host(takeover.payload, takeover.tap_fd, time.monotonic())
        ours = (config.interface.ip.packed, config.interface.network.prefixlen)
        theirs = host.iface.config.addresses[0]
        if theirs != ours:
            raise MigrationError(
                f"the old process has address {'.'.join(map(str, theirs[0]))}/{theirs[1]} and this one "
                f"{config.address}: start the new one with --address as the old"
            )
        successors = Successors(path, hand)  # before the OK: the next restart must find this process
    except BaseException as exc:
        if host is not None:
            host.link.close()
        takeover.refuse(str(exc))
        raise
    takeover.accept()
    moved = sum(listener.pending for listener in host.adopted.values())
    _say(f"took over {len(host.adopted)} listeners and {moved} connections through {path}")
    try:
        yield host
    finally:
        successors.close()
        host.link.close()


async def hand_over(driver: Driver, point: HandoverPoint, conn: socket.socket) -> bool:
    """On the old process's loop: freeze and hand the stack to the successor on `conn`.

    True when the successor took it (this process must then end), False when it refused
    (this process carries on; the reason was printed).
    """
    loop = driver.loop
    tcp = driver.host.iface.tcp
    listeners = tcp.listeners()
    for listener in listeners:
        listener.drain()
    end = loop.time() + DRAIN
    while any(listener.half_open for listener in listeners) and loop.time() < end:
        await asyncio.sleep(0.01)
    driver.pause()  # from here on, no frame is read and no timer runs: the state holds still
    try:
        now = loop.time()
        held: dict[TcpConnection, Leftovers] = {}
        for sock, owner in driver.owners().items():
            if isinstance(sock, TcpConnection) and isinstance(owner, StreamTransport):
                unsent = owner.handover_unsent()
                if unsent is not None:
                    held[sock] = Leftovers(_unconsumed(owner.get_protocol()), unsent)
        frozen = freeze_host(driver.host, now, held)
        fd = driver.host.link.fileno()
        if fd is None:
            raise MigrationError("this stack's link has no file descriptor to hand over")
        # Blocking on purpose: no other task may write into the stack between the freeze and the answer.
        reason = point.offer(conn, fd, encode_blob(frozen.payload))
    except Exception as exc:  # whatever went wrong, this process must carry on serving
        reason = str(exc) or repr(exc)
        conn.close()
    if reason is not None:
        for listener in listeners:
            listener.draining = False
        driver.resume()
        _say(f"handover through {point.path} refused ({reason}): serving on")
        return False
    for line in frozen.left:
        _say(f"not handed over: {line}")
    _say(f"handed over {frozen.moved} connections and {len(listeners)} listeners through {point.path}; exiting")
    driver.host.retire(f"the TAP was handed over through {point.path}")
    driver.detach()
    return True


def _unconsumed(protocol: asyncio.BaseProtocol) -> bytes:
    """The bytes a `start_server` program's StreamReader holds and has not handed to it yet.

    asyncio offers no public way to see them, and without them a streams server would lose
    up to 128 KiB a connection at each restart (the reader buffers ahead of the program):
    so this reads the private `_stream_reader` and `_buffer` of asyncio.streams, the same on
    Python 3.11 to 3.13; any other protocol holds nothing the stack can know of.
    """
    if not isinstance(protocol, asyncio.StreamReaderProtocol):
        return b""
    buffer = getattr(getattr(protocol, "_stream_reader", None), "_buffer", None)
    return bytes(buffer) if isinstance(buffer, (bytes, bytearray)) else b""


class Successors:
    """Serves the handover point on a thread; each successor is handed the stack through `hand`.

    `hand(point, conn)` runs on this thread and returns True once the stack is gone to the successor.
    """

    def __init__(self, path: str, hand: Hand) -> None:
        self.point = HandoverPoint(path)
        self._hand = hand
        self._thread = threading.Thread(target=self._serve, name="usernet handover", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn = self.point.accept()
            except OSError:
                return  # closed
            if conn is not None and self._hand(self.point, conn):
                return

    def close(self) -> None:
        self.point.close()
