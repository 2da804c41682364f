"""The control socket: a running usernet process shows its sockets and counters to its own user.

Each process that drives a stack (`usernet up`, programs under `python -m usernet` or
`usernet run`) listens on a Unix socket `<runtime dir>/<pid>.sock`, where the runtime
dir is `$XDG_RUNTIME_DIR/usernet` or else `/tmp/usernet-<uid>`, mode 0700, and the
socket 0600. Two locks, then: the file system keeps other users out, and the server
checks each peer's SO_PEERCRED uid and refuses anyone but its own user (also root).

A client sends one request line ("sockets" or "stats") and reads one JSON document.
The answer is computed on the stack's own thread: the server thread hands the work to
whoever drives the stack (`run_on_stack`), since the stack is single-threaded.
`usernet ss` and `usernet stats` are clients; `query()` is the same from Python.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import queue
import socket
import stat
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from usernet.stack.interface import Interface

__all__ = ["ControlServer", "Inbox", "query", "runtime_dir", "serving", "snapshot"]

T = TypeVar("T")
REQUESTS = ("sockets", "stats")
_ANSWER_TIMEOUT = 5.0
_MAX_REQUEST = 256


def runtime_dir(create: bool = False) -> Path:
    """The per-user directory of control sockets; with `create`, made (0700) and checked to be ours alone."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    path = Path(base) / "usernet" if base else Path(f"/tmp/usernet-{os.geteuid()}")
    if create:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise PermissionError(
                f"{path} must be a directory owned by uid {os.geteuid()} with mode 0700 (it holds control "
                "sockets): remove it, or set XDG_RUNTIME_DIR to a private directory"
            )
    return path


def _address(addr: tuple[bytes, int]) -> str:
    return f"{ipaddress.IPv4Address(addr[0])}:{addr[1]}"


def snapshot(iface: Interface, request: str) -> dict[str, Any]:
    """The answer to `request` from the stack's state; call it on the stack's thread."""
    if request == "stats":
        return {"interface": {"mac": iface.mac.hex(":"), "mtu": iface.mtu}, "counters": iface.stats()}
    sockets: list[dict[str, Any]] = []
    for listener in iface.tcp.listeners():
        sockets.append({
            "proto": "tcp", "state": "LISTEN", "local": _address(listener.local), "remote": "*:*",
            "recv_q": listener.pending, "send_q": listener.backlog,
        })  # fmt: skip  # one socket's fields, grouped
    for conn in iface.tcp.connections():
        sockets.append({
            "proto": "tcp", "state": conn.state.name, "local": _address(conn.local), "remote": _address(conn.remote),
            "recv_q": conn.readable, "send_q": conn.unsent, "info": conn.info(),
        })  # fmt: skip  # one socket's fields, grouped
    for udp in iface.udp.sockets():
        sockets.append({
            "proto": "udp", "state": "ESTABLISHED" if udp.remote else "UNCONN", "local": _address(udp.local),
            "remote": _address(udp.remote) if udp.remote else "*:*", "recv_q": len(udp.queue), "send_q": 0,
            "info": {"dropped": udp.dropped},
        })  # fmt: skip  # one socket's fields, grouped
    return {"sockets": sockets}


class Inbox:
    """Work handed to a loop that is not asyncio (the select loop): `call` from any thread, `run` on the loop's.

    `wake` cuts the loop's wait short (a selectloop.Waker's `wake`), so an answer does
    not wait for the next frame or timeout.
    """

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._work: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()

    def call(self, fn: Callable[[], T]) -> T:
        future: Future[T] = Future()
        self._work.put((fn, future))
        self._wake()
        return future.result(_ANSWER_TIMEOUT)

    def run(self) -> None:
        while True:
            try:
                fn, future = self._work.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(fn())
            except Exception as exc:
                future.set_exception(exc)


class ControlServer:
    """Answers control requests on `<runtime dir>/<pid>.sock` from a thread of its own.

    `answer(request)` is called on that thread for each accepted request; it must get the
    data on the stack's thread (an Inbox's `call`, or the asyncio loop's threadsafe calls).
    """

    def __init__(self, answer: Callable[[str], dict[str, Any]], directory: Path | None = None) -> None:
        self._answer = answer
        directory = directory if directory is not None else runtime_dir(create=True)
        self.path = directory / f"{os.getpid()}.sock"
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket of an earlier process that had our pid
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # No umask around the bind: it is the whole process's, and another thread creating
            # a file meanwhile would get our mode. Until the chmod, the 0700 directory and the
            # SO_PEERCRED check keep other users out.
            self._sock.bind(str(self.path))
            os.chmod(self.path, 0o600)
            self._sock.listen(16)
        except BaseException:
            self._sock.close()
            raise
        self.refused = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="usernet control", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self._thread.join(_ANSWER_TIMEOUT)
        self._sock.close()

    def __enter__(self) -> ControlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(_ANSWER_TIMEOUT)
                try:
                    conn.sendall(json.dumps(self._reply(conn)).encode() + b"\n")
                except OSError:
                    continue  # the client went away: its loss

    def _reply(self, conn: socket.socket) -> dict[str, Any]:
        pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid != os.geteuid():
            self.refused += 1
            return {"error": f"refused: uid {uid} (pid {pid}) is not this process's user (uid {os.geteuid()})"}
        request = conn.recv(_MAX_REQUEST).decode(errors="replace").strip()
        if request not in REQUESTS:
            return {"error": f"unknown request {request!r}: ask for one of {', '.join(REQUESTS)}"}
        try:
            answer = self._answer(request)
        except Exception as exc:
            return {"error": f"the stack could not answer: {exc!r}"}
        return {"pid": os.getpid(), "argv": sys.argv, **answer}


@contextlib.contextmanager
def serving(answer: Callable[[str], dict[str, Any]]) -> Iterator[ControlServer | None]:
    """A ControlServer for the `with` block, or None (said on stderr) when none can be made:
    the program runs on, only `usernet ss` cannot see it."""
    try:
        server = ControlServer(answer)
    except OSError as exc:
        print(f"usernet: no control socket for usernet ss: {exc}", file=sys.stderr)
        yield None
        return
    with server:
        yield server


def _ask(path: Path, request: str) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(_ANSWER_TIMEOUT * 2)
        sock.connect(str(path))
        try:
            sock.sendall(request.encode() + b"\n")
        except BrokenPipeError:
            pass  # a refusal comes before the request is read: it is waiting to be read all the same
        data = bytearray()
        while chunk := sock.recv(65536):
            data += chunk
    answer: dict[str, Any] = json.loads(data)
    return answer


def query(request: str = "sockets", pid: int | None = None, directory: Path | None = None) -> list[dict[str, Any]]:
    """The answers of every running usernet process of this user (or of `pid`), one dict each.

    Sockets of processes that have exited are removed. An answer with an "error" key
    says why that process did not answer.
    """
    directory = directory if directory is not None else runtime_dir()
    answers = []
    for path in _sockets_in(directory, pid):
        try:
            answers.append(_ask(path, request))
        except FileNotFoundError:
            continue  # no such process (with pid=), or it just exited
        except ConnectionRefusedError:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # nobody listens: the process is gone
        except OSError as exc:
            answers.append({"pid": int(path.stem), "error": f"{path}: {exc.strerror or exc}"})
        except ValueError:  # json's error: the process died (or was killed) while it answered
            answers.append({"pid": int(path.stem), "error": f"{path}: the answer is not JSON (cut off?)"})
    if pid is not None and not answers:
        raise OSError(errno.ESRCH, f"no usernet process {pid} answers in {directory}")
    return answers


def _sockets_in(directory: Path, pid: int | None) -> Iterator[Path]:
    if pid is not None:
        yield directory / f"{pid}.sock"
        return
    try:
        names = sorted(directory.iterdir())
    except FileNotFoundError:
        return
    except PermissionError as exc:
        raise PermissionError(f"{directory} belongs to another user: {exc.strerror}") from None
    for path in names:
        if path.suffix == ".sock" and path.stem.isdigit():
            yield path
