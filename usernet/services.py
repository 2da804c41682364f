"""Built-in services that run directly on the sans-IO sockets (no asyncio needed).

They make `usernet up` useful on its own for manual testing: RFC 862 echo over UDP
now, TCP echo/discard/chargen when the TCP engine lands.
"""

from __future__ import annotations

from usernet.stack.interface import Interface, Socket
from usernet.stack.udp import ANY, UdpSocket

ECHO_PORT = 7


class UdpEcho:
    """RFC 862 echo over UDP: every datagram goes back to its sender unchanged."""

    def __init__(self, iface: Interface, port: int = ECHO_PORT) -> None:
        self.sock = iface.open_udp((ANY, port))
        self.echoed = 0

    def handle(self, sock: Socket, now: float) -> None:
        if sock is not self.sock:
            return
        udp: UdpSocket = self.sock
        while (item := udp.recvfrom()) is not None:
            data, source = item
            try:
                udp.sendto(data, source, now)
            except OSError:
                continue  # e.g. the sender is off-link and there is no gateway: nothing to answer
            self.echoed += 1
        udp.errors.clear()
