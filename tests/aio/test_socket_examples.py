"""The usernet.socket and framing examples, each on usernet over a TAP against a real kernel peer."""

from __future__ import annotations

import re
import socket

import pytest

from tests.aio.test_tcp_network import (
    EXAMPLES,
    KERNEL_IP,
    _wait_for_port,
    connect,
    memcached,
    on_usernet,
    read_all,
    tap,
)
from usernet.link.sandbox import Sandbox

pytestmark = pytest.mark.network
__all__ = ["memcached", "tap"]  # fixtures used by name


def test_socket_daytime_example(tap: Sandbox) -> None:
    server = on_usernet(tap, [str(EXAMPLES / "socket_daytime.py"), "13", "3"], ready="daytime listening")
    for _ in range(3):
        with connect(tap, 13) as client:
            line = read_all(client)
            assert re.fullmatch(rb"\w+day, \w+ \d\d, \d{4} \d\d:\d\d:\d\d-\w*\r\n", line), line
    assert server.wait(30) == 0  # served its three clients and ended


def test_socket_hello_example_two_way(tap: Sandbox) -> None:
    server = on_usernet(tap, [str(EXAMPLES / "socket_hello.py"), "4001"], ready="hello listening")
    clients = [connect(tap, 4001) for _ in range(5)]  # five at once: each waits for its name
    for client in clients:
        assert client.recv(6) == b"HELLO?"
    for i, client in enumerate(reversed(clients)):
        client.sendall(b"client %d\n" % i)
        assert read_all(client) == b"Hello, client %d!\r\n" % i
        client.close()
    server.terminate()
    server.wait(30)


def test_memcached_get_with_line_then_raw_framing(tap: Sandbox, memcached: int) -> None:
    _wait_for_port(tap, memcached)
    value = b"line one\r\nline two\r\nEND\r\n not the end"  # framing by lines alone would cut it short
    with tap.socket(socket.AF_INET, socket.SOCK_STREAM) as setter:
        setter.settimeout(10)
        setter.connect((KERNEL_IP, memcached))
        setter.sendall(b"set greeting 0 0 %d\r\n%s\r\n" % (len(value), value))
        assert setter.recv(100) == b"STORED\r\n"
    found = on_usernet(tap, [str(EXAMPLES / "memcached_get.py"), KERNEL_IP, "greeting", str(memcached)])
    out, err = found.communicate(timeout=60)
    assert found.returncode == 0 and out.strip() == repr(value), err
    missing = on_usernet(tap, [str(EXAMPLES / "memcached_get.py"), KERNEL_IP, "nokey", str(memcached)])
    out, _ = missing.communicate(timeout=60)
    assert missing.returncode == 1 and out == "not found\n"
