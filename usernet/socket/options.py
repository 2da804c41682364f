"""What each backend supports: families, protocols, socket options and message flags, as data.

`supports()` and `is_supported()` read these tables, and the backends apply options
through them, so what is reported and what a call does come from one place (a test
tries every option and flag reported as supported, and checks that the others fail).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "FLAGS",
    "OPTIONS",
    "Flag",
    "Option",
    "is_supported",
    "option_by_name",
    "option_by_number",
    "supports",
]

Backend = Literal["usernet", "kernel"]
Protocol = Literal["tcp", "udp"]
Kind = Literal["bool", "int"]


@dataclass(frozen=True)
class Option:
    """One socket option: its (level, name) as Erlang spells it, its numbers, and who carries it.

    `stack` is the TcpConnection option it maps to on usernet (scaled by `scale`: the
    kernel counts TCP_USER_TIMEOUT in milliseconds, the stack in seconds); `usernet` the
    protocols usernet supports it on; `writable` False for read-only options.
    """

    level: str
    name: str
    number: tuple[int, int]
    kind: Kind
    usernet: frozenset[str]
    stack: str | None = None
    scale: float = 1
    writable: bool = True

    @property
    def key(self) -> tuple[str, str]:
        return (self.level, self.name)

    def protocols(self, backend: Backend) -> frozenset[str]:
        """The protocols whose sockets take this option on `backend` (Linux: TCP-level ones only on TCP)."""
        if backend == "usernet":
            return self.usernet
        return _TCP if self.level == "tcp" else _BOTH


_TCP = frozenset({"tcp"})
_UDP = frozenset({"udp"})
_BOTH = frozenset({"tcp", "udp"})
_NONE: frozenset[str] = frozenset()
SOL, TCP, IP = socket.SOL_SOCKET, socket.IPPROTO_TCP, socket.IPPROTO_IP

OPTIONS: tuple[Option, ...] = (
    Option("socket", "reuseaddr", (SOL, socket.SO_REUSEADDR), "bool", _BOTH),
    Option("socket", "keepalive", (SOL, socket.SO_KEEPALIVE), "bool", _TCP, "keepalive"),
    Option("socket", "rcvbuf", (SOL, socket.SO_RCVBUF), "int", _TCP, "rcvbuf"),
    Option("socket", "sndbuf", (SOL, socket.SO_SNDBUF), "int", _TCP, "sndbuf"),
    Option("socket", "broadcast", (SOL, socket.SO_BROADCAST), "bool", _UDP),
    Option("socket", "type", (SOL, socket.SO_TYPE), "int", _BOTH, writable=False),
    Option("socket", "error", (SOL, socket.SO_ERROR), "int", _BOTH, writable=False),
    Option("socket", "acceptconn", (SOL, socket.SO_ACCEPTCONN), "bool", _BOTH, writable=False),
    Option("socket", "domain", (SOL, socket.SO_DOMAIN), "int", _BOTH, writable=False),
    Option("socket", "protocol", (SOL, socket.SO_PROTOCOL), "int", _BOTH, writable=False),
    Option("socket", "priority", (SOL, socket.SO_PRIORITY), "int", _NONE),
    Option("tcp", "nodelay", (TCP, socket.TCP_NODELAY), "bool", _TCP, "nodelay"),
    Option("tcp", "keepidle", (TCP, socket.TCP_KEEPIDLE), "int", _TCP, "keepidle"),
    Option("tcp", "keepintvl", (TCP, socket.TCP_KEEPINTVL), "int", _TCP, "keepintvl"),
    Option("tcp", "keepcnt", (TCP, socket.TCP_KEEPCNT), "int", _TCP, "keepcnt"),
    Option("tcp", "user_timeout", (TCP, socket.TCP_USER_TIMEOUT), "int", _TCP, "user_timeout", 1000),
    Option("tcp", "cork", (TCP, socket.TCP_CORK), "bool", _NONE),
    Option("tcp", "quickack", (TCP, socket.TCP_QUICKACK), "bool", _NONE),
    Option("ip", "ttl", (IP, socket.IP_TTL), "int", _NONE),
    Option("ip", "tos", (IP, socket.IP_TOS), "int", _NONE),
)

_BY_NAME = {o.key: o for o in OPTIONS}
_BY_NUMBER = {o.number: o for o in OPTIONS}


@dataclass(frozen=True)
class Flag:
    """A MSG_* flag: its value, the calls it applies to, and the protocols each backend honours it on."""

    value: int
    calls: frozenset[str]  # "send", "recv"
    usernet: frozenset[str]
    kernel: frozenset[str]


_SEND = frozenset({"send"})
_RECV = frozenset({"recv"})
_SEND_RECV = frozenset({"send", "recv"})

FLAGS: dict[str, Flag] = {
    "dontwait": Flag(socket.MSG_DONTWAIT, _SEND_RECV, _BOTH, _BOTH),
    "nosignal": Flag(socket.MSG_NOSIGNAL, _SEND, _BOTH, _BOTH),
    "waitall": Flag(socket.MSG_WAITALL, _RECV, _TCP, _BOTH),
    "trunc": Flag(socket.MSG_TRUNC, _RECV, _UDP, _UDP),  # on a Linux TCP socket it means "discard"
    "peek": Flag(socket.MSG_PEEK, _RECV, _NONE, _BOTH),
    "oob": Flag(socket.MSG_OOB, _SEND, _NONE, _TCP),
    "more": Flag(socket.MSG_MORE, _SEND, _NONE, _BOTH),
    "dontroute": Flag(socket.MSG_DONTROUTE, _SEND, _NONE, _BOTH),
    "eor": Flag(socket.MSG_EOR, _SEND, _NONE, _NONE),  # SOCK_SEQPACKET only on Linux
}


def option_by_name(level: str, name: str) -> Option | None:
    return _BY_NAME.get((level, name))


def option_by_number(level: int, name: int) -> Option | None:
    return _BY_NUMBER.get((level, name))


def flag_mask(backend: Backend, protocol: str) -> int:
    """The message flags `backend` honours on `protocol` sockets, as one mask."""
    mask = 0
    for flag in FLAGS.values():
        if protocol in (flag.kernel if backend == "kernel" else flag.usernet):
            mask |= flag.value
    return mask


def _families(backend: Backend) -> dict[str, bool]:
    kernel = backend == "kernel"
    return {"inet": True, "inet6": kernel and socket.has_ipv6, "local": kernel, "sctp": False, "netns": False}


def supports(
    what: str | None = None, *, backend: Backend = "usernet", protocol: Protocol | None = None
) -> dict[Any, bool]:
    """What `backend` supports: families (no argument), "protocols", "options" or "msg_flags".

    Options are keyed by (level, name) as in Erlang's socket module; with `protocol`,
    only what that kind of socket takes. The kernel backend is a plain Linux socket:
    everything here that Linux has.
    """
    kernel = backend == "kernel"
    if what is None:
        return dict(_families(backend))
    if what == "protocols":
        return {"tcp": True, "udp": True, "sctp": False, "icmp": kernel}
    if what == "options":
        options = {}
        for option in OPTIONS:
            protocols = option.protocols(backend)
            options[option.key] = bool(protocols) and (protocol is None or protocol in protocols)
        return options
    if what == "msg_flags":
        found = {}
        for name, flag in FLAGS.items():
            protocols = flag.kernel if kernel else flag.usernet
            found[name] = bool(protocols) if protocol is None else protocol in protocols
        return found
    raise ValueError(f"supports() takes nothing, 'protocols', 'options' or 'msg_flags', not {what!r}")


def is_supported(
    what: str, name: object = None, *, backend: Backend = "usernet", protocol: Protocol | None = None
) -> bool:
    """`is_supported("options", ("tcp", "nodelay"))`, `is_supported("msg_flags", "peek")`, `is_supported("inet6")`."""
    if name is None:
        return supports(backend=backend).get(what, False)
    return supports(what, backend=backend, protocol=protocol).get(name, False)
