"""What the simulation tests run on their hosts: a TCP echo server, and probes of what fails."""

from __future__ import annotations

import asyncio


async def echo_server(port: int = 7, host: str | None = "0.0.0.0") -> None:
    """Echo every byte back on `port` until the peer closes, forever (a host's main); `host`
    None listens on every address of both families."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    await (await asyncio.start_server(echo, host, port)).serve_forever()


async def connect_failure(address: str, port: int = 7) -> tuple[int | None, float]:
    """How a connect to `address` failed: its errno and the virtual seconds that took (within 30)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), 30)
    except OSError as exc:
        return exc.errno, loop.time() - start
    writer.close()
    raise AssertionError(f"the connect to {address} succeeded")


async def traceroute(address: str, level: int, option: int, limits: tuple[int, ...] = (1, 2)) -> list[tuple[int, int]]:
    """Probe `address`'s UDP port 33434 as traceroute does, one datagram per TTL or hop limit in
    `limits`, set through the socket option `option` at `level` (IP_TTL, IPV6_UNICAST_HOPS);
    the (limit, errno) of each error the connected socket heard."""
    heard: list[tuple[int, int]] = []
    sending = [0]  # the limit of the probe in flight

    class Probe(asyncio.DatagramProtocol):
        def error_received(self, exc: Exception) -> None:
            assert isinstance(exc, OSError)
            heard.append((sending[0], exc.errno))

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Probe, remote_addr=(address, 33434))
    sock = transport.get_extra_info("socket")
    assert sock.getsockopt(level, option) == 64
    for limit in limits:
        sock.setsockopt(level, option, limit)
        assert sock.getsockopt(level, option) == limit
        sending[0] = limit
        transport.sendto(b"probe")
        await asyncio.sleep(1)
    transport.close()
    return heard
