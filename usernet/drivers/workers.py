"""N worker processes on one multi-queue TAP: each its own stack and loop on one queue, one address.

The supervisor (`supervise`) opens the queues of a multi-queue TAP (IFF_MULTI_QUEUE), then
starts the program once per queue with that queue's descriptor and a `WorkerSeat` (through
USERNET_WORKER): its index, the worker count, the descriptor and the MAC all workers share.
It keeps its own copy of every queue open, so a queue outlives its worker: a worker that
dies is started again on the same queue (the frames the kernel queued meanwhile wait there)
and the others serve on. SIGTERM or SIGINT stops every worker, then the supervisor closes
the queues (and its sandbox). Why this works, and what it does not do: docs/workers.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from usernet.link.tap import open_queues, random_mac
from usernet.link.url import TapUrl

if TYPE_CHECKING:
    from usernet.drivers.config import UsernetConfig

__all__ = ["EPHEMERAL_PORTS", "WorkerSeat", "port_slice", "supervise"]

#: The ephemeral range the workers share out (InterfaceConfig's default).
EPHEMERAL_PORTS = (32768, 60999)
#: A worker that ends within this many seconds of its start, this many times in a row, is not started again.
_QUICK_DEATH = 2.0
_QUICK_DEATHS = 3
_STOP_TIMEOUT = 5.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerSeat:
    """What a worker is handed: which of how many it is, its queue's descriptor, the shared MAC."""

    index: int
    count: int
    fd: int
    mac: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"worker index {self.index} is not among {self.count} workers")
        if len(self.mac) != 6:
            raise ValueError("a worker's MAC is 6 bytes")

    @property
    def spec(self) -> str:
        """The seat as USERNET_WORKER carries it: INDEX/COUNT:FD:MAC (hex)."""
        return f"{self.index}/{self.count}:{self.fd}:{self.mac.hex()}"

    @classmethod
    def parse(cls, text: str) -> WorkerSeat:
        try:
            where, fd, mac = text.split(":")
            index, count = where.split("/")
            return cls(int(index), int(count), int(fd), bytes.fromhex(mac))
        except ValueError as exc:
            raise ValueError(
                f"bad worker seat {text!r} ({exc}): it is INDEX/COUNT:FD:MAC, set by --workers for its workers"
            ) from None

    @property
    def ephemeral_ports(self) -> tuple[int, int]:
        return port_slice(self.index, self.count)


def port_slice(index: int, count: int, ports: tuple[int, int] = EPHEMERAL_PORTS) -> tuple[int, int]:
    """Worker `index`'s share of the ephemeral range `ports` (inclusive bounds): disjoint, contiguous,
    together the whole range, so no two workers ever open a connection from the same port."""
    low, high = ports
    span = high - low + 1
    if not 0 <= index < count or count > span:
        raise ValueError(f"cannot give worker {index} of {count} a share of ports {low}-{high}")
    return low + span * index // count, low + span * (index + 1) // count - 1


class _Stop(Exception):
    """Raised by the signal handler to end the supervisor's wait."""


def _announce(message: str) -> None:
    print(f"usernet: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _queues(config: UsernetConfig, name: str, announce: Callable[[str], None]) -> Iterator[list[int]]:
    """The `config.workers` queue descriptors of TAP `name`, in a sandbox if `config` asks for one."""
    from usernet.drivers.config import DEFAULT_HOST_ADDRESS, configure_host_side
    from usernet.link.sandbox import Sandbox

    count = config.workers
    with contextlib.ExitStack() as stack:
        if config.sandbox:
            sandbox = stack.enter_context(Sandbox("workers"))
            host_address = config.host_address or DEFAULT_HOST_ADDRESS
            fds = sandbox.create_tap_queues(
                count, name, mtu=config.mtu, host_address=host_address, offloads=config.offloads
            )
            announce(f"sandbox: namespace {sandbox.name}, TAP {name} with {count} queues, kernel side {host_address}")
        else:
            fds = open_queues(name, count, mtu=config.mtu, offloads=config.offloads)
        for fd in fds:
            stack.callback(os.close, fd)
        if not config.sandbox and config.host_address:
            configure_host_side(name, config.host_address, config.mtu)
        yield fds


def supervise(
    config: UsernetConfig,
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    announce: Callable[[str], None] = _announce,
) -> int:
    """Run `command` as `config.workers` workers on one multi-queue TAP until they end or a signal stops them.

    Each worker gets `env` plus USERNET_WORKER (its seat) and its queue's descriptor. A worker
    that exits with status 0 is done; one that fails or is killed is started again on its
    queue, unless it failed quickly (within 2 s) three times in a row, which ends them all.
    Returns 0 when every worker ended with 0, 1 when the supervisor gave up on one, and
    128 + the signal when stopped by SIGTERM/SIGINT.
    """
    url = config.link_url
    if not isinstance(url, TapUrl):
        raise ValueError(f"workers share a multi-queue TAP, and the link {url} is not one (--tap NAME)")
    count = config.workers
    mac = random_mac()
    stopped: list[int] = []
    stopping = [False]

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.append(signum)
        if not stopping[0]:  # once: a second signal (Ctrl-C twice) lands in the stopping, which must finish
            stopping[0] = True
            raise _Stop

    with _queues(config, url.name, announce) as fds:
        seats = [WorkerSeat(i, count, fd, mac) for i, fd in enumerate(fds)]
        running: dict[int, tuple[WorkerSeat, float, subprocess.Popen[bytes]]] = {}
        quick = dict.fromkeys(range(count), 0)
        old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        status = 0
        try:
            for seat in seats:
                _start(seat, command, env, running)
            announce(
                f"{count} workers on TAP {url.name}, MAC {mac.hex(':')}: pids "
                f"{' '.join(str(pid) for pid in running)} (supervisor {os.getpid()})"
            )
            while running:
                pid, code = os.waitpid(-1, 0)
                if pid not in running:
                    continue
                seat, started, process = running.pop(pid)
                process.returncode = os.waitstatus_to_exitcode(code)
                if process.returncode == 0:
                    continue
                quick[seat.index] = quick[seat.index] + 1 if time.monotonic() - started < _QUICK_DEATH else 0
                if quick[seat.index] >= _QUICK_DEATHS:
                    announce(f"worker {seat.index} failed {_QUICK_DEATHS} times at start (status "
                             f"{process.returncode}): stopping")  # fmt: skip
                    status = 1
                    break
                announce(f"worker {seat.index} (pid {pid}) ended with status {process.returncode}: restarting it")
                _start(seat, command, env, running)
        except _Stop:
            status = 128 + stopped[0]
        finally:
            stopping[0] = True  # from here a signal only counts (no call before: none can cut in first)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # nor can a Ctrl-C after the handlers are put back
            _stop_all([process for _, _, process in running.values()])
            for sig, handler in old.items():
                signal.signal(sig, handler)
    return status


def _start(
    seat: WorkerSeat,
    command: Sequence[str],
    env: Mapping[str, str],
    running: dict[int, tuple[WorkerSeat, float, subprocess.Popen[bytes]]],
) -> None:
    # Its own session (so its own process group): a Ctrl-C at the terminal reaches the supervisor
    # only, which stops the workers in order. And Linux's autogroup scheduler (on by default) shares
    # a busy machine's CPU out per session: in the supervisor's session N workers would get the one
    # share of one process between them. PR_SET_PDEATHSIG: a worker does not outlive a supervisor
    # killed outright.
    process = subprocess.Popen(
        list(command),
        env={**env, "USERNET_WORKER": seat.spec},
        pass_fds=(seat.fd,),
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    running[process.pid] = (seat, time.monotonic(), process)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor ends (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each worker still running (ours, by PID), then SIGKILL to those that outlast the timeout."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + _STOP_TIMEOUT
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
