"""A link and an interface bound together: the one place frames move between them.

Every driver — the select loop behind `usernet up`, the virtual-clock simulator, the
asyncio loops — moves frames through a Host, so batching and flushing are decided
here once.
"""

from __future__ import annotations

import errno
from typing import Protocol, TypedDict

from usernet.drivers.allocator import fix_thresholds
from usernet.link.base import Link, LinkFailed, capabilities_of, carries_ethernet
from usernet.stack.interface import Interface, Socket
from usernet.stack.tcp.layer import TcpListener

__all__ = ["MAX_RECEIVE_ERRORS", "Agent", "Host", "OffloadOptions", "offload_options"]

#: Receive errors in a row after which a link that is not known to be gone counts as failed.
MAX_RECEIVE_ERRORS = 64


class OffloadOptions(TypedDict):
    """The InterfaceConfig fields the link decides: its offloads, and whether it carries Ethernet."""

    rx_checksum_trusted: bool
    tx_checksum_partial: bool
    tso_max: int
    ethernet: bool


def offload_options(link: Link) -> OffloadOptions:
    """The InterfaceConfig fields that let the stack use what `link` offloads, and speak
    what it carries: `InterfaceConfig(..., **offload_options(link))`."""
    caps = capabilities_of(link)
    return {
        "rx_checksum_trusted": caps.checksum_rx_trusted,
        "tx_checksum_partial": caps.checksum_tx_partial,
        "tso_max": caps.tso_max,
        "ethernet": carries_ethernet(link),
    }


class Agent(Protocol):
    """Work the Host runs beside the interface, with its own timers (the DHCP client's renewals).

    `poll(now)` runs at every pump (so it sees what its sockets received) and may raise
    LinkFailed to stop the Host for good; `next_deadline()` joins the Host's deadline.
    """

    def poll(self, now: float) -> None: ...

    def next_deadline(self) -> float | None: ...


class Host:
    """Pumps frames from a link into an interface and the interface's output back out.

    `pump(now)` drains the link in batches (bounded, so one busy link cannot starve a
    loop), runs due timers and returns the sockets that have news; the driver then lets
    the user side react and calls `flush(now)` once, so an answer written in reaction to
    a request leaves in the same segment as the ACK of that request.

    A link that fails for good (LinkFailed, or MAX_RECEIVE_ERRORS receive errors in a
    row) is not called again: `failed` keeps the error, `pump` and `flush` raise it,
    `deadline` is None, so a driver that stops at the first one never spins on a dead link.
    Fewer errors in a row are retried at the next pump.
    """

    def __init__(self, link: Link, iface: Interface, *, batch: int = 64, max_batches: int = 16) -> None:
        caps = capabilities_of(link)
        config = iface.config
        if (
            (config.tx_checksum_partial and not caps.checksum_tx_partial)
            or config.tso_max > caps.tso_max
            or (config.rx_checksum_trusted and not caps.checksum_rx_trusted)
        ):
            raise ValueError(
                f"the interface expects offloads the link does not do ({caps}): build its InterfaceConfig "
                "with **offload_options(link)"
            )
        if config.ethernet != carries_ethernet(link):
            carried = "Ethernet frames" if carries_ethernet(link) else "bare IP packets"
            raise ValueError(
                f"the link carries {carried} and the interface expects otherwise: build its InterfaceConfig "
                "with **offload_options(link)"
            )
        self.link = link
        self.iface = iface
        fix_thresholds()  # frames' buffers stay in the heap in every run (usernet/drivers/allocator.py)
        self._batch = batch
        self._max_batches = max_batches
        self.failed: LinkFailed | None = None
        self._receive_errors = 0
        #: Listeners thawed from a handover (usernet.drivers.handover) that no server has claimed
        #: yet, by (address, port): a program's `create_server` on that address takes its one.
        self.adopted: dict[tuple[bytes, int], TcpListener] = {}
        #: Agents polled at every pump, after the frames (see Agent); none unless one is added.
        self.agents: list[Agent] = []
        #: DNS servers the network named (DHCP), for the resolver when the program names none.
        self.dns_servers: tuple[str, ...] = ()

    def retire(self, message: str) -> None:
        """Never touch the link again: it belongs to someone else now (usernet.drivers.handover).
        `pump` and `flush` raise LinkFailed with `message` from here on."""
        self.failed = LinkFailed(errno.ENODEV, message)

    def start(self, now: float) -> None:
        self.iface.start(now)
        self.flush(now)

    def pump(self, now: float, due: bool | None = None) -> list[Socket]:
        """Receive what the link holds and run due timers; the caller flushes after its callbacks.

        `due` is whether the interface's timers are due, when the caller knows it from the
        interface's `next_deadline()` it read after its last flush (a driver that reads it
        then anyway, to arm its timer); None: ask the interface after the frames. A deadline
        the frames bring forward to `now` is then left to the caller's next read (and timer).
        """
        if self.failed is not None:
            raise self.failed
        link = self.link
        iface = self.iface
        link.poll(now)
        receive = iface.receive
        batch = self._batch
        for _ in range(self._max_batches):
            try:
                frames = link.receive(batch)
            except OSError as exc:
                self._receive_failed(exc)
                break
            if self._receive_errors:
                self._receive_errors = 0
            for frame in frames:
                receive(frame, now)
            # Fewer frames than asked: the link is drained — or, for a TAP with software GRO,
            # merged a full batch into fewer; then the level-triggered reader brings us back.
            if len(frames) < batch:
                break
        if due is None:
            deadline = iface.next_deadline()
            due = deadline is not None and deadline <= now
        if due:
            iface.poll(now)
        if self.agents:
            for agent in self.agents:
                try:
                    agent.poll(now)
                except LinkFailed as exc:
                    self.failed = exc
                    raise
        return iface.take_ready()

    def flush(self, now: float) -> None:
        """Let the interface turn pending work into frames, and hand them to the link.

        Drivers call it after the user side has reacted to `pump`'s ready sockets (and
        whenever the user wrote outside such a reaction), so everything written during one
        loop iteration leaves together.
        """
        if self.failed is not None:
            raise self.failed
        iface = self.iface
        iface.flush(now)
        send = self.link.send
        try:
            for frame in iface.take_output():
                send(frame)
        except LinkFailed as exc:
            self.failed = exc
            raise

    def _receive_failed(self, exc: OSError) -> None:
        """Retry a receive error at the next pump, unless the link is gone or keeps failing."""
        if not isinstance(exc, LinkFailed):
            self._receive_errors += 1
            if self._receive_errors < MAX_RECEIVE_ERRORS:
                return
            exc = LinkFailed(exc.errno, f"the link failed {MAX_RECEIVE_ERRORS} receives in a row: {exc}")
        self.failed = exc
        raise exc

    def deadline(self) -> float | None:
        """The earliest time `pump` must run even if no frame arrives (None once the link failed)."""
        if self.failed is not None:
            return None
        a = self.iface.next_deadline()
        b = self.link.next_deadline()
        deadline = b if a is None else a if b is None or a < b else b
        for agent in self.agents:
            c = agent.next_deadline()
            if c is not None and (deadline is None or c < deadline):
                deadline = c
        return deadline
