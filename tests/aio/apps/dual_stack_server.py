"""A server on one dual-stack socket ("::", IPV6_V6ONLY off), as anyio makes its listeners.

    python dual_stack_server.py PORT

Each connection is answered with the peer address `sock_accept` gave, then closed.
"""

import asyncio
import socket
import sys


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::", port))
    sock.listen(16)
    sock.setblocking(False)
    print("listening", sock.getsockname(), flush=True)
    while True:
        conn, peer = await loop.sock_accept(sock)
        await loop.sock_sendall(conn, f"{peer!r} {conn.family.name}\n".encode())
        conn.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
