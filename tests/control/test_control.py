"""The control socket: what it answers, its file permissions, and that it refuses other users."""

from __future__ import annotations

import gc
import json
import os
import socket
import stat
import subprocess
import tempfile
import textwrap
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from usernet.apps.ss import format_sockets, format_stats
from usernet.drivers.control import ControlServer, Inbox, query, runtime_dir, serving, snapshot
from usernet.stack import Interface, InterfaceConfig
from usernet.stack.udp import ANY

MAC = bytes.fromhex("020000000002")


@pytest.fixture
def private_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runtime dir of our own, as runtime_dir(create=True) would make it."""
    with tempfile.TemporaryDirectory(prefix="usernet-control-") as name:
        monkeypatch.setenv("XDG_RUNTIME_DIR", name)
        yield runtime_dir(create=True)


def _iface() -> Interface:
    iface = Interface(InterfaceConfig.from_strings(MAC, ["192.0.2.2/24"]))
    iface.tcp.listen((ANY, 7))
    iface.tcp.connect((bytes([192, 0, 2, 1]), 80), 0.0)
    iface.open_udp((ANY, 53))
    return iface


def test_answers_sockets_and_stats_through_the_inbox(private_dir: Path) -> None:
    iface = _iface()
    woken = threading.Event()
    inbox = Inbox(woken.set)
    stop = False

    def stack_thread() -> None:  # plays the select loop: runs handed-in work when woken
        while not stop:
            woken.wait(1)
            woken.clear()
            inbox.run()

    loop = threading.Thread(target=stack_thread)
    loop.start()

    def answer(request: str) -> dict[str, object]:
        return inbox.call(lambda: snapshot(iface, request))

    with ControlServer(answer) as server:
        assert server.path == private_dir / f"{os.getpid()}.sock"
        assert stat.S_IMODE(server.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(private_dir.stat().st_mode) == 0o700
        [answer_] = query("sockets", os.getpid())
        states = sorted((s["proto"], s["state"], s["local"]) for s in answer_["sockets"])
        assert states == [
            ("tcp", "LISTEN", "0.0.0.0:7"),
            ("tcp", "SYN_SENT", states[1][2]),
            ("udp", "UNCONN", "0.0.0.0:53"),
        ]
        lines = format_sockets([answer_], every=True, details=True)
        assert lines[0].startswith("Netid") and any("SYN-SENT" in line and "192.0.2.1:80" in line for line in lines)
        assert any(line.startswith("\t ") and "cwnd:" in line and "rtt:-/" in line for line in lines)
        assert len(format_sockets([answer_], listening=True)) == 3  # header, LISTEN, UNCONN
        [stats] = query("stats")
        assert "tx_frames" in stats["counters"] and stats["pid"] == os.getpid()
        assert format_stats([stats])[0].startswith(f"pid {os.getpid()}")
    stop = True
    woken.set()
    loop.join()
    assert not server.path.exists()
    assert query("sockets") == []


def test_a_directory_others_can_enter_is_refused(private_dir: Path) -> None:
    private_dir.chmod(0o755)
    with pytest.raises(PermissionError, match="mode 0700"):
        runtime_dir(create=True)


def _client_as_nobody(path: Path) -> subprocess.CompletedProcess[str]:
    """A client run as uid 65534 (system python: nothing of ours needed)."""
    script = textwrap.dedent(f"""
        import socket
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect({str(path)!r})
        except OSError as exc:
            print("connect failed:", exc.strerror)
        else:
            try:
                s.sendall(b"sockets\\n")
            except BrokenPipeError:
                pass  # refused before the request was read: the answer is waiting all the same
            print(s.recv(65536).decode())
    """)
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip  # the subprocess options on one line


@pytest.mark.skipif(os.geteuid() != 0, reason="not root: setpriv needs root to become another user")
def test_another_user_is_refused(private_dir: Path) -> None:
    iface = _iface()
    with ControlServer(lambda request: snapshot(iface, request)) as server:
        locked = _client_as_nobody(server.path)
        assert "connect failed: Permission denied" in locked.stdout, locked.stderr
        # Open the file system lock: the SO_PEERCRED check must still refuse
        private_dir.chmod(0o711)
        private_dir.parent.chmod(0o711)
        server.path.chmod(0o666)
        unlocked = _client_as_nobody(server.path)
        assert unlocked.stdout.startswith("{"), (unlocked.stdout, unlocked.stderr)
        reply = json.loads(unlocked.stdout)
        assert reply["error"].startswith("refused: uid 65534"), unlocked.stderr
        assert "sockets" not in reply and server.refused == 1
        assert query("sockets", os.getpid())[0]["sockets"]  # we still get our answer


def test_serving_goes_on_without_a_control_socket_when_the_dir_is_unsafe(
    private_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private_dir.chmod(0o777)
    with serving(lambda request: {}) as server:
        assert server is None
    assert "no control socket for usernet ss" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() != 0, reason="not root: setpriv needs root to become another user")
def test_an_ordinary_user_serves_and_queries_its_own_control_socket() -> None:
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="usernet-nobody-") as runtime:
        os.chown(runtime, 65534, 65534)
        script = textwrap.dedent("""
            import os
            from usernet.drivers.control import ControlServer, query
            with ControlServer(lambda request: {"sockets": []}) as server:
                print(oct(os.stat(server.path).st_mode & 0o777), oct(os.stat(server.path.parent).st_mode & 0o777))
                print(query("sockets")[0]["pid"] == os.getpid())
        """)
        result = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script],
            capture_output=True, text=True, timeout=60,
            env={"PYTHONPATH": str(root), "XDG_RUNTIME_DIR": runtime, "PATH": os.environ["PATH"]},
        )  # fmt: skip  # the subprocess options on one line
        assert result.stdout.split() == ["0o600", "0o700", "True"], result.stderr


def test_a_bad_request_gets_a_clear_error_and_the_server_goes_on(private_dir: Path) -> None:
    iface = _iface()
    with ControlServer(lambda request: snapshot(iface, request)) as server:
        for request in (b"bogus\n", b"x" * 10000, b""):
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(10)
                client.connect(str(server.path))
                client.sendall(request)
                client.shutdown(socket.SHUT_WR)
                reply = json.loads(client.recv(65536))
            assert reply["error"].startswith("unknown request") and "sockets, stats" in reply["error"]
        assert query("stats", os.getpid())[0]["counters"] is not None


def test_a_socket_that_cannot_be_bound_is_closed(private_dir: Path) -> None:
    """A control socket path too long for AF_UNIX is refused, its socket closed (not left to the GC)."""
    deep = private_dir / ("d" * 120)
    deep.mkdir(mode=0o700)
    gc.collect()  # what earlier tests left to the GC warns now, not in the block
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(OSError):
            ControlServer(lambda request: {}, deep)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning) and "family=1," in str(w.message)]


def test_a_process_that_hangs_up_without_answering_is_reported_not_raised(private_dir: Path) -> None:
    """One process dying mid-answer must not take `usernet ss` down for all the others."""
    path = private_dir / "999999.sock"
    with socket.socket(socket.AF_UNIX) as mute:
        mute.bind(str(path))
        mute.listen(1)

        def hang_up() -> None:
            conn, _ = mute.accept()
            conn.recv(256)
            conn.sendall(b'{"pid": 9')  # cut off mid-answer
            conn.close()

        thread = threading.Thread(target=hang_up)
        thread.start()
        answers = query("sockets", directory=private_dir)
        thread.join()
    assert answers == [{"pid": 999999, "error": f"{path}: the answer is not JSON (cut off?)"}]
