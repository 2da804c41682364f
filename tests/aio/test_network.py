"""usernet's asyncio face over a real TAP in a throwaway namespace, the kernel as the peer."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.aio.conftest import LOOPS
from usernet.aio.datagram import DatagramTransport
from usernet.drivers.host import Host
from usernet.link.sandbox import Sandbox
from usernet.stack import Interface, InterfaceConfig

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "udp_echo_server.py"
USERNET_IP = "192.0.2.2"
KERNEL_IP = "192.0.2.1"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("USERNET_")}


def _echo_from_kernel(udp: socket.socket, message: bytes, target: tuple[str, int] = (USERNET_IP, 7)) -> bytes:
    udp.settimeout(5)
    udp.sendto(message, target)
    reply, peer = udp.recvfrom(2048)
    assert peer[:2] == target  # an IPv6 peer has flow and scope after the port
    return reply


def echo_example_on_a_device(sandbox: Sandbox, mode: str, options: list[str]) -> None:
    """A persistent `mode` device (tap or tun) in the namespace, the unmodified UDP echo example on it
    under `python -m usernet OPTIONS`, and datagrams of several sizes echoed to the kernel."""
    sandbox.run(["ip", "tuntap", "add", "mode", mode, "name", "usernet0"], check=True)
    sandbox.run(["ip", "addr", "add", f"{KERNEL_IP}/24", "dev", "usernet0"], check=True)
    sandbox.run(["ip", "link", "set", "usernet0", "up"], check=True)
    server = sandbox.popen(
        [sys.executable, "-m", "usernet", *options, str(EXAMPLE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert server.stdout is not None
    ready = server.stdout.readline()
    assert "UDP echo listening on ('0.0.0.0', 7)" in ready, ready + server.stderr.read()  # type: ignore[union-attr]  # not None here
    with sandbox.socket() as udp:
        for size in (1, 100, 1472):
            message = os.urandom(size)
            assert _echo_from_kernel(udp, message) == message


def test_unmodified_udp_echo_example_under_python_m_usernet(sandbox: Sandbox) -> None:
    echo_example_on_a_device(sandbox, "tap", ["--tap", "usernet0", "--loop", "uvloop"])


def test_usernet_run_sandbox_serves_the_example(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "usernet.cli", "run", "--sandbox", "--", sys.executable, str(EXAMPLE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    namespace = None
    try:
        assert server.stderr is not None and server.stdout is not None
        banner = server.stderr.readline()
        match = re.search(r"namespace (usernet-run-[0-9a-f]+),", banner)
        assert match, banner
        namespace = match.group(1)
        assert "listening" in server.stdout.readline()
        client = (
            f"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5); "
            f"s.sendto(b'ping', ('{USERNET_IP}', 7)); print(s.recvfrom(100)[0].decode())"
        )
        result = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", client], capture_output=True, text=True, timeout=30
        )
        assert result.stdout.strip() == "ping", result.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
        if namespace is not None:
            left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
            if namespace in left:
                subprocess.run(["ip", "netns", "delete", namespace])
                pytest.fail(f"usernet run left namespace {namespace} behind")


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]  # connection_made's transport is this kind

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


class Waiter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Future[tuple[bytes, tuple[str, int]]] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.got.done():
            self.got.set_result((data, addr))


@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_one_loop_reaches_usernet_and_kernel_destinations(sandbox: Sandbox, kind: str) -> None:
    link = sandbox.create_tap("usernet0", host_address=f"{KERNEL_IP}/24")
    host = Host(link, Interface(InterfaceConfig.from_strings(link.mac, [f"{USERNET_IP}/24"])))
    ns_sock = sandbox.socket()
    ns_sock.bind((KERNEL_IP, 0))
    ns_sock.setblocking(False)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # the kernel socket inside the namespace, served by the same loop (sock= goes to the base loop)
        await loop.create_datagram_endpoint(Echo, sock=ns_sock)
        port = ns_sock.getsockname()[1]
        via_usernet, proto = await loop.create_datagram_endpoint(Waiter, remote_addr=(KERNEL_IP, port))
        assert isinstance(via_usernet, DatagramTransport)
        via_usernet.sendto(b"through the TAP")
        assert await asyncio.wait_for(proto.got, 5) == (b"through the TAP", (KERNEL_IP, port))  # type: ignore[attr-defined]  # the test's own protocol or server class
        kernel_echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        loopback_port = kernel_echo.get_extra_info("sockname")[1]
        via_kernel, proto2 = await loop.create_datagram_endpoint(Waiter, remote_addr=("127.0.0.1", loopback_port))
        assert not isinstance(via_kernel, DatagramTransport)
        via_kernel.sendto(b"through loopback")
        assert (await asyncio.wait_for(proto2.got, 5))[0] == b"through loopback"  # type: ignore[attr-defined]  # the test's own protocol or server class

    loop = LOOPS[kind](host=host)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert host.iface.stats()["udp_delivered"] >= 1
