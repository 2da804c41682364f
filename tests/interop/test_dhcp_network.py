"""`--dhcp` against dnsmasq on the kernel side of a TAP in a throwaway namespace.

dnsmasq leases 192.0.2.50-59 for two minutes (its shortest) with T1 = 4 s and T2 = 8 s
(options 58 and 59), names a router and a DNS server (itself), and answers one name.
`usernet up --dhcp` must learn the address, router and DNS server, answer ping on the
leased address, renew at T1 — seen in the capture it writes: a REQUEST from the leased
address, unicast to the server, and its ACK — and release the lease on exit. Under
`python -m usernet --dhcp --only`, an unmodified program resolves a name through the
DNS server DHCP named, over usernet. Last, the server is replaced by one leasing
192.0.2.60-69: the renewal is refused and a program running under `--dhcp` moves to its
new address without a restart.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.aio.test_tcp_network import tap  # noqa: F401  # the fixture: a TAP with KERNEL_IP/24
from tests.programs import require
from usernet.link.pcap import PcapReader
from usernet.link.sandbox import Sandbox
from usernet.programs import find
from usernet.stack.route import format_ip
from usernet.wire import ETHERTYPE_IPV4, IPPROTO_TCP, IPPROTO_UDP, IPv4Packet, parse_ethernet, parse_ipv4, parse_udp
from usernet.wire.dhcp import ACK, DISCOVER, NAK, OFFER, RELEASE, REQUEST, DhcpMessage, parse_dhcp
from usernet.wire.tcp import RST, SYN, parse_tcp

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]
KERNEL_IP = "192.0.2.1"
LEASED = re.compile(r"DHCP: (192\.0\.2\.5\d)/24 from 192\.0\.2\.1, gateway 192\.0\.2\.1, DNS 192\.0\.2\.1, MTU 1500")
RESOLVE = (
    "import asyncio, socket\n"
    "async def main():\n"
    "    infos = await asyncio.get_running_loop().getaddrinfo('svc.test', 80, family=socket.AF_INET)\n"
    "    print(infos[0][4][0])\n"
    "asyncio.run(main())\n"
)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("USERNET_")}


def start_dnsmasq(box: Sandbox, folder: Path, first: str, last: str, *extra: str) -> subprocess.Popen[str]:
    """dnsmasq serving DHCP (`first`-`last`) and DNS on the TAP's kernel side; its leases in `folder`."""
    require("dnsmasq")
    server = box.popen(
        [
            find("dnsmasq"), "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--interface=usernet0", "--bind-interfaces", "--user=root", "--pid-file=",
            f"--dhcp-leasefile={folder / f'leases-{first}'}", f"--dhcp-range={first},{last},255.255.255.0,2m",
            f"--dhcp-option=option:router,{KERNEL_IP}", f"--dhcp-option=option:dns-server,{KERNEL_IP}",
            "--dhcp-option=option:T1,4", "--dhcp-option=option:T2,8", "--log-dhcp", "--no-ping",
            "--local=/test/", "--host-record=svc.test,192.0.2.77", *extra,
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(0.5)  # dnsmasq binds before it logs anything worth waiting for
    if server.poll() is not None:
        pytest.fail(f"dnsmasq did not start: {server.communicate()[1]}")
    return server


@pytest.fixture
def dhcp_server(tap: Sandbox, tmp_path: Path) -> Sandbox:  # noqa: F811  # the imported fixture
    """The TAP with dnsmasq leasing 192.0.2.50-59 on its kernel side; stopped with the sandbox."""
    start_dnsmasq(tap, tmp_path, "192.0.2.50", "192.0.2.59")
    return tap


def ipv4_packets(capture: Path) -> Iterator[IPv4Packet]:
    """Every IPv4 packet in a capture usernet wrote."""
    with PcapReader(capture) as reader:
        for _, frame in reader:
            eth = parse_ethernet(frame)
            if eth.ethertype == ETHERTYPE_IPV4:
                yield parse_ipv4(eth.payload)


def dhcp_messages(capture: Path) -> list[tuple[str, str, DhcpMessage]]:
    """(source, destination, message) of every DHCP message in a capture usernet wrote."""
    found = []
    for ip in ipv4_packets(capture):
        if ip.protocol != IPPROTO_UDP:
            continue
        udp = parse_udp(ip.payload, ip.src, ip.dst)
        if {udp.sport, udp.dport} == {67, 68}:
            found.append((format_ip(ip.src), format_ip(ip.dst), parse_dhcp(udp.payload)))
    return found


def syn_mss_from(capture: Path, source: str) -> list[int | None]:
    """The MSS option of every SYN (or SYN-ACK) from `source` in a capture usernet wrote."""
    segments = (
        parse_tcp(ip.payload, ip.src, ip.dst)
        for ip in ipv4_packets(capture)
        if ip.protocol == IPPROTO_TCP and format_ip(ip.src) == source
    )
    return [segment.mss for segment in segments if segment.flags & SYN]


def tcp_from(capture: Path, source: str) -> list[int]:
    """The flags of every TCP segment from `source` in a capture usernet wrote."""
    return [
        parse_tcp(ip.payload, ip.src, ip.dst).flags
        for ip in ipv4_packets(capture)
        if ip.protocol == IPPROTO_TCP and format_ip(ip.src) == source
    ]


def test_usernet_up_leases_renews_and_releases(dhcp_server: Sandbox, tmp_path: Path) -> None:
    capture = tmp_path / "dhcp.pcap"
    up = dhcp_server.popen(
        [sys.executable, "-m", "usernet.cli", "up", "--link", "tap:usernet0", "--dhcp", "--duration", "7",
         "--pcap", str(capture)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT,
    )  # fmt: skip
    assert up.stdout is not None
    line = up.stdout.readline()
    match = LEASED.search(line)
    assert match, line + up.stderr.read()  # type: ignore[union-attr]  # piped
    leased = match.group(1)
    assert f"usernet up: {leased} on tap:usernet0" in up.stdout.readline()
    ping = dhcp_server.run(["ping", "-c", "2", "-i", "0.2", "-W", "2", leased], capture_output=True, text=True)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    _, err = up.communicate(timeout=60)
    assert up.returncode == 0, err
    messages = dhcp_messages(capture)
    kinds = [(m.message_type, src, dst) for src, dst, m in messages]
    assert kinds[:4] == [
        (DISCOVER, "0.0.0.0", "255.255.255.255"),
        (OFFER, KERNEL_IP, "255.255.255.255"),
        (REQUEST, "0.0.0.0", "255.255.255.255"),
        (ACK, KERNEL_IP, "255.255.255.255"),
    ]  # the client asked for broadcast answers: it has no address yet
    renewal = [m for src, dst, m in messages[4:] if m.message_type == REQUEST and (src, dst) == (leased, KERNEL_IP)]
    assert renewal and renewal[0].ciaddr == bytes(map(int, leased.split("."))), "a renewal at T1, to the server"
    after = [m.message_type for _, _, m in messages[4:]]
    assert ACK in after[after.index(REQUEST) :], "the server extended the lease"
    assert kinds[-1] == (RELEASE, leased, KERNEL_IP), "the lease is given back on exit"


def test_python_m_usernet_resolves_through_the_dns_server_dhcp_named(dhcp_server: Sandbox, tmp_path: Path) -> None:
    program = tmp_path / "resolve.py"
    program.write_text(RESOLVE)
    done = dhcp_server.run(
        [sys.executable, "-m", "usernet", "--link", "tap:usernet0", "--dhcp", "--only", str(program)],
        capture_output=True, text=True, timeout=60, env=_env(), cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "192.0.2.77", done.stdout + done.stderr
    assert LEASED.search(done.stderr), done.stderr


ECHO_SERVER = (
    "import asyncio, sys\n"
    "lost = []\n"
    "class Echo(asyncio.Protocol):\n"
    "    def connection_made(self, transport):\n"
    "        self.transport = transport\n"
    "        print('connected', transport.get_extra_info('sockname')[0], flush=True)\n"
    "    def data_received(self, data):\n"
    "        self.transport.write(data)\n"
    "    def connection_lost(self, exc):\n"
    "        print('lost', getattr(exc, 'errno', None), flush=True)\n"
    "        lost.append(exc)\n"
    "async def main():\n"
    "    await asyncio.get_running_loop().create_server(Echo, '0.0.0.0', 7000)\n"
    "    print('listening', flush=True)\n"
    "    for _ in range(300):\n"
    "        if len(lost) == 2:\n"
    "            return\n"
    "        await asyncio.sleep(0.1)\n"
    "asyncio.run(main())\n"
)
NEW_LEASE = re.compile(r"DHCP: (192\.0\.2\.6\d)/24 from 192\.0\.2\.1, gateway 192\.0\.2\.1, DNS 192\.0\.2\.1")


def _echo(box: Sandbox, address: str, data: bytes) -> socket.socket:
    conn = box.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn.settimeout(10)
    conn.connect((address, 7000))
    conn.sendall(data)
    assert conn.recv(100) == data
    return conn


def _line(stream: IO[str], pattern: re.Pattern[str]) -> re.Match[str]:
    """The first line of `stream` that `pattern` finds (the program exits on its own: readline ends)."""
    seen = []
    while line := stream.readline():
        seen.append(line)
        if match := pattern.search(line):
            return match
    pytest.fail(f"no line like {pattern.pattern!r} in {seen}")


def test_a_lease_that_moves_to_another_address_is_taken_live(tap: Sandbox, tmp_path: Path) -> None:  # noqa: F811
    """The first server goes and one with another range takes its place: the renewal at T1 gets a NAK, the
    client starts over and gets an address from the new range, without a restart. The connection on the
    old address ends (ECONNABORTED, no RST); the listener on 0.0.0.0 accepts on the new one. The new
    server's MTU option (1400) is taken too: the connection accepted on the new address offers its MSS."""
    first = start_dnsmasq(tap, tmp_path, "192.0.2.50", "192.0.2.59")
    program = tmp_path / "echo.py"
    program.write_text(ECHO_SERVER)
    capture = tmp_path / "moved.pcap"
    proc = tap.popen(
        [sys.executable, "-m", "usernet", "--link", "tap:usernet0", "--dhcp", "--pcap", str(capture), str(program)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:
        old = _line(proc.stderr, LEASED).group(1)
        assert proc.stdout.readline() == "listening\n"
        before = _echo(tap, old, b"before")
        assert proc.stdout.readline() == f"connected {old}\n"
        first.kill()  # by its PID: the one we started
        first.communicate()
        start_dnsmasq(
            tap, tmp_path, "192.0.2.60", "192.0.2.69", "--dhcp-authoritative", "--dhcp-option=option:mtu,1400"
        )
        _line(proc.stderr, re.compile(rf"DHCP: the lease of {re.escape(old)} ended \(lost\)"))
        new_lease = _line(proc.stderr, NEW_LEASE)
        new = new_lease.group(1)
        assert ", MTU 1400, " in new_lease.string, "the new lease's MTU, not the first one's"
        assert proc.stdout.readline() == f"lost {errno.ECONNABORTED}\n"
        with _echo(tap, new, b"after") as after:
            assert proc.stdout.readline() == f"connected {new}\n"
            after.shutdown(socket.SHUT_WR)
            assert after.recv(10) == b""
        before.close()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert out == "lost None\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    messages = dhcp_messages(capture)
    kinds = [(m.message_type, src, dst) for src, dst, m in messages]
    nak = [kind for kind, _, _ in kinds].index(NAK)
    assert kinds[nak] == (NAK, KERNEL_IP, "255.255.255.255"), kinds  # a NAK goes to everyone
    assert kinds[nak - 1][:2] == (REQUEST, old), "it refused the renewal at T1 (or rebinding at T2) of the old address"
    assert kinds[nak + 1 : nak + 5] == [
        (DISCOVER, "0.0.0.0", "255.255.255.255"),
        (OFFER, KERNEL_IP, "255.255.255.255"),
        (REQUEST, "0.0.0.0", "255.255.255.255"),
        (ACK, KERNEL_IP, "255.255.255.255"),
    ], kinds
    assert messages[nak + 4][2].yiaddr == bytes(map(int, new.split(".")))
    assert kinds[-1] == (RELEASE, new, KERNEL_IP)
    assert not [f for f in tcp_from(capture, old) if f & RST], "nothing left from the address that went"
    assert syn_mss_from(capture, old) == [1460] and syn_mss_from(capture, new) == [1360]
