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
    what the link carries: Ethernet frames (ARP and NDP resolve next hops) or, when False,
    bare IP packets (a TUN, a tunnel; `mac` is then not used, and IPv6 runs without
    neighbour discovery: see stack/ipv6.py).

    An interface has at least one address: IPv4 ones, or with IPv6 on, none of IPv4 at all
    (an IPv6-only link; the link-local address is always formed).
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
    # IPv6 (off unless asked for: ipv6=True, or IPv6 addresses or a gateway given)
    ipv6: bool = False
    addresses6: tuple[tuple[bytes, int], ...] = ()
    gateway6: bytes | None = None
    slaac: bool = True  # take router advertisements: routers, prefixes, addresses
    ipv6_stable_secret: bytes | None = None  # RFC 7217 key; None: `secret`, so the identifiers change per run
    dad_transmits: int = 1
    rtr_solicitations: int = 3
    rtr_solicitation_interval: float = 4.0
    nd_retrans_time: float = 1.0
    nd_reachable_time: float = 30.0
    nd_delay_first_probe: float = 5.0
    nd_max_multicast_solicit: int = 3
    nd_max_unicast_solicit: int = 3
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
        if not self.addresses and not self.wants_ipv6:
            raise ValueError("an interface needs an IPv4 address, or IPv6 (ipv6=True or an IPv6 address)")
        for addr, prefix in self.addresses:
            if len(addr) != 4 or not 0 <= prefix <= 32:
                raise ValueError(f"bad interface address {addr!r}/{prefix}")
        if self.gateway is not None and len(self.gateway) != 4:
            raise ValueError("gateway must be 4 bytes")
        for addr, prefix in self.addresses6:
            if len(addr) != 16 or not 0 <= prefix <= 128 or addr[0] == 0xFF:
                raise ValueError(f"bad interface IPv6 address {addr!r}/{prefix}")
        if self.gateway6 is not None and len(self.gateway6) != 16:
            raise ValueError("gateway6 must be 16 bytes")
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

    @property
    def wants_ipv6(self) -> bool:
        """IPv6 runs when asked for, or when IPv6 addresses or a gateway are given."""
        return self.ipv6 or bool(self.addresses6) or self.gateway6 is not None

    @classmethod
    def from_strings(
        cls,
        mac: bytes,
        addresses: list[str] | tuple[str, ...],
        gateway: str | None = None,
        gateway6: str | None = None,
        **options: object,
    ) -> InterfaceConfig:
        """Build a config from CIDR strings such as "192.0.2.2/24" or "2001:db8::2/64" (IPv6 ones
        go to `addresses6`)."""
        parsed: list[tuple[bytes, int]] = []
        parsed6: list[tuple[bytes, int]] = []
        for text in addresses:
            iface = ipaddress.ip_interface(text)
            (parsed6 if iface.version == 6 else parsed).append((iface.ip.packed, iface.network.prefixlen))
        gw = ipaddress.IPv4Address(gateway).packed if gateway else None
        gw6 = ipaddress.IPv6Address(gateway6).packed if gateway6 else None
        return cls(mac=mac, addresses=tuple(parsed), gateway=gw, addresses6=tuple(parsed6), gateway6=gw6, **options)  # type: ignore[arg-type]
