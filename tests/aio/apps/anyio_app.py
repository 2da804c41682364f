"""anyio on usernet, run unmodified by the network tests.

    python anyio_app.py listen PORT        # an echo server on anyio.create_tcp_listener(local_host="0.0.0.0")
    python anyio_app.py listen-any PORT    # the same without local_host: "::" dual-stack where IPv6 is up
    python anyio_app.py connect HOST PORT  # connect_tcp and create_udp_socket to a kernel-side echo

`listen` prints "listening" and the families of its sockets; `connect` prints the local addresses it got and "ok".
"""

import sys

import anyio
from anyio.abc import SocketStream


async def echo(stream: SocketStream) -> None:
    async with stream:
        async for data in stream:
            await stream.send(data)


async def listen(port: int, host: str | None) -> None:
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    families = sorted(inner.extra(anyio.abc.SocketAttribute.family).name for inner in listener.listeners)
    print("listening", *families, flush=True)
    await listener.serve(echo)


async def connect(host: str, port: int) -> None:
    async with await anyio.connect_tcp(host, port) as stream:
        await stream.send(b"tcp through anyio")
        assert await stream.receive() == b"tcp through anyio"
        tcp_local = stream.extra(anyio.abc.SocketAttribute.local_address)
    async with await anyio.create_udp_socket(local_host="0.0.0.0") as udp:
        await udp.sendto(b"udp through anyio", host, port)
        data, _ = await udp.receive()
        assert data == b"udp through anyio"
        udp_local = udp.extra(anyio.abc.SocketAttribute.local_address)
    print(f"tcp {tcp_local[0]} udp {udp_local[0]} ok", flush=True)


if sys.argv[1] == "listen":
    anyio.run(listen, int(sys.argv[2]), "0.0.0.0")
elif sys.argv[1] == "listen-any":
    anyio.run(listen, int(sys.argv[2]), None)
else:
    anyio.run(connect, sys.argv[2], int(sys.argv[3]))
