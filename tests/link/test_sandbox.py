"""Sandbox: namespaces are made, used from this process, and always taken down."""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

import usernet.link.sandbox
from tests.programs import require
from usernet.link.sandbox import Sandbox

pytestmark = pytest.mark.network


def exists(name: str) -> bool:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return os.path.exists(f"/run/netns/{name}") or name in listed.split()


def netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def test_open_makes_a_named_namespace_with_loopback_up():
    with Sandbox("unit") as box:
        assert re.fullmatch(r"usernet-unit-[0-9a-f]{6}", box.name)
        assert exists(box.name)
        lo = box.run(["ip", "-o", "link", "show", "lo"], capture_output=True, text=True, check=True)
        assert "UP" in lo.stdout.split("<")[1].split(">")[0].split(",")
        pinged = box.run([require("ping"), "-c", "1", "-W", "2", "127.0.0.1"], capture_output=True)
        assert pinged.returncode == 0
    assert not exists(box.name)


def test_close_removes_namespace_tap_sockets_and_processes():
    box = Sandbox().open()
    tap = box.create_tap("sbxtest0")
    sock = box.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sleeper = box.popen(["sleep", "60"])
    box.close()
    assert not exists(box.name)
    assert tap.closed and sock.fileno() == -1
    assert sleeper.returncode == -signal.SIGTERM
    box.close()  # idempotent


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_namespace_is_gone_when_the_body_raises(error: type[BaseException]):
    with pytest.raises(error), Sandbox() as box:
        tap = box.create_tap()
        raise error("boom")
    assert not exists(box.name) and tap.closed


def test_this_process_stays_in_its_own_namespace():
    before = netns_inode()
    with Sandbox() as box:
        box.create_tap("sbxtest1")
        sock = box.socket()
        sock.bind(("192.0.2.1", 0))  # the address exists only inside the sandbox
        assert netns_inode() == before
        assert "sbxtest1" not in {name for _, name in socket.if_nameindex()}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as outside:
            with pytest.raises(OSError) as info:
                outside.bind(("192.0.2.1", 0))
            assert info.value.errno == errno.EADDRNOTAVAIL


def test_a_process_that_ignores_sigterm_is_killed(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(usernet.link.sandbox, "_TERMINATE_TIMEOUT", 0.2)
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    with Sandbox() as box:
        stubborn = box.popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert stubborn.stdout is not None and stubborn.stdout.readline() == "ready\n"
    assert stubborn.returncode == -signal.SIGKILL
    stubborn.stdout.close()


def udp_send_errors(sock: socket.socket, count: int) -> int:
    failures = 0
    for _ in range(count):
        try:
            sock.sendto(b"x", ("192.0.2.2", 9))
        except PermissionError:
            failures += 1
    return failures


def test_drop_rate_drops_a_random_share_of_kernel_packets(sandbox: Sandbox):
    require("nft")
    tap = sandbox.create_tap()
    # a permanent neighbour: datagrams go straight to the TAP instead of queueing behind ARP
    # (where they would fill the socket's send buffer and block the sender)
    neigh = ["ip", "neigh", "add", "192.0.2.2", "lladdr", tap.mac.hex(":"), "dev", "usernet0", "nud", "permanent"]
    sandbox.run(neigh, check=True)
    sock = sandbox.socket()
    sandbox.drop_rate(100, "usernet0")
    assert udp_send_errors(sock, 50) == 50  # a netfilter drop is EPERM for a local sender
    sandbox.drop_rate(30, "usernet0")
    dropped = udp_send_errors(sock, 2000)
    assert abs(dropped - 600) < 5 * (2000 * 0.3 * 0.7) ** 0.5
    ruleset = sandbox.run([require("nft"), "list", "ruleset"], capture_output=True, text=True, check=True).stdout
    assert 'oifname "usernet0"' in ruleset and "numgen random mod 100 < 30" in ruleset
    sandbox.drop_rate(0, "usernet0")
    assert udp_send_errors(sock, 50) == 0


def test_using_a_closed_or_reopened_sandbox_is_refused():
    box = Sandbox()
    with pytest.raises(RuntimeError, match="new"):
        box.create_tap()
    with box:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        box.socket()
    with pytest.raises(RuntimeError, match="already opened"):
        box.open()


def test_purpose_must_be_a_plain_name():
    with pytest.raises(ValueError):
        Sandbox("a b/c")


def run_script(code: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )  # type: ignore[call-overload]  # keywords passed through


def test_sigterm_closes_open_sandboxes_then_terminates_as_before():
    script = run_script(
        "from usernet.link.sandbox import Sandbox; import time\n"
        "box = Sandbox('sigterm').open(); box.create_tap()\n"
        "print(box.name, flush=True); time.sleep(60)\n"
    )
    assert script.stdout is not None
    name = script.stdout.readline().strip()
    assert name.startswith("usernet-sigterm-") and exists(name)
    script.send_signal(signal.SIGTERM)
    _, err = script.communicate(timeout=30)
    assert script.returncode == -signal.SIGTERM, err
    assert not exists(name)


def test_sigterm_chains_to_a_previous_handler():
    script = run_script(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('previous handler ran', flush=True), sys.exit(3)))\n"
        "from usernet.link.sandbox import Sandbox\n"
        "box = Sandbox('chain').open()\n"
        "print(box.name, flush=True); time.sleep(60)\n"
    )
    assert script.stdout is not None
    name = script.stdout.readline().strip()
    script.send_signal(signal.SIGTERM)
    out, err = script.communicate(timeout=30)
    assert script.returncode == 3 and "previous handler ran" in out, err
    assert not exists(name)


def test_interpreter_exit_closes_a_forgotten_sandbox():
    script = run_script("from usernet.link.sandbox import Sandbox; print(Sandbox('atexit').open().name)")
    out, err = script.communicate(timeout=30)
    assert script.returncode == 0, err
    assert not exists(out.strip())


def test_without_cap_net_admin_the_error_says_what_is_needed():
    drop = [require("setpriv"), "--inh-caps=-net_admin,-sys_admin", "--bounding-set=-net_admin,-sys_admin"]
    code = (
        "from usernet.link.sandbox import Sandbox; "
        "print(Sandbox('nocap').name, flush=True); Sandbox.open(Sandbox('nocap'))"
    )
    result = subprocess.run([*drop, sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "PermissionError" in result.stderr and "CAP_NET_ADMIN" in result.stderr, result.stderr
    assert not [n for n in os.listdir("/run/netns") if n.startswith("usernet-nocap-")]
