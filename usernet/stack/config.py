"""Interface configuration: every tunable of the sans-IO engine in one frozen value."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from usernet.stack.tcp.config import TcpConfig


@dataclass(frozen=True)
class InterfaceConfig:
    """What an Interface is and how it behaves.

    Addresses are `(address_bytes, prefix_length)`; use `InterfaceConfig.from_strings`
    to build one from "192.0.2.2/24"-style text. Limits are here, not scattered as
    constants, so tests and users can shrink them to exercise the bounded paths.

    The offload fields follow the link's capabilities (`usernet.drivers.host.offload_options`
    gives them): `rx_checksum_trusted` skips TCP/UDP checksum verification of received
    frames; `tx_checksum_partial` has TCP segments leave with only the pseudo-header sum
    in their checksum, for the device to complete; `tso_max` (an IPv4 packet size, 0 for
    none) lets TCP send segments of many MSS that the device cuts up. `ethernet` says
    what the link carries: Ethernet frames (ARP resolves next hops) or, when False, bare
    IP packets (a TUN, a tunnel; `mac` is then not used).
    """

    mac: bytes
    addresses: tuple[tuple[bytes, int], ...]
    gateway: bytes | None = None
    mtu: int = 1500
    ttl: int = 64
    arp_timeout: float = 60.0
    arp_first_retry: float = 0.2
    arp_retry_interval: float = 1.0
    arp_retries: int = 3
    arp_queue_limit: int = 32
    arp_pending_limit: int = 256
    arp_cache_limit: int = 1024
    icmp_error_rate: float = 100.0
    icmp_error_burst: int = 50
    udp_queue_limit: int = 256
    ephemeral_ports: tuple[int, int] = (32768, 60999)
    secret: bytes = field(default_factory=lambda: os.urandom(16))
    tcp: TcpConfig = field(default_factory=TcpConfig)
    rx_checksum_trusted: bool = False
    tx_checksum_partial: bool = False
    tso_max: int = 0
    # Reassembly (fragments.py): Linux's ipfrag_time and ipfrag_high_thresh; a source may hold a quarter.
    frag_timeout: float = 30.0
    frag_memory_limit: int = 4 * 1024 * 1024
    frag_source_limit: int = 1024 * 1024
    # Path MTU discovery (pmtu.py): Linux's mtu_expires and min_pmtu.
    pmtu_expires: float = 600.0
    min_pmtu: int = 552
    ethernet: bool = True

    def __post_init__(self) -> None:
        if len(self.mac) != 6:
            raise ValueError(f"mac must be 6 bytes, got {len(self.mac)}")
        if not self.addresses:
            raise ValueError("an interface needs at least one IPv4 address")
        for addr, prefix in self.addresses:
            if len(addr) != 4 or not 0 <= prefix <= 32:
                raise ValueError(f"bad interface address {addr!r}/{prefix}")
        if self.gateway is not None and len(self.gateway) != 4:
            raise ValueError("gateway must be 4 bytes")
        if not 576 <= self.mtu <= 65535:
            raise ValueError(f"mtu must be between 576 and 65535, got {self.mtu}")
        if self.frag_timeout <= 0 or not 0 < self.frag_source_limit <= self.frag_memory_limit:
            raise ValueError(
                "frag_timeout must be positive and 0 < frag_source_limit <= frag_memory_limit, got "
                f"{self.frag_timeout}, {self.frag_source_limit}, {self.frag_memory_limit}"
            )
        if self.pmtu_expires <= 0 or not 68 <= self.min_pmtu <= self.mtu:
            raise ValueError(
                f"pmtu_expires must be positive and min_pmtu in 68..mtu, got {self.pmtu_expires}, {self.min_pmtu}"
            )
        if self.tso_max and not self.tx_checksum_partial:
            raise ValueError("tso_max needs tx_checksum_partial: the device completes each segment's checksum")
        if self.tso_max and not self.mtu <= self.tso_max <= 65535:
            raise ValueError(f"tso_max must be 0 or between the mtu ({self.mtu}) and 65535, got {self.tso_max}")

    @classmethod
    def from_strings(
        cls,
        mac: bytes,
        addresses: list[str] | tuple[str, ...],
        gateway: str | None = None,
        **options: object,
    ) -> InterfaceConfig:
        """Build a config from CIDR strings such as "192.0.2.2/24"."""
        parsed = []
        for text in addresses:
            iface = ipaddress.IPv4Interface(text)
            parsed.append((iface.ip.packed, iface.network.prefixlen))
        gw = ipaddress.IPv4Address(gateway).packed if gateway else None
        return cls(mac=mac, addresses=tuple(parsed), gateway=gw, **options)  # type: ignore[arg-type]
