"""A tunnel the program carries itself: usernet's IP packets, one per kernel UDP datagram.

    python examples/tunnel_over_udp.py server [PORT PEER_PORT]   # usernet 10.8.0.1, an HTTP-ish hello on 8000
    python examples/tunnel_over_udp.py client [PORT PEER_PORT]   # usernet 10.8.0.2 fetches it through the tunnel

No root and no device: each process runs a usernet stack on a TunnelLink, and carries its
packets over a kernel UDP socket on 127.0.0.1 (ports 6001 and 6002 unless told otherwise).
A VPN client or a QUIC/TLS tunnel would do the same with its own transport.
"""

import asyncio
import sys

from usernet.aio.runner import run
from usernet.drivers.host import Host, offload_options
from usernet.link.tunnel import TunnelLink
from usernet.stack import Interface, InterfaceConfig


class Carrier(asyncio.DatagramProtocol):
    """The tunnel: one IP packet per kernel UDP datagram to and from the peer."""

    def __init__(self, link):
        self.link = link

    def datagram_received(self, data, addr):
        self.link.deliver(data)  # a packet from the tunnel, into usernet


async def hello(reader, writer):
    writer.write(b"hello over the tunnel\n")
    await writer.drain()
    writer.close()


async def main(link, port, peer_port, server):
    loop = asyncio.get_running_loop()
    carrier, _ = await loop.create_datagram_endpoint(  # 127.0.0.1 is not usernet's: a kernel socket
        lambda: Carrier(link), local_addr=("127.0.0.1", port), remote_addr=("127.0.0.1", peer_port)
    )
    link.send_packet = carrier.sendto  # usernet's packets, out through the tunnel
    if server:  # plain asyncio, on usernet's 10.8.0.1
        async with await asyncio.start_server(hello, "10.8.0.1", 8000) as listener:
            print("serving on 10.8.0.1:8000", flush=True)
            await listener.serve_forever()
    reader, writer = await asyncio.open_connection("10.8.0.1", 8000)
    print((await reader.readline()).decode(), end="")
    writer.close()


if __name__ == "__main__":
    server = sys.argv[1] == "server"
    ports = [int(p) for p in sys.argv[2:4]] or ([6001, 6002] if server else [6002, 6001])
    link = TunnelLink(mtu=1400)  # send_packet is set once the carrier exists
    config = InterfaceConfig.from_strings(
        link.mac, ["10.8.0.1/24" if server else "10.8.0.2/24"], **offload_options(link)
    )
    run(main(link, *ports, server), host=Host(link, Interface(config)))
