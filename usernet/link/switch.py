"""An Ethernet segment in memory: one port per host, a faulty cable between every two ports.

A simulated network needs more than a point-to-point `MemoryWire`: any number of hosts
on one segment, faults that differ per pair of hosts and change while frames flow, and
cables that can be cut (a partition) or made to hold frames back (a stall). The switch
knows every port's MAC, so it forwards a unicast frame to one port and floods broadcast
and multicast frames to all others, each copy through the cable of its own pair.

Each ordered pair of ports has a `Cable`: a seeded `FaultInjector` (latency, jitter,
loss, duplication, reordering, corruption, rate) in front of the receiving port. Frames
a cable holds back are released by the sending port's `poll()`, so the sending host's
driver wakes for them through `next_deadline()`, as with any link that delays frames.
A receiving port calls its `on_arrival` callback when its inbox goes from empty to not
empty: a driver without an fd to watch learns there that it has something to read.

Everything random is drawn from generators seeded from the switch's seed and the two
ports' names, so a run is repeatable; `trace_digest()` fingerprints every frame sent,
with its time and sender, to show it.
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from collections.abc import Callable

from usernet.link.base import ETHERNET_OVERHEAD, BytesLike, LinkCounters
from usernet.link.fault import FaultInjector
from usernet.link.pcap import PcapWriter

__all__ = ["Cable", "Switch", "SwitchPort"]

_TRACE_RECORD = struct.Struct("!dHI")  # time, sending port, frame length
#: Frames a held cable keeps before it drops more (a stall is not an infinite buffer).
HOLD_LIMIT = 100_000


class Cable(LinkCounters):
    """The far end of one direction between two ports; the inner link of that direction's FaultInjector.

    `cut` drops every frame that reaches the end of the cable (frames in flight when the
    cut happens are lost too, as on a pulled cable); `hold()` queues them instead, and
    `release()` delivers the queue in order.
    """

    __slots__ = ("_held", "cut", "source", "target")

    def __init__(self, source: SwitchPort, target: SwitchPort) -> None:
        super().__init__()
        self.source = source
        self.target = target
        self.cut = False
        self._held: deque[bytes] | None = None

    @property
    def mtu(self) -> int:
        return self.target.mtu

    @property
    def mac(self) -> bytes:
        return self.target.mac

    @property
    def holding(self) -> int:
        """How many frames `hold()` is keeping back (0 when not holding)."""
        return len(self._held) if self._held is not None else 0

    def fileno(self) -> None:
        return None

    def send(self, frame: BytesLike) -> None:
        if self.cut or not self.source.up:
            self.dropped_tx += 1
            return
        held = self._held
        if held is not None:
            if len(held) >= HOLD_LIMIT:
                self.dropped_tx += 1
                return
            held.append(bytes(frame))
            return
        self.tx_frames += 1
        self.tx_bytes += len(frame)
        self.target.deliver(frame)

    def hold(self) -> None:
        """Keep frames at the end of the cable until `release()`."""
        if self._held is None:
            self._held = deque()

    def release(self) -> None:
        """Deliver what was held, in order, and stop holding."""
        held, self._held = self._held, None
        for frame in held or ():
            self.send(frame)

    def receive(self, max_frames: int = 64) -> list[memoryview | bytes]:
        return []

    def next_deadline(self) -> None:
        return None

    def poll(self, now: float) -> None:
        """Nothing to release: held frames wait for `release()`."""

    def close(self) -> None:
        self._held = None


class SwitchPort(LinkCounters):
    """One host's network card on the switch: a `Link` with no fd.

    While `up` is False (a crashed host) it neither sends nor receives: what it is
    handed is dropped and what reaches it is lost, both counted.
    """

    __slots__ = ("_inbox", "_out", "_switch", "capture", "index", "mac_address", "name", "on_arrival", "up")

    def __init__(self, switch: Switch, name: str, index: int, mac: bytes) -> None:
        super().__init__()
        self._switch = switch
        self.name = name
        self.index = index
        self.mac_address = mac
        self.up = True
        self.on_arrival: Callable[[], None] = _nothing
        self.capture: PcapWriter | None = None
        self._inbox: deque[bytes] = deque()
        self._out: dict[bytes, FaultInjector] = {}  # by the target port's MAC

    @property
    def mtu(self) -> int:
        return self._switch.mtu

    @property
    def mac(self) -> bytes:
        return self.mac_address

    def fileno(self) -> None:
        return None

    def send(self, frame: BytesLike) -> None:
        if not self.up:
            self.dropped_tx += 1
            return
        size = len(frame)
        if size > self._switch.mtu + ETHERNET_OVERHEAD:
            raise ValueError(f"frame of {size} bytes exceeds MTU {self._switch.mtu} + {ETHERNET_OVERHEAD}")
        switch = self._switch
        now = switch.clock()
        switch.record(self.index, frame, now)
        if self.capture is not None:
            self.capture.write(frame, now)
        self.tx_frames += 1
        self.tx_bytes += size
        if frame[0] & 1:  # broadcast or multicast: a copy down every other cable
            for port in switch.ports:
                if port is not self:
                    self.cable_injector(port).send(frame)
            return
        target = switch.by_mac.get(bytes(frame[:6]))
        if target is None or target is self:
            self.dropped_tx += 1  # no such station on the segment
            return
        self.cable_injector(target).send(frame)

    def cable_injector(self, target: SwitchPort) -> FaultInjector:
        """The faults between this port and `target` (made with the switch's defaults on first use)."""
        injector = self._out.get(target.mac_address)
        if injector is None:
            injector = self._out[target.mac_address] = self._switch.new_injector(self, target)
        return injector

    def deliver(self, frame: BytesLike) -> None:
        """A frame reaches this port from a cable."""
        if not self.up:
            self.dropped_rx += 1
            return
        if self.capture is not None:
            self.capture.write(frame, self._switch.clock())
        inbox = self._inbox
        inbox.append(bytes(frame))
        if len(inbox) == 1:
            self.on_arrival()

    def receive(self, max_frames: int = 64) -> list[memoryview | bytes]:
        inbox = self._inbox
        count = min(max_frames, len(inbox))
        frames: list[memoryview | bytes] = [inbox.popleft() for _ in range(count)]
        self.rx_frames += count
        self.rx_bytes += sum(len(f) for f in frames)
        return frames

    def next_deadline(self) -> float | None:
        if self._inbox:
            return self._switch.clock()
        best: float | None = None
        for injector in self._out.values():
            t = injector.next_deadline()
            if t is not None and (best is None or t < best):
                best = t
        return best

    def poll(self, now: float) -> None:
        for injector in self._out.values():
            injector.poll(now)

    def set_up(self, up: bool) -> None:
        """Bring the port up or down; going down loses what waits in its inbox."""
        self.up = up
        if not up:
            self.dropped_rx += len(self._inbox)
            self._inbox.clear()

    def close(self) -> None:
        self.set_up(False)


def _nothing() -> None:
    return None


class Switch:
    """The segment: its ports, the cable of every ordered pair, one clock and one seed."""

    def __init__(self, clock: Callable[[], float], *, seed: int, mtu: int = 1500, latency: float = 0.0) -> None:
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, not {latency!r}")
        self.clock = clock
        self.seed = seed
        self.mtu = mtu
        self.latency = latency
        self.ports: list[SwitchPort] = []
        self.by_mac: dict[bytes, SwitchPort] = {}
        self.cables: dict[tuple[str, str], Cable] = {}
        self._trace = hashlib.sha256()
        self.frames_traced = 0

    def add_port(self, name: str) -> SwitchPort:
        """A new port with a fixed, locally administered MAC from its position (reproducible)."""
        if any(p.name == name for p in self.ports):
            raise ValueError(f"there is already a port named {name!r}")
        index = len(self.ports) + 1
        if index > 0xFFFF:
            raise ValueError("a switch has at most 65535 ports")
        mac = bytes((0x02, 0x00, 0x5E, 0x00, index >> 8, index & 0xFF))
        port = SwitchPort(self, name, index, mac)
        self.ports.append(port)
        self.by_mac[mac] = port
        return port

    def port(self, name: str) -> SwitchPort:
        for port in self.ports:
            if port.name == name:
                return port
        raise KeyError(f"no host named {name!r} on this network (hosts: {', '.join(p.name for p in self.ports)})")

    def cable(self, source: str, target: str) -> Cable:
        """The far end of the cable from `source` to `target` (made on first use)."""
        src, dst = self.port(source), self.port(target)
        if src is dst:
            raise ValueError(f"a host has no cable to itself ({source!r})")
        src.cable_injector(dst)
        return self.cables[(source, target)]

    def injector(self, source: str, target: str) -> FaultInjector:
        """The faults of the cable from `source` to `target`, to change with `update()`/`set_rate()`."""
        src, dst = self.port(source), self.port(target)
        if src is dst:
            raise ValueError(f"a host has no cable to itself ({source!r})")
        return src.cable_injector(dst)

    def new_injector(self, source: SwitchPort, target: SwitchPort) -> FaultInjector:
        cable = self.cables[(source.name, target.name)] = Cable(source, target)
        digest = hashlib.sha256(f"{self.seed}:{source.name}>{target.name}".encode()).digest()
        return FaultInjector(
            cable, self.clock, seed=int.from_bytes(digest[:8], "big"), delay=self.latency, direction="tx"
        )

    def record(self, index: int, frame: BytesLike, now: float) -> None:
        """Add one frame sent at `now` by port `index` to the trace."""
        trace = self._trace
        trace.update(_TRACE_RECORD.pack(now, index, len(frame)))
        trace.update(frame)
        self.frames_traced += 1

    def trace_digest(self) -> str:
        """A hex fingerprint of every frame sent so far, in order, with its time and sender."""
        return self._trace.hexdigest()
