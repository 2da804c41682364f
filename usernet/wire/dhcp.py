"""DHCPv4 messages (RFC 2131) and the options a client needs (RFC 2132): parse and emit.

A message is BOOTP's fixed 236-byte header, the magic cookie and a list of options
(code, length, value). `parse_dhcp` checks the header, the cookie, the option framing and
the length of every option this module gives a meaning to, and raises MalformedPacket for
anything else wrong; options it does not know are kept as bytes. An option given several
times is one value, the pieces joined in order (RFC 3396). The `sname`/`file` overload
(option 52) is not followed: the options a client needs fit in the options field, and
a server that puts them elsewhere is answered as if it had not sent them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from usernet.wire.errors import MalformedPacket, not_a_byte_buffer

__all__ = [
    "ACK",
    "BOOTREPLY",
    "BOOTREQUEST",
    "CLIENT_PORT",
    "DECLINE",
    "DISCOVER",
    "FLAG_BROADCAST",
    "INFORM",
    "NAK",
    "OFFER",
    "OPT_DNS",
    "OPT_HOSTNAME",
    "OPT_LEASE_TIME",
    "OPT_MESSAGE_TYPE",
    "OPT_MTU",
    "OPT_PARAMETERS",
    "OPT_REBINDING_TIME",
    "OPT_RENEWAL_TIME",
    "OPT_REQUESTED_IP",
    "OPT_ROUTER",
    "OPT_SERVER_ID",
    "OPT_SUBNET_MASK",
    "RELEASE",
    "REQUEST",
    "SERVER_PORT",
    "DhcpMessage",
    "emit_dhcp",
    "parse_dhcp",
]

SERVER_PORT = 67
CLIENT_PORT = 68
BOOTREQUEST = 1
BOOTREPLY = 2
FLAG_BROADCAST = 0x8000
MAGIC = b"\x63\x82\x53\x63"

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)

OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS = 6
OPT_HOSTNAME = 12
OPT_MTU = 26
OPT_REQUESTED_IP = 50
OPT_LEASE_TIME = 51
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAMETERS = 55
OPT_RENEWAL_TIME = 58
OPT_REBINDING_TIME = 59
OPT_END = 255

_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
_FIXED = _HEADER.size + len(MAGIC)  # 240

#: The length rule of each option given a meaning here: (fixed length or None, multiple of).
_LENGTHS: dict[int, tuple[int | None, int]] = {
    OPT_SUBNET_MASK: (4, 1),
    OPT_ROUTER: (None, 4),
    OPT_DNS: (None, 4),
    OPT_MTU: (2, 1),
    OPT_REQUESTED_IP: (4, 1),
    OPT_LEASE_TIME: (4, 1),
    OPT_MESSAGE_TYPE: (1, 1),
    OPT_SERVER_ID: (4, 1),
    OPT_RENEWAL_TIME: (4, 1),
    OPT_REBINDING_TIME: (4, 1),
}


@dataclass(frozen=True)
class DhcpMessage:
    """One DHCP message; addresses are 4-byte `bytes`, `chaddr` the client's 6-byte MAC.

    `options` maps codes to raw values; the properties read the ones a client uses (None
    when absent). The message type lives in `options` too (OPT_MESSAGE_TYPE).
    """

    op: int
    xid: int
    chaddr: bytes
    options: dict[int, bytes] = field(default_factory=dict)
    secs: int = 0
    flags: int = 0
    ciaddr: bytes = bytes(4)
    yiaddr: bytes = bytes(4)
    siaddr: bytes = bytes(4)
    giaddr: bytes = bytes(4)
    hops: int = 0

    @property
    def message_type(self) -> int | None:
        value = self.options.get(OPT_MESSAGE_TYPE)
        return value[0] if value else None

    @property
    def subnet_mask(self) -> bytes | None:
        return self.options.get(OPT_SUBNET_MASK)

    @property
    def routers(self) -> tuple[bytes, ...]:
        return _addresses(self.options.get(OPT_ROUTER, b""))

    @property
    def dns_servers(self) -> tuple[bytes, ...]:
        return _addresses(self.options.get(OPT_DNS, b""))

    @property
    def server_id(self) -> bytes | None:
        return self.options.get(OPT_SERVER_ID)

    @property
    def lease_time(self) -> int | None:
        return _u32(self.options.get(OPT_LEASE_TIME))

    @property
    def renewal_time(self) -> int | None:
        return _u32(self.options.get(OPT_RENEWAL_TIME))

    @property
    def rebinding_time(self) -> int | None:
        return _u32(self.options.get(OPT_REBINDING_TIME))

    @property
    def mtu(self) -> int | None:
        value = self.options.get(OPT_MTU)
        return None if value is None else int.from_bytes(value, "big")


def _addresses(value: bytes) -> tuple[bytes, ...]:
    return tuple(value[i : i + 4] for i in range(0, len(value), 4))


def _u32(value: bytes | None) -> int | None:
    return None if value is None else int.from_bytes(value, "big")


def parse_dhcp(data: bytes | bytearray | memoryview) -> DhcpMessage:
    """The DHCP message in a UDP payload; MalformedPacket for anything that is not one."""
    try:
        raw = memoryview(data).cast("B").tobytes()
    except (TypeError, ValueError):
        raise not_a_byte_buffer("dhcp", data) from None
    if len(raw) < _FIXED:
        raise MalformedPacket("dhcp", f"DHCP message of {len(raw)} bytes is shorter than its fixed {_FIXED}")
    op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, _, _ = _HEADER.unpack_from(raw)
    if op not in (BOOTREQUEST, BOOTREPLY):
        raise MalformedPacket("dhcp", f"BOOTP op {op} is neither a request (1) nor a reply (2)")
    if htype != 1 or hlen != 6:
        raise MalformedPacket(
            "dhcp", f"hardware type {htype} with address length {hlen}: only Ethernet (1, 6) is spoken"
        )
    if raw[_HEADER.size : _FIXED] != MAGIC:
        raise MalformedPacket("dhcp", "no DHCP magic cookie after the BOOTP header")
    options: dict[int, bytes] = {}
    i, end = _FIXED, len(raw)
    while i < end:
        code = raw[i]
        if code == OPT_END:
            break
        if code == OPT_PAD:
            i += 1
            continue
        if i + 2 > end or i + 2 + raw[i + 1] > end:
            raise MalformedPacket("dhcp", f"DHCP option {code} runs past the end of the message")
        length = raw[i + 1]
        options[code] = options.get(code, b"") + raw[i + 2 : i + 2 + length]
        i += 2 + length
    else:
        raise MalformedPacket("dhcp", "DHCP options have no end option")
    for code, value in options.items():
        rule = _LENGTHS.get(code)
        if rule is None:
            continue
        fixed, multiple = rule
        if (fixed is not None and len(value) != fixed) or (fixed is None and (not value or len(value) % multiple)):
            raise MalformedPacket("dhcp", f"DHCP option {code} has {len(value)} bytes")
    return DhcpMessage(
        op, xid, chaddr[:6], options, secs, flags, ciaddr, yiaddr, siaddr, giaddr, hops
    )  # fmt: skip  # the header's order


def emit_dhcp(message: DhcpMessage) -> bytes:
    """The UDP payload of `message`: header, cookie, its options (long ones split, RFC 3396), end."""
    if len(message.chaddr) != 6:
        raise ValueError(f"chaddr is a 6-byte MAC, not {len(message.chaddr)} bytes")
    for name in ("ciaddr", "yiaddr", "siaddr", "giaddr"):
        if len(getattr(message, name)) != 4:
            raise ValueError(f"{name} is a 4-byte IPv4 address")
    out = bytearray(
        _HEADER.pack(
            message.op, 1, 6, message.hops, message.xid, message.secs, message.flags, message.ciaddr,
            message.yiaddr, message.siaddr, message.giaddr, message.chaddr, b"", b"",
        )
    )  # fmt: skip  # the header's order
    out += MAGIC
    for code, value in message.options.items():
        if not 0 < code < OPT_END:
            raise ValueError(f"DHCP option code {code} is not 1..254")
        for at in range(0, max(len(value), 1), 255):
            piece = value[at : at + 255]
            out += bytes((code, len(piece))) + piece
    out.append(OPT_END)
    # BOOTP relays and old servers expect at least the 300 bytes of a BOOTP message (RFC 1542).
    if len(out) < 300:
        out += bytes(300 - len(out))
    return bytes(out)
