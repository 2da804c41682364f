"""A Linux TUN device as a link: bare IP packets in and out of the kernel through /dev/net/tun.

A TUN is a TAP without Ethernet (IFF_TUN | IFF_NO_PI): the kernel hands over and takes
IPv4 and IPv6 packets that start at the IP header, routes to it without ARP or NDP, and
the interface on it runs without a link header (`ethernet = False`). Everything else is
the TAP's — vnet_hdr offloads (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6), software GSO and
GRO, attaching to a persistent device — with the link header length 0 where the TAP has 14.
"""

from __future__ import annotations

from typing import ClassVar

import pytun

from usernet.link.tap import TapLink

__all__ = ["TunLink"]


class TunLink(TapLink):
    """A TUN device (IFF_TUN | IFF_NO_PI, optionally IFF_VNET_HDR): see TapLink for the options.

    Creating one needs CAP_NET_ADMIN in the device's network namespace (or a persistent
    TUN root made for the user: `ip tuntap add mode tun user $USER name NAME`, then
    `TunLink.attach(NAME)`). `mac` is kept only because every link has one; nothing on a
    TUN carries it.
    """

    __slots__ = ()

    KIND: ClassVar[str] = "TUN"
    _MODE: ClassVar[int] = pytun.IFF_TUN
    _LINK_HEADER: ClassVar[int] = 0
    ethernet = False
