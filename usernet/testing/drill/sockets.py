"""POSIX socket calls over usernet's synchronous TCP API, with Linux's return values and errnos.

Each call returns an `Outcome` (the value and errno a C program would see) or, when a
blocking socket would block, a `Waiter`: the runner polls it as virtual time passes and
packets arrive, and the call returns when the waiter gives an outcome. Pending socket
errors follow Linux: an error (ECONNRESET, ECONNREFUSED, ETIMEDOUT) is reported once, by
whichever of read, write, connect or getsockopt(SO_ERROR) asks first.
"""

from __future__ import annotations

import errno as E
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from usernet.stack.interface import Interface
from usernet.stack.tcp.connection import USER_MSS_RANGE, TcpConnection
from usernet.stack.tcp.layer import ANY, TcpListener
from usernet.stack.tcp.states import State
from usernet.testing.drill.model import (
    AddressOf,
    Array,
    BitOr,
    Call,
    Field,
    Struct,
    Symbol,
    TruncatedString,
    Value,
)
from usernet.testing.drill.packets import DrillError

# Linux's values of the names scripts use.
CONSTANTS: dict[str, int] = {
    "AF_INET": 2,
    "AF_INET6": 10,
    "AF_UNSPEC": 0,
    "PF_INET": 2,
    "SOCK_STREAM": 1,
    "SOCK_DGRAM": 2,
    "SOCK_NONBLOCK": 0o4000,
    "SOCK_CLOEXEC": 0o2000000,
    "IPPROTO_TCP": 6,
    "IPPROTO_IP": 0,
    "IPPROTO_UDP": 17,
    "SOL_SOCKET": 1,
    "SOL_TCP": 6,
    "SOL_IP": 0,
    "SO_REUSEADDR": 2,
    "SO_TYPE": 3,
    "SO_ERROR": 4,
    "SO_SNDBUF": 7,
    "SO_RCVBUF": 8,
    "SO_KEEPALIVE": 9,
    "SO_LINGER": 13,
    "SO_REUSEPORT": 15,
    "IP_MTU_DISCOVER": 10,
    "IP_PMTUDISC_DONT": 0,
    "IP_PMTUDISC_WANT": 1,
    "IP_PMTUDISC_DO": 2,
    "IP_PMTUDISC_PROBE": 3,
    "IP_PMTUDISC_INTERFACE": 4,
    "IP_PMTUDISC_OMIT": 5,
    "TCP_NODELAY": 1,
    "TCP_MAXSEG": 2,
    "TCP_CORK": 3,
    "TCP_KEEPIDLE": 4,
    "TCP_KEEPINTVL": 5,
    "TCP_KEEPCNT": 6,
    "TCP_INFO": 11,
    "TCP_CONGESTION": 13,
    "TCP_USER_TIMEOUT": 18,
    "TCP_FASTOPEN": 23,
    "TCP_NOTSENT_LOWAT": 25,
    "TCP_FASTOPEN_CONNECT": 30,
    "TCP_ESTABLISHED": 1,  # tcp_info's tcpi_state
    "TCP_SYN_SENT": 2,
    "TCP_SYN_RECV": 3,
    "TCP_FIN_WAIT1": 4,
    "TCP_FIN_WAIT2": 5,
    "TCP_TIME_WAIT": 6,
    "TCP_CLOSE": 7,
    "TCP_CLOSE_WAIT": 8,
    "TCP_LAST_ACK": 9,
    "TCP_LISTEN": 10,
    "TCP_CLOSING": 11,
    "F_GETFL": 3,
    "F_SETFL": 4,
    "O_RDONLY": 0,
    "O_WRONLY": 1,
    "O_RDWR": 2,
    "O_NONBLOCK": 0o4000,
    "SHUT_RD": 0,
    "SHUT_WR": 1,
    "SHUT_RDWR": 2,
    "MSG_OOB": 1,
    "MSG_PEEK": 2,
    "MSG_DONTWAIT": 0x40,
    "MSG_NOSIGNAL": 0x4000,
    "MSG_MORE": 0x8000,
    "POLLIN": 1,
    "POLLPRI": 2,
    "POLLOUT": 4,
    "POLLERR": 8,
    "POLLHUP": 16,
    "POLLNVAL": 32,
    "POLLRDNORM": 0x40,
    "POLLWRNORM": 0x100,
    "POLLRDHUP": 0x2000,
    "SIOCINQ": 0x541B,
    "FIONREAD": 0x541B,
    "SIOCOUTQ": 0x5411,
    "TIOCOUTQ": 0x5411,
}
_C = CONSTANTS
_FASTOPEN = f"{_C['IPPROTO_TCP']}:{_C['TCP_FASTOPEN']}"  # keys of Socket.flags
_FASTOPEN_CONNECT = f"{_C['IPPROTO_TCP']}:{_C['TCP_FASTOPEN_CONNECT']}"
_MTU_DISCOVER = f"{_C['IPPROTO_IP']}:{_C['IP_MTU_DISCOVER']}"
_DEFAULT_MSS = 536  # what Linux's getsockopt(TCP_MAXSEG) says before a connection has an MSS (TCP_MSS_DEFAULT)
# SO_RCVBUF/SO_SNDBUF as Linux's sock_setsockopt: the value is capped at net.core.rmem_max /
# wmem_max (212992 by default), doubled (room for the kernel's bookkeeping) and raised to
# SOCK_MIN_RCVBUF / SOCK_MIN_SNDBUF; the doubled size is the buffer, and getsockopt reports it.
_CORE_MEM_MAX = 212992
_MIN_BUF = {"rcvbuf": 2304, "sndbuf": 4608}
_LINUX_STATES = {  # tcp_info's tcpi_state for each state
    State.ESTABLISHED: _C["TCP_ESTABLISHED"], State.SYN_SENT: _C["TCP_SYN_SENT"],
    State.SYN_RECEIVED: _C["TCP_SYN_RECV"], State.FIN_WAIT_1: _C["TCP_FIN_WAIT1"],
    State.FIN_WAIT_2: _C["TCP_FIN_WAIT2"], State.TIME_WAIT: _C["TCP_TIME_WAIT"], State.CLOSED: _C["TCP_CLOSE"],
    State.CLOSE_WAIT: _C["TCP_CLOSE_WAIT"], State.LAST_ACK: _C["TCP_LAST_ACK"], State.LISTEN: _C["TCP_LISTEN"],
    State.CLOSING: _C["TCP_CLOSING"],
}  # fmt: skip
_TCPI_OPT = {"timestamps": 1, "sack": 2, "ecn": 8}  # TCPI_OPT_TIMESTAMPS, _SACK, _ECN; _WSCALE is 4
_INFINITE_SSTHRESH = 0x7FFFFFFF  # Linux's TCP_INFINITE_SSTHRESH, reported as is before any loss
_CONNECTED = (State.ESTABLISHED, State.CLOSE_WAIT)
_OPEN_STATES = frozenset(State) - {State.CLOSED, State.LISTEN, State.SYN_SENT}
_TCP_OPTIONS = {  # (level, name) -> (TcpConnection option, seconds per unit)
    (1, 9): ("keepalive", None),
    (6, 1): ("nodelay", None),
    (6, 3): ("cork", None),
    (6, 4): ("keepidle", 1.0),
    (6, 5): ("keepintvl", 1.0),
    (6, 6): ("keepcnt", None),
    (6, 18): ("user_timeout", 0.001),
    (1, 8): ("rcvbuf", None),
    (1, 7): ("sndbuf", None),
    (6, 2): ("maxseg", None),
}


@dataclass(frozen=True)
class Outcome:
    """What the call returned; `mismatch` says which output argument differed from the script."""

    value: int
    errno: int = 0
    note: str | None = None
    mismatch: str | None = None


Waiter = Callable[[float], Outcome | None]


def fail(code: int, note: str | None = None) -> Outcome:
    return Outcome(-1, code, note)


class Watcher(Protocol):
    """The runner hears which connection the script is now talking to."""

    def listening(self, port: int) -> None: ...

    def connecting(self, conn: TcpConnection) -> None: ...


@dataclass
class Socket:
    fd: int
    nonblocking: bool = False
    bound: tuple[bytes, int] | None = None
    listener: TcpListener | None = None
    conn: TcpConnection | None = None
    options: dict[str, Any] = field(default_factory=dict)  # TcpConnection options to apply when it exists
    flags: dict[str, int] = field(default_factory=dict)  # SO_REUSEADDR and friends: accepted and echoed
    linger_abort: bool = False
    more: bool = False  # the last write had MSG_MORE: its tail is corked until a write without it
    shut_rd: bool = False
    error_taken: bool = False

    def take_error(self) -> int:
        """The pending socket error, once (Linux's sock_error)."""
        conn = self.conn
        if conn is None or conn.error is None or self.error_taken:
            return 0
        self.error_taken = True
        return conn.error.errno or E.EIO


def resolve(value: Value) -> Any:
    """A script value as Python: ints, bytes, None for `...`, lists and dicts for arrays and structs."""
    if value is Ellipsis or isinstance(value, AddressOf):
        return None
    if isinstance(value, (int, bytes)):
        return value
    if isinstance(value, TruncatedString):
        return value.prefix
    if isinstance(value, Symbol):
        if value.name not in _C:
            raise DrillError(
                f"unknown constant {value.name}: it is not in the runner's table of Linux constants "
                "(usernet.testing.drill.sockets.CONSTANTS)"
            )
        return _C[value.name]
    if isinstance(value, BitOr):
        out = 0
        for operand in value.operands:
            out |= resolve(operand)
        return out
    if isinstance(value, Call):
        arg = resolve(value.args[0]) if value.args else None
        if value.name in ("htons", "ntohs", "htonl", "ntohl"):
            return arg
        if value.name == "inet_addr" and isinstance(arg, bytes):
            return ipaddress.IPv4Address(arg.decode()).packed
        raise DrillError(f"the runner cannot evaluate {value}")
    if isinstance(value, Array):
        return [resolve(v) for v in value.items]
    if isinstance(value, Struct):
        out_struct: dict[str | int, Any] = {}
        for i, item in enumerate(value.items):
            if isinstance(item, Field):
                out_struct[item.name] = resolve(item.value)
            else:
                out_struct[i] = resolve(item)
        return out_struct
    if isinstance(value, Field):
        return resolve(value.value)
    raise DrillError(f"the runner cannot evaluate {value!r}")


def _expect_out(name: str, arg: Any, actual: int) -> str | None:
    """Compare an output argument written `[N]` with what the call produced."""
    if isinstance(arg, list) and arg and isinstance(arg[0], int) and arg[0] != actual:
        return f"{name}: expected [{arg[0]}] vs actual [{actual}]"
    return None


class Sockets:
    """The file descriptor table of the script's process and the calls on it."""

    def __init__(
        self, iface: Interface, local_ip: bytes, remote: tuple[bytes, int], bind_port: int, watcher: Watcher
    ) -> None:
        self.iface = iface
        self.tcp = iface.tcp
        self.local_ip = local_ip
        self.remote = remote
        self.bind_port = bind_port
        self.watcher = watcher
        self.fds: dict[int, Socket] = {}
        self.current: Socket | None = None  # the socket of the latest call: `%{ }%` code reads its tcp_info
        self.aliases: dict[int, int] = {}  # the script's fd -> ours, where they differ (packetdrill maps them)
        self.calls: dict[str, Callable[[list[Any], float], Outcome | Waiter]] = {
            "socket": self.socket,
            "bind": self.bind,
            "listen": self.listen,
            "accept": self.accept,
            "connect": self.connect,
            "read": self.read,
            "recv": self.read,
            "recvfrom": self.read,
            "write": self.write,
            "send": self.write,
            "sendto": self.write,
            "writev": self.writev,
            "sendmsg": self.sendmsg,
            "shutdown": self.shutdown,
            "close": self.close,
            "setsockopt": self.setsockopt,
            "getsockopt": self.getsockopt,
            "fcntl": self.fcntl,
            "ioctl": self.ioctl,
            "poll": self.poll,
        }

    def call(self, name: str, args: tuple[Value, ...], now: float) -> Outcome | Waiter:
        handler = self.calls.get(name)
        if handler is None:
            raise DrillError(
                f"the runner does not support the system call {name}(): it knows {', '.join(sorted(self.calls))}"
            )
        values = [resolve(a) for a in args]
        if name == "poll" and values and isinstance(values[0], list):
            for entry in values[0]:
                if isinstance(entry, dict) and entry.get("fd") in self.aliases:
                    entry["fd"] = self.aliases[entry["fd"]]
        elif name != "socket" and values and values[0] in self.aliases:
            values[0] = self.aliases[values[0]]
        return handler(values, now)

    def alias(self, script_fd: int, fd: int) -> None:
        """The script calls `fd` `script_fd` from now on (a descriptor the script counted differently)."""
        self.aliases = {k: v for k, v in self.aliases.items() if v != fd}
        self.aliases[script_fd] = fd

    def _sock(self, fd: Any) -> Socket | Outcome:
        sock = self.fds.get(fd) if isinstance(fd, int) else None
        if sock is None:
            return fail(E.EBADF)
        self.current = sock
        return sock

    def _new_fd(self) -> Socket:
        fd = 3
        while fd in self.fds:
            fd += 1
        sock = self.fds[fd] = self.current = Socket(fd)
        return sock

    # -- creating and connecting ---------------------------------------------------------

    def socket(self, args: list[Any], now: float) -> Outcome:
        domain, kind = [*args, None, None][:2]
        if domain not in (None, _C["AF_INET"]):
            return fail(E.EAFNOSUPPORT, "usernet's runner speaks IPv4 only")
        if kind is not None and kind & 0xF != _C["SOCK_STREAM"]:
            return fail(E.EPROTONOSUPPORT, "usernet's runner drives TCP sockets only")
        sock = self._new_fd()
        sock.nonblocking = bool(kind and kind & _C["SOCK_NONBLOCK"])
        return Outcome(sock.fd)

    def _address(self, arg: Any, default: tuple[bytes, int]) -> tuple[bytes, int]:
        if not isinstance(arg, dict):
            return default
        addr = arg.get("sin_addr")
        port = arg.get("sin_port")
        return (addr if isinstance(addr, bytes) else default[0], port if isinstance(port, int) else default[1])

    def bind(self, args: list[Any], now: float) -> Outcome:
        sock = self._sock(args[0])
        if isinstance(sock, Outcome):
            return sock
        if sock.bound is not None or sock.conn is not None:
            return fail(E.EINVAL)
        sock.bound = self._address(args[1] if len(args) > 1 else None, (self.local_ip, self.bind_port))
        return Outcome(0)

    def listen(self, args: list[Any], now: float) -> Outcome:
        sock = self._sock(args[0])
        if isinstance(sock, Outcome):
            return sock
        if sock.conn is not None:
            return fail(E.EINVAL)
        if sock.listener is None:
            try:
                sock.listener = self.tcp.listen(sock.bound or (ANY, 0), args[1] if isinstance(args[1], int) else 128)
            except OSError as exc:
                return fail(exc.errno or E.EINVAL, str(exc))
            sock.bound = sock.listener.local
        sock.listener.fastopen = sock.flags.get(_FASTOPEN, 0)
        if "maxseg" in sock.options:
            sock.listener.set_option("maxseg", sock.options["maxseg"])
        self.watcher.listening(sock.listener.local[1])
        return Outcome(0)

    def accept(self, args: list[Any], now: float) -> Outcome | Waiter:
        sock = self._sock(args[0])
        if isinstance(sock, Outcome):
            return sock
        listener = sock.listener
        if listener is None:
            return fail(E.EINVAL)

        def attempt(_: float) -> Outcome | None:
            conn = listener.accept()
            if conn is None:
                return None
            child = self._new_fd()
            child.conn = conn
            child.options = dict(sock.options)
            child.linger_abort = sock.linger_abort
            for name, value in sock.options.items():
                conn.set_option(name, value)
            return Outcome(child.fd)

        return self._maybe_block(sock, attempt, now)

    def connect(self, args: list[Any], now: float) -> Outcome | Waiter:
        sock = self._sock(args[0])
        if isinstance(sock, Outcome):
            return sock
        if sock.listener is not None:
            return fail(E.EISCONN)
        conn = sock.conn
        if conn is not None:
            if conn.state == State.SYN_SENT or conn.state == State.SYN_RECEIVED:
                return fail(E.EALREADY)
            error = sock.take_error()
            if error:
                return fail(error)
            return fail(E.EISCONN) if conn.state != State.CLOSED else fail(E.ECONNABORTED)
        remote = self._address(args[1] if len(args) > 1 else None, self.remote)
        try:
            conn = self.tcp.connect(remote, now, sock.bound, fastopen=bool(sock.flags.get(_FASTOPEN_CONNECT)))
        except OSError as exc:
            return fail(exc.errno or E.EINVAL, str(exc))
        sock.conn = conn
        for name, value in sock.options.items():
            conn.set_option(name, value)
        self.watcher.connecting(conn)
        if conn.fastopen_deferred:
            return Outcome(0)  # TCP_FASTOPEN_CONNECT with a cookie: the SYN waits for the first write (Linux)
        if sock.nonblocking:
            return fail(E.EINPROGRESS)

        def established(_: float) -> Outcome | None:
            if conn.state in _OPEN_STATES:
                return Outcome(0)
            if conn.state == State.CLOSED:
                return fail(sock.take_error() or E.ECONNABORTED)
            return None

        return established

    def _maybe_block(self, sock: Socket, attempt: Waiter, now: float, nonblocking: bool = False) -> Outcome | Waiter:
        first = attempt(now)
        if first is not None:
            return first
        if sock.nonblocking or nonblocking:
            return fail(E.EAGAIN)
        return attempt

    # -- data ----------------------------------------------------------------------------

    def read(self, args: list[Any], now: float) -> Outcome | Waiter:
        sock = self._sock(args[0])
        if isinstance(sock, Outcome):
            return sock
        size = args[2] if len(args) > 2 and isinstance(args[2], int) else 65536
        flags = args[3] if len(args) > 3 and isinstance(args[3], int) else 0
        if flags & _C["MSG_PEEK"]:
            return fail(E.EOPNOTSUPP, "MSG_PEEK is not supported by usernet's runner")
        conn = sock.conn
        if conn is None:
            return fail(E.ENOTCONN if sock.listener is None else E.EINVAL)

        def attempt(_: float) -> Outcome | None:
            data = conn.receive(size)
            if data:
                return Outcome(len(data))
            error = sock.take_error()
            if error:
                return fail(error)
            if conn.at_eof or sock.shut_rd or conn.state == State.CLOSED or size == 0:
                return Outcome(0)
            return None

        return self._maybe_block(sock, attempt, now, bool(flags & _C["MSG_DONTWAIT"]))

    def write(self, args: list[Any], now: float) -> Outcome | Waiter:
        size = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        flags = args[3] if len(args) > 3 and isinstance(args[3], int) else 0
        return self._send(args[0], size, flags, now)

    def writev(self, args: list[Any], now: float) -> Outcome | Waiter:
        return self._send(args[0], _iov_total(args[1]), 0, now)

    def sendmsg(self, args: list[Any], now: float) -> Outcome | Waiter:
        msg = args[1] if isinstance(args[1], dict) else {}
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        return self._send(args[0], _iov_total(msg.get("msg_iov")), flags, now)

    def _send(self, fd: Any, size: int, flags: int, now: float) -> Outcome | Waiter:
        sock = self._sock(fd)
        if isinstance(sock, Outcome):
            return sock
        conn = sock.conn
        if conn is None:
            return fail(E.EPIPE)
        more = bool(flags & _C["MSG_MORE"])
        if more != sock.more:  # Linux's MSG_MORE: this write is pushed as if corked
            sock.more = more
            conn.set_option("cork", more or sock.options.get("cork", False))
        sent = 0

        def attempt(t: float) -> Outcome | None:
            nonlocal sent
            if conn.state in (State.SYN_SENT, State.SYN_RECEIVED):
                return None
            error = sock.take_error()
            if error:
                return fail(error) if not sent else Outcome(sent)
            try:
                sent += conn.send(bytes(size - sent), t, more)
            except OSError as exc:
                return Outcome(sent) if sent else fail(E.EPIPE, str(exc))
            if sent == size or (sent and (sock.nonblocking or flags & _C["MSG_DONTWAIT"])):
                return Outcome(sent)
            return None

        return self._maybe_block(sock, attempt, now, bool(flags & _C["MSG_DONTWAIT"]))

    # -- ending ------------------------------------------------------------------------------

    def shutdown(self, args: list[Any], now: float) -> Outcome:
        sock = self._sock(args[0])
        if isinstance(sock, Outcome):
            return sock
        how = args[1]
        if how not in (0, 1, 2):
            return fail(E.EINVAL)
        conn = sock.conn
        if conn is None or conn.state in (State.CLOSED, State.LISTEN):
            return fail(E.ENOTCONN)
        if how in (0, 2):
            sock.shut_rd = True
        if how in (1, 2):
            conn.shutdown(now)
        return Outcome(0)

    def close(self, args: list[Any], now: float) -> Outcome:
        sock = self._sock(args[0])
        if isinstance(sock, Outcome):
            return sock
        del self.fds[sock.fd]
        if sock.listener is not None:
            sock.listener.close(now)
        if sock.conn is not None:
            if sock.linger_abort:
                sock.conn.abort(now)
            else:
                sock.conn.close(now)
        return Outcome(0)

    # -- options -------------------------------------------------------------------------------

    def setsockopt(self, args: list[Any], now: float) -> Outcome:
        sock = self._sock(args[0])
        if isinstance(sock, Outcome):
            return sock
        level, name, raw = args[1], args[2], args[3]
        value = raw[0] if isinstance(raw, list) and raw else raw
        if level == _C["SOL_SOCKET"] and name in (_C["SO_REUSEADDR"], _C["SO_REUSEPORT"]):
            sock.flags[f"{level}:{name}"] = int(bool(value))
            return Outcome(0)
        if f"{level}:{name}" in (_FASTOPEN, _FASTOPEN_CONNECT) and isinstance(value, int):
            sock.flags[f"{level}:{name}"] = value  # a listener's Fast Open queue; a client's TFO connect
            if sock.listener is not None and f"{level}:{name}" == _FASTOPEN:
                sock.listener.fastopen = value
            return Outcome(0)
        if f"{level}:{name}" == _MTU_DISCOVER and isinstance(value, int):
            if not 0 <= value <= _C["IP_PMTUDISC_OMIT"]:
                return fail(E.EINVAL)
            sock.flags[_MTU_DISCOVER] = value  # reported back; usernet's TCP always sets DF and does PMTUD
            return Outcome(0)
        if level == _C["SOL_SOCKET"] and name == _C["SO_LINGER"] and isinstance(raw, dict):
            sock.linger_abort = bool(raw.get("onoff")) and raw.get("linger") == 0
            return Outcome(0)
        option = _TCP_OPTIONS.get((level, name))
        if option is None or not isinstance(value, int):
            return fail(E.ENOPROTOOPT, f"usernet's runner does not support option {level}:{name}")
        key, unit = option
        setting: Any = value * unit if unit else value
        if key in ("keepalive", "nodelay", "cork"):
            setting = bool(value)
        elif key in _MIN_BUF:
            setting = max(min(value, _CORE_MEM_MAX) * 2, _MIN_BUF[key])
        elif key == "maxseg" and value not in USER_MSS_RANGE:
            return fail(E.EINVAL, f"TCP_MAXSEG takes {USER_MSS_RANGE[0]} to {USER_MSS_RANGE[-1]}")
        sock.options[key] = setting
        if key == "maxseg" and sock.listener is not None:
            sock.listener.set_option("maxseg", setting)  # after listen() too: the next SYN-ACK offers it (Linux)
        target = sock.conn
        if target is not None:
            try:
                target.set_option(key, setting)
            except ValueError as exc:
                sock.options.pop(key)
                return fail(E.EINVAL, str(exc))
        return Outcome(0)

    def getsockopt(self, args: list[Any], now: float) -> Outcome:
        sock = self._sock(args[0])
        if isinstance(sock, Outcome):
            return sock
        level, name = args[1], args[2]
        if level == _C["IPPROTO_TCP"] and name == _C["TCP_INFO"]:
            return self._tcp_info(sock, args[3] if len(args) > 3 else None)
        if level == _C["SOL_SOCKET"] and name == _C["SO_ERROR"]:
            actual = sock.take_error()
        elif level == _C["SOL_SOCKET"] and name == _C["SO_TYPE"]:
            actual = _C["SOCK_STREAM"]
        elif f"{level}:{name}" in sock.flags or (level == 1 and name in (2, 15)):
            actual = sock.flags.get(f"{level}:{name}", 0)
        elif (level, name) in _TCP_OPTIONS:
            key, unit = _TCP_OPTIONS[(level, name)]
            if key == "maxseg" and (sock.conn is None or sock.conn.state not in _OPEN_STATES):
                current = sock.options.get(key, _DEFAULT_MSS)
            elif sock.conn is not None:
                current = sock.conn.options[key]
            else:
                current = sock.options.get(key, getattr(self.tcp.config, _CONFIG_NAMES.get(key, key), 0))
            actual = round(current / unit) if unit else int(current)
        else:
            return fail(E.ENOPROTOOPT, f"usernet's runner does not support option {level}:{name}")
        return Outcome(0, mismatch=_expect_out("option value", args[3] if len(args) > 3 else None, actual))

    def _tcp_info(self, sock: Socket, want: Any) -> Outcome:
        """getsockopt(TCP_INFO): the fields the script wrote in its struct are compared."""
        if not isinstance(want, dict):
            return Outcome(0)  # `...`: nothing to compare
        actual = tcp_info(sock)
        for name, expected in want.items():
            if expected is None:
                continue
            if name not in actual:
                raise DrillError(
                    f"the runner does not report tcp_info field {name}: it knows {', '.join(sorted(actual))}"
                )
            if actual[name] != expected:
                return Outcome(0, mismatch=f"{name}: expected {expected} vs actual {actual[name]}")
        return Outcome(0)

    def fcntl(self, args: list[Any], now: float) -> Outcome:
        sock = self._sock(args[0])
        if isinstance(sock, Outcome):
            return sock
        if args[1] == _C["F_GETFL"]:
            return Outcome(_C["O_RDWR"] | (_C["O_NONBLOCK"] if sock.nonblocking else 0))
        if args[1] == _C["F_SETFL"] and isinstance(args[2], int):
            sock.nonblocking = bool(args[2] & _C["O_NONBLOCK"])
            return Outcome(0)
        return fail(E.EINVAL, "the runner knows F_GETFL and F_SETFL")

    def ioctl(self, args: list[Any], now: float) -> Outcome:
        sock = self._sock(args[0])
        if isinstance(sock, Outcome):
            return sock
        conn = sock.conn
        if args[1] == _C["SIOCINQ"]:
            actual = conn.readable if conn is not None else 0
        elif args[1] == _C["SIOCOUTQ"]:
            actual = conn.unsent if conn is not None else 0
        else:
            return fail(E.ENOTTY, "the runner knows SIOCINQ/FIONREAD and SIOCOUTQ")
        return Outcome(0, mismatch=_expect_out("ioctl value", args[2] if len(args) > 2 else None, actual))

    def poll(self, args: list[Any], now: float) -> Outcome | Waiter:
        entries = args[0] if isinstance(args[0], list) else []
        timeout = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        deadline = None if timeout < 0 else now + timeout / 1000

        def attempt(t: float) -> Outcome | None:
            ready = 0
            mismatch = None
            for entry in entries:
                if not isinstance(entry, dict):
                    continue
                fd = entry.get("fd")
                sock = self.fds.get(fd) if isinstance(fd, int) else None
                events = entry.get("events") or 0
                revents = _C["POLLNVAL"] if sock is None else self._revents(sock) & (events | 0x38)
                if revents:
                    ready += 1
                want = entry.get("revents")
                if isinstance(want, int) and want != revents and mismatch is None:
                    mismatch = f"revents of fd {entry.get('fd')}: expected 0x{want:x} vs actual 0x{revents:x}"
            if ready or (deadline is not None and t >= deadline):
                return Outcome(ready, mismatch=mismatch)
            return None

        first = attempt(now)
        return first if first is not None else attempt

    def _revents(self, sock: Socket) -> int:
        if sock.listener is not None:
            return _C["POLLIN"] if sock.listener.pending else 0
        conn = sock.conn
        if conn is None:
            return _C["POLLOUT"] | _C["POLLHUP"]
        out = 0
        if conn.error is not None and not sock.error_taken:
            out |= _C["POLLERR"]
        if conn.readable or conn.at_eof or conn.state == State.CLOSED:
            out |= _C["POLLIN"]
        if conn.at_eof or conn.state == State.CLOSED:
            out |= _C["POLLRDHUP"]
        if conn.state == State.CLOSED or (conn.at_eof and conn.state not in _CONNECTED):
            out |= _C["POLLHUP"]
        if (conn.state in _CONNECTED and conn.send_space() > 0) or conn.state == State.CLOSED:
            out |= _C["POLLOUT"]
        return out


_CONFIG_NAMES = {"keepidle": "keepalive_idle", "keepintvl": "keepalive_interval", "keepcnt": "keepalive_count"}


def tcp_info(sock: Socket) -> dict[str, int]:
    """The subset of Linux's struct tcp_info usernet can state, in Linux's units (µs, segments)."""
    if sock.listener is not None:
        return {"tcpi_state": _LINUX_STATES[State.LISTEN]}
    conn = sock.conn
    if conn is None:
        return {"tcpi_state": _LINUX_STATES[State.CLOSED]}
    info = conn.info()
    mss = info["mss"]
    snd_wscale, rcv_wscale = info["wscale"]
    options = sum(bit for key, bit in _TCPI_OPT.items() if info[key])
    if conn.state in _OPEN_STATES and (snd_wscale or rcv_wscale):
        options |= 4
    if info["fastopen_data"]:
        options |= 32  # TCPI_OPT_SYN_DATA
    ssthresh = info["ssthresh"]
    return {
        "tcpi_state": _LINUX_STATES[conn.state],
        "tcpi_options": options,
        "tcpi_snd_wscale": snd_wscale,
        "tcpi_rcv_wscale": rcv_wscale,
        "tcpi_rto": round(info["rto"] * 1e6),
        "tcpi_rtt": round((info["rtt"] or 0) * 1e6),
        "tcpi_rttvar": round((info["rttvar"] or 0) * 1e6),
        "tcpi_snd_mss": mss,
        "tcpi_snd_cwnd": info["cwnd"] // mss,
        "tcpi_snd_ssthresh": _INFINITE_SSTHRESH if ssthresh >= _INFINITE_SSTHRESH else ssthresh // mss,
        "tcpi_total_retrans": info["retransmits"],
        "tcpi_bytes_received": info["bytes_received"],
        "tcpi_segs_in": info["segs_in"],
        "tcpi_segs_out": info["segs_out"],
        "tcpi_snd_wnd": info["snd_wnd"],
    }


def _iov_total(iov: Any) -> int:
    """Bytes in an iovec array written [{..., 10}, {..., 20}]."""
    total = 0
    for item in iov or []:
        if isinstance(item, dict):
            total += next((v for k, v in item.items() if k in (1, "iov_len") and isinstance(v, int)), 0)
    return total


__all__ = ["CONSTANTS", "Outcome", "Socket", "Sockets", "Waiter", "Watcher", "fail", "resolve", "tcp_info"]
