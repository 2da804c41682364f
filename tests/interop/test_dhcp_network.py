"""`--dhcp` against dnsmasq on the kernel side of a TAP in a throwaway namespace.

dnsmasq leases 192.0.2.50-59 for two minutes (its shortest) with T1 = 4 s and T2 = 8 s
(options 58 and 59), names a router and a DNS server (itself), and answers one name.
`usernet up --dhcp` must learn the address, router and DNS server, answer ping on the
leased address, renew at T1 — seen in the capture it writes: a REQUEST from the leased
address, unicast to the server, and its ACK — and release the lease on exit. Under
`python -m usernet --dhcp --only`, an unmodified program resolves a name through the
DNS server DHCP named, over usernet.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.programs import require
from usernet.link.pcap import PcapReader
from usernet.link.sandbox import Sandbox
from usernet.programs import find
from usernet.wire import ETHERTYPE_IPV4, IPPROTO_UDP, parse_ethernet, parse_ipv4, parse_udp
from usernet.wire.dhcp import ACK, DISCOVER, OFFER, RELEASE, REQUEST, DhcpMessage, parse_dhcp

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


@pytest.fixture
def dhcp_server(sandbox: Sandbox, tmp_path: Path) -> Sandbox:
    """A persistent TAP with dnsmasq serving DHCP and DNS on its kernel side; stopped with the sandbox."""
    for cmd in (
        ["ip", "tuntap", "add", "mode", "tap", "name", "usernet0"],
        ["ip", "addr", "add", f"{KERNEL_IP}/24", "dev", "usernet0"],
        ["ip", "link", "set", "usernet0", "up"],
    ):
        sandbox.run(cmd, check=True)
    require("dnsmasq")
    server = sandbox.popen(
        [
            find("dnsmasq"), "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--interface=usernet0", "--bind-interfaces", "--user=root", "--pid-file=",
            f"--dhcp-leasefile={tmp_path / 'leases'}", "--dhcp-range=192.0.2.50,192.0.2.59,255.255.255.0,2m",
            f"--dhcp-option=option:router,{KERNEL_IP}", f"--dhcp-option=option:dns-server,{KERNEL_IP}",
            "--dhcp-option=option:T1,4", "--dhcp-option=option:T2,8", "--log-dhcp", "--no-ping",
            "--local=/test/", "--host-record=svc.test,192.0.2.77",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(0.5)  # dnsmasq binds before it logs anything worth waiting for
    if server.poll() is not None:
        pytest.fail(f"dnsmasq did not start: {server.communicate()[1]}")
    return sandbox


def dhcp_messages(capture: Path) -> list[tuple[str, str, DhcpMessage]]:
    """(source, destination, message) of every DHCP message in a capture usernet wrote."""
    found = []
    with PcapReader(capture) as reader:
        for _, frame in reader:
            eth = parse_ethernet(frame)
            if eth.ethertype != ETHERTYPE_IPV4:
                continue
            ip = parse_ipv4(eth.payload)
            if ip.protocol != IPPROTO_UDP:
                continue
            udp = parse_udp(ip.payload, ip.src, ip.dst)
            if {udp.sport, udp.dport} == {67, 68}:
                found.append((".".join(map(str, ip.src)), ".".join(map(str, ip.dst)), parse_dhcp(udp.payload)))
    return found


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
