"""`usernet demo`: usernet in a throwaway namespace, talked to by the kernel's own tools.

A usernet asyncio loop serves RFC 862 echo (UDP and TCP) and RFC 867 daytime with
ordinary asyncio servers; the kernel on the TAP's other side pings it and talks to
each service. It shows the whole path — TAP, ARP, IPv4, ICMP, UDP, TCP, the asyncio
face — and cleans up after itself even when interrupted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import threading
import time
from collections.abc import Callable

from usernet.aio.loop import UsernetSelectorEventLoop
from usernet.drivers.host import Host, offload_options
from usernet.link.sandbox import Sandbox
from usernet.stack import Interface, InterfaceConfig

USERNET_IP = "192.0.2.2"
KERNEL_CIDR = "192.0.2.1/24"


class _UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]  # an endpoint's is one

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


class _TcpEcho(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]  # a stream's is one

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def _daytime(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(time.strftime("%A, %B %d, %Y %H:%M:%S-%Z\r\n").encode())
    await writer.drain()
    writer.close()


async def serve(loop: asyncio.AbstractEventLoop) -> None:
    """The services, exactly as an asyncio program would start them on the kernel."""
    await loop.create_datagram_endpoint(_UdpEcho, local_addr=("0.0.0.0", 7))
    await loop.create_server(_TcpEcho, "0.0.0.0", 7)
    await asyncio.start_server(_daytime, "0.0.0.0", 13)


def run_demo() -> int:
    with Sandbox("demo") as sandbox:
        link = sandbox.create_tap("usernet0", host_address=KERNEL_CIDR)
        config = InterfaceConfig.from_strings(link.mac, [f"{USERNET_IP}/24"], **offload_options(link))
        host = Host(link, Interface(config))
        loop = UsernetSelectorEventLoop(host=host)
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        thread = threading.Thread(target=_run_loop, args=(loop, ready), daemon=True)
        thread.start()
        try:
            ready.result(timeout=10)
            print(
                f"usernet is up at {USERNET_IP} on a TAP inside namespace {sandbox.name}; "
                f"the kernel side is {KERNEL_CIDR}"
            )
            print("an asyncio loop on usernet serves UDP and TCP echo (port 7) and daytime (port 13)\n")
            print(f"$ ping -c 3 -i 0.2 {USERNET_IP}   (kernel → usernet)")
            ok = _show(
                sandbox.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", USERNET_IP], capture_output=True, text=True)
            )
            ok = _step(f"UDP echo: kernel socket → {USERNET_IP}:7", lambda: _udp_echo(sandbox)) and ok
            ok = _step(f"TCP daytime: kernel connects to {USERNET_IP}:13", lambda: _tcp_daytime(sandbox)) and ok
            ok = _step(f"TCP echo: kernel connects to {USERNET_IP}:7", lambda: _tcp_echo(sandbox)) and ok
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            if not thread.is_alive():
                loop.close()
            link.close()
        counters = {k: v for k, v in host.iface.stats().items() if v}
        print("usernet counters: " + ", ".join(f"{k}={v}" for k, v in counters.items()))
    print(f"namespace {sandbox.name} deleted.")
    return 0 if ok else 1


def _run_loop(loop: asyncio.AbstractEventLoop, ready: concurrent.futures.Future[None]) -> None:
    """The usernet loop's thread: start the services, say so, run until stopped."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve(loop))
    except BaseException as exc:
        ready.set_exception(exc)
        return
    ready.set_result(None)
    loop.run_forever()


def _udp_echo(sandbox: Sandbox) -> tuple[bool, str]:
    with sandbox.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(2.0)
        message = b"hello from the kernel side"
        start = time.monotonic()
        udp.sendto(message, (USERNET_IP, 7))
        reply, peer = udp.recvfrom(2048)
        took = (time.monotonic() - start) * 1000
        return reply == message, f"sent {message!r}, got {reply!r} back from {peer[0]}:{peer[1]} in {took:.2f} ms"


def _tcp_daytime(sandbox: Sandbox) -> tuple[bool, str]:
    with sandbox.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.settimeout(2.0)
        tcp.connect((USERNET_IP, 13))
        answer = b""
        while chunk := tcp.recv(1024):
            answer += chunk
        return answer.endswith(b"\r\n"), f"got {answer!r}, then usernet closed the connection"


def _tcp_echo(sandbox: Sandbox) -> tuple[bool, str]:
    payload = os.urandom(1_000_000)
    with sandbox.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, concurrent.futures.ThreadPoolExecutor(1) as pool:
        tcp.settimeout(5.0)
        start = time.monotonic()
        tcp.connect((USERNET_IP, 7))

        def read_back() -> bytes:
            got = bytearray()
            while len(got) < len(payload) and (chunk := tcp.recv(65536)):
                got += chunk
            return bytes(got)

        reading = pool.submit(read_back)
        tcp.sendall(payload)
        back = reading.result()
        took = time.monotonic() - start
        return (
            back == payload,
            f"sent 1,000,000 random bytes, got {len(back):,} identical bytes back in {took * 1000:.0f} ms",
        )


def _step(title: str, action: Callable[[], tuple[bool, str]]) -> bool:
    print(f"$ {title}")
    try:
        ok, text = action()
    except OSError as exc:
        ok, text = False, f"failed: {exc}"
    print(f"  {text}\n")
    return ok


def _show(result: object) -> bool:
    out = getattr(result, "stdout", "") or ""
    print("  " + out.strip().replace("\n", "\n  ") + "\n")
    return getattr(result, "returncode", 1) == 0
