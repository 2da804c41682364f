"""Network namespaces that hold everything usernet does to a real network.

Tests, benchmarks and demos that need a TAP, addresses or peer processes get them inside
a namespace created here (`usernet-<purpose>-<6 hex>`), so nothing touches the host's
own interfaces or routes. This process stays in its own namespace: the TAP and kernel
sockets are made on a short-lived thread that entered the sandbox with setns(2), and the
fds they return keep working from every thread. Deleting the namespace on close takes
its TAPs with it, also on exceptions, Ctrl-C, SIGTERM and interpreter exit.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import os
import re
import secrets
import signal
import socket as _socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from types import FrameType, TracebackType
from typing import Any, TypeVar

from usernet.interrupts import held
from usernet.link.tap import TapLink, open_queues
from usernet.link.tun import TunLink
from usernet.programs import find

__all__ = ["Sandbox", "SandboxError"]

T = TypeVar("T")
TapLinkT = TypeVar("TapLinkT", bound=TapLink)  # a TapLink or its TUN subclass

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
_TERMINATE_TIMEOUT = 5.0
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_NEED_CAP = "managing network namespaces needs CAP_NET_ADMIN: run as root (e.g. with sudo)"
_DROP_TABLE = "usernet_drop"
_MNT_DETACH = 2  # umount2(2) flag: detach now, free when the last user is gone


class SandboxError(RuntimeError):
    """A command that builds or tears down the sandbox failed; the message has its output."""


def _setns(fd: int) -> None:
    """Move the calling thread into the network namespace `fd` refers to."""
    if sys.version_info >= (3, 12):
        os.setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


def _check(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode == 0:
        return
    err = (result.stderr or "").strip()
    if "Operation not permitted" in err or "Permission denied" in err:
        raise PermissionError(f"{what} failed ({err}): {_NEED_CAP}")
    raise SandboxError(f"{what} failed with exit status {result.returncode}: {err}")


class Sandbox:
    """One network namespace and what was started in it, torn down by `close()`.

    Use it as a context manager, or call `open()` and `close()`. `close()` is idempotent
    and also runs at interpreter exit and on SIGTERM (the previous SIGTERM handler then
    runs as before).
    """

    def __init__(self, purpose: str = "test") -> None:
        if not _NAME.fullmatch(purpose):
            raise ValueError(f"purpose {purpose!r} must be letters, digits, '_', '.' or '-'")
        self.name = f"usernet-{purpose}-{secrets.token_hex(3)}"
        self._state = "new"
        self._processes: list[subprocess.Popen[Any]] = []
        self._links: list[TapLink] = []
        self._sockets: list[_socket.socket] = []
        self._drop_rules: dict[str, int] = {}
        self._closer: int | None = None
        self._done = threading.Event()

    @property
    def path(self) -> str:
        """The namespace's bind mount, for `setns` or `nsenter --net=PATH`."""
        return os.path.join(NETNS_DIR, self.name)

    def open(self) -> Sandbox:
        """Create the namespace and bring its loopback up."""
        if self._state != "new":
            raise RuntimeError(f"sandbox {self.name} was already opened; make a new Sandbox")
        find("ip")
        # Open (so deleted by close, on signals, at exit) before it exists: a signal during
        # `ip netns add` must not leave a namespace no one deletes.
        self._state = "open"
        _open_sandboxes.add(self)
        _install_hooks()
        try:
            _check(self._ip("netns", "add", self.name), f"ip netns add {self.name}")
            _check(self._ip("-n", self.name, "link", "set", "lo", "up"), "bringing lo up")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop the processes started here, close its TAPs and sockets, delete the namespace.

        The namespace is deleted in this process (no `ip` child that a signal to the
        process group could kill first), and whatever fails or is interrupted before, the
        delete still runs. A SIGTERM arriving meanwhile waits until it is done (see
        `_on_sigterm`); the sandbox counts as open until then. Ctrl-C is held back from
        the first line (see `usernet.interrupts.held`): one landing between marking the
        sandbox closing and the `try` that deletes it would leave it marked and undeleted.
        """
        with held():
            self._close()

    def _close(self) -> None:
        global _closing
        with _state_lock:
            if self._state in ("new", "closed"):
                self._state = "closed"
                return
            if self._state == "closing":
                closer = self._closer
            else:
                self._state, self._closer, closer = "closing", threading.get_ident(), None
                _closing += 1
        if closer is not None:
            # Closing already: either further up this thread's stack (a signal handler
            # interrupted it: returning lets it finish) or on another thread (wait for it).
            if closer != threading.get_ident():
                self._done.wait(_TERMINATE_TIMEOUT * 2)
            return
        try:
            try:
                self._stop_processes()
                for sock in self._sockets:
                    sock.close()
                for link in self._links:
                    link.close()
            finally:
                _delete_namespace(self.path)
        finally:
            with _state_lock:
                self._state = "closed"
                _open_sandboxes.discard(self)
                _closing -= 1
            self._done.set()
            _terminate_if_deferred()

    def __enter__(self) -> Sandbox:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Sandbox {self.name} {self._state}>"

    def create_tap(
        self,
        name: str = "usernet0",
        *,
        mtu: int = 1500,
        host_address: str = "192.0.2.1/24",
        mac: bytes | None = None,
        ipv6: bool = False,
        offloads: bool = False,
        gso: bool = True,
        gro: bool = True,
    ) -> TapLink:
        """A TAP inside the namespace, up, with `host_address` on the kernel's side of it.

        IPv6 is off on the TAP unless `ipv6` is set, so the kernel does not chatter
        (router solicitations, MLD) on a link whose stack speaks IPv4 only. `offloads`
        opens it with vnet headers, checksum offload and TSO; `gso` and `gro` are software
        segmentation and receive merging without them (see TapLink).
        """
        return self._create_device(TapLink, name, mtu, host_address, mac, ipv6, offloads, gso, gro)

    def create_tun(
        self,
        name: str = "usernet0",
        *,
        mtu: int = 1500,
        host_address: str = "192.0.2.1/24",
        ipv6: bool = False,
        offloads: bool = False,
        gso: bool = True,
        gro: bool = True,
    ) -> TunLink:
        """A TUN inside the namespace, up, with `host_address` on the kernel's side: as create_tap,
        but the kernel routes bare IP packets to usernet through it, without ARP (see TunLink)."""
        return self._create_device(TunLink, name, mtu, host_address, None, ipv6, offloads, gso, gro)

    def _create_device(
        self,
        kind: type[TapLinkT],
        name: str,
        mtu: int,
        host_address: str,
        mac: bytes | None,
        ipv6: bool,
        offloads: bool,
        gso: bool,
        gro: bool,
    ) -> TapLinkT:
        self._require_open()
        if not _IFNAME.fullmatch(name):
            raise ValueError(f"interface name {name!r} must be 1-15 letters, digits, '_', '.' or '-'")

        def make() -> TapLinkT:
            link = kind.create(name, mtu=mtu, mac=mac, offloads=offloads, gso=gso, gro=gro)
            try:
                _quiet_ipv6(name, ipv6)
            except BaseException:
                link.close()
                raise
            return link

        link = self.in_namespace(make)
        self._links.append(link)
        self._bring_up(name, host_address)
        return link

    def create_tap_queues(
        self,
        count: int,
        name: str = "usernet0",
        *,
        mtu: int = 1500,
        host_address: str = "192.0.2.1/24",
        offloads: bool = False,
    ) -> list[int]:
        """A multi-queue TAP inside the namespace (see `usernet.link.tap.open_queues`), up, with
        `host_address` on the kernel's side: the descriptors of its `count` queues, the caller's to close."""
        self._require_open()
        if not _IFNAME.fullmatch(name):
            raise ValueError(f"interface name {name!r} must be 1-15 letters, digits, '_', '.' or '-'")

        def make() -> list[int]:
            fds = open_queues(name, count, mtu=mtu, offloads=offloads)
            try:
                _quiet_ipv6(name, False)
            except BaseException:
                for fd in fds:
                    os.close(fd)
                raise
            return fds

        fds = self.in_namespace(make)
        try:
            self._bring_up(name, host_address)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    def _bring_up(self, name: str, host_address: str) -> None:
        _check(self._ip("-n", self.name, "addr", "add", host_address, "dev", name), f"adding {host_address} to {name}")
        _check(self._ip("-n", self.name, "link", "set", "dev", name, "up"), f"bringing {name} up")

    def socket(self, family: int = _socket.AF_INET, type: int = _socket.SOCK_DGRAM, proto: int = 0) -> _socket.socket:
        """A kernel socket that lives in the namespace but is used from this process; closed on close()."""
        self._require_open()
        sock = self.in_namespace(lambda: _socket.socket(family, type, proto))
        self._sockets.append(sock)
        return sock

    def in_namespace(self, fn: Callable[[], T]) -> T:
        """Run `fn` on a fresh thread inside the namespace and return its result (or raise its exception).

        Only that thread ever changes namespace, and it ends with `fn`; file descriptors
        it opened keep the namespace they were made in.
        """
        self._require_open()
        outcome: list[Any] = []

        def target() -> None:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    _setns(fd)
                finally:
                    os.close(fd)
                outcome.append((True, fn()))
            except BaseException as exc:
                outcome.append((False, exc))

        thread = threading.Thread(target=target, name=f"setns {self.name}", daemon=True)
        thread.start()
        thread.join()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def run(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """`subprocess.run(cmd, **kwargs)` inside the namespace."""
        self._require_open()
        return subprocess.run(self._exec(cmd), **kwargs)

    def popen(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """`subprocess.Popen(cmd, **kwargs)` inside the namespace; terminated (then killed) on close()."""
        self._require_open()
        process = subprocess.Popen(self._exec(cmd), **kwargs)
        self._processes.append(process)
        return process

    def drop_rate(self, percent: int, device: str) -> None:
        """Make the kernel drop `percent`% of the IP packets it sends out of `device`, at random.

        One nftables rule per device (`oifname DEV numgen random mod 100 < N drop`) in the
        postrouting hook. ARP is not IP and passes. 0 removes the device's rule. A local
        sender whose packet is dropped gets EPERM from send(), which is how the kernel
        reports a netfilter drop — and the kernel's own TCP, told the same way, quietly
        resends, so for TCP sockets in this namespace it is NOT real loss. To lose TCP
        segments toward usernet, put the kernel peer one routed hop away and drop there
        (tests/interop/test_kernel_tcp.py does so).
        """
        self._require_open()
        if not 0 <= percent <= 100 or int(percent) != percent:
            raise ValueError(f"percent is a whole number from 0 to 100, not {percent!r}")
        if not _IFNAME.fullmatch(device):
            raise ValueError(f"device {device!r} is not an interface name")
        find("nft")
        if percent:
            self._drop_rules[device] = int(percent)
        else:
            self._drop_rules.pop(device, None)
        # Declaring then deleting the table makes the script replace it whether it exists or not.
        script = f"table inet {_DROP_TABLE}\ndelete table inet {_DROP_TABLE}\n"
        if self._drop_rules:
            rules = "".join(
                # nft refuses `< 100` (numgen mod 100 yields 0-99), so all-drop has no numgen
                f'    oifname "{dev}" {"" if share == 100 else f"numgen random mod 100 < {share} "}drop\n'
                for dev, share in self._drop_rules.items()
            )
            script += (
                f"table inet {_DROP_TABLE} {{\n  chain postrouting {{\n"
                f"    type filter hook postrouting priority 0; policy accept;\n{rules}  }}\n}}\n"
            )
        result = self.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
        _check(result, f"installing the nftables drop rule for {device}")

    def _exec(self, cmd: Sequence[str]) -> list[str]:
        if isinstance(cmd, str):
            raise TypeError("cmd is a list of arguments, not a shell string")
        return ["ip", "netns", "exec", self.name, *cmd]

    def _ip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", *args], capture_output=True, text=True)

    def _require_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"sandbox {self.name} is {self._state}: use it inside `with Sandbox() as sb:`")

    def _stop_processes(self) -> None:
        running = [p for p in self._processes if p.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=_TERMINATE_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()


def _quiet_ipv6(name: str, ipv6: bool) -> None:
    """Turn IPv6 off on device `name` unless `ipv6`, so the kernel does not chatter (router
    solicitations, MLD) on a link whose stack speaks IPv4 only. Run inside the namespace."""
    if ipv6:
        return
    try:
        with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as knob:
            knob.write("1")
    except FileNotFoundError:
        pass  # kernel without IPv6: nothing to silence


def _delete_namespace(path: str) -> None:
    """What `ip netns delete` does: detach the bind mount that keeps the namespace, remove its file."""
    if not os.path.lexists(path):
        return  # never made (`ip netns add` failed) or already deleted
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(os.fsencode(path), _MNT_DETACH) != 0:
        code = ctypes.get_errno()
        if code in (errno.EPERM, errno.EACCES):
            raise PermissionError(code, f"deleting namespace {path} failed: {_NEED_CAP}")
        if code not in (errno.EINVAL, errno.ENOENT):  # not mounted (any more), or not there at all
            raise OSError(code, f"unmounting {path}: {os.strerror(code)}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


_open_sandboxes: set[Sandbox] = set()
#: Reentrant: the SIGTERM handler may close a sandbox while the main thread holds it.
_state_lock = threading.RLock()
_hooks = {"atexit": False, "sigterm": False}
_previous_sigterm: Callable[[int, FrameType | None], Any] | int | None = None
#: How many `close()` calls are running (a SIGTERM handled during one waits for it to end).
_closing = 0
#: A SIGTERM arrived while a close was running; it takes effect when the last one ends.
_deferred = {"sigterm": False, "handling": False}


def _close_all() -> None:
    """Close every open sandbox (at exit, on SIGTERM), Ctrl-C held back until the last is deleted."""
    with held():
        for sandbox in list(_open_sandboxes):
            try:
                sandbox.close()
            except Exception:
                traceback.print_exc()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Close every sandbox, then do what SIGTERM did before (a previous handler, or terminate).

    A SIGTERM that interrupts a close (this handler's own, after a second SIGTERM, or a
    `with` block's) is deferred until the close is done: killing the process there
    would leak the namespace.
    """
    if _closing or _deferred["handling"]:
        _deferred["sigterm"] = True
        return
    _deferred["handling"] = True
    try:
        _close_all()
    finally:
        _deferred["handling"] = False
        _deferred["sigterm"] = False
    _terminate(signum, frame)


def _terminate_if_deferred() -> None:
    """After the last close: act on a SIGTERM that arrived during it (handlers run on the main thread only)."""
    if not _deferred["sigterm"] or _closing or _deferred["handling"]:
        return
    _deferred["sigterm"] = False
    if threading.current_thread() is threading.main_thread():
        _on_sigterm(signal.SIGTERM, None)
    else:
        os.kill(os.getpid(), signal.SIGTERM)


def _terminate(signum: int, frame: FrameType | None) -> None:
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _install_hooks() -> None:
    """Arrange for open sandboxes to be closed at exit and on SIGTERM (signals only from the main thread)."""
    global _previous_sigterm
    if not _hooks["atexit"]:
        atexit.register(_close_all)
        _hooks["atexit"] = True
    if not _hooks["sigterm"] and threading.current_thread() is threading.main_thread():
        _previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
        _hooks["sigterm"] = True
