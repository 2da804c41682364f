"""Two usernet stacks in one process joined by TunnelLinks: each one's packets are the other's.

Each stack runs on its own usernet event loop in its own thread; a link's `send_packet`
is the other link's `deliver`, the pair of in-process queues a tunnel program would put
its transport between. Over it: a TCP transfer of SIZE random bytes each way, hashed,
and a UDP echo, over IPv4 or (FAMILY 6) IPv6 only: then the interfaces have no IPv4
address at all, and IPv6 runs without neighbour discovery, as on any IP-only link. No
root, no device. Prints "tcp SENT_HASH GOT_HASH ECHO_HASH" and "udp ANSWER" lines, or
raises.

Usage: tunnel_pair.py SIZE [FAMILY]
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import threading

from usernet.aio.runner import run
from usernet.drivers.host import Host, offload_options
from usernet.link.tunnel import TunnelLink
from usernet.stack import Interface, InterfaceConfig

#: Per family: the server's and the client's address, and their prefix length.
ADDRESSES = {4: ("198.51.100.1", "198.51.100.2", 24), 6: ("2001:db8:51::1", "2001:db8:51::2", 64)}


def host(link: TunnelLink, address: str, prefix: int) -> Host:
    config = InterfaceConfig.from_strings(link.mac, [f"{address}/{prefix}"], **offload_options(link))
    return Host(link, Interface(config))


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"echo:" + data, addr)


async def serve(
    server_ip: str, ready: threading.Event, stop: asyncio.Event, loop_box: list[asyncio.AbstractEventLoop]
) -> None:
    """TCP: read SIZE bytes, answer their hash and the same bytes back; UDP: echo."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = int((await reader.readline()).decode())
        data = await reader.readexactly(size)
        writer.write(hashlib.sha256(data).hexdigest().encode() + b"\n" + data)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    loop = asyncio.get_running_loop()
    loop_box.append(loop)
    server = await asyncio.start_server(session, server_ip, 7000)
    udp, _ = await loop.create_datagram_endpoint(Echo, local_addr=(server_ip, 7001))
    ready.set()
    await stop.wait()
    udp.close()
    server.close()
    await server.wait_closed()


async def client(server_ip: str, size: int) -> list[str]:
    data = os.urandom(size)
    reader, writer = await asyncio.open_connection(server_ip, 7000)
    writer.write(f"{size}\n".encode() + data)
    await writer.drain()
    their_hash = (await reader.readline()).decode().strip()
    back = await reader.readexactly(size)
    writer.close()
    await writer.wait_closed()
    answers: asyncio.Queue[bytes] = asyncio.Queue()

    class Collect(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            answers.put_nowait(data)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Collect, remote_addr=(server_ip, 7001))
    transport.sendto(b"ping over the tunnel")
    answer = await asyncio.wait_for(answers.get(), 10)
    transport.close()
    ours = hashlib.sha256(data).hexdigest()
    return [f"tcp {ours} {their_hash} {hashlib.sha256(back).hexdigest()}", f"udp {answer.decode()}"]


def run_pair(size: int, family: int = 4) -> list[str]:
    """Both stacks, the transfer and the echo over `family`; the lines the script prints."""
    server_ip, client_ip, prefix = ADDRESSES[family]
    a = TunnelLink(lambda packet: b.deliver(packet))
    b = TunnelLink(lambda packet: a.deliver(packet))
    ready = threading.Event()
    stop = asyncio.Event()
    loops: list[asyncio.AbstractEventLoop] = []
    server_host = host(b, server_ip, prefix)
    failure: list[BaseException] = []

    def server_thread() -> None:
        try:
            run(serve(server_ip, ready, stop, loops), host=server_host)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=server_thread, daemon=True)
    thread.start()
    try:
        if not ready.wait(30) or failure:
            raise RuntimeError(f"the server stack did not start: {failure}")
        return run(client(server_ip, size), host=host(a, client_ip, prefix))
    finally:
        if loops:
            loops[0].call_soon_threadsafe(stop.set)
        thread.join(30)
        a.close()
        b.close()
        if failure:
            raise failure[0]


if __name__ == "__main__":
    for line in run_pair(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 4):
        print(line)
