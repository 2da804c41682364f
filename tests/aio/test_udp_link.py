"""Two unprivileged usernet processes joined by the UDP link on loopback: an unmodified
aiohttp server in one, an unmodified aiohttp client in the other, 10 MB each way, hashed.

No root, no device, no namespace: each process's link is a UDP socket on 127.0.0.1, and
usernet carries everything between them (`--only`: nothing falls back to the kernel's
TCP). Run as root, the test drops to nobody with setpriv first (or, for an interpreter nobody
cannot run, such as a pyenv Python under /root, to root without any capability), so it shows the path
works for an ordinary user. The server starts first, so its first frames meet a closed
port: on uvloop that once stopped its reader for good (libuv gives up on an fd with a
socket error), which is why the link's socket is never connected. Over IPv4, and over
IPv6 alone: neither process has an IPv4 address, neighbour discovery and DAD run over
the link's Ethernet frames, and the client reaches the server by its static address.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.link.test_udp import free_ports
from usernet.programs import find

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"
SIZE = 10 * 1024 * 1024


NOBODY = ["--reuid=65534", "--regid=65534", "--clear-groups"]
#: No capability at all (CAP_NET_ADMIN, CAP_NET_RAW...) and no way to regain one: what an
#: ordinary user holds, for an interpreter that nobody cannot run (a pyenv Python under /root).
NO_CAPABILITIES = ["--bounding-set=-all", "--inh-caps=-all", "--no-new-privs"]


@functools.cache
def as_ordinary_user() -> list[str]:
    """A command prefix that runs without privilege when we are root, nothing when we already are not.

    As nobody when this interpreter runs as nobody; otherwise as uid 0 stripped of every
    capability, which the test checks in /proc: the privilege a TAP would need is gone either way.
    """
    if os.geteuid() != 0:
        return []
    setpriv = find("setpriv")
    probe = subprocess.run([setpriv, *NOBODY, sys.executable, "-c", "import usernet"], capture_output=True, cwd=ROOT)
    return [setpriv, *(NOBODY if probe.returncode == 0 else NO_CAPABILITIES)]


def assert_unprivileged(pid: int) -> None:
    """The process runs as an ordinary user: not root, or root with no effective capability."""
    status = Path(f"/proc/{pid}/status").read_text()
    uid = int(status.split("\nUid:")[1].split()[0])
    capabilities = int(status.split("\nCapEff:")[1].split()[0], 16)
    assert uid != 0 or capabilities == 0, (uid, hex(capabilities))
    if os.geteuid() == 0 and NOBODY[0] in as_ordinary_user():
        assert uid == 65534


def usernet(link: str, address: str, loop: str, program: list[str]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERNET_")}
    options = ["--link", link, "--address", address, "--loop", loop, "--only"]
    command = [*as_ordinary_user(), sys.executable, "-m", "usernet", *options]
    return subprocess.Popen(
        [*command, *program], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )


#: Per family: the server's address, the client's, where aiohttp listens, the URL the client fetches.
FAMILIES = {
    4: ("192.0.2.2/24", "192.0.2.3/24", "0.0.0.0", "http://192.0.2.2:8080"),
    6: ("2001:db8:5::2/64", "2001:db8:5::3/64", "::", "http://[2001:db8:5::2]:8080"),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_aiohttp_server_and_client_in_two_rootless_processes(loop: str, family: int) -> None:
    server_address, client_address, listen, url = FAMILIES[family]
    folder = tempfile.mkdtemp(prefix="usernet-udp-link-")
    os.chmod(folder, 0o755)  # nobody reads the file the server sends
    data = Path(folder, "file")
    data.write_bytes(os.urandom(SIZE))
    data.chmod(0o644)
    server_port, client_port = free_ports(2)
    server = usernet(
        f"udp://127.0.0.1:{server_port}?peer=127.0.0.1:{client_port}",
        server_address,
        loop,
        [str(APPS / "aiohttp_app.py"), str(data), "8080", listen],
    )
    client = None
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()
        assert f"Running on http://{listen if family == 4 else '[::]'}:8080" in ready, server.stderr.read()  # type: ignore[union-attr]
        assert_unprivileged(server.pid)  # setpriv execs: the same process
        client = usernet(
            f"udp://127.0.0.1:{client_port}?peer=127.0.0.1:{server_port}",
            client_address,
            loop,
            [str(APPS / "aiohttp_fetch.py"), url, str(SIZE)],
        )
        out, err = client.communicate(timeout=120)
        assert client.returncode == 0, err
        fetched, fetched_hash, posted, posted_hash = out.split()
        assert (int(fetched), fetched_hash) == (SIZE, hashlib.sha256(data.read_bytes()).hexdigest())
        assert (int(posted), posted_hash) == (SIZE, hashlib.sha256(bytes(range(256)) * (SIZE // 256)).hexdigest())
    finally:
        for proc in (client, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
        data.unlink()
        os.rmdir(folder)
