"""An RFC 867 daytime server with asyncio streams: a plain program that knows nothing of usernet.

    python examples/daytime_server.py [HOST] [PORT]          # on the kernel
    python -m usernet --sandbox examples/daytime_server.py   # the same file, on usernet

Each client gets the date and time as one line, then the server closes the connection.
It listens on 0.0.0.0:13 unless told otherwise and prints one line when ready.
"""

import asyncio
import sys
import time


async def daytime(reader, writer):
    writer.write(time.strftime("%A, %B %d, %Y %H:%M:%S-%Z\r\n").encode())
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def main(host: str, port: int) -> None:
    server = await asyncio.start_server(daytime, host, port)
    print(f"daytime listening on {server.sockets[0].getsockname()}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    host = sys.argv[1] if len(sys.argv) > 1 else "0.0.0.0"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 13
    try:
        asyncio.run(main(host, port))
    except KeyboardInterrupt:
        pass
