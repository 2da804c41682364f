"""The stub resolver against dnsmasq on the kernel's side of a TAP, in a throwaway namespace.

dnsmasq (192.0.2.1 and 2001:db8::1, on test_ipv6_network's `tap6`) serves a small zone:
web.test (A and AAAA), www.test (a CNAME to it), many.test (48 A records: the UDP answer
does not fit 512 bytes, so dnsmasq sets TC and the resolver asks again over TCP), and
NXDOMAIN for other names under .test. usernet (192.0.2.2, 2001:db8::2) asks over its own
UDP and TCP, of either family. Then the kernel's namespace plays router and advertises
dnsmasq's IPv6 address and the search domain "test" (RFC 8106): the loop of a program run
with IPv6 and no `--dns` resolves through it, a short name too, until an advertisement
withdraws the server. Last, an unmodified aiohttp client under `python -m usernet --dns
192.0.2.1 --only` fetches a file from a kernel HTTP server by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.aio.test_ipv6_network import tap6  # noqa: F401  # the fixture: a TAP with both families' addresses
from tests.interop.test_kernel_ipv6 import send_router_advert
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
KERNEL_IP6 = "2001:db8::1"
USERNET_IP6 = "2001:db8::2"
T = TypeVar("T")
MANY = [f"198.51.100.{i}" for i in range(1, 49)]


def start_dnsmasq(box: Sandbox, folder: Path) -> subprocess.Popen[str]:
    """dnsmasq on the kernel side of the TAP, answering only from what the command line gives it."""
    hosts = folder / "many.hosts"
    hosts.write_text("".join(f"{address} many.test\n" for address in MANY))
    proc = box.popen(
        [
            find("dnsmasq"), "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            f"--listen-address={KERNEL_IP}", f"--listen-address={KERNEL_IP6}", "--bind-interfaces", "--user=root",
            "--pid-file=",
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
def dns(tap6: Sandbox, tmp_path: Path) -> Iterator[tuple[Sandbox, Path]]:  # noqa: F811  # the imported fixture
    """dnsmasq on the persistent TAP's kernel side: it binds to its addresses before usernet opens it."""
    proc = start_dnsmasq(tap6, tmp_path)
    try:
        yield tap6, tmp_path
    finally:
        proc.kill()  # by its PID: the one we started
        proc.communicate()


@contextlib.contextmanager
def usernet_loop(box: Sandbox, addresses: list[str], config: UsernetConfig) -> Iterator[UsernetSelectorEventLoop]:
    """A loop whose stack has `addresses` on the TAP (with IPv6 when `config` wants it)."""
    link = box.in_namespace(lambda: TapLink.create("usernet0"))
    iface = InterfaceConfig.from_strings(link.mac, addresses, None, ipv6=config.wants_ipv6, **offload_options(link))
    loop = UsernetSelectorEventLoop(host=Host(link, Interface(iface)), config=config)
    try:
        yield loop
    finally:
        loop.close()
        link.close()


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    return loop.run_until_complete(asyncio.wait_for(coro, 20))


@pytest.mark.parametrize("server", [KERNEL_IP, KERNEL_IP6])
def test_a_aaaa_cname_nxdomain_and_truncation_against_dnsmasq(dns: tuple[Sandbox, Path], server: str) -> None:
    box, _ = dns
    addresses = [f"{USERNET_IP}/24", f"{USERNET_IP6}/64"]
    with usernet_loop(box, addresses, UsernetConfig(dns=server)) as loop:
        resolver = loop.usernet_resolver
        assert isinstance(resolver, Resolver) and resolver.current_servers() == [server]
        run_here = functools.partial(run, loop)

        a = run_here(resolver.lookup("web.test", TYPE_A))
        assert a.addresses == ("192.0.2.10",)
        aaaa = run_here(resolver.lookup("web.test", TYPE_AAAA))
        assert aaaa.addresses == ("2001:db8::10",)
        cname = run_here(resolver.lookup("www.test", TYPE_A))
        assert cname.addresses == ("192.0.2.10",) and cname.canonical == "web.test"
        missing = run_here(resolver.lookup("nothing.test", TYPE_A))
        assert missing.addresses == () and missing.rcode == RCODE_NXDOMAIN
        assert resolver.stats.tcp_queries == 0
        many = run_here(resolver.lookup("many.test", TYPE_A))
        assert sorted(many.addresses) == sorted(MANY)
        assert resolver.stats.truncated == 1 and resolver.stats.tcp_queries == 1
        assert resolver.stats.timeouts == resolver.stats.errors == 0

        infos = run_here(loop.getaddrinfo("www.test", 80, type=socket.SOCK_STREAM))
        assert [i[4] for i in infos] == [("192.0.2.10", 80), ("2001:db8::10", 80, 0, 0)]
        with pytest.raises(socket.gaierror) as info:
            run_here(loop.getaddrinfo("nothing.test", 80))
        assert info.value.errno == socket.EAI_NONAME


def test_the_dns_server_a_router_advertises_is_used_until_withdrawn(dns: tuple[Sandbox, Path]) -> None:
    """No --dns: names go to the C library until an RA names dnsmasq, then to it over IPv6 (SLAAC's address)."""
    box, _ = dns
    with usernet_loop(box, [f"{USERNET_IP}/24"], UsernetConfig(ipv6=True)) as loop:
        resolver = loop.usernet_resolver
        assert isinstance(resolver, Resolver) and not resolver.active
        for _ in range(100):  # the kernel's link-local address (the RA's source) comes with the TAP's carrier
            if box.run(["ip", "-6", "addr", "show", "dev", "usernet0", "scope", "link"], capture_output=True).stdout:
                break
            run(loop, asyncio.sleep(0.05))
        send_router_advert(box, dns=(KERNEL_IP6,), dns_lifetime=600, domains=("test",))
        for _ in range(100):
            if resolver.active:
                break
            run(loop, asyncio.sleep(0.05))
        assert resolver.current_servers() == [KERNEL_IP6]
        infos = run(loop, loop.getaddrinfo("www.test", 80, type=socket.SOCK_STREAM))
        assert [i[4] for i in infos] == [("192.0.2.10", 80), ("2001:db8::10", 80, 0, 0)]
        assert resolver.stats.udp_queries == 2 and resolver.stats.timeouts == resolver.stats.errors == 0
        short = run(loop, loop.getaddrinfo("www", 80, type=socket.SOCK_STREAM))  # the RA's search domain
        assert [i[4] for i in short] == [i[4] for i in infos]
        send_router_advert(box, dns=(KERNEL_IP6,), dns_lifetime=0)
        for _ in range(100):
            if not resolver.active:
                break
            run(loop, asyncio.sleep(0.05))
        assert resolver.current_servers() == []


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
