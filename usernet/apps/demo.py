"""`usernet demo`: usernet in a throwaway namespace, talked to by the kernel's own tools.

A usernet asyncio loop serves RFC 862 echo (UDP and TCP) and RFC 867 daytime with
ordinary asyncio servers; the kernel on the TAP's other side pings it and talks to
each service. It shows the whole path — TAP, ARP, IPv4, ICMP, UDP, TCP, the asyncio
face — and cleans up after itself even when interrupted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from usernet.aio.loop import UsernetSelectorEventLoop
from usernet.drivers.host import Host, offload_options
from usernet.link.sandbox import Sandbox
from usernet.programs import MissingProgram, find
from usernet.stack import Interface, InterfaceConfig

T = TypeVar("T")

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


class DemoFailed(Exception):
    """A set-up step of the demo failed; the message says which and what it saw."""


def run_demo() -> int:
    """Run the demo; a step that fails says what it ran and what it saw. 0 when every step passed."""
    try:
        return _run()
    except DemoFailed as exc:
        print(f"usernet demo: {exc}", flush=True)
        return 1


def _run() -> int:
    sandbox = _setting_up("creating a network namespace", lambda: Sandbox("demo").open())
    with contextlib.closing(sandbox):
        link = _setting_up(
            f"creating TAP usernet0 in namespace {sandbox.name} ({KERNEL_CIDR} on the kernel side)",
            lambda: sandbox.create_tap("usernet0", host_address=KERNEL_CIDR),
        )
        config = InterfaceConfig.from_strings(link.mac, [f"{USERNET_IP}/24"], None, **offload_options(link))
        host = Host(link, Interface(config))
        with _serving(host):
            print(f"usernet is up at {USERNET_IP} on a TAP inside namespace {sandbox.name}; kernel side {KERNEL_CIDR}")
            print("an asyncio loop on usernet serves UDP and TCP echo (port 7) and daytime (port 13)\n")
            steps: list[tuple[str, Callable[[], tuple[bool, str]]]] = [
                (f"ping -c 3 -i 0.2 {USERNET_IP}   (kernel → usernet)", lambda: _ping(sandbox)),
                (f"UDP echo: kernel socket → {USERNET_IP}:7", lambda: _udp_echo(sandbox)),
                (f"TCP daytime: kernel connects to {USERNET_IP}:13", lambda: _tcp_daytime(sandbox)),
                (f"TCP echo: kernel connects to {USERNET_IP}:7", lambda: _tcp_echo(sandbox)),
            ]
            failed = [title for title, action in steps if not _step(title, action)]
        counters = {k: v for k, v in host.iface.stats().items() if v}
        print("usernet counters: " + ", ".join(f"{k}={v}" for k, v in counters.items()))
    print(f"namespace {sandbox.name} deleted.")
    if failed:
        print(f"usernet demo: {len(failed)} of {len(steps)} steps failed: " + "; ".join(failed), flush=True)
        return 1
    return 0


def _setting_up(what: str, action: Callable[[], T]) -> T:
    """`action()`, or DemoFailed saying what failed: not root, `ip` missing, the kernel refused."""
    try:
        return action()
    except (OSError, RuntimeError) as exc:
        raise DemoFailed(f"{what} failed: {exc}") from exc


@contextlib.contextmanager
def _serving(host: Host) -> Iterator[None]:
    """The services on a usernet loop in a thread of their own, for as long as the block runs."""
    loop = UsernetSelectorEventLoop(host=host)
    ready: concurrent.futures.Future[None] = concurrent.futures.Future()
    thread = threading.Thread(target=_run_loop, args=(loop, ready), daemon=True)
    thread.start()
    try:
        try:
            ready.result(timeout=10)
        except Exception as exc:
            raise DemoFailed(f"starting the asyncio services on usernet failed: {_describe(exc)}") from exc
        yield
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()
        host.link.close()


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


def _ping(sandbox: Sandbox) -> tuple[bool, str]:
    """The kernel's own ping (iputils) from inside the namespace."""
    cmd = [find("ping"), "-c", "3", "-i", "0.2", "-W", "2", USERNET_IP]
    result = sandbox.run(cmd, capture_output=True, text=True, timeout=30)
    text = result.stdout.strip()
    if result.returncode == 0:
        return True, text
    return False, (
        f"`{' '.join(cmd)}` in namespace {sandbox.name} exited with status {result.returncode}\n"
        f"stdout: {text or '(nothing)'}\nstderr: {result.stderr.strip() or '(nothing)'}"
    )


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
    """Run one step and print what it saw; a step that raises failed, and says how."""
    print(f"$ {title}")
    try:
        ok, text = action()
    except Exception as exc:
        ok, text = False, _describe(exc)
    if not ok:
        text = "FAILED: " + text
    print("  " + text.replace("\n", "\n  ") + "\n")
    return ok


def _describe(exc: BaseException) -> str:
    """An exception as a user reads it: a timeout says what timed out, others their type and message."""
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"no answer in time ({exc or 'timed out'}): usernet did not reply"
    if isinstance(exc, MissingProgram):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
