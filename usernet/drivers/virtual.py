"""Deterministic simulation: hosts on in-memory wires, driven by a virtual clock.

Nothing sleeps: the simulator jumps the clock straight to the next deadline of any
host or link, so minutes of protocol time take milliseconds, and a run is a pure
function of its seeds.
"""

from __future__ import annotations

from collections.abc import Callable

from usernet.drivers.host import Host
from usernet.link.clock import VirtualClock
from usernet.stack.interface import Socket


class Simulation:
    """A set of hosts sharing one virtual clock."""

    def __init__(self, clock: VirtualClock | None = None) -> None:
        self.clock = clock if clock is not None else VirtualClock()
        self.hosts: list[Host] = []
        self.on_ready: Callable[[Host, Socket], None] | None = None

    def add(self, host: Host) -> Host:
        self.hosts.append(host)
        host.start(self.clock())
        return host

    def step(self) -> None:
        """Pump every host once at the current time."""
        now = self.clock()
        for host in self.hosts:
            for sock in host.pump(now):
                if self.on_ready is not None:
                    self.on_ready(host, sock)
            host.flush(now)  # what the callbacks sent leaves now, as in the real loops

    def run(self, duration: float, *, max_steps: int = 1_000_000) -> None:
        """Advance `duration` seconds of virtual time, stopping at every deadline on the way.

        Frames in flight on a zero-latency wire are due now, so the loop steps again
        at the same instant until nothing is due before moving the clock.
        """
        end = self.clock() + duration
        for _ in range(max_steps):
            self.step()
            deadline = self.next_deadline()
            if deadline is None or deadline > end:
                self.clock.set(end)
                return
            if deadline > self.clock():
                self.clock.set(deadline)
        raise RuntimeError(f"simulation did not reach t={end} within {max_steps} steps: a timer is not advancing")

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (h.deadline() for h in self.hosts) if d is not None]
        return min(deadlines) if deadlines else None
