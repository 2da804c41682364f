"""TCP programs run unmodified with `python -m usernet` on a real TAP, the kernel side as their peer.

Each test makes a namespace with a persistent TAP in it; the program under test runs
inside the namespace on usernet (192.0.2.2), the kernel's clients and servers sit on
the TAP's other side (192.0.2.1).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.programs import require
from usernet.link.sandbox import Sandbox

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
APPS = Path(__file__).resolve().parent / "apps"
USERNET_IP = "192.0.2.2"
KERNEL_IP = "192.0.2.1"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("USERNET_")}


@pytest.fixture
def tap(sandbox: Sandbox) -> Sandbox:
    """The sandbox with a persistent TAP `usernet0` whose kernel side is 192.0.2.1/24."""
    for cmd in (
        ["ip", "tuntap", "add", "mode", "tap", "name", "usernet0"],
        ["ip", "addr", "add", f"{KERNEL_IP}/24", "dev", "usernet0"],
        ["ip", "link", "set", "usernet0", "up"],
    ):
        sandbox.run(cmd, check=True)
    return sandbox


def on_usernet(
    box: Sandbox, program: list[str], *, loop: str = "asyncio", ready: str | None = None
) -> subprocess.Popen[str]:
    """Start `program` with `python -m usernet` inside the namespace; wait for its `ready` line."""
    proc = box.popen(
        [sys.executable, "-m", "usernet", "--tap", "usernet0", "--loop", loop, *program],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=str(ROOT),
    )
    assert proc.stdout is not None
    if ready is not None:
        line = proc.stdout.readline()
        if ready not in line:
            proc.kill()
            pytest.fail(f"{program[0]} did not start: {line!r} {proc.stderr.read()}")  # type: ignore[union-attr]  # not None here
    return proc


def kernel_client(box: Sandbox) -> socket.socket:
    sock = box.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    return sock


def connect(box: Sandbox, port: int) -> socket.socket:
    """A kernel TCP connection to usernet, retried while the program is still starting to listen."""
    for _ in range(100):
        sock = kernel_client(box)
        try:
            sock.connect((USERNET_IP, port))
            return sock
        except ConnectionRefusedError:
            sock.close()
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {USERNET_IP}:{port}")


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_daytime_example_returns_a_date_and_closes(tap: Sandbox, loop: str) -> None:
    on_usernet(tap, [str(EXAMPLES / "daytime_server.py")], loop=loop, ready="daytime listening")
    with connect(tap, 13) as sock:
        answer = read_all(sock).decode()
    assert re.fullmatch(r"\w+day, \w+ \d\d, \d{4} \d\d:\d\d:\d\d-\w*\r\n", answer), answer


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_echo_example_returns_what_was_sent(tap: Sandbox, loop: str) -> None:
    on_usernet(tap, [str(EXAMPLES / "echo_server.py")], loop=loop, ready="TCP echo listening")
    payload = os.urandom(3_000_000)
    with connect(tap, 7) as sock:
        sock.sendall(b"hello\n")
        assert sock.recv(100) == b"hello\n"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            reading = pool.submit(read_all, sock)
            sock.sendall(payload)  # more than both stacks' buffers: flow control on every hop
            sock.shutdown(socket.SHUT_WR)
            back = reading.result()
    assert len(back) == len(payload) and hashlib.sha256(back).digest() == hashlib.sha256(payload).digest()


def test_chat_example_passes_lines_between_clients(tap: Sandbox) -> None:
    on_usernet(tap, [str(EXAMPLES / "chat_server.py")], ready="chat listening")
    with connect(tap, 5555) as alice, connect(tap, 5555) as bob:
        alice_file, bob_file = alice.makefile("rb"), bob.makefile("rb")
        assert alice_file.readline().startswith(b"welcome")
        assert bob_file.readline().startswith(b"welcome")
        assert alice_file.readline().endswith(b"joined\n")
        bob.sendall(b"hi alice\n")
        name = f"{KERNEL_IP}:{bob.getsockname()[1]}".encode()
        assert alice_file.readline() == name + b": hi alice\n"
        alice.sendall(b"hi bob\n")
        assert bob_file.readline().endswith(b": hi bob\n")


def _curl(box: Sandbox, *args: str) -> subprocess.CompletedProcess[bytes]:
    return box.run([require("curl"), "-sS", "--max-time", "60", *args], capture_output=True)


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(20 * 1024 * 1024))
    return path


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_unmodified_aiohttp_app_serves_curl(tap: Sandbox, big_file: Path, tmp_path: Path, loop: str) -> None:
    require("curl")
    on_usernet(tap, [str(APPS / "aiohttp_app.py"), str(big_file)], loop=loop, ready="Running on")
    base = f"http://{USERNET_IP}:8080"
    hello = _curl(tap, "-v", f"{base}/", f"{base}/")  # two requests, one connection
    assert hello.stdout == b"hello from aiohttp\n" * 2, hello.stderr
    assert re.search(rb"Re-using existing connection|Reusing existing", hello.stderr), hello.stderr
    body = tmp_path / "body.bin"
    body.write_bytes(os.urandom(10 * 1024 * 1024))
    posted = _curl(tap, "--data-binary", f"@{body}", "-H", "Content-Type: application/octet-stream", f"{base}/sha256")
    assert posted.stdout.decode() == f"{10 * 1024 * 1024} {hashlib.sha256(body.read_bytes()).hexdigest()}\n"
    chunked = _curl(tap, "-i", f"{base}/chunked")
    assert b"Transfer-Encoding: chunked" in chunked.stdout
    assert chunked.stdout.split(b"\r\n\r\n", 1)[1] == b"".join(b"chunk %d\n" % i for i in range(100))
    downloaded = _curl(tap, f"{base}/file")
    assert hashlib.sha256(downloaded.stdout).digest() == hashlib.sha256(big_file.read_bytes()).digest()


@pytest.fixture
def memcached(tap: Sandbox) -> Iterator[int]:
    tap.popen([require("memcached"), "-u", "root", "-l", KERNEL_IP, "-p", "11211", "-U", "0", "-m", "64"])
    yield 11211


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_aiomcache_client_against_real_memcached(tap: Sandbox, memcached: int, loop: str) -> None:
    _wait_for_port(tap, memcached)
    client = on_usernet(tap, [str(EXAMPLES / "memcached_client.py"), KERNEL_IP, str(memcached), "10000"], loop=loop)
    out, err = client.communicate(timeout=120)
    assert client.returncode == 0 and re.search(r"^10000 set/get pairs .* 0 wrong$", out, re.M), out + err


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_redis_asyncio_client_against_real_redis(tap: Sandbox, loop: str) -> None:
    redis = require("redis-server")
    tap.popen(
        [redis, "--bind", KERNEL_IP, "--port", "6379", "--save", "", "--appendonly", "no", "--protected-mode", "no"],
        stdout=subprocess.DEVNULL,
    )
    _wait_for_port(tap, 6379)
    client = on_usernet(tap, [str(APPS / "redis_client.py"), KERNEL_IP, "6379", "10000"], loop=loop)
    out, err = client.communicate(timeout=120)
    assert client.returncode == 0 and out.strip() == "10000 ok", out + err


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_server_on_usernet_answers_a_kernel_tls_client(tap: Sandbox, tmp_path: Path, loop: str) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            require("openssl"),
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=usernet.test",
            "-addext",
            f"subjectAltName=IP:{USERNET_IP}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    on_usernet(tap, [str(APPS / "tls_echo.py"), str(cert), str(key)], loop=loop, ready="TLS echo listening")
    context = ssl.create_default_context(cafile=str(cert))
    payload = os.urandom(1_000_000)
    with connect(tap, 4433) as raw, context.wrap_socket(raw, server_hostname=USERNET_IP) as tls:
        assert tls.version() is not None and tls.getpeercert()["subject"] == ((("commonName", "usernet.test"),),)
        tls.sendall(payload)
        back = b""
        while len(back) < len(payload):
            back += tls.recv(65536)
    assert back == payload


def _wait_for_port(box: Sandbox, port: int) -> None:
    """Until a kernel server in the namespace accepts on KERNEL_IP:port."""
    for _ in range(200):
        with kernel_client(box) as sock:
            if sock.connect_ex((KERNEL_IP, port)) == 0:
                return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on {KERNEL_IP}:{port}")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_echo_example_with_tap_offloads(tap: Sandbox, loop: str) -> None:
    """`--offloads` (vnet_hdr, checksum offload, TSO) under an unmodified program: bytes intact."""
    on_usernet(tap, ["--offloads", str(EXAMPLES / "echo_server.py")], loop=loop, ready="TCP echo listening")
    payload = os.urandom(20_000_000)
    with connect(tap, 7) as sock, concurrent.futures.ThreadPoolExecutor(1) as pool:
        reading = pool.submit(read_all, sock)
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        back = reading.result()
    assert len(back) == len(payload) and hashlib.sha256(back).digest() == hashlib.sha256(payload).digest()
