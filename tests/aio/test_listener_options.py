"""Socket options a program sets on a listening socket reach the connections it accepts, as
on Linux (IP_TTL, TCP_NODELAY, SO_KEEPALIVE...), and read back from the listening socket."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from usernet import sim


def test_options_set_on_the_listening_socket_are_the_accepted_connections() -> None:
    seen: dict[str, object] = {}
    listening = asyncio.Event()

    async def server() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen["accepted"] = (
                sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL),
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            )
            writer.write(await reader.read(100))
            await writer.drain()
            writer.close()

        srv = await asyncio.start_server(handle, "0.0.0.0", 7)
        sock = srv.sockets[0]
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 9)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 45)
        seen["listener"] = sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)
        with pytest.raises(OSError) as refused:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 300)
        seen["refused"] = refused.value.errno
        listening.set()
        await srv.serve_forever()

    async def client() -> None:
        await listening.wait()
        reader, writer = await asyncio.open_connection("server", 7)
        writer.write(b"ping")
        seen["echo"] = await reader.read(100)
        writer.close()

    net = sim.Network()
    net.host("server", server, address="10.0.0.1/24")
    net.client("client", client, address="10.0.0.2/24")
    net.run(timeout=30)
    assert seen["echo"] == b"ping"
    assert seen["listener"] == 9 and seen["refused"] == errno.EINVAL
    assert seen["accepted"] == (9, 1, 45)
