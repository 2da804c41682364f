"""IPv6 and dual-stack programs run unmodified with `python -m usernet` on a real TAP.

The kernel side of the TAP gets 192.0.2.1/24 and 2001:db8::1/64 inside the sandbox's
namespace (its DAD is off there, so its address is usable at once); usernet runs with
`--address 192.0.2.2/24 --address 2001:db8::2/64`. The bulk test runs the stack in this
process instead, on a TapLink the sandbox made, to see the link's offload counters.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.aio.conftest import LOOPS
from tests.aio.test_tcp_network import APPS, ROOT, _curl, _env
from tests.programs import require
from usernet.drivers.host import Host, offload_options
from usernet.link.sandbox import Sandbox
from usernet.stack import Interface, InterfaceConfig

pytestmark = pytest.mark.network

USERNET_IP6 = "2001:db8::2"
KERNEL_IP6 = "2001:db8::1"
ADDRESSES = ["--address", "192.0.2.2/24", "--address", f"{USERNET_IP6}/64"]


@pytest.fixture
def tap6(sandbox: Sandbox) -> Sandbox:
    """The sandbox with a persistent TAP `usernet0`: kernel side 192.0.2.1/24 and 2001:db8::1/64."""
    sandbox.in_namespace(lambda: Path("/proc/sys/net/ipv6/conf/default/accept_dad").write_text("0"))
    for cmd in (
        ["ip", "tuntap", "add", "mode", "tap", "name", "usernet0"],
        ["ip", "addr", "add", "192.0.2.1/24", "dev", "usernet0"],
        ["ip", "-6", "addr", "add", f"{KERNEL_IP6}/64", "dev", "usernet0", "nodad"],
        ["ip", "link", "set", "usernet0", "up"],
    ):
        sandbox.run(cmd, check=True)
    return sandbox


def _start(box: Sandbox, program: list[str], ready: str) -> subprocess.Popen[str]:
    proc = box.popen(
        [sys.executable, "-m", "usernet", "--tap", "usernet0", *ADDRESSES, *program],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=str(ROOT),
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if ready not in line:
        proc.kill()
        pytest.fail(f"{program[0]} did not start: {line!r} {proc.stderr.read()}")  # type: ignore[union-attr]  # piped
    return proc


def _wait_for_ipv6(box: Sandbox) -> None:
    """usernet's address is usable once its DAD (1 s) is over: until then it answers no solicitation."""
    for _ in range(20):
        if box.run([require("ping"), "-6", "-c", "1", "-W", "1", USERNET_IP6], capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    pytest.fail(f"{USERNET_IP6} never answered ping -6")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_curl_6_fetches_from_an_unmodified_aiohttp_app(tap6: Sandbox, tmp_path: Path, loop: str) -> None:
    require("curl")
    served = tmp_path / "served.bin"
    served.write_bytes(os.urandom(20 * 1024 * 1024))
    _start(tap6, ["--loop", loop, str(APPS / "aiohttp_app.py"), str(served), "8080", "::"], "Running on")
    _wait_for_ipv6(tap6)
    base = f"http://[{USERNET_IP6}]:8080"
    hello = _curl(tap6, "-6", "-g", f"{base}/")
    assert hello.stdout == b"hello from aiohttp\n", hello.stderr
    body = tmp_path / "body.bin"
    body.write_bytes(os.urandom(10 * 1024 * 1024))
    posted = _curl(tap6, "-6", "-g", "--data-binary", f"@{body}", "-H", "Content-Type: application/octet-stream",
                   f"{base}/sha256")  # fmt: skip
    assert posted.stdout.decode() == f"{10 * 1024 * 1024} {hashlib.sha256(body.read_bytes()).hexdigest()}\n"
    downloaded = _curl(tap6, "-6", "-g", f"{base}/file")
    assert hashlib.sha256(downloaded.stdout).digest() == hashlib.sha256(served.read_bytes()).digest()
    refused = _curl(tap6, "-4", "http://192.0.2.2:8080/")  # "::" listens on IPv6 only (asyncio sets IPV6_V6ONLY)
    assert refused.returncode != 0


def test_server_on_no_host_answers_both_families(tap6: Sandbox, tmp_path: Path) -> None:
    require("curl")
    served = tmp_path / "served.bin"
    served.write_bytes(b"x")
    _start(tap6, [str(APPS / "aiohttp_app.py"), str(served), "8080", "any"], "Running on")
    _wait_for_ipv6(tap6)
    for args in (["-6", "-g", f"http://[{USERNET_IP6}]:8080/"], ["-4", "http://192.0.2.2:8080/"]):
        answer = _curl(tap6, *args)
        assert answer.stdout == b"hello from aiohttp\n", (args, answer.stderr)


def _kernel_echo_server(box: Sandbox) -> tuple[socket.socket, threading.Thread]:
    listener = box.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.settimeout(60)
    listener.bind((KERNEL_IP6, 7000))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(60)
            buf = bytearray(1 << 16)
            while n := conn.recv_into(buf):
                conn.sendall(memoryview(buf)[:n])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_usernet_client_to_a_kernel_server_over_ipv6(tap6: Sandbox) -> None:
    listener, thread = _kernel_echo_server(tap6)
    size = 20 * 1024 * 1024
    with listener:
        proc = tap6.popen(
            [sys.executable, "-m", "usernet", "--tap", "usernet0", *ADDRESSES,
             str(APPS / "echo_client.py"), KERNEL_IP6, "7000", str(size)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=str(ROOT),
        )  # fmt: skip
        out, err = proc.communicate(timeout=120)
        thread.join(10)
    assert proc.returncode == 0, out + err
    names, result = out.splitlines()
    assert f"peername ('{KERNEL_IP6}', 7000, 0, 0)" in names and f"sockname ('{USERNET_IP6}'," in names, names
    assert result == f"received {size} same", out + err


def test_one_dual_stack_socket_answers_both_families(tap6: Sandbox) -> None:
    _start(tap6, [str(APPS / "dual_stack_server.py"), "8081"], "listening ('::', 8081, 0, 0)")
    _wait_for_ipv6(tap6)
    answers = []
    for family, address in ((socket.AF_INET6, USERNET_IP6), (socket.AF_INET, "192.0.2.2")):
        with tap6.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect((address, 8081))
            answers.append(sock.makefile("rb").readline().decode())
            port = sock.getsockname()[1]
            assert str(port) in answers[-1]
    assert answers[0].startswith(f"('{KERNEL_IP6}', ") and answers[0].endswith(", 0, 0) AF_INET6\n"), answers
    assert answers[1].startswith("('::ffff:192.0.2.1', ") and answers[1].endswith(", 0, 0) AF_INET6\n"), answers


#: TapLink options: software GSO and GRO (the default), vnet_hdr offloads (TSO6 and partial checksums).
BULK_MODES = {"gso-gro": {}, "offloads": {"offloads": True}}
BULK = 100 * 1024 * 1024


@pytest.mark.parametrize("mode", sorted(BULK_MODES))
def test_100_mb_each_way_over_ipv6_with_the_kernel(sandbox: Sandbox, mode: str) -> None:
    """usernet sends 100 MB to a kernel echo server over IPv6 while reading the echo: both
    directions at once, hashed; the link's counters show the offloads (or software GSO and
    GRO) carried them and the segments took header prediction."""
    link = sandbox.create_tap("usernet0", host_address="192.0.2.1/24", ipv6=True, **BULK_MODES[mode])
    sandbox.run(["ip", "-6", "addr", "add", f"{KERNEL_IP6}/64", "dev", "usernet0", "nodad"], check=True)
    config = InterfaceConfig.from_strings(
        link.mac, ["192.0.2.2/24", f"{USERNET_IP6}/64"], dad_transmits=0, slaac=False, **offload_options(link)
    )
    host = Host(link, Interface(config))
    data = os.urandom(BULK)
    listener, echo = _kernel_echo_server(sandbox)

    async def main() -> str:
        reader, writer = await asyncio.open_connection(KERNEL_IP6, 7000)
        digest = hashlib.sha256()

        async def read_back() -> None:
            while chunk := await reader.read(1 << 18):
                digest.update(chunk)

        reading = asyncio.ensure_future(read_back())
        view = memoryview(data)
        for at in range(0, BULK, 1 << 20):
            writer.write(view[at : at + (1 << 20)])
            await writer.drain()
        writer.write_eof()
        await asyncio.wait_for(reading, 60)
        writer.close()
        return digest.hexdigest()

    loop = LOOPS["asyncio"](host=host)
    with listener:
        try:
            got = loop.run_until_complete(asyncio.wait_for(main(), 120))
        finally:
            loop.close()
        echo.join(10)
    assert got == hashlib.sha256(data).hexdigest(), "100 MB went out and came back identical"
    stats = host.iface.stats()
    assert stats["tcp_rx_predicted"] >= stats["tcp_rx_segments"] - 3, stats
    if mode == "offloads":
        assert link.tx_gso_frames > 0 and link.rx_gso_frames > 0, "TSO6 both ways through the vnet header"
    else:
        assert link.tx_gso_frames > 0 and link.rx_gro_joined > 0, "software GSO and GRO on IPv6"
