"""Stack bugs the simulator found, kept found: each run failed (stalled for good) before its fix."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.sim.echo import echo_server
from usernet import sim


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bulk_echo_under_ten_percent_loss_finishes(seed: int) -> None:
    """Both sides rewound snd_nxt after RTOs and sent pure ACKs below the peer's window: each
    dropped the other's ACKs and the transfer stalled forever. Pure ACKs now carry SND.MAX."""
    payload = random.Random(seed).randbytes(1_000_000)
    echoed: list[bool] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection("server", 7)
        writer.write(payload)
        echoed.append(await reader.readexactly(len(payload)) == payload)

    net = sim.Network(seed=seed, latency=0.001)
    net.host("server", echo_server, address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    net.link("client", "server", loss=0.10)
    net.run(timeout=600)
    assert echoed == [True]
