"""The sans-IO protocol engine: handed frames and the time, hands back frames and a deadline.

Nothing in this package reads a clock, a socket or a file; that is what lets the whole
stack run deterministically in simulation on a virtual clock.
"""

from usernet.stack.config import InterfaceConfig
from usernet.stack.icmp import PingSocket
from usernet.stack.interface import Interface
from usernet.stack.stats import Stats
from usernet.stack.tcp.config import TcpConfig
from usernet.stack.tcp.connection import TcpConnection
from usernet.stack.tcp.layer import TcpLayer, TcpListener
from usernet.stack.tcp.states import State as TcpState
from usernet.stack.udp import UdpSocket

__all__ = [
    "Interface",
    "InterfaceConfig",
    "PingSocket",
    "Stats",
    "TcpConfig",
    "TcpConnection",
    "TcpLayer",
    "TcpListener",
    "TcpState",
    "UdpSocket",
]
