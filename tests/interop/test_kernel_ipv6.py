"""IPv6 against the kernel over a TAP: neighbour discovery, DAD, SLAAC from a router advertisement, ping -6.

The kernel's side of the TAP gets its IPv6 addresses inside the sandbox's namespace only;
its duplicate address detection is off there (`accept_dad`), so its link-local address
can send the router advertisement at once.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.interop.conftest import Running, usernet_serving
from tests.interop.streams import (
    MB,
    TIMEOUT,
    Pattern,
    StreamCheck,
    finished,
    kernel_echo_roundtrip,
    kernel_echo_server,
    kernel_socket,
    report,
    usernet_connect,
    wait_for,
)
from tests.programs import require
from usernet.apps.services import ECHO_PORT
from usernet.link.sandbox import Sandbox
from usernet.stack import TcpConnection
from usernet.wire.ipv6 import ALL_NODES
from usernet.wire.ndp import PrefixInfo, emit_router_advert

pytestmark = pytest.mark.network

KERNEL_IP6 = "2001:db8::1"
PREFIX = "2001:db8::"
FAR_IP6 = "2001:db8:1::1"  # on the kernel's loopback: reached through the default router
SECRET = b"ipv6 stable test"


def _until(condition: Callable[[], object], timeout: float = 5.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def _addresses(running: Running, state: str = "PREFERRED") -> list[str]:
    ipv6 = running.host.iface.ipv6
    assert ipv6 is not None
    found = running.loop.call(lambda now: ipv6.addresses())
    return [str(ipaddress.IPv6Address(a)) for a, _, s in found if s == state]


@contextlib.contextmanager
def usernet_v6(sandbox: Sandbox, *addresses: str, mac: bytes | None = None, **options: object) -> Iterator[Running]:
    """usernet with IPv6 on a TAP whose kernel side has KERNEL_IP6/64 and FAR_IP6 on its loopback."""
    sandbox.in_namespace(lambda: Path("/proc/sys/net/ipv6/conf/default/accept_dad").write_text("0"))
    tap = sandbox.create_tap("usernet0", ipv6=True, mac=mac)
    _run(sandbox, "ip", "link", "set", "lo", "up")
    _run(sandbox, "ip", "-6", "addr", "add", f"{KERNEL_IP6}/64", "dev", "usernet0", "nodad")
    _run(sandbox, "ip", "-6", "addr", "replace", f"{FAR_IP6}/64", "dev", "lo")
    try:
        with usernet_serving(sandbox, tap, addresses=addresses, ipv6=True, ipv6_stable_secret=SECRET, **options) as r:
            assert _until(lambda: [a for a in _addresses(r) if a.startswith("fe80:")]), "no link-local address"
            yield r
    finally:
        tap.close()


def _kernel_ping(running: Running, target: str, count: int = 5) -> None:
    result = running.sandbox.run(
        [require("ping"), "-6", "-c", str(count), "-i", "0.05", "-W", "2", target], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{count} packets transmitted, {count} received" in result.stdout


def _usernet_ping(running: Running, target: str, count: int = 3) -> list[tuple[bytes, int, bytes, int]]:
    ipv6 = running.host.iface.ipv6
    assert ipv6 is not None
    sock = running.loop.call(lambda now: ipv6.open_ping())
    dst = ipaddress.IPv6Address(target).packed
    replies = []
    try:
        for seq in range(count):
            running.loop.call(lambda now, seq=seq: sock.send(dst, seq, b"usernet v6 %d" % seq, now))
            reply = _until(lambda: running.loop.call(lambda now: sock.receive()), timeout=3.0)
            assert reply, f"no echo reply from {target} to request {seq}"
            replies.append(reply)
    finally:
        running.loop.call(lambda now: sock.close())
    assert [r[0] for r in replies] == [dst] * count
    assert [r[1] for r in replies] == list(range(count))
    return replies  # type: ignore[return-value]  # _until returned the reply tuples


def _kernel_link_local(sandbox: Sandbox) -> str:
    out = _run(sandbox, "ip", "-6", "-o", "addr", "show", "dev", "usernet0", "scope", "link")
    return out.split()[3].split("/")[0]


def _run(sandbox: Sandbox, *cmd: str) -> str:
    result = sandbox.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def send_router_advert(
    sandbox: Sandbox, lifetime: int = 1800, mtu: int | None = None, dns: tuple[str, ...] = (), dns_lifetime: int = 0,
    domains: tuple[str, ...] = (),
) -> None:  # fmt: skip
    """The kernel's namespace plays router: one RA to all nodes from its link-local address, by raw socket
    (naming the DNS servers `dns` and search `domains` for `dns_lifetime` seconds, RFC 8106)."""
    ifindex = sandbox.in_namespace(lambda: socket.if_nametoindex("usernet0"))
    mac = bytes.fromhex(_run(sandbox, "cat", "/sys/class/net/usernet0/address").strip().replace(":", ""))
    source = ipaddress.IPv6Address(_kernel_link_local(sandbox)).packed
    prefix = PrefixInfo(ipaddress.IPv6Address(PREFIX).packed, 64, True, True, 86400, 14400)
    message = bytearray(200)
    servers = tuple(ipaddress.IPv6Address(server).packed for server in dns)
    n = emit_router_advert(
        message, 0, source, ALL_NODES, lifetime, mac, (prefix,), mtu, dns=servers, dns_lifetime=dns_lifetime,
        domains=domains,
    )  # fmt: skip
    with sandbox.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as raw:
        raw.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        raw.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        raw.sendto(bytes(message[:n]), ("ff02::1", 0, 0, ifindex))


def test_kernel_pings_usernets_link_local_address(sandbox: Sandbox):
    with usernet_v6(sandbox) as running:
        (link_local,) = [a for a in _addresses(running) if a.startswith("fe80:")]
        _kernel_ping(running, f"{link_local}%usernet0")
        stats = running.host.iface.stats()
        assert stats["icmpv6_echo_answered"] >= 5 and stats["nd_solicits_answered"] >= 1
        neighbours = _run(sandbox, "ip", "-6", "neigh", "show", "dev", "usernet0")
        assert running.host.link.mac.hex(":") in neighbours


def test_router_advertisement_gives_an_address_and_a_default_router(sandbox: Sandbox):
    with usernet_v6(sandbox) as running:
        assert not [a for a in _addresses(running) if a.startswith("2001:")]
        send_router_advert(sandbox)
        found = _until(lambda: [a for a in _addresses(running) if a.startswith("2001:db8::")])
        assert found, running.host.iface.stats()
        (address,) = found
        _kernel_ping(running, address)
        _usernet_ping(running, KERNEL_IP6)  # on-link, through the prefix's L flag
        replies = _usernet_ping(running, FAR_IP6)  # off-link: through the router the RA named
        assert replies[0][3] == 64
        ipv6 = running.host.iface.ipv6
        assert ipv6 is not None
        router = running.loop.call(lambda now: ipv6.default_router)
        assert router == ipaddress.IPv6Address(_kernel_link_local(sandbox)).packed


def test_static_address_and_gateway(sandbox: Sandbox):
    with usernet_v6(sandbox, "2001:db8::2/64", gateway6=KERNEL_IP6, slaac=False) as running:
        assert _until(lambda: "2001:db8::2" in _addresses(running))
        _kernel_ping(running, "2001:db8::2", count=10)
        _usernet_ping(running, FAR_IP6)


def test_stable_identifier_is_the_same_on_every_start(sandbox: Sandbox):
    """RFC 7217: with the same secret and MAC the link-local address comes back identical, another MAC
    gives another one."""
    mac = bytes.fromhex("02bbccddeeff")
    with usernet_v6(sandbox, mac=mac) as running:
        first = _addresses(running)
    with usernet_v6(sandbox, mac=mac) as running:
        assert _addresses(running) == first
    with usernet_v6(sandbox, mac=bytes.fromhex("02bbccddeefe")) as running:
        assert _addresses(running) != first


def test_duplicate_address_detection_gives_up_the_kernels_address(sandbox: Sandbox):
    """usernet configured with the kernel's own address: the kernel defends it, usernet drops it."""
    with usernet_v6(sandbox, f"{KERNEL_IP6}/64", "2001:db8::2/64", slaac=False) as running:
        assert _until(lambda: "2001:db8::2" in _addresses(running))
        assert KERNEL_IP6 not in _addresses(running) + _addresses(running, "TENTATIVE")
        assert running.host.iface.stats()["dad_duplicates"] == 1
        _kernel_ping(running, "2001:db8::2")


# -- UDP and TCP over IPv6 --------------------------------------------------------------------

USERNET_IP6 = "2001:db8::2"
V6_BULK = 20 * MB


@contextlib.contextmanager
def usernet_static(sandbox: Sandbox) -> Iterator[Running]:
    with usernet_v6(sandbox, f"{USERNET_IP6}/64", slaac=False) as running:
        assert _until(lambda: USERNET_IP6 in _addresses(running))
        yield running


def test_kernel_udp_echo_over_ipv6_of_every_size(sandbox: Sandbox):
    with usernet_static(sandbox) as running, sandbox.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        rng = random.Random(6)
        for i in range(300):
            size = i * 1452 // 299  # up to the IPv6 MTU's 1500 - 40 - 8
            message = rng.randbytes(size)
            sock.sendto(message, (USERNET_IP6, 7))
            reply, peer = sock.recvfrom(2048)
            assert reply == message and peer[:2] == (USERNET_IP6, 7), f"datagram {i} of {size} bytes"
        sock.connect((USERNET_IP6, 9))
        sock.send(b"anyone?")
        with pytest.raises(ConnectionRefusedError):
            sock.recv(100)  # the ICMPv6 port unreachable usernet sent
        assert running.echo.echoed == 300


def test_kernel_client_tcp_echo_over_ipv6(sandbox: Sandbox):
    pattern = Pattern(61)
    with usernet_static(sandbox) as running, kernel_socket(sandbox, socket.AF_INET6) as sock:
        sock.connect((USERNET_IP6, ECHO_PORT))
        start = time.monotonic()
        check = kernel_echo_roundtrip(sock, V6_BULK, pattern)
        elapsed = time.monotonic() - start
        check.assert_complete(V6_BULK)
        wait_for(lambda: bool(finished(running, "echo")), "the echo connection to finish")
        [record] = finished(running, "echo")
        assert record.error is None and record.info["bytes_received"] == V6_BULK
        assert record.remote[0] == ipaddress.IPv6Address(KERNEL_IP6).packed
        report("kernel->usernet echo over IPv6", f"{V6_BULK / MB / elapsed:.1f} MB/s each way ({elapsed:.1f} s)")


def test_usernet_client_to_kernel_echo_over_ipv6(sandbox: Sandbox):
    pattern = Pattern(62)
    check = StreamCheck(pattern)
    with usernet_static(sandbox) as running, kernel_socket(sandbox, socket.AF_INET6) as listener:
        listener.bind((KERNEL_IP6, 6000))
        listener.listen(8)
        server = threading.Thread(target=kernel_echo_server, args=(listener,), daemon=True)
        server.start()
        start = time.monotonic()
        client = usernet_connect(running.loop, 6000, pattern, V6_BULK, check, address=KERNEL_IP6)
        assert client.done.wait(TIMEOUT), f"transfer stuck: {running.loop.call(lambda now: client.conn.info())}"
        elapsed = time.monotonic() - start
        server.join(10)
        assert client.conn.error is None
        check.assert_complete(V6_BULK)
        report("usernet->kernel echo over IPv6", f"{V6_BULK / MB / elapsed:.1f} MB/s each way ({elapsed:.1f} s)")


def test_usernet_connect_to_a_closed_kernel_port_is_refused_over_ipv6(sandbox: Sandbox):
    with usernet_static(sandbox) as running:

        def connect(now: float) -> TcpConnection:
            return running.host.iface.tcp.connect((ipaddress.IPv6Address(KERNEL_IP6).packed, 6001), now)

        conn = running.loop.call(connect)
        assert _until(lambda: running.loop.call(lambda now: conn.error is not None))
        assert running.loop.call(lambda now: conn.error.errno) == errno.ECONNREFUSED  # type: ignore[union-attr]  # set, as waited for


def test_kernel_udp_over_ipv6_larger_than_the_mtu_is_echoed_whole(sandbox: Sandbox):
    """4,000- and 60,000-byte datagrams (and the largest, 65,487): the kernel fragments them
    going in, usernet reassembles, echoes, fragments coming back, the kernel reassembles."""
    with usernet_static(sandbox) as running, sandbox.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5.0)
        rng = random.Random(66)
        for size in (4000, 60_000, 65_487, 1453, 4000):
            message = rng.randbytes(size)
            sock.sendto(message, (USERNET_IP6, 7))
            reply, peer = sock.recvfrom(65_536)
            assert peer[:2] == (USERNET_IP6, 7) and reply == message, f"the {size}-byte datagram"
        stats = running.loop.call(lambda now: running.host.iface.stats())
        assert stats["ipv6_reasm_datagrams"] == 5 and stats["ipv6_reasm_overlaps"] == 0  # 1453 + 48 > 1500 too


def test_usernet_ping_cli_over_ipv6_to_all_nodes():
    """`usernet ping --sandbox --ipv6 ff02::1`: the kernel's side of the TAP answers from its link-local address."""
    result = subprocess.run(
        [sys.executable, "-m", "usernet.cli", "ping", "--sandbox", "--ipv6", "-c", "5", "-i", "0.2", "ff02::1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^64 bytes from fe80:[0-9a-f:]+: icmp_seq=\d+ ttl=64", result.stdout, re.M), result.stdout
