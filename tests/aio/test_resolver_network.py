"""The stub resolver against dnsmasq on the kernel's side of a TAP, in a throwaway namespace.

dnsmasq (192.0.2.1) serves a small zone: web.test (A and AAAA), www.test (a CNAME to
it), many.test (48 A records: the UDP answer does not fit 512 bytes, so dnsmasq sets TC
and the resolver asks again over TCP), and NXDOMAIN for other names under .test.
usernet (192.0.2.2) asks over its own UDP and TCP. Last, an unmodified aiohttp client
under `python -m usernet --dns 192.0.2.1 --only` fetches a file from a kernel HTTP
server by name.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from usernet.aio.loop import UsernetSelectorEventLoop
from usernet.aio.resolver import Resolver
from usernet.drivers.config import UsernetConfig
from usernet.drivers.host import Host, offload_options
from usernet.link.sandbox import Sandbox
from usernet.link.tap import TapLink
from usernet.programs import find
from usernet.stack import Interface, InterfaceConfig
from usernet.wire.dns import RCODE_NXDOMAIN, TYPE_A, TYPE_AAAA, build_query, parse_message

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]
KERNEL_IP = "192.0.2.1"
USERNET_IP = "192.0.2.2"
T = TypeVar("T")
MANY = [f"198.51.100.{i}" for i in range(1, 49)]


def start_dnsmasq(box: Sandbox, folder: Path) -> subprocess.Popen[str]:
    """dnsmasq on the kernel side of the TAP, answering only from what the command line gives it."""
    hosts = folder / "many.hosts"
    hosts.write_text("".join(f"{address} many.test\n" for address in MANY))
    proc = box.popen(
        [
            find("dnsmasq"), "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            f"--listen-address={KERNEL_IP}", "--bind-interfaces", "--user=root", "--pid-file=",
            "--local=/test/", f"--addn-hosts={hosts}",
            "--host-record=web.test,192.0.2.10,2001:db8::10", "--host-record=files.test,192.0.2.1",
            "--cname=www.test,web.test",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    with box.socket() as probe:  # wait until it answers, asking from the kernel's side
        probe.settimeout(0.2)
        for _ in range(50):
            probe.sendto(build_query(1, "web.test", TYPE_A), (KERNEL_IP, 53))
            try:
                if parse_message(probe.recv(512)).answers:
                    return proc
            except (TimeoutError, ConnectionRefusedError):
                if proc.poll() is not None:
                    break
    proc.kill()
    pytest.fail(f"dnsmasq did not come up: {proc.communicate()[1]}")


@pytest.fixture
def dns(sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[Sandbox, Path]]:
    for cmd in (  # a persistent TAP: dnsmasq binds to its address before usernet opens it
        ["ip", "tuntap", "add", "mode", "tap", "name", "usernet0"],
        ["ip", "addr", "add", f"{KERNEL_IP}/24", "dev", "usernet0"],
        ["ip", "link", "set", "usernet0", "up"],
    ):
        sandbox.run(cmd, check=True)
    proc = start_dnsmasq(sandbox, tmp_path)
    try:
        yield sandbox, tmp_path
    finally:
        proc.kill()  # by its PID: the one we started
        proc.communicate()


def test_a_aaaa_cname_nxdomain_and_truncation_against_dnsmasq(dns: tuple[Sandbox, Path]) -> None:
    box, _ = dns
    link = box.in_namespace(lambda: TapLink.create("usernet0"))
    config = InterfaceConfig.from_strings(link.mac, [f"{USERNET_IP}/24"], None, **offload_options(link))
    loop = UsernetSelectorEventLoop(host=Host(link, Interface(config)), config=UsernetConfig(dns=KERNEL_IP))
    try:
        resolver = loop.usernet_resolver
        assert isinstance(resolver, Resolver) and resolver.servers == [KERNEL_IP]

        def run(coro: Coroutine[Any, Any, T]) -> T:
            return loop.run_until_complete(asyncio.wait_for(coro, 20))

        a = run(resolver.lookup("web.test", TYPE_A))
        assert a.addresses == ("192.0.2.10",)
        aaaa = run(resolver.lookup("web.test", TYPE_AAAA))
        assert aaaa.addresses == ("2001:db8::10",)
        cname = run(resolver.lookup("www.test", TYPE_A))
        assert cname.addresses == ("192.0.2.10",) and cname.canonical == "web.test"
        missing = run(resolver.lookup("nothing.test", TYPE_A))
        assert missing.addresses == () and missing.rcode == RCODE_NXDOMAIN
        assert resolver.stats.tcp_queries == 0
        many = run(resolver.lookup("many.test", TYPE_A))
        assert sorted(many.addresses) == sorted(MANY)
        assert resolver.stats.truncated == 1 and resolver.stats.tcp_queries == 1

        infos = run(loop.getaddrinfo("www.test", 80, type=socket.SOCK_STREAM))
        assert [i[4] for i in infos] == [("192.0.2.10", 80), ("2001:db8::10", 80, 0, 0)]
        with pytest.raises(socket.gaierror) as info:
            run(loop.getaddrinfo("nothing.test", 80))
        assert info.value.errno == socket.EAI_NONAME
    finally:
        loop.close()
        link.close()


def test_unmodified_aiohttp_client_fetches_by_name(dns: tuple[Sandbox, Path]) -> None:
    box, folder = dns
    blob = os.urandom(1 << 20)
    (folder / "blob").write_bytes(blob)
    web = box.popen(
        [sys.executable, "-m", "http.server", "--bind", KERNEL_IP, "--directory", str(folder), "8000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = folder / "client.py"
    client.write_text(
        "import asyncio, hashlib, aiohttp\n"
        "async def main():\n"
        "    async with aiohttp.ClientSession() as session:\n"
        "        for _ in range(50):\n"
        "            try:\n"
        "                async with session.get('http://files.test:8000/blob') as response:\n"
        "                    body = await response.read()\n"
        "                break\n"
        "            except aiohttp.ClientConnectionError:\n"
        "                await asyncio.sleep(0.1)\n"
        "    print(len(body), hashlib.sha256(body).hexdigest())\n"
        "asyncio.run(main())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERNET_")}
    try:
        result = box.run(
            [sys.executable, "-m", "usernet", "--tap", "usernet0", "--dns", KERNEL_IP, "--only", str(client)],
            capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [str(len(blob)), hashlib.sha256(blob).hexdigest()]
    finally:
        web.kill()
        web.wait()
