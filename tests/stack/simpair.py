"""Two usernet interfaces on an in-memory wire, driven by a virtual clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from usernet.drivers.host import Host
from usernet.drivers.virtual import Simulation
from usernet.link.base import Link, LinkWrapper
from usernet.link.clock import VirtualClock
from usernet.link.memory import MemoryWire
from usernet.stack import Interface, InterfaceConfig

A_IP = bytes([192, 0, 2, 1])
B_IP = bytes([192, 0, 2, 2])


class Recorder(LinkWrapper):
    """Passes frames through and remembers what was sent, with the time it was sent.

    `lose` (None: keep all) says which sent frames the wire loses after they are recorded.
    """

    def __init__(self, inner: Link, clock: VirtualClock) -> None:
        super().__init__(inner)
        self.clock = clock
        self.sent: list[tuple[float, bytes]] = []
        self.lose: Callable[[bytes], bool] | None = None

    def receive(self, max_frames: int = 64) -> list[memoryview | bytes]:
        return self.inner.receive(max_frames)

    def send(self, frame: bytes | bytearray | memoryview) -> None:
        self.sent.append((self.clock(), bytes(frame)))
        if self.lose is None or not self.lose(bytes(frame)):
            self.inner.send(frame)


@dataclass
class Pair:
    sim: Simulation
    wire: MemoryWire
    a: Host
    b: Host
    a_link: Recorder
    b_link: Recorder

    def now(self) -> float:
        return self.sim.clock()


def make_pair(latency: float = 0.001, **options: object) -> Pair:
    clock = VirtualClock()
    wire = MemoryWire(clock, latency=latency)
    sim = Simulation(clock)
    a_link, b_link = Recorder(wire.a, clock), Recorder(wire.b, clock)
    a = Host(a_link, Interface(InterfaceConfig.from_strings(wire.a.mac, ["192.0.2.1/24"], secret=b"a" * 16, **options)))
    b = Host(b_link, Interface(InterfaceConfig.from_strings(wire.b.mac, ["192.0.2.2/24"], secret=b"b" * 16, **options)))
    sim.add(a)
    sim.add(b)
    return Pair(sim, wire, a, b, a_link, b_link)
