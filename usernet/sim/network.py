"""`Network`: simulated hosts running ordinary asyncio code over usernet's TCP/IP, in virtual time.

Each host is a usernet stack (`Interface`) on a port of one in-memory Ethernet switch,
driven by the one `SimLoop`; its main is an async function started in the host's
context, so everything it opens lives on that stack. Faults sit on the cables between
pairs of hosts (`link`), and the control methods (`partition`, `hold`, `crash`, ...)
may be called before a run, from `at()`/`after()` callbacks, or from any coroutine
running in the simulation.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import ipaddress
import math
import os
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypedDict, Unpack

from usernet.aio.driver import Driver
from usernet.aio.routing import Router
from usernet.drivers.host import Host
from usernet.link.clock import VirtualClock
from usernet.link.pcap import PcapWriter
from usernet.link.switch import Switch, SwitchPort
from usernet.sim import loop as sim_loop
from usernet.sim.router import RouterPort, SimRouter
from usernet.sim.timepatch import virtual_time
from usernet.stack import Interface, InterfaceConfig, TcpConfig

__all__ = ["SEED_VARIABLE", "HostOptions", "Network", "SimulationTimeout", "default_seed"]

#: The environment variable that picks the seed of a Network made without one (and of the pytest fixture).
SEED_VARIABLE = "USERNET_SIM_SEED"

Main = Callable[[], Coroutine[Any, Any, Any]]
#: The segment hosts are on unless they name another.
DEFAULT_SEGMENT = "lan"
#: Virtual seconds the tasks of hosts still running at the end of a run get to unwind.
_UNWIND = 10.0


def default_seed() -> int:
    """USERNET_SIM_SEED when set, else 0."""
    text = os.environ.get(SEED_VARIABLE, "").strip()
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{SEED_VARIABLE} must be an integer seed, not {text!r}") from None


class SimulationTimeout(Exception):
    """`Network.run(timeout=...)` ran out of virtual time before every client finished."""


class HostOptions(TypedDict, total=False):
    """What `host()` and `client()` take besides a name, a main and an address."""

    gateway: str | None
    gateway6: str | None
    tcp: TcpConfig | None
    segment: str


@dataclass(frozen=True)
class _Spec:
    name: str
    main: Main
    config: InterfaceConfig
    client: bool


class _Life:
    """One life of a host, from start (or restart) to crash: its stack, its driver, its tasks."""

    def __init__(self, name: str, host: Host, router: Router) -> None:
        self.name = name
        self.host = host
        self.router = router
        self.alive = True
        self.tasks: dict[asyncio.Task[Any], None] = {}  # insertion order: a crash cancels them in a fixed order
        self.context = sim_loop.enter(self)
        self.main_task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.driver: Driver

    def start(self, loop: asyncio.AbstractEventLoop, main: Main) -> asyncio.Task[Any]:
        self._loop = loop
        self.driver = Driver(loop, self.host)
        self.context.copy().run(self.driver.attach)
        self.main_task = loop.create_task(main(), context=self.context.copy())
        return self.main_task

    def adopt(self, task: asyncio.Task[Any]) -> None:
        if not self.alive:
            task.cancel()  # code of a crashed host starts nothing
            return
        self.tasks[task] = None
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self.tasks.pop(task, None)

    def nudge(self) -> None:
        """A frame reached this host's port: have its driver read it, in this host's context.

        The driver's `wake` is the one hop to the next iteration (its call_soon is handed a
        copy of this host's context, rather than copying the one it is run in): a hop of our
        own before it would cost an iteration more per frame burst for nothing.
        """
        if self._loop is not None:  # started: the driver exists (its `_on_wake` asks whether it is attached)
            self.driver.wake(self.context.copy())

    def cancel(self) -> list[asyncio.Task[Any]]:
        """Stop taking tasks and cancel every one this host has; return them."""
        self.alive = False
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        return tasks

    def detach(self) -> None:
        """Drop the stack: every socket vanishes without a word on the wire."""
        self.context.copy().run(self.driver.detach)


class Network:
    """Hosts on simulated Ethernet segments (one unless `segment()` adds more), one virtual clock, one seed.

    `seed` (default: USERNET_SIM_SEED, else 0) decides every random choice: the faults
    on each cable, and the stacks' secrets (ISNs, ephemeral ports). `latency` is each
    cable's delay until `link()` says otherwise. With `patch_time=True`, `time.time()`
    and `time.monotonic()` read virtual time during `run()` (see usernet.sim.timepatch).
    """

    def __init__(
        self,
        seed: int | None = None,
        *,
        latency: float = 0.0005,
        mtu: int = 1500,
        patch_time: bool = False,
    ) -> None:
        self.seed = default_seed() if seed is None else int(seed)
        self.clock = VirtualClock()
        self.switch = Switch(self.clock, seed=self.seed, mtu=mtu, latency=latency)
        self._segments: dict[str, Switch] = {DEFAULT_SEGMENT: self.switch}
        self._home: dict[str, tuple[str, ...]] = {}  # host or router -> the segments it has a port on
        self._routers: dict[str, SimRouter] = {}
        self._names: dict[str, tuple[str, ...]] = {}  # host -> its addresses, as its name resolves
        self.patch_time = patch_time
        self._specs: dict[str, _Spec] = {}
        self._lives: dict[str, _Life] = {}
        self._restarts: dict[str, int] = {}
        self._loop: sim_loop.SimLoop | None = None
        self._timers: list[tuple[float, Callable[[], object]]] = []
        self._captures: list[PcapWriter] = []
        self._capture_dir: Path | None = None
        self._failures: list[BaseException] = []
        self._progress: asyncio.Event | None = None
        self.finished = False

    # -- building ---------------------------------------------------------------------------

    def host(self, name: str, main: Main, *, address: str | Sequence[str], **options: Unpack[HostOptions]) -> None:
        """A host `name` with `address` that runs `main()` when the network runs.

        `address` is one CIDR address ("10.0.0.1/24", "fd00::1/64") or several, IPv4 and
        IPv6 (a dual-stack host); with an IPv6 address the host also forms its link-local
        one and does neighbour discovery. Its name resolves to all of them, in the order
        given. A host's main may return (its servers keep serving) or run until the run
        ends. Options: `segment` it sits on (see `segment()`), `gateway` and `gateway6` (a
        router's IPv4 and IPv6 address on it), `tcp` (a TcpConfig for its stack's defaults).
        """
        self._add(name, main, address, client=False, **options)

    def client(self, name: str, main: Main, *, address: str | Sequence[str], **options: Unpack[HostOptions]) -> None:
        """A host like `host()`, whose main `run()` waits for; its exception ends the run and propagates."""
        self._add(name, main, address, client=True, **options)

    def segment(self, name: str, *, latency: float | None = None) -> None:
        """Another Ethernet segment (the first is "lan"); hosts on different segments talk through a `router`."""
        self._check_new(name, self._segments)
        digest = hashlib.sha256(f"usernet-sim:{self.seed}:segment:{name}".encode()).digest()
        self._segments[name] = Switch(
            self.clock,
            seed=int.from_bytes(digest[:8], "big"),
            mtu=self.switch.mtu,
            latency=self.switch.latency if latency is None else latency,
        )

    def router(self, name: str, addresses: dict[str, str | Sequence[str]]) -> None:
        """A router `name` with a port on each segment given, `{segment: "CIDR address"}`, forwarding
        IPv4 and IPv6: a port's address may be IPv4, IPv6 or one of each (a sequence)."""
        self._check_new(name, self._home)
        legs = []
        for segment, address in addresses.items():
            ifaces = _interfaces(f"router {name!r}, segment {segment!r}", address)
            v4 = [i for i in ifaces if isinstance(i, ipaddress.IPv4Interface)]
            v6 = [i for i in ifaces if isinstance(i, ipaddress.IPv6Interface)]
            if len(v4) > 1 or len(v6) > 1:
                raise ValueError(f"router {name!r}: a port has at most one IPv4 and one IPv6 address ({segment!r})")
            port = self._switch(segment).add_port(name)
            legs.append(RouterPort(port, v4[0] if v4 else None, v6[0] if v6 else None))
        self._home[name] = tuple(addresses)
        digest = hashlib.sha256(f"usernet-sim:{self.seed}:router:{name}".encode()).digest()
        self._routers[name] = SimRouter(name, legs, seed=int.from_bytes(digest[:8], "big"))

    def _check_new(self, name: str, taken: dict[str, Any]) -> None:
        if self._loop is not None:
            raise RuntimeError("hosts, routers and segments are added before run()")
        if name in taken:
            raise ValueError(f"the name {name!r} is taken")

    def _switch(self, segment: str) -> Switch:
        switch = self._segments.get(segment)
        if switch is None:
            raise KeyError(
                f"no segment named {segment!r} (segments: {', '.join(self._segments)}): add it with segment()"
            )
        return switch

    def _add(
        self,
        name: str,
        main: Main,
        address: str | Sequence[str],
        *,
        client: bool,
        gateway: str | None = None,
        gateway6: str | None = None,
        tcp: TcpConfig | None = None,
        segment: str = DEFAULT_SEGMENT,
    ) -> None:
        self._check_new(name, self._home)
        if not callable(main):
            raise TypeError(f"the main of host {name!r} must be an async function taking no arguments")
        ifaces = _interfaces(f"host {name!r}", address)
        try:
            gw = ipaddress.IPv4Address(gateway) if gateway else None
            gw6 = ipaddress.IPv6Address(gateway6) if gateway6 else None
        except ValueError as exc:
            raise ValueError(f"host {name!r}: gateway is IPv4 and gateway6 IPv6 ({exc})") from None
        for gw_, version in ((gw, 4), (gw6, 6)):
            if gw_ is None or gw_.is_link_local:  # a router's link-local address is on every link
                continue
            if not any(i.version == version and gw_ in i.network for i in ifaces):
                raise ValueError(f"host {name!r}: gateway {gw_} is on none of its networks")
        port = self._switch(segment).add_port(name)
        self._home[name] = (segment,)
        self._names[name] = tuple(str(i.ip) for i in ifaces)
        config = InterfaceConfig.from_strings(
            port.mac,
            [str(i) for i in ifaces],
            gateway,
            gateway6,
            mtu=self.switch.mtu,
            tcp=tcp or TcpConfig(),
            secret=self._secret(name, 0),
        )
        if self._capture_dir is not None:
            self._capture_port(name)
        self._specs[name] = _Spec(name, main, config, client)

    def _secret(self, name: str, life: int) -> bytes:
        return hashlib.sha256(f"usernet-sim:{self.seed}:{name}:{life}".encode()).digest()[:16]

    def address(self, name: str, version: int | None = None) -> str:
        """The first address of host `name`, or its first IPv4 (`version` 4) or IPv6 (6) one."""
        self._spec(name)
        for text in self._names[name]:
            if version is None or ipaddress.ip_address(text).version == version:
                return text
        raise LookupError(f"host {name!r} has no IPv{version} address (it has {', '.join(self._names[name])})")

    def _spec(self, name: str) -> _Spec:
        spec = self._specs.get(name)
        if spec is None:
            raise KeyError(f"no host named {name!r} (hosts: {', '.join(self._specs) or 'none yet'})")
        return spec

    # -- faults -----------------------------------------------------------------------------

    def link(
        self,
        a: str,
        b: str,
        *,
        latency: float | None = None,
        jitter: float | None = None,
        loss: float | None = None,
        duplicate: float | None = None,
        reorder: float | None = None,
        corrupt: float | None = None,
        bandwidth: float | None = None,
        oneway: bool = False,
    ) -> None:
        """Set the faults between hosts `a` and `b` (both ways, or only a→b with `oneway`).

        `latency` and `jitter` in seconds; `loss`, `duplicate`, `reorder` (held back
        behind the next frame) and `corrupt` (1–3 bits flipped) are probabilities per
        frame; `bandwidth` in bits per second (`math.inf`: no limit). A setting left out
        keeps its value, so this may be called again at any time during a run.
        """
        for switch, source, target in self._pairs(a, b, oneway):
            injector = switch.injector(source, target)
            injector.update(
                loss=loss, duplicate=duplicate, reorder=reorder, corrupt=corrupt, delay=latency, jitter=jitter
            )
            if bandwidth is not None:
                if bandwidth <= 0:
                    raise ValueError(f"bandwidth is in bits per second and must be > 0, not {bandwidth!r}")
                injector.set_rate(None if math.isinf(bandwidth) else bandwidth / 8)

    def partition(self, a: str, b: str | None = None, *, oneway: bool = False) -> None:
        """Cut the cables between `a` and `b` (every other host when b is None); frames in flight are lost."""
        for switch, source, target in self._pairs(a, b, oneway):
            switch.cable(source, target).cut = True

    def repair(self, a: str, b: str | None = None, *, oneway: bool = False) -> None:
        """Undo `partition` for these cables."""
        for switch, source, target in self._pairs(a, b, oneway):
            switch.cable(source, target).cut = False

    def hold(self, a: str, b: str | None = None, *, oneway: bool = False) -> None:
        """Keep the frames on these cables back (a stalled path) until `release`."""
        for switch, source, target in self._pairs(a, b, oneway):
            switch.cable(source, target).hold()

    def release(self, a: str, b: str | None = None, *, oneway: bool = False) -> None:
        """Deliver what `hold` kept, in order, now, and let frames through again."""
        for switch, source, target in self._pairs(a, b, oneway):
            switch.cable(source, target).release()

    def _pairs(self, a: str, b: str | None, oneway: bool) -> list[tuple[Switch, str, str]]:
        """The cables between `a` and `b` (or every neighbour of `a`): (switch, source, target)."""
        home = self._segments_of(a)
        if b is None:
            others = [(n, seg) for n, segs in self._home.items() if n != a for seg in segs if seg in home]
        else:
            shared = [seg for seg in self._segments_of(b) if seg in home]
            if not shared or a == b:
                raise ValueError(f"{a!r} and {b!r} share no segment: no cable joins them (a router does)")
            others = [(b, shared[0])]
        pairs = []
        for other, segment in others:
            switch = self._segments[segment]
            pairs.append((switch, a, other))
            if not oneway:
                pairs.append((switch, other, a))
        return pairs

    def _segments_of(self, name: str) -> tuple[str, ...]:
        segments = self._home.get(name)
        if segments is None:
            raise KeyError(f"no host named {name!r} (hosts: {', '.join(self._home) or 'none yet'})")
        return segments

    def _port(self, name: str) -> SwitchPort:
        return self._segments[self._segments_of(name)[0]].port(name)

    def faults(self, a: str, b: str) -> dict[str, int]:
        """What happened on the cable from `a` to `b` so far: frames lost, duplicated, held, dropped..."""
        [(switch, _, _)] = self._pairs(a, b, True)
        injector = switch.injector(a, b)
        cable = switch.cable(a, b)
        return {
            "sent": injector.tx_frames,
            "lost": injector.lost,
            "duplicated": injector.duplicated,
            "reordered": injector.reordered,
            "corrupted": injector.corrupted,
            "rate_dropped": injector.dropped_tx,
            "cut": cable.dropped_tx,
            "held": cable.holding,
            "delivered": cable.tx_frames,
        }

    # -- hosts' lives -----------------------------------------------------------------------

    def crash(self, name: str) -> None:
        """Host `name` stops dead: its tasks are cancelled, its sockets vanish, its port goes dark.

        Peers are not told (no FIN, no RST): they find out by their own timeouts.
        """
        life = self._running_life(name)
        if not life.alive:
            return
        port = self._port(name)
        port.set_up(False)
        port.on_arrival = _nothing
        life.cancel()
        life.detach()
        self._changed()

    def restart(self, name: str) -> None:
        """Start host `name` again on a fresh stack (crashing it first if it is up); its main runs again."""
        life = self._running_life(name)
        if life.alive:
            self.crash(name)
        self._restarts[name] = self._restarts.get(name, 0) + 1
        self._start(self._spec(name), self._restarts[name])
        self._changed()

    def alive(self, name: str) -> bool:
        life = self._lives.get(name)
        return life is not None and life.alive

    def stats(self, name: str) -> dict[str, int]:
        """The counters of host `name`'s current stack (segments, retransmissions, drops...), or
        of router `name` (forwarded, dropped, ICMP errors sent, its ARP and ND counters)."""
        router = self._routers.get(name)
        if router is not None:
            return router.stats()
        return self._running_life(name).host.iface.stats()

    def _running_life(self, name: str) -> _Life:
        self._spec(name)
        life = self._lives.get(name)
        if life is None:
            raise RuntimeError(
                f"host {name!r} is not running: crash() and restart() act during run(), from a coroutine "
                "in the simulation or a callback scheduled with net.at()/net.after()"
            )
        return life

    def _start(self, spec: _Spec, number: int) -> None:
        assert self._loop is not None
        port = self._port(spec.name)
        config = spec.config if number == 0 else _with_secret(spec.config, self._secret(spec.name, number))
        life = _Life(spec.name, Host(port, Interface(config)), _router(config))
        self._lives[spec.name] = life
        port.set_up(True)
        port.on_arrival = life.nudge
        task = life.start(self._loop, spec.main)
        task.add_done_callback(lambda t: self._main_done(life, t))

    def _main_done(self, life: _Life, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None and life.alive:
            self._failures.append(task.exception())  # type: ignore[arg-type]
        self._changed()

    def _changed(self) -> None:
        if self._progress is not None:
            self._progress.set()

    # -- time -------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Virtual seconds since the network was made."""
        return self.clock()

    def at(self, when: float, callback: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Call `callback(*args, **kwargs)` at virtual time `when` (e.g. `net.at(5, net.partition, "a", "b")`)."""
        call = functools.partial(callback, *args, **kwargs)
        if self._loop is None:
            self._timers.append((when, call))
        else:
            self._loop.call_at(when, call, context=_outside())

    def after(self, delay: float, callback: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Call `callback(*args, **kwargs)` `delay` virtual seconds from now."""
        self.at(self.now + delay, callback, *args, **kwargs)

    # -- evidence ---------------------------------------------------------------------------

    def trace_hash(self) -> str:
        """A fingerprint of every frame every host sent, with its virtual time: equal runs give equal hashes."""
        if len(self._segments) == 1:
            return self.switch.trace_digest()
        return hashlib.sha256("".join(s.trace_digest() for s in self._segments.values()).encode()).hexdigest()

    def capture(self, directory: str | os.PathLike[str]) -> None:
        """Write `<directory>/<host>.pcap` for every host: the frames it sent and received, at virtual times."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self._capture_dir = path
        for name in self._home:
            self._capture_port(name)

    def _capture_port(self, name: str) -> None:
        assert self._capture_dir is not None
        segments = self._segments_of(name)
        for segment in segments:
            port = self._segments[segment].port(name)
            if port.capture is None:
                file = f"{name}.pcap" if len(segments) == 1 else f"{name}-{segment}.pcap"
                port.capture = PcapWriter(self._capture_dir / file)
                self._captures.append(port.capture)

    # -- running ----------------------------------------------------------------------------

    def run(self, timeout: float | None = None) -> None:
        """Start every host's main and return when every client's main has finished.

        `timeout` is in virtual seconds: past it, SimulationTimeout names the clients
        still running. The first exception of a client's (or host's) main ends the run
        and propagates. A Network runs once.
        """
        if self._loop is not None:
            raise RuntimeError("a Network runs once: build a new one for another run")
        if not any(spec.client for spec in self._specs.values()):
            raise RuntimeError("nothing to wait for: add at least one net.client(...)")
        loop = self._loop = sim_loop.SimLoop(self.clock, self._resolve)
        patch = virtual_time(self.clock) if self.patch_time else contextlib.nullcontext()
        try:
            with patch:
                try:
                    loop.run_until_complete(self._main(timeout))
                finally:
                    self._stop(loop)
        finally:
            loop.close()
            for writer in self._captures:
                writer.close()
            self.finished = True

    async def _main(self, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        progress = self._progress = asyncio.Event()
        for when, call in self._timers:
            loop.call_at(when, call, context=_outside())
        for router in self._routers.values():
            router.start(loop)
        for spec in self._specs.values():
            self._start(spec, 0)
        deadline = None if timeout is None else self.now + timeout
        while True:
            if self._failures:
                raise self._failures[0]
            running = [name for name, spec in self._specs.items() if spec.client and self._busy(name)]
            if not running:
                return
            progress.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await progress.wait()
            except TimeoutError:
                raise SimulationTimeout(
                    f"virtual time ran out at t={self.now:g}s (run(timeout={timeout})) with clients still "
                    f"running: {', '.join(running)}"
                ) from None

    def _busy(self, name: str) -> bool:
        life = self._lives[name]
        return life.alive and life.main_task is not None and not life.main_task.done()

    def _stop(self, loop: asyncio.AbstractEventLoop) -> None:
        """End every host's life: cancel its tasks and let them unwind (their goodbyes still reach
        the wire), then drop the stacks and cancel whatever waited on them."""
        lives = [life for life in self._lives.values() if life.alive]
        for _ in range(2):
            tasks = [task for life in lives for task in life.cancel()]
            if tasks:
                loop.run_until_complete(asyncio.wait(tasks, timeout=_UNWIND))
            for life in lives:
                if life.driver.attached:
                    life.detach()
        for router in self._routers.values():
            router.stop()
        loop.run_until_complete(loop.shutdown_asyncgens())

    def _resolve(self, name: str) -> tuple[str, ...]:
        return self._names.get(name, ())


def _interfaces(what: str, address: str | Sequence[str]) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    """The CIDR address or addresses given for `what`, parsed, with an error that says the form."""
    texts = [address] if isinstance(address, str) else list(address)
    if not texts:
        raise ValueError(f"{what}: give an address, CIDR like '10.0.0.1/24' or 'fd00::1/64'")
    try:
        return [ipaddress.ip_interface(text) for text in texts]
    except ValueError as exc:
        raise ValueError(f"{what}: an address is CIDR like '10.0.0.1/24' or 'fd00::1/64' ({exc})") from None


def _router(config: InterfaceConfig) -> Router:
    return Router.for_interface(config, only=True)


def _with_secret(config: InterfaceConfig, secret: bytes) -> InterfaceConfig:
    return replace(config, secret=secret)


def _outside() -> contextvars.Context:
    """A context on no host, for the network's own callbacks."""
    return contextvars.Context()


def _nothing() -> None:
    return None
