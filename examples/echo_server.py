"""An RFC 862 TCP echo server with asyncio Protocols: a plain program that knows nothing of usernet.

    python examples/echo_server.py [HOST] [PORT]          # on the kernel
    python -m usernet --sandbox examples/echo_server.py   # the same file, on usernet

It sends back every byte it receives, pausing its reading while the client does not
read the echo, and closes when the client does. It listens on 0.0.0.0:7 unless told
otherwise and prints one line when ready.
"""

import asyncio
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def pause_writing(self):
        self.transport.pause_reading()  # the client is not reading: stop taking more from it

    def resume_writing(self):
        self.transport.resume_reading()

    def eof_received(self):
        return False  # the client is done: close our side too


async def main(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, host, port)
    print(f"TCP echo listening on {server.sockets[0].getsockname()}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    host = sys.argv[1] if len(sys.argv) > 1 else "0.0.0.0"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    try:
        asyncio.run(main(host, port))
    except KeyboardInterrupt:
        pass
