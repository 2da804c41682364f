"""A line-based chat room with asyncio streams: a plain program that knows nothing of usernet.

    python examples/chat_server.py [HOST] [PORT]          # on the kernel
    python -m usernet --sandbox examples/chat_server.py   # the same file, on usernet

Every line a client sends goes to every other client, prefixed with the sender's
address; clients hear who comes and goes. Try two `nc HOST 5555` at once. It listens
on 0.0.0.0:5555 unless told otherwise and prints one line when ready.
"""

import asyncio
import sys

clients: dict[asyncio.StreamWriter, str] = {}


def broadcast(line: str, sender: asyncio.StreamWriter | None = None) -> None:
    for writer in clients:
        if writer is not sender:
            writer.write(line.encode())


async def chat(reader, writer):
    host, port = writer.get_extra_info("peername")[:2]
    name = f"{host}:{port}"
    writer.write(f"welcome {name}; {len(clients)} other(s) here\n".encode())
    broadcast(f"* {name} joined\n")
    clients[writer] = name
    try:
        while line := await reader.readline():
            broadcast(f"{name}: {line.decode(errors='replace')}", sender=writer)
            await writer.drain()
    finally:
        del clients[writer]
        broadcast(f"* {name} left\n")
        writer.close()


async def main(host: str, port: int) -> None:
    server = await asyncio.start_server(chat, host, port)
    print(f"chat listening on {server.sockets[0].getsockname()}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    host = sys.argv[1] if len(sys.argv) > 1 else "0.0.0.0"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 5555
    try:
        asyncio.run(main(host, port))
    except KeyboardInterrupt:
        pass
