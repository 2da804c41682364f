"""A closed connection is freed by reference counting alone, with the cyclic collector off.

A reference cycle through a connection (connection <-> owner, a bound method kept, a
listener's queue) would leave every closed connection to the cyclic garbage collector,
whose passes a busy server pays per connection; none must exist once both ends are CLOSED
and the driver has taken the woken sockets.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from benchmarks.engine_cpu import pair, step


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_closed_connections_are_freed_without_the_cyclic_collector(no_cyclic_gc: None) -> None:
    a, b = pair()
    listener = b.tcp.listen((bytes(4), 7))
    now = 0.0

    def steps(count: int, dt: float = 0.001) -> None:
        nonlocal now
        for _ in range(count):
            now += dt
            step(a, b, now)
            a.take_ready()
            b.take_ready()

    client = a.tcp.connect((bytes((192, 0, 2, 2)), 7), now)
    steps(5)
    server = listener.accept()
    assert server is not None
    client.send(b"hello", now)
    steps(3)
    assert server.receive() == b"hello"
    refs = [weakref.ref(client), weakref.ref(server)]
    client.close(now)
    server.close(now)
    steps(3)
    del client, server
    steps(2, dt=100.0)  # past TIME_WAIT's 2*MSL: both ends CLOSED and out of the tables
    assert [r() for r in refs] == [None, None]
