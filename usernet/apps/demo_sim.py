"""`usernet demo --sim` (and `usernet demo` without root): the demo on a simulated network.

The same services as the TAP demo (UDP and TCP echo on port 7, daytime on 13, started
by the same code) run on a simulated host; a second simulated host, a usernet stack
too, is the client the kernel was in the TAP demo. Nothing needs root, a TAP or the
kernel's network: both hosts run in this process, on one loop, in virtual time. Then
the link turns bad: 10% loss each way, and a 3-second cut in the middle of a transfer,
which TCP rides out by retransmitting.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from usernet import sim
from usernet.apps.demo import serve

SERVER_IP = "192.0.2.2"
CLIENT_IP = "192.0.2.1"
SIZE = 1_000_000
Step = Callable[[], Awaitable[tuple[bool, str]]]


class _Reply(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[tuple[bytes, tuple[str, int]]] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.answer.done():
            self.answer.set_result((data, addr))


def run_sim_demo(*, not_root: bool = False) -> int:
    net = sim.Network(seed=1, latency=0.001)
    ready = asyncio.Event()
    results: list[bool] = []

    async def server() -> None:
        await serve(asyncio.get_running_loop())
        ready.set()

    async def client() -> None:
        await ready.wait()
        results.append(await _step(f"UDP echo: client → {SERVER_IP}:7", _udp_echo))
        results.append(await _step(f"TCP daytime: client connects to {SERVER_IP}:13", _daytime))
        results.append(await _step(f"TCP echo: client connects to {SERVER_IP}:7", lambda: _echo(net)))
        net.link("client", "server", loss=0.10)
        results.append(await _step("the link now loses 10% of the frames each way; TCP echo again", lambda: _echo(net)))
        net.link("client", "server", loss=0.0)
        results.append(await _step("the cable is cut for 3 s in the middle of a TCP echo", lambda: _cut(net)))

    net.host("server", server, address=f"{SERVER_IP}/24")
    net.client("client", client, address=f"{CLIENT_IP}/24")
    if not_root:
        print(
            "usernet demo: not root, so no TAP: running the demo on a simulated network (sudo usernet demo for the TAP)"
        )
    print(
        f"two simulated hosts on one virtual Ethernet segment, in this process: server {SERVER_IP}, client {CLIENT_IP}"
    )
    print("both are usernet stacks on one asyncio loop in virtual time: no kernel, no TAP, no root")
    print("the server runs the TAP demo's services: UDP and TCP echo (port 7) and daytime (port 13)\n")
    wall = time.perf_counter()
    net.run(timeout=600)
    wall = time.perf_counter() - wall
    for name in ("client", "server"):
        counters = {k: v for k, v in net.stats(name).items() if v and k.startswith(("tcp_", "arp_", "udp_"))}
        print(f"{name} counters: " + ", ".join(f"{k}={v}" for k, v in counters.items()))
    print(f"\n{net.now:.3f} virtual seconds took {wall:.2f} s of wall time")
    return 0 if len(results) == 5 and all(results) else 1


async def _step(title: str, action: Step) -> bool:
    print(f"$ {title}")
    try:
        ok, text = await action()
    except OSError as exc:
        ok, text = False, f"failed: {exc}"
    print(f"  {text}\n")
    return ok


async def _udp_echo() -> tuple[bool, str]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Reply, remote_addr=(SERVER_IP, 7))
    message = b"hello from the simulated client"
    start = loop.time()
    transport.sendto(message)
    reply, peer = await asyncio.wait_for(protocol.answer, 2)
    transport.close()
    took = (loop.time() - start) * 1000
    return reply == message, f"sent {message!r}, got {reply!r} back from {peer[0]}:{peer[1]} in {took:.2f} ms"


async def _daytime() -> tuple[bool, str]:
    reader, writer = await asyncio.open_connection(SERVER_IP, 13)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer.endswith(b"\r\n"), f"got {answer!r}, then the server closed the connection"


async def _echo(net: sim.Network) -> tuple[bool, str]:
    loop = asyncio.get_running_loop()
    before = net.stats("client")["tcp_retransmits"] + net.stats("server")["tcp_retransmits"]
    lost_before = net.faults("client", "server")["lost"] + net.faults("server", "client")["lost"]
    start = loop.time()
    back = await _echo_bytes(random.Random(1).randbytes(SIZE))
    took = (loop.time() - start) * 1000
    retransmits = net.stats("client")["tcp_retransmits"] + net.stats("server")["tcp_retransmits"] - before
    lost = net.faults("client", "server")["lost"] + net.faults("server", "client")["lost"] - lost_before
    detail = f"; {lost} frames lost, {retransmits} segments retransmitted" if lost else ""
    return back, f"sent {SIZE:,} random bytes, got {SIZE:,} identical bytes back in {took:.0f} ms{detail}"


async def _echo_bytes(payload: bytes, progress: list[int] | None = None) -> bool:
    reader, writer = await asyncio.open_connection(SERVER_IP, 7)
    writer.write(payload)
    got = bytearray()
    while len(got) < len(payload):
        chunk = await asyncio.wait_for(reader.read(65536), 60)
        if not chunk:
            break
        got += chunk
        if progress is not None:
            progress.append(len(got))
    writer.close()
    return bytes(got) == payload


async def _cut(net: sim.Network) -> tuple[bool, str]:
    loop = asyncio.get_running_loop()
    progress: list[int] = [0]
    marks: dict[str, tuple[float, int]] = {}

    def cut() -> None:
        net.partition("client", "server")
        marks["cut"] = (loop.time(), progress[-1])

    def repair() -> None:
        net.repair("client", "server")
        marks["repair"] = (loop.time(), progress[-1])

    net.after(0.01, cut)
    net.after(3.01, repair)
    start = loop.time()
    ok = await _echo_bytes(random.Random(2).randbytes(SIZE), progress)
    took = loop.time() - start
    (t_cut, at_cut), (t_repair, at_repair) = marks["cut"], marks["repair"]
    return ok and took > t_repair - start, (
        f"cut at t+{t_cut - start:.2f} s with {at_cut:,} bytes echoed back, {at_repair:,} by the repair at "
        f"t+{t_repair - start:.2f} s (what was already on its way);\n  then TCP's retransmission timer, backing off, "
        f"found the path again: the echo finished, identical, after {took:.2f} s"
    )
