"""select() on the descriptor of a usernet socket, through data, FIN and RST from a real kernel peer.

    python poll_descriptor.py PORT

Accepts one connection with `loop.sock_accept` on a kernel socket bound to the
wildcard (which routes to usernet). The peer (the test, on the kernel side) sends
b"hello", then a FIN after our b"1", then a RST after our b"2"; after each, the
descriptor must turn readable, and stay so as a kernel socket's does. Prints "ok".
"""

import asyncio
import select
import socket
import sys


def polled(fd: int) -> tuple[bool, bool]:
    readable, writable, _ = select.select([fd], [fd], [], 0)
    return bool(readable), bool(writable)


async def until_readable(fd: int) -> None:
    for _ in range(1000):
        if polled(fd)[0]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the descriptor never turned readable")


async def main() -> None:
    loop = asyncio.get_running_loop()
    listening = socket.socket()
    listening.bind(("0.0.0.0", int(sys.argv[1])))
    listening.listen()
    listening.setblocking(False)
    print("listening", flush=True)
    sock, _ = await loop.sock_accept(listening)
    fd = sock.fileno()
    assert fd >= 0 and polled(fd)[1], "a fresh connection is writable"
    await until_readable(fd)
    data = b""
    while len(data) < 5:
        data += await loop.sock_recv(sock, 5 - len(data))
    assert data == b"hello" and polled(fd) == (False, True), polled(fd)
    await loop.sock_sendall(sock, b"1")
    await until_readable(fd)
    assert await loop.sock_recv(sock, 10) == b""
    assert polled(fd) == (True, True), "a FIN stays readable"
    await loop.sock_sendall(sock, b"2")
    for _ in range(1000):
        try:
            await loop.sock_sendall(sock, b"x")
        except ConnectionResetError:
            break
        await asyncio.sleep(0.01)
    assert polled(fd) == (True, True) and sock.fileno() == fd, "a reset stays readable; the socket is still open"
    sock.close()
    assert sock.fileno() == -1
    print("ok", flush=True)


asyncio.run(main())
