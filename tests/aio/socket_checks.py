"""Checks that usernet.socket's supports() tells the truth: shared by the simulated and the TAP tests."""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest

import usernet.socket as us
from usernet.socket import Socket
from usernet.socket.options import FLAGS, OPTIONS, Backend, Protocol


def _value_for(option: Any) -> int:
    return {"priority": 3, "user_timeout": 4000, "ttl": 33, "tos": 0x10, "keepcnt": 5}.get(
        option.name, 1 if option.kind == "bool" else 7000
    )


def check_options(sock: Socket, backend: Backend, protocol: Protocol) -> None:
    """Every option supports() reports can be set and read back; every other one fails with ENOPROTOOPT."""
    reported = us.supports("options", backend=backend, protocol=protocol)
    for option in OPTIONS:
        if reported[option.key]:
            if option.writable:
                sock.setopt(option.key, _value_for(option))
                got = sock.getopt(option.key)
                if option.name not in ("rcvbuf", "sndbuf"):  # the kernel doubles these
                    assert int(got) == _value_for(option), option
            else:
                sock.getopt(option.key)
                with pytest.raises(OSError) as info:
                    sock.setopt(option.key, 1)
                assert info.value.errno == errno.ENOPROTOOPT
        else:
            with pytest.raises(OSError) as info:
                sock.setopt(option.key, _value_for(option))
            assert info.value.errno == errno.ENOPROTOOPT, option


def check_flags(sender: Socket, receiver: Socket, backend: Backend, protocol: Protocol, address: Any = None) -> None:
    """Every flag supports() reports works in the calls it applies to; the others fail (usernet)."""
    reported = us.supports("msg_flags", backend=backend, protocol=protocol)
    for name, flag in FLAGS.items():
        if not reported[name]:
            if backend == "usernet":
                with pytest.raises(OSError) as info:
                    sender.send(b"z", flag.value, timeout=1)
                assert info.value.errno == errno.EOPNOTSUPP, name
            continue
        if "send" in flag.calls:
            if address is None:
                sender.send(b"z", flag.value, timeout=5)
            else:
                sender.sendto(b"z", address, flag.value, timeout=5)
            if flag.value == socket.MSG_OOB:
                continue  # urgent data is not in the normal stream
            if flag.value == socket.MSG_MORE:  # held back until a send without it: they leave together
                sender.send(b"!", timeout=5) if address is None else sender.sendto(b"!", address, timeout=5)
                assert receiver.recv(2 if address is None else 0, timeout=5) == b"z!"
            else:
                assert receiver.recv(1, timeout=5) == b"z"
        if "recv" in flag.calls:
            sender.send(b"q", timeout=5) if address is None else sender.sendto(b"q", address, timeout=5)
            receiver.recv(1 if flag.value != socket.MSG_DONTWAIT else 0, flag.value & ~socket.MSG_DONTWAIT, timeout=5)
            if flag.value == socket.MSG_PEEK:
                assert receiver.recv(1, timeout=5) == b"q"  # peeked, still there
