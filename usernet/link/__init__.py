"""Devices that move frames: a TAP, a TUN, a UDP socket, a tunnel the program carries, an in-memory wire,
and wrappers for faults and capture.

Every link implements `usernet.link.base.Link`; see docs/architecture.md for the contract.
"""

from usernet.link.base import ETHERNET_OVERHEAD, BytesLike, Link, LinkCounters, LinkWrapper
from usernet.link.clock import VirtualClock
from usernet.link.fault import FaultInjector
from usernet.link.memory import MemoryEndpoint, MemoryWire
from usernet.link.observe import ObservedLink, Observer
from usernet.link.pcap import PcapReader, PcapTap, PcapWriter
from usernet.link.tap import TapLink, random_mac
from usernet.link.tun import TunLink
from usernet.link.tunnel import TunnelLink
from usernet.link.udp import UdpLink

__all__ = [
    "ETHERNET_OVERHEAD",
    "BytesLike",
    "FaultInjector",
    "Link",
    "LinkCounters",
    "LinkWrapper",
    "MemoryEndpoint",
    "MemoryWire",
    "ObservedLink",
    "Observer",
    "PcapReader",
    "PcapTap",
    "PcapWriter",
    "TapLink",
    "TunLink",
    "TunnelLink",
    "UdpLink",
    "VirtualClock",
    "random_mac",
]
