"""A run to repeat: `python -m tests.sim.replay SEED` prints its trace hash (for the determinism test).

TCP both ways under loss, duplication, reordering, jitter and a rate limit, a UDP
exchange, a partition and a crash with a restart: everything that draws random numbers
or depends on timer order takes part.
"""

from __future__ import annotations

import asyncio
import random
import sys

from tests.sim.echo import echo_server
from usernet import sim


def build(seed: int) -> sim.Network:
    net = sim.Network(seed=seed)

    async def server() -> None:
        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                self.transport.sendto(data.upper(), addr)

        await asyncio.get_running_loop().create_datagram_endpoint(Udp, local_addr=("0.0.0.0", 9))
        await echo_server()

    async def client() -> None:
        payload = random.Random(0).randbytes(300_000)
        for _ in range(2):
            reader, writer = await asyncio.open_connection("server", 7)
            writer.write(payload)
            assert await reader.readexactly(len(payload)) == payload
            writer.close()
        net.crash("server")
        await asyncio.sleep(1)
        net.restart("server")
        await asyncio.sleep(1)
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        class Udp(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                if not got.done():
                    got.set_result(data)

        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Udp, remote_addr=("server", 9))
        for _ in range(20):
            transport.sendto(b"ping")
            try:
                assert await asyncio.wait_for(asyncio.shield(got), 0.5) == b"PING"
                break
            except TimeoutError:
                continue

    net.host("server", server, address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    net.link("server", "client", latency=0.01, jitter=0.005, loss=0.03, duplicate=0.01, reorder=0.05, bandwidth=20e6)
    return net


if __name__ == "__main__":
    network = build(int(sys.argv[1]))
    network.run(timeout=600)
    print(network.trace_hash())
