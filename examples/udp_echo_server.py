"""An RFC 862 UDP echo server: a plain asyncio program that knows nothing of usernet.

    python examples/udp_echo_server.py [HOST] [PORT]          # on the kernel
    python -m usernet --sandbox examples/udp_echo_server.py   # the same file, on usernet

It listens on 0.0.0.0:7 unless told otherwise and prints one line when ready.
"""

import asyncio
import sys


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


async def main(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=(host, port))
    print(f"UDP echo listening on {transport.get_extra_info('sockname')}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        transport.close()


if __name__ == "__main__":
    host = sys.argv[1] if len(sys.argv) > 1 else "0.0.0.0"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    try:
        asyncio.run(main(host, port))
    except KeyboardInterrupt:
        pass
