"""usernet on a real TAP inside a throwaway namespace, the Linux kernel on the other side."""

from __future__ import annotations

import concurrent.futures
import contextlib
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from usernet.apps.services import Services, UdpEcho
from usernet.drivers.host import Host, offload_options
from usernet.drivers.selectloop import Waker, run
from usernet.link import PcapTap, PcapWriter
from usernet.link.base import Link
from usernet.link.sandbox import Sandbox
from usernet.stack import Interface, InterfaceConfig, TcpConfig
from usernet.stack.interface import Socket

USERNET_IP = "192.0.2.2"
KERNEL_IP = "192.0.2.1"
PEER_IP = "198.51.100.2"
ROUTER_IP = "198.51.100.1"

pytestmark = pytest.mark.network

T = TypeVar("T")
Handler = Callable[[Socket, float], None]


class LoopThread:
    """The select loop on its own thread, serving `services`, with a way in for the test's thread.

    The stack has one owner: everything that touches it runs on the loop's thread,
    either as a handler of a socket's news (`handlers`, consulted before the services)
    or as a function handed over with `call`.
    """

    def __init__(self, host: Host, services: Services) -> None:
        self.host = host
        self.services = services
        self.handlers: dict[Socket, Handler] = {}
        self._calls: queue.SimpleQueue[tuple[Callable[[float], object], concurrent.futures.Future[object]]] = (
            queue.SimpleQueue()
        )
        self._waker = Waker()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, name="usernet loop", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call(self, fn: Callable[[float], T], timeout: float = 10.0) -> T:
        """Run `fn(now)` on the loop's thread and return its result; what it queued leaves right after."""
        future: concurrent.futures.Future[object] = concurrent.futures.Future()
        self._calls.put((fn, future))
        self._waker.wake()
        return future.result(timeout)  # type: ignore[return-value]  # the caller knows what fn returns

    def stop(self) -> None:
        self._stop.set()
        self._waker.wake()
        self._thread.join(timeout=5)
        self._waker.close()
        assert not self._thread.is_alive(), "the usernet loop did not stop"
        assert not self._errors, f"the usernet loop crashed: {self._errors[0]!r}"

    def _serve(self) -> None:
        try:
            run(self.host, self._on_ready, until=self._until, waker=self._waker)
        except BaseException as exc:  # surfaced in the test, not lost in the thread
            self._errors.append(exc)

    def _on_ready(self, sock: Socket, now: float) -> None:
        handler = self.handlers.get(sock)
        if handler is not None:
            handler(sock, now)
        else:
            self.services.handle(sock, now)

    def _until(self, now: float) -> bool:
        while True:
            try:
                fn, future = self._calls.get_nowait()
            except queue.Empty:
                break
            try:
                future.set_result(fn(now))
            except BaseException as exc:
                future.set_exception(exc)
        return self._stop.is_set()


@dataclass
class Running:
    sandbox: Sandbox
    host: Host
    services: Services
    loop: LoopThread

    @property
    def echo(self) -> UdpEcho:
        return self.services.udp_echo


@contextlib.contextmanager
def usernet_on_tap(
    sandbox: Sandbox,
    pcap: Path | None = None,
    gateway: str | None = None,
    mtu: int = 1500,
    offloads: bool = False,
    gso: bool = True,
    gro: bool = True,
    tcp: TcpConfig | None = None,
) -> Iterator[Running]:
    """usernet up on a TAP in `sandbox` (optionally captured to `pcap`), on a background thread;
    with `offloads`, the TAP does checksums and TSO, with `gso` and `gro` (and no `offloads`)
    software segmentation and receive merging, and the stack uses what the link offers;
    `tcp` is the stack's TCP config (the default when None)."""
    tap = sandbox.create_tap("usernet0", mtu=mtu, host_address=f"{KERNEL_IP}/24", offloads=offloads, gso=gso, gro=gro)
    with contextlib.ExitStack() as stack:
        link: Link = tap
        if pcap is not None:
            link = PcapTap(tap, stack.enter_context(PcapWriter(str(pcap))), time.time)
        stack.callback(tap.close)  # before the capture file is closed
        with usernet_serving(sandbox, link, gateway, tcp) as running:
            yield running


@contextlib.contextmanager
def usernet_serving(
    sandbox: Sandbox,
    link: Link,
    gateway: str | None = None,
    tcp: TcpConfig | None = None,
    addresses: tuple[str, ...] = (),
    **options: object,
) -> Iterator[Running]:
    """usernet's services at USERNET_IP (and `addresses`) on `link` (open, in or toward `sandbox`), on a
    background thread; `options` are more InterfaceConfig fields."""
    config = InterfaceConfig.from_strings(
        link.mac,
        [f"{USERNET_IP}/24", *addresses],
        gateway,
        mtu=link.mtu,
        tcp=tcp or TcpConfig(),
        **offload_options(link),
        **options,
    )
    host = Host(link, Interface(config))
    loop = LoopThread(host, Services(host.iface))
    loop.start()
    try:
        yield Running(sandbox, host, loop.services, loop)
    finally:
        loop.stop()


@pytest.fixture
def running(sandbox: Sandbox) -> Iterator[Running]:
    """usernet serving UDP echo and TCP echo/discard/chargen on a TAP in `sandbox`."""
    with usernet_on_tap(sandbox) as r:
        yield r


@contextlib.contextmanager
def routed_peer(sandbox: Sandbox, mtu: int = 1500, advmss: int | None = None) -> Iterator[Sandbox]:
    """A second namespace whose traffic to usernet is forwarded by `sandbox`'s kernel.

    A netfilter drop of a packet the kernel's own TCP sent is reported back to that
    TCP, which sends the segment again as if nothing was lost; a forwarded packet that
    is dropped is lost for real. So the loss tests put their kernel peer one hop away.
    The veth between the two has MTU `mtu`; `advmss` makes the peer advertise that MSS
    toward usernet whatever its link allows, as a host behind a wider last hop would, so
    that only path MTU discovery can find the narrow hop.
    """
    with Sandbox("peer") as peer:
        route = ["ip", "-n", peer.name, "route", "add", "192.0.2.0/24", "via", ROUTER_IP]
        veth_peer = ["peer", "name", "fwd1", "mtu", str(mtu), "netns", peer.name]
        for cmd in (
            ["ip", "-n", sandbox.name, "link", "add", "fwd0", "mtu", str(mtu), "type", "veth", *veth_peer],
            ["ip", "-n", sandbox.name, "addr", "add", f"{ROUTER_IP}/24", "dev", "fwd0"],
            ["ip", "-n", sandbox.name, "link", "set", "fwd0", "up"],
            ["ip", "-n", peer.name, "addr", "add", f"{PEER_IP}/24", "dev", "fwd1"],
            ["ip", "-n", peer.name, "link", "set", "fwd1", "up"],
            route if advmss is None else [*route, "advmss", str(advmss)],
        ):
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        sandbox.in_namespace(lambda: Path("/proc/sys/net/ipv4/ip_forward").write_text("1"))
        yield peer
