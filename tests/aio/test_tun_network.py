"""usernet on a TUN (bare IP, no Ethernet, no ARP or NDP) in a throwaway namespace, the kernel as the peer.

TCP and UDP both ways between an asyncio program on usernet and kernel sockets in the
namespace, over IPv4 and over IPv6 alone, with and without vnet_hdr offloads (TSO and
partial checksums both ways) and without software GSO/GRO; ping and ping -6 from the
kernel; path MTU discovery over IPv6 through a kernel router; and the command line:
`python -m usernet --link tun:NAME` runs an unmodified program on a TUN the namespace
made (the UDP echo example; aiohttp on IPv6 alone, fetched with curl -6), `usernet up
--link tun:NAME --sandbox` answers ping. The TUN is created inside the namespace, which
needs CAP_NET_ADMIN there: these tests are `network` ones, run as root.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
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
from tests.aio.test_tcp_network import APPS, _curl
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
USERNET_IP6, KERNEL_IP6 = "2001:db8::2", "2001:db8::1"
#: Per family: (socket family, usernet's address, the kernel's, the largest UDP payload at MTU 1500).
FAMILIES = {
    4: (socket.AF_INET, USERNET_IP, KERNEL_IP, 1472),
    6: (socket.AF_INET6, USERNET_IP6, KERNEL_IP6, 1452),
}


def tun_host(sandbox: Sandbox, family: int = 4, gateway6: str | None = None, **options: Any) -> tuple[TunLink, Host]:
    """A TUN in the namespace and a Host on it: IPv4 (192.0.2.0/24) or IPv6 only (2001:db8::/64, and
    IPv4 on the kernel's side only, which usernet leaves alone), with `gateway6` as its IPv6 gateway."""
    link = sandbox.create_tun("usernet0", host_address=f"{KERNEL_IP}/24", ipv6=family == 6, **options)
    if family == 6:
        sandbox.run(["ip", "-6", "addr", "add", f"{KERNEL_IP6}/64", "dev", "usernet0", "nodad"], check=True)
    address = f"{USERNET_IP}/24" if family == 4 else f"{USERNET_IP6}/64"
    config = InterfaceConfig.from_strings(link.mac, [address], gateway6=gateway6, **offload_options(link))
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


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_tcp_and_udp_both_ways_over_a_tun(sandbox: Sandbox, kind: str, mode: str, family: int) -> None:
    """IPv6 runs on the TUN without any neighbour discovery: no solicitation, no DAD, bare packets."""
    af, usernet_ip, kernel_ip, largest = FAMILIES[family]
    link, host = tun_host(sandbox, family, **MODES[mode])
    data = os.urandom(SIZE)
    kernel_listener = sandbox.socket(af, socket.SOCK_STREAM)
    kernel_listener.bind((kernel_ip, 0))
    kernel_listener.listen()
    kernel_udp = sandbox.socket(af)
    kernel_udp.bind((kernel_ip, 0))

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
        server = await asyncio.start_server(echo_stream, usernet_ip, 5000)
        client = sandbox.socket(af, socket.SOCK_STREAM)
        client.settimeout(60)
        await loop.run_in_executor(None, client.connect, (usernet_ip, 5000))
        sent, got = await loop.run_in_executor(None, hashed_exchange, client, data)
        client.close()
        assert sent == got, "the kernel's bytes came back through usernet's echo"
        server.close()
        await server.wait_closed()
        await loop.create_datagram_endpoint(Echo, local_addr=(usernet_ip, 7))
        kernel_client = sandbox.socket(af)
        for size in (1, largest):
            message = os.urandom(size)
            echoed = await loop.run_in_executor(None, _echo_from_kernel, kernel_client, message, (usernet_ip, 7))
            assert echoed == message
        kernel_client.close()
        # usernet connects, the kernel serves.
        echo = threading.Thread(target=kernel_echo_server, daemon=True)
        echo.start()
        reader, writer = await asyncio.open_connection(kernel_ip, kernel_listener.getsockname()[1])
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
            Waiter, remote_addr=(kernel_ip, kernel_udp.getsockname()[1])
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
    counters = host.iface.counters
    assert counters.arp_requests_answered == 0 and host.iface.arp.next_deadline() is None
    if family == 6:
        ipv6 = host.iface.ipv6
        assert ipv6 is not None and not ipv6.neighbors.entries(), "no neighbour was ever resolved"
        assert counters.nd_solicits_answered == counters.nd_adverts_learned == 0
        if mode == "plain":
            assert link.tx_gso_frames == link.rx_gro_joined == 0
    elif mode == "offloads":
        assert link.tx_gso_frames > 0 and link.rx_gso_frames > 0, "TSO both ways through the vnet header"
    elif mode == "gso-gro":
        assert link.tx_gso_frames > 0 and link.rx_gro_joined > 0, "software GSO and GRO at offset 0"
    else:
        assert link.tx_gso_frames == link.rx_gro_joined == 0


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_kernel_pings_usernet_over_a_tun(sandbox: Sandbox, family: int) -> None:
    """ping, and ping -6 to usernet's static and link-local addresses (the link-local one is
    formed on a TUN too, as the kernel forms its own, and reached through the device's scope)."""
    require("ping")
    _, usernet_ip, _, _ = FAMILIES[family]
    _, host = tun_host(sandbox, family)
    targets = [usernet_ip]

    def ping(target: str) -> subprocess.CompletedProcess[str]:
        command = ["ping", f"-{family}", "-c", "3", "-i", "0.2", "-W", "2", target]
        return sandbox.run(command, capture_output=True, text=True)

    async def main() -> list[subprocess.CompletedProcess[str]]:
        return [await asyncio.get_running_loop().run_in_executor(None, ping, target) for target in targets]

    loop = LOOPS["asyncio"](host=host)
    try:
        loop.usernet_driver()  # the stack runs from now on
        if family == 6:
            ipv6 = host.iface.ipv6
            assert ipv6 is not None
            (link_local,) = [a for a, _, _ in ipv6.addresses() if a[:2] == b"\xfe\x80"]
            targets.append(f"{ipaddress.IPv6Address(link_local)}%usernet0")
        results = loop.run_until_complete(main())
    finally:
        loop.close()
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "3 received" in result.stdout
    answered = host.iface.counters.icmp_echo_answered if family == 4 else host.iface.counters.icmpv6_echo_answered
    assert answered == 3 * len(targets)


ROUTER_IP6, PEER_IP6 = "2001:db8:1::1", "2001:db8:1::2"


def test_ipv6_tcp_through_a_narrower_hop_finds_the_path_mtu_over_a_tun(sandbox: Sandbox) -> None:
    """The kernel routes between the TUN (MTU 1500) and a veth of MTU 1280 toward a peer that
    advertises MSS 1440: only its ICMPv6 packet too big, coming back over the TUN, can tell usernet."""
    _, host = tun_host(sandbox, 6, gateway6=KERNEL_IP6)  # on a TUN, any gateway: the kernel is the other end
    size = 2 * 1024 * 1024
    with Sandbox("peer") as peer:
        for cmd in (
            ["ip", "-n", sandbox.name, "link", "add", "fwd0", "mtu", "1280", "type", "veth",
             "peer", "name", "fwd1", "mtu", "1280", "netns", peer.name],
            ["ip", "-n", sandbox.name, "-6", "addr", "add", f"{ROUTER_IP6}/64", "dev", "fwd0", "nodad"],
            ["ip", "-n", sandbox.name, "link", "set", "fwd0", "up"],
            ["ip", "-n", peer.name, "-6", "addr", "add", f"{PEER_IP6}/64", "dev", "fwd1", "nodad"],
            ["ip", "-n", peer.name, "link", "set", "fwd1", "up"],
            ["ip", "-n", peer.name, "-6", "route", "add", "2001:db8::/64", "via", ROUTER_IP6, "advmss", "1440"],
        ):  # fmt: skip
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        sandbox.in_namespace(lambda: Path("/proc/sys/net/ipv6/conf/all/forwarding").write_text("1"))
        listener = peer.socket(socket.AF_INET6, socket.SOCK_STREAM)
        listener.bind((PEER_IP6, 0))
        listener.listen()
        data = os.urandom(size)

        def sink() -> str:
            conn, _ = listener.accept()
            digest = hashlib.sha256()
            with conn:
                while chunk := conn.recv(1 << 16):
                    digest.update(chunk)
            return digest.hexdigest()

        async def main() -> tuple[str, int]:
            loop = asyncio.get_running_loop()
            received = loop.run_in_executor(None, sink)
            _, writer = await asyncio.open_connection(PEER_IP6, listener.getsockname()[1])
            writer.write(data)
            await writer.drain()
            mss = int(next(iter(host.iface.tcp.connections())).info()["mss"])
            writer.close()
            await writer.wait_closed()
            return await asyncio.wait_for(received, 30), mss

        loop = LOOPS["asyncio"](host=host)
        try:
            got, mss = loop.run_until_complete(asyncio.wait_for(main(), 60))
        finally:
            loop.close()
    assert got == hashlib.sha256(data).hexdigest()
    ipv6 = host.iface.ipv6
    assert ipv6 is not None and ipv6.path_mtu.mtu(ipaddress.IPv6Address(PEER_IP6).packed) == 1280
    assert mss == 1280 - 60 - 12, "down from the peer's 1440: IPv6 and TCP headers, timestamps"
    assert host.iface.counters.ipv6_pmtu_lowered == 1


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


def test_curl_6_over_a_tun_fetches_from_an_unmodified_aiohttp_app(sandbox: Sandbox, tmp_path: Path) -> None:
    """`python -m usernet --link tun:NAME --address 2001:db8::2/64`: an IPv6-only usernet on a TUN the
    namespace made, an unmodified aiohttp app on "::", and the kernel's curl -6 fetching and posting."""
    require("curl")
    for cmd in (
        ["ip", "tuntap", "add", "mode", "tun", "name", "usernet0"],
        ["ip", "-6", "addr", "add", f"{KERNEL_IP6}/64", "dev", "usernet0", "nodad"],
        ["ip", "link", "set", "usernet0", "up"],
    ):
        sandbox.run(cmd, check=True)
    served = tmp_path / "served.bin"
    data = os.urandom(1024 * 1024)
    served.write_bytes(data)
    app = [str(APPS / "aiohttp_app.py"), str(served), "8080", "::"]
    server = sandbox.popen(
        [sys.executable, "-m", "usernet", "--link", "tun:usernet0", "--address", f"{USERNET_IP6}/64", "--only", *app],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=str(ROOT),
    )  # fmt: skip
    assert server.stdout is not None
    ready = server.stdout.readline()
    assert "Running on http://[::]:8080" in ready, ready + server.stderr.read()  # type: ignore[union-attr]  # piped
    base = f"http://[{USERNET_IP6}]:8080"
    fetched = _curl(sandbox, "-6", "-g", f"{base}/file")
    assert fetched.stdout == data, fetched.stderr
    posted = _curl(sandbox, "-6", "-g", "--data-binary", f"@{served}", f"{base}/sha256")
    assert posted.stdout.decode().split() == [str(len(data)), hashlib.sha256(data).hexdigest()], posted.stderr
