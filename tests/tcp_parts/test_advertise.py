"""`ConnectionOutput._advertise` with `recv.free` and `min` spelled out gives the window
field and the right edge the formula as first written gives, on generated states."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any, cast

from usernet.stack.tcp.buffers import ReceiveBuffer
from usernet.stack.tcp.output import ConnectionOutput


def reference(conn: Any) -> int:
    """`_advertise` as it was (before 2026-12-04's rtttrim)."""
    free = conn._recv.free - conn._ooo.held
    rcv_nxt = conn.rcv_nxt
    adv = conn._rcv_adv
    cur = ((adv - rcv_nxt + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    if cur < 0:
        cur = 0
    shift = conn._rcv_wscale
    field = free >> shift if free - cur >= min(conn._recv.limit >> 1, conn._rcv_mss) else cur >> shift
    if field > 65535:
        field = 65535
    edge = (rcv_nxt + (field << shift)) & 0xFFFFFFFF
    if (edge - adv) & 0xFFFFFFFF < 0x80000000:
        conn._rcv_adv = edge
    return field


def state(rng: random.Random) -> dict[str, Any]:
    limit = rng.choice([1000, 65535, 131072, 6 << 20])
    recv = ReceiveBuffer(limit)
    unread = rng.choice([0, 0, 1, 64, limit // 2, limit - 1, limit])
    if unread:
        recv.append(bytes(unread))
    if rng.random() < 0.1:
        recv.limit = rng.choice([1, 2, max(1, unread - rng.randrange(1, 100))])  # shrunk below what it holds
    rcv_nxt = rng.randrange(1 << 32)
    return {
        "_recv": recv,
        "_ooo": SimpleNamespace(held=rng.choice([0, 0, 0, 100, 5000])),
        "rcv_nxt": rcv_nxt,
        "_rcv_adv": (rcv_nxt + rng.choice([0, 1, 500, 65535, 1 << 20, -100, -(1 << 20)])) & 0xFFFFFFFF,
        "_rcv_wscale": rng.choice([0, 0, 2, 7, 14]),
        "_rcv_mss": rng.choice([536, 1460, 8960, 65483]),
    }


def test_advertise_matches_the_formula() -> None:
    rng = random.Random(16)
    for _ in range(5000):
        fields = state(rng)
        new = SimpleNamespace(**fields)
        old = SimpleNamespace(**fields)
        assert ConnectionOutput._advertise(cast(Any, new)) == reference(old), fields
        assert new._rcv_adv == old._rcv_adv, fields
