"""Whole transfers between two usernet stacks over a faulty wire, on a virtual clock."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.tcp.net import Net, digest
from usernet.stack import TcpConfig
from usernet.stack.tcp.states import State

DONE = (State.TIME_WAIT, State.CLOSED)


def check(net: Net, a_to_b: bytes, b_to_a: bytes, label: str) -> None:
    client, server = net.transfer(a_to_b, b_to_a)
    assert digest(server.received) == digest(a_to_b), (
        f"{label}: A->B bytes differ ({len(server.received)} of {len(a_to_b)})"
    )
    assert digest(client.received) == digest(b_to_a), (
        f"{label}: B->A bytes differ ({len(client.received)} of {len(b_to_a)})"
    )
    assert client.conn.error is None and server.conn.error is None, f"{label}: {client.conn.error} {server.conn.error}"
    assert client.conn.state in DONE and server.conn.state in DONE, f"{label}: {client.conn.state} {server.conn.state}"
    assert net.lateness() == 0.0, f"{label}: a timer ran {net.lateness()} s late"
    net.sim.run(2 * TcpConfig().msl + 1)
    for host in (net.a, net.b):
        assert host.iface.tcp.connections() == [], f"{label}: connections left after TIME_WAIT"
        assert host.iface.tcp.next_deadline() is None, f"{label}: timers left after every connection closed"


def payloads(seed: int, n: int, m: int) -> tuple[bytes, bytes]:
    rng = random.Random(seed)
    return rng.randbytes(n), rng.randbytes(m)


@pytest.mark.parametrize("size", [1, 1000, 100_000, 1_000_000])
def test_clean_transfer_both_ways(size: int) -> None:
    a, b = payloads(size, size, size)
    check(Net(), a, b, f"size={size}")


def test_one_direction_only() -> None:
    a, _ = payloads(1, 300_000, 0)
    check(Net(), a, b"", "A->B only")
    check(Net(), b"", a, "B->A only")


def test_eight_megabytes() -> None:
    a, b = payloads(8, 8_000_000, 1000)
    check(Net(latency=0.005), a, b, "8 MB")


def test_fifty_megabytes_both_ways_with_loss() -> None:
    """The issue's upper bound: 50 MB each way, at once, over a lossy, reordering wire."""
    a, b = payloads(50, 50_000_000, 50_000_000)
    check(Net(latency=0.002, seed=50, loss=0.005, reorder=0.01), a, b, "50 MB both ways, seed 50")


FAULTS: list[tuple[str, dict[str, Any], int]] = [
    ("loss 1%", {"loss": 0.01}, 1_000_000),
    ("loss 5%", {"loss": 0.05}, 300_000),
    ("loss 20%", {"loss": 0.20}, 60_000),
    ("duplicate", {"duplicate": 0.1}, 300_000),
    ("reorder", {"reorder": 0.1}, 300_000),
    ("corrupt", {"corrupt": 0.05}, 300_000),
    ("delay+jitter", {"delay": 0.01, "jitter": 0.008}, 300_000),
    ("rate limit", {"rate": 1_000_000.0, "rate_queue": 32}, 300_000),
    ("everything", {"loss": 0.02, "duplicate": 0.02, "reorder": 0.05, "corrupt": 0.01, "jitter": 0.002}, 300_000),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("name", "faults", "size"), FAULTS, ids=[f[0] for f in FAULTS])
def test_transfer_with_faults(name: str, faults: dict[str, Any], size: int, seed: int) -> None:
    a, b = payloads(seed, size, size // 3)
    check(Net(seed=seed, **faults), a, b, f"{name} seed={seed} (replay: Net(seed={seed}, **{faults}))")


VARIANTS: list[tuple[str, TcpConfig]] = [
    ("no SACK, no timestamps (NewReno)", TcpConfig(sack=False, timestamps=False)),
    ("no window scale", TcpConfig(window_scale=0, rcvbuf=65535)),
    ("cubic", TcpConfig(congestion="cubic")),
    ("nodelay", TcpConfig(nodelay=True)),
    ("small buffers", TcpConfig(rcvbuf=4000, sndbuf=3000)),
    ("small mss", TcpConfig(mss=536)),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("name", "cfg"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_variants_with_loss(name: str, cfg: TcpConfig, seed: int) -> None:
    a, b = payloads(seed, 200_000, 50_000)
    check(Net(seed=seed, tcp=cfg, loss=0.03, reorder=0.02), a, b, f"{name} seed={seed}")


def test_mismatched_options() -> None:
    """One side offers everything, the other nothing: the handshake settles on the common part."""
    a, b = payloads(3, 100_000, 100_000)
    net = Net(
        seed=3, tcp=TcpConfig(), tcp_b=TcpConfig(sack=False, timestamps=False, window_scale=0, rcvbuf=65535), loss=0.02
    )
    check(net, a, b, "mismatched options")
