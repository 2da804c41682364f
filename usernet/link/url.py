"""Links named by a URL, as `--link` / USERNET_LINK take them: `tap:NAME`, `tun:NAME`,
`packet:IFNAME`, `udp://HOST:PORT?peer=HOST:PORT`.

Parsing only: no device is opened here. The composition root (drivers/config.py)
opens the link a URL names.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

__all__ = ["LINK_URL_FORMS", "DeviceUrl", "LinkUrl", "PacketUrl", "TapUrl", "TunUrl", "UdpUrl", "parse_link_url"]

#: The forms a link URL takes, for error messages and help texts.
LINK_URL_FORMS = "tap:NAME, tun:NAME, packet:IFNAME or udp://LOCAL_HOST:PORT?peer=HOST:PORT"
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")


@dataclass(frozen=True)
class TapUrl:
    """A TAP device, created or attached to (see TapLink)."""

    name: str

    def __str__(self) -> str:
        return f"tap:{self.name}"


@dataclass(frozen=True)
class TunUrl:
    """A TUN device, created or attached to (see TunLink): bare IP packets, no Ethernet."""

    name: str

    def __str__(self) -> str:
        return f"tun:{self.name}"


@dataclass(frozen=True)
class PacketUrl:
    """An existing interface reached through AF_PACKET (see PacketLink and its set-up in docs/tools.md)."""

    name: str

    def __str__(self) -> str:
        return f"packet:{self.name}"


@dataclass(frozen=True)
class UdpUrl:
    """A UDP socket bound to `local` carrying frames to and from `peer` (see UdpLink)."""

    local: tuple[str, int]
    peer: tuple[str, int]

    def __str__(self) -> str:
        return f"udp://{_host_port(*self.local)}?peer={_host_port(*self.peer)}"


LinkUrl = TapUrl | TunUrl | PacketUrl | UdpUrl
#: The links usernet opens on a /dev/net/tun device (and may put in a sandbox).
DeviceUrl = TapUrl | TunUrl


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bad(url: str, why: str) -> ValueError:
    return ValueError(f"bad link {url!r}: {why}; write {LINK_URL_FORMS}")


def _endpoint(url: str, what: str, netloc: str) -> tuple[str, int]:
    """(host, port) from "HOST:PORT" or "[IPV6]:PORT", both required."""
    parts = urllib.parse.urlsplit("//" + netloc)
    try:
        port = parts.port
    except ValueError:
        raise _bad(url, f"the {what} port in {netloc!r} is not a number in 0..65535") from None
    if parts.username is not None or parts.password is not None or parts.path or not parts.hostname:
        raise _bad(url, f"the {what} address {netloc!r} is not HOST:PORT")
    if port is None or not 1 <= port <= 65535:
        raise _bad(url, f"the {what} address {netloc!r} needs a port, 1..65535")
    return parts.hostname, port


def parse_link_url(url: str) -> LinkUrl:
    """The link `url` names; ValueError saying what is wrong and what to write otherwise."""
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if not sep:
        raise _bad(url, "no kind of link before a ':'")
    if scheme in ("tap", "tun", "packet"):
        if not _IFNAME.fullmatch(rest):
            raise _bad(url, "an interface name is 1 to 15 letters, digits, '_', '.' or '-'")
        if scheme == "packet":
            return PacketUrl(rest)
        if scheme == "tun":
            return TunUrl(rest)
        return TapUrl(rest)
    if scheme == "udp":
        parts = urllib.parse.urlsplit(url)
        if parts.path or parts.fragment:
            raise _bad(url, "nothing may follow HOST:PORT but ?peer=HOST:PORT")
        try:
            query = urllib.parse.parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError:
            raise _bad(url, f"the query {parts.query!r} is not name=value pairs") from None
        unknown = sorted(set(query) - {"peer"})
        if unknown:
            raise _bad(url, f"unknown setting {unknown[0]!r} (the only one is peer)")
        peers = query.get("peer", [])
        if len(peers) != 1:
            raise _bad(url, "a UDP link needs exactly one peer=HOST:PORT, the address frames are sent to")
        return UdpUrl(_endpoint(url, "local", parts.netloc), _endpoint(url, "peer", peers[0]))
    raise _bad(url, f"unknown kind of link {scheme!r}")
