"""usernet on a TUN (bare IP, no Ethernet, no ARP) in a throwaway namespace, the kernel as the peer.

TCP and UDP both ways between an asyncio program on usernet and kernel sockets in the
namespace, with and without vnet_hdr offloads (TSO and partial checksums both ways) and
without software GSO/GRO; ping from the kernel; and the command line: `python -m usernet
--link tun:NAME` runs an unmodified program on a TUN the namespace made, `usernet up
--link tun:NAME --sandbox` answers ping. The TUN is created inside the namespace, which
needs CAP_NET_ADMIN there: these tests are `network` ones, run as root.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
from typing import Any

import pytest

from tests.aio.conftest import LOOPS
from tests.aio.test_network import (
    KERNEL_IP,
    USERNET_IP,
    Echo,
    Waiter,
    _echo_from_kernel,
    _env,
    echo_example_on_a_device,
)
from tests.aio.test_udp_link import ROOT, as_ordinary_user
from tests.programs import require
from usernet.drivers.host import Host, offload_options
from usernet.link.sandbox import Sandbox
from usernet.link.tun import TunLink
from usernet.stack import Interface, InterfaceConfig

pytestmark = pytest.mark.network

SIZE = 8 * 1024 * 1024
#: TunLink options: plain, offloads (vnet_hdr: TSO and partial checksums), neither GSO nor GRO.
MODES = {"gso-gro": {}, "offloads": {"offloads": True}, "plain": {"gso": False, "gro": False}}


def tun_host(sandbox: Sandbox, **options: Any) -> tuple[TunLink, Host]:
    link = sandbox.create_tun("usernet0", host_address=f"{KERNEL_IP}/24", **options)
    config = InterfaceConfig.from_strings(link.mac, [f"{USERNET_IP}/24"], **offload_options(link))
    return link, Host(link, Interface(config))


def hashed_exchange(sock: socket.socket, data: bytes) -> tuple[str, str]:
    """Send `data` and a shutdown on a connected blocking socket, read all that comes back: (sent hash, got hash)."""
    sender = threading.Thread(target=lambda: (sock.sendall(data), sock.shutdown(socket.SHUT_WR)))
    sender.start()
    back = hashlib.sha256()
    while chunk := sock.recv(1 << 16):
        back.update(chunk)
    sender.join()
    return hashlib.sha256(data).hexdigest(), back.hexdigest()


async def echo_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(1 << 16):
        writer.write(chunk)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_tcp_and_udp_both_ways_over_a_tun(sandbox: Sandbox, kind: str, mode: str) -> None:
    link, host = tun_host(sandbox, **MODES[mode])
    data = os.urandom(SIZE)
    kernel_listener = sandbox.socket(socket.AF_INET, socket.SOCK_STREAM)
    kernel_listener.bind((KERNEL_IP, 0))
    kernel_listener.listen()
    kernel_udp = sandbox.socket()
    kernel_udp.bind((KERNEL_IP, 0))

    def kernel_echo_server() -> None:
        conn, _ = kernel_listener.accept()
        with conn:
            while chunk := conn.recv(1 << 16):
                conn.sendall(chunk)
        payload, peer = kernel_udp.recvfrom(2048)
        kernel_udp.sendto(payload, peer)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # usernet serves, the kernel connects.
        server = await asyncio.start_server(echo_stream, USERNET_IP, 5000)
        client = sandbox.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.settimeout(60)
        await loop.run_in_executor(None, client.connect, (USERNET_IP, 5000))
        sent, got = await loop.run_in_executor(None, hashed_exchange, client, data)
        client.close()
        assert sent == got, "the kernel's bytes came back through usernet's echo"
        server.close()
        await server.wait_closed()
        await loop.create_datagram_endpoint(Echo, local_addr=(USERNET_IP, 7))
        kernel_client = sandbox.socket()
        for size in (1, 1472):
            message = os.urandom(size)
            assert await loop.run_in_executor(None, _echo_from_kernel, kernel_client, message) == message
        kernel_client.close()
        # usernet connects, the kernel serves.
        echo = threading.Thread(target=kernel_echo_server, daemon=True)
        echo.start()
        reader, writer = await asyncio.open_connection(KERNEL_IP, kernel_listener.getsockname()[1])
        digest = hashlib.sha256()

        async def read_back() -> None:
            while chunk := await reader.read(1 << 16):
                digest.update(chunk)

        reading = asyncio.ensure_future(read_back())
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        await asyncio.wait_for(reading, 60)
        writer.close()
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
        transport, waiter = await loop.create_datagram_endpoint(
            Waiter, remote_addr=(KERNEL_IP, kernel_udp.getsockname()[1])
        )
        transport.sendto(b"from usernet over a TUN")
        answer, _ = await asyncio.wait_for(waiter.got, 5)
        assert answer == b"from usernet over a TUN"
        transport.close()
        echo.join(10)

    loop = LOOPS[kind](host=host)
    try:
        loop.run_until_complete(asyncio.wait_for(main(), 120))
    finally:
        loop.close()
    assert host.iface.counters.arp_requests_answered == 0 and host.iface.arp.next_deadline() is None
    if mode == "offloads":
        assert link.tx_gso_frames > 0 and link.rx_gso_frames > 0, "TSO both ways through the vnet header"
    elif mode == "gso-gro":
        assert link.tx_gso_frames > 0 and link.rx_gro_joined > 0, "software GSO and GRO at offset 0"
    else:
        assert link.tx_gso_frames == link.rx_gro_joined == 0


def test_the_kernel_pings_usernet_over_a_tun(sandbox: Sandbox) -> None:
    require("ping")
    _, host = tun_host(sandbox)

    async def main() -> subprocess.CompletedProcess[str]:
        ping = ["ping", "-c", "3", "-i", "0.2", "-W", "2", USERNET_IP]
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: sandbox.run(ping, capture_output=True, text=True)
        )

    loop = LOOPS["asyncio"](host=host)
    try:
        loop.usernet_driver()  # the stack runs from now on
        result = loop.run_until_complete(main())
    finally:
        loop.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 received" in result.stdout
    assert host.iface.counters.icmp_echo_answered == 3


def test_python_m_usernet_runs_an_unmodified_program_on_a_tun(sandbox: Sandbox) -> None:
    echo_example_on_a_device(sandbox, "tun", ["--link", "tun:usernet0"])


def test_usernet_up_on_a_sandboxed_tun_answers_ping() -> None:
    require("ping")
    up = subprocess.Popen(
        [sys.executable, "-m", "usernet.cli", "up", "--link", "tun:usernet0", "--sandbox", "--duration", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert up.stderr is not None and up.stdout is not None
        banner = up.stdout.readline()
        match = re.search(r"namespace (usernet-up-[0-9a-f]+), TUN usernet0,", banner)
        assert match, banner
        assert "on tun:usernet0," in up.stdout.readline()
        ping = subprocess.run(
            ["ip", "netns", "exec", match.group(1), "ping", "-c", "2", "-i", "0.2", "-W", "2", USERNET_IP],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
    finally:
        up.terminate()
        up.wait(timeout=30)


def test_creating_a_tun_without_privilege_says_what_it_needs(sandbox: Sandbox) -> None:
    """As an ordinary user, inside the namespace all the same: had it worked, the TUN would be there."""
    probe = (
        "from usernet.link.tun import TunLink\n"
        "try:\n    TunLink.create('usernet9')\nexcept PermissionError as exc:\n    print(exc)\n"
    )
    done = sandbox.run(
        [*as_ordinary_user(), sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert "creating a TUN needs CAP_NET_ADMIN" in done.stdout, done.stdout + done.stderr
    assert "ip tuntap add mode tun user $USER name usernet9" in done.stdout
