"""Header prediction's ACK of everything (`_ack_all`) leaves a connection as `_on_ack` would.

`_fast_path` hands an ACK of all in flight to `_ack_all`, a cut-down `_on_ack`, only when
none of `_on_ack`'s other branches could apply: no scoreboard, no F-RTO, and with SACK no
tail probe pending (an undo pending implies a scoreboard). Request/response exchanges over
a lossy, reordering wire reach each of those states with an ACK of everything arriving;
each runs twice, once as it is and once with `_on_ack` in `_ack_all`'s place, and both
connections' every field after each exchange, and every counter, must be the same.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.tcp.net import B_IP, PORT, Net
from usernet.stack import TcpConfig, TcpConnection, TcpListener
from usernet.stack.tcp.input import ConnectionInput
from usernet.wire.tcp import ACK

FAULTS: list[dict[str, Any]] = [{"loss": 0.03}, {"loss": 0.02, "reorder": 0.03}, {"reorder": 0.05}]
ROUNDS = 60


class Exchange:
    """A client that sends requests of mixed sizes one at a time, each once the last came
    back whole, and a server that echoes what it reads: the pattern whose every ACK is one
    of everything in flight, and whose losses are tail losses."""

    def __init__(self, net: Net, requests: list[bytes]) -> None:
        self.requests = requests
        self.listener = net.b.iface.tcp.listen((B_IP, PORT))
        self.client = net.a.iface.tcp.connect((B_IP, PORT), net.now())
        self.server: TcpConnection | None = None
        self.unsent: dict[TcpConnection, bytes] = {self.client: requests[0]}
        self.echoed = bytearray()
        self.done = 0
        self.states: list[tuple[dict[str, Any], dict[str, Any]]] = []  # both ends' fields, per exchange
        self.now = net.now
        net.sim.on_ready = self.ready

    def ready(self, host: Any, sock: Any) -> None:
        now = self.now()
        if isinstance(sock, TcpListener):
            self.server = sock.accept() or self.server
            sock = self.server
            if sock is None:
                return
        while data := sock.receive():
            if sock is self.client:
                self.echoed += data
            else:
                self.unsent[sock] = self.unsent.get(sock, b"") + data
        if sock is self.client and len(self.echoed) == len(self.requests[self.done]):
            assert self.echoed == self.requests[self.done]
            self.echoed.clear()
            self.done += 1
            assert self.server is not None
            self.states.append((sock.freeze(now), self.server.freeze(now)))
            if self.done < len(self.requests):
                self.unsent[sock] = self.requests[self.done]
        pending = self.unsent.get(sock)
        if pending:
            n = sock.send(pending, now)
            self.unsent[sock] = pending[n:]


def run(seed: int, faults: dict[str, Any], tcp: TcpConfig) -> tuple[Any, ...]:
    """ROUNDS request/response exchanges; both connections' every field after each, when
    they ended and every counter of both hosts."""
    rng = random.Random(seed)
    requests = [rng.randbytes(rng.choice((64, 900, 2920, 6000))) for _ in range(ROUNDS)]
    net = Net(seed=seed, tcp=tcp, **faults)
    exchange = Exchange(net, requests)
    while exchange.done < ROUNDS and net.now() < 600:
        net.sim.run(1.0)
    assert exchange.done == ROUNDS, f"{exchange.done} of {ROUNDS} exchanges in 600 s"
    return exchange.states, net.now(), sorted(net.a.iface.stats().items()), sorted(net.b.iface.stats().items())


def on_ack_instead(self: ConnectionInput, seq: int, ack: int, window: int, tsecr: int, now: float) -> None:
    """The general path for the same ACK: no SACK blocks (`_fast_path` let none through
    with SACK on, and without it they are ignored) and no data (`_on_ack` looks at its
    length only for an ACK of nothing)."""
    self._on_ack(seq, ack, ACK, window, tsecr, (), 0, now)


@pytest.mark.parametrize(
    "tcp",
    [TcpConfig(), TcpConfig(sack=False), TcpConfig(tlp=False), TcpConfig(timestamps=False)],
    ids=["default", "no-sack", "no-tlp", "no-timestamps"],
)
def test_the_shortcut_changes_nothing_an_exchange_shows(tcp: TcpConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    shortcut = [run(seed, faults, tcp) for seed in range(3) for faults in FAULTS]
    monkeypatch.setattr(ConnectionInput, "_ack_all", on_ack_instead)
    general = [run(seed, faults, tcp) for seed in range(3) for faults in FAULTS]
    assert_same(shortcut, general)


def assert_same(fast: list[tuple[Any, ...]], slow: list[tuple[Any, ...]]) -> None:
    """`run`'s results with a shortcut and without it are equal, run by run; a failure names
    the counters that differ."""
    for i, (a, b) in enumerate(zip(fast, slow, strict=True)):
        differ = [x for x, y in zip(a[2] + a[3], b[2] + b[3], strict=True) if x != y]
        assert a == b, f"exchange {i}: counters that differ {differ}"
