"""Libraries that hold socket objects, run unmodified with `python -m usernet` on a real TAP (both loops).

httpx must reuse keep-alive connections (it polls the descriptor behind the transport),
anyio's listeners must land on usernet, asyncssh must be able to bind usernet's own
address, and the descriptor must tell select() the truth about a real connection.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.aio.test_tcp_network import APPS, KERNEL_IP, ROOT, USERNET_IP, _env, connect, on_usernet, read_all, tap
from usernet.link.sandbox import Sandbox
from usernet.programs import find

pytestmark = pytest.mark.network
LOOPS = ["asyncio", "uvloop"]
__all__ = ["tap"]


def kernel_http(box: Sandbox, port: int, *extra: str) -> subprocess.Popen[str]:
    server = box.popen(
        [sys.executable, str(APPS / "http_counter.py"), KERNEL_IP, str(port), *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    return server


def run_on_usernet(box: Sandbox, program: list[str], loop: str, timeout: float = 120) -> str:
    proc = on_usernet(box, program, loop=loop)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out + err
    return out.strip()


def certificate(tmp_path: Path, ip: str) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [find("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=usernet.test", "-addext", f"subjectAltName=IP:{ip}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize("loop", LOOPS)
def test_httpx_reuses_one_keep_alive_connection_for_200_gets(tap: Sandbox, loop: str) -> None:
    server = kernel_http(tap, 8080)
    try:
        out = run_on_usernet(tap, [str(APPS / "httpx_client.py"), f"http://{KERNEL_IP}:8080/", "200"], loop)
    finally:
        server.kill()
    assert out == "connections 1 of 200"


@pytest.mark.parametrize("loop", LOOPS)
def test_httpx_makes_one_tls_session_for_100_https_gets(tap: Sandbox, tmp_path: Path, loop: str) -> None:
    cert, key = certificate(tmp_path, KERNEL_IP)
    server = kernel_http(tap, 8443, str(cert), str(key))
    try:
        out = run_on_usernet(tap, [str(APPS / "httpx_client.py"), f"https://{KERNEL_IP}:8443/", "100", str(cert)], loop)
    finally:
        server.kill()
    assert out == "connections 1 of 100"  # one connection, so one handshake


@pytest.mark.parametrize("loop", LOOPS)
def test_httpx_sees_a_server_close_an_idle_connection_and_opens_a_new_one(tap: Sandbox, loop: str) -> None:
    server = kernel_http(tap, 8080, "--idle", "0.3")
    try:
        out = run_on_usernet(
            tap, [str(APPS / "httpx_client.py"), f"http://{KERNEL_IP}:8080/", "3", "--pause", "1.0"], loop
        )
    finally:
        server.kill()
    assert out == "connections 2 of 3"  # the first, closed while idle; the next two on a new one


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("mode", ["listen", "listen-any"])
def test_anyio_listener_on_the_wildcard_answers_at_usernets_address(tap: Sandbox, loop: str, mode: str) -> None:
    if mode == "listen-any":  # with an IPv6 address up, anyio listens on "::" dual-stack
        tap.run(["ip", "addr", "add", "2001:db8::1/64", "dev", "usernet0", "nodad"], check=True)
    family = "AF_INET6" if mode == "listen-any" else "AF_INET"
    proc = on_usernet(tap, [str(APPS / "anyio_app.py"), mode, "8000"], loop=loop, ready=f"listening {family}\n")
    try:
        echoes(tap, 8000, 200_000)
    finally:
        proc.kill()
        proc.communicate()


def echoes(box: Sandbox, port: int, size: int) -> None:
    """`size` random bytes and a FIN to usernet's `port` from the kernel side come back intact."""
    payload = os.urandom(size)
    with connect(box, port) as sock:

        def send() -> None:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        back = read_all(sock)
        sender.join()
    assert len(back) == size and hashlib.sha256(back).digest() == hashlib.sha256(payload).digest()


def kernel_echo(box: Sandbox, port: int) -> Generator[None, None, None]:
    """A TCP and a UDP echo on the kernel side, in threads, for as long as the generator is open."""
    tcp = box.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind((KERNEL_IP, port))
    tcp.listen()
    udp = box.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((KERNEL_IP, port))
    seen: list[str] = []

    def serve_tcp() -> None:
        while True:
            try:
                conn, peer = tcp.accept()
            except OSError:
                return
            seen.append(peer[0])
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    def serve_udp() -> None:
        while True:
            try:
                data, peer = udp.recvfrom(65536)
            except OSError:
                return
            seen.append(peer[0])
            udp.sendto(data, peer)

    threads = [threading.Thread(target=serve_tcp, daemon=True), threading.Thread(target=serve_udp, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for sock in (tcp, udp):
            sock.shutdown(socket.SHUT_RDWR) if sock is tcp else None
            sock.close()
    assert seen == [USERNET_IP, USERNET_IP], seen  # both came from usernet's address


@pytest.mark.parametrize("loop", LOOPS)
def test_anyio_connect_tcp_and_udp_socket_go_through_usernet(tap: Sandbox, loop: str) -> None:
    echo = kernel_echo(tap, 9000)
    next(echo)
    out = run_on_usernet(tap, [str(APPS / "anyio_app.py"), "connect", KERNEL_IP, "9000"], loop)
    assert out == f"tcp {USERNET_IP} udp 0.0.0.0 ok"
    with pytest.raises(StopIteration):
        next(echo)


@pytest.mark.parametrize("loop", LOOPS)
def test_starlette_on_uvicorn_answers_from_usernet(tap: Sandbox, loop: str) -> None:
    proc = tap.popen(
        [sys.executable, "-m", "usernet", "--tap", "usernet0", "--loop", loop, str(APPS / "starlette_app.py"),
         "8001", loop],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(), cwd=str(ROOT),
    )  # fmt: skip
    try:
        with connect(tap, 8001) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: usernet\r\nConnection: close\r\n\r\n")
            answer = read_all(sock)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello from starlette"), answer
    finally:
        proc.kill()
        proc.communicate()


@pytest.fixture
def sshd(tap: Sandbox, tmp_path: Path) -> Iterator[Path]:
    """An OpenSSH server of the test's own on 192.0.2.1:2222; yields the client key it accepts."""
    keygen = find("ssh-keygen")
    host_key, client_key = tmp_path / "host_key", tmp_path / "client_key"
    for key in (host_key, client_key):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    authorized = tmp_path / "authorized_keys"
    authorized.write_text((tmp_path / "client_key.pub").read_text())
    config = tmp_path / "sshd_config"
    config.write_text(
        f"ListenAddress {KERNEL_IP}\nPort 2222\nHostKey {host_key}\nAuthorizedKeysFile {authorized}\n"
        "PidFile none\nUsePAM no\nStrictModes no\nPermitRootLogin yes\nAllowTcpForwarding yes\n"
        "ClientAliveInterval 1\nClientAliveCountMax 3\n"  # a session whose client vanished ends in seconds
    )
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    with open(tmp_path / "sshd.log", "w") as log:
        proc = tap.popen([find("sshd"), "-D", "-e", "-f", str(config)], stderr=log)
    try:
        for _ in range(100):
            probe = tap.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                probe.connect((KERNEL_IP, 2222))
                break
            except ConnectionRefusedError:
                select.select([], [], [], 0.05)
            finally:
                probe.close()
        yield client_key
    finally:
        for pid in [*descendants(proc.pid), proc.pid]:  # the session processes sshd forked, then sshd
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (from /proc), deepest last."""
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return [grand for child in children for grand in [child, *descendants(child)]]


@pytest.mark.parametrize("loop", LOOPS)
def test_asyncssh_forwards_a_megabyte_from_a_port_on_usernets_own_address(tap: Sandbox, sshd: Path, loop: str) -> None:
    echo = kernel_echo(tap, 9100)
    next(echo)
    proc = on_usernet(
        tap, [str(APPS / "ssh_forward.py"), KERNEL_IP, "2222", str(sshd), USERNET_IP, KERNEL_IP, "9100"], loop=loop
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("forwarding "), line + proc.stderr.read()  # type: ignore[union-attr]
        echoes(tap, int(line.split()[1]), 1_000_000)
    finally:
        proc.kill()
        proc.communicate()
    echo.close()


@pytest.mark.parametrize("loop", LOOPS)
def test_the_descriptor_of_a_real_connection_follows_data_fin_and_rst(tap: Sandbox, loop: str) -> None:
    proc = on_usernet(tap, [str(APPS / "poll_descriptor.py"), "8200"], loop=loop, ready="listening")
    try:
        with connect(tap, 8200) as sock:
            sock.sendall(b"hello")
            assert sock.recv(1) == b"1"
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(1) == b"2"
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and out.strip() == "ok", out + err
    finally:
        proc.kill()
        proc.communicate()
