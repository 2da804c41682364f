"""A link and an interface bound together: the one place frames move between them.

Every driver — the select loop behind `usernet up`, the virtual-clock simulator, the
asyncio loops — moves frames through a Host, so batching and flushing are decided
here once.
"""

from __future__ import annotations

from typing import TypedDict

from usernet.link.base import Link, capabilities_of
from usernet.stack.interface import Interface, Socket

__all__ = ["Host", "OffloadOptions", "offload_options"]


class OffloadOptions(TypedDict):
    """The InterfaceConfig fields a link's offloads decide."""

    rx_checksum_trusted: bool
    tx_checksum_partial: bool
    tso_max: int


def offload_options(link: Link) -> OffloadOptions:
    """The InterfaceConfig fields that let the stack use what `link` offloads:
    `InterfaceConfig(..., **offload_options(link))`."""
    caps = capabilities_of(link)
    return {
        "rx_checksum_trusted": caps.checksum_rx_trusted,
        "tx_checksum_partial": caps.checksum_tx_partial,
        "tso_max": caps.tso_max,
    }


class Host:
    """Pumps frames from a link into an interface and the interface's output back out.

    `pump(now)` drains the link in batches (bounded, so one busy link cannot starve a
    loop), runs due timers and returns the sockets that have news; the driver then lets
    the user side react and calls `flush(now)` once, so an answer written in reaction to
    a request leaves in the same segment as the ACK of that request.
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
        self.link = link
        self.iface = iface
        self._batch = batch
        self._max_batches = max_batches

    def start(self, now: float) -> None:
        self.iface.start(now)
        self.flush(now)

    def pump(self, now: float) -> list[Socket]:
        """Receive what the link holds and run due timers; the caller flushes after its callbacks."""
        link = self.link
        iface = self.iface
        link.poll(now)
        receive = iface.receive
        for _ in range(self._max_batches):
            frames = link.receive(self._batch)
            for frame in frames:
                receive(frame, now)
            # Fewer frames than asked: the link is drained — or, for a TAP with software GRO,
            # merged a full batch into fewer; then the level-triggered reader brings us back.
            if len(frames) < self._batch:
                break
        deadline = iface.next_deadline()
        if deadline is not None and deadline <= now:
            iface.poll(now)
        return iface.take_ready()

    def flush(self, now: float) -> None:
        """Let the interface turn pending work into frames, and hand them to the link.

        Drivers call it after the user side has reacted to `pump`'s ready sockets (and
        whenever the user wrote outside such a reaction), so everything written during one
        loop iteration leaves together.
        """
        iface = self.iface
        iface.flush(now)
        send = self.link.send
        for frame in iface.take_output():
            send(frame)

    def deadline(self) -> float | None:
        """The earliest time `pump` must run even if no frame arrives."""
        a = self.iface.next_deadline()
        b = self.link.next_deadline()
        if a is None:
            return b
        return a if b is None or a < b else b
