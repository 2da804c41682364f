"""What a parsed packetdrill script is: options, timed events, and the values inside them.

Every class is a frozen dataclass with slots.  ``str()`` of any of them gives script
text that parses back to an equal object, so a runner can quote the expected packet or
call in its failure messages.  Line numbers are kept for messages but are left out of
equality: two events are equal when they mean the same thing.

``...`` in a script (any value, any options) is Python's ``Ellipsis``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import EllipsisType
from typing import TypeAlias

__all__ = [
    "AddressOf",
    "Array",
    "BitOr",
    "Call",
    "CodeEvent",
    "CommandEvent",
    "Direction",
    "EchoedPacket",
    "Endpoint",
    "Eol",
    "Event",
    "FastOpen",
    "Field",
    "IcmpPacket",
    "IpInfo",
    "Md5",
    "Mss",
    "Nop",
    "Option",
    "Packet",
    "PacketEvent",
    "RawOption",
    "Sack",
    "SackPermitted",
    "Script",
    "Struct",
    "Symbol",
    "SyscallEvent",
    "TcpOption",
    "TcpPacket",
    "Time",
    "TimeKind",
    "Timestamp",
    "TruncatedString",
    "UdpPacket",
    "Value",
    "WindowScale",
    "format_seconds",
    "format_value",
]


def format_seconds(seconds: float) -> str:
    """Seconds as the script writes them: microsecond precision, no exponent."""
    text = f"{seconds:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _format_bytes(data: bytes) -> str:
    """A C string literal the lexer reads back to the same bytes."""
    out = []
    for byte in data:
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'


# ---------------------------------------------------------------- time


class TimeKind(enum.Enum):
    ABSOLUTE = "absolute"  # 0.100: seconds since the script started
    RELATIVE = "relative"  # +0.100: seconds after the previous event
    ANY = "any"  # *: whenever it happens (outbound packets only)
    ABSOLUTE_RANGE = "absolute range"  # 0.1~0.2
    RELATIVE_RANGE = "relative range"  # +0.1~+0.2


@dataclass(frozen=True, slots=True)
class Time:
    """When an event happens; ``start`` is None only for ``*``, ``end`` set only for ranges."""

    kind: TimeKind
    start: float | None = None
    end: float | None = None

    def __str__(self) -> str:
        if self.kind is TimeKind.ANY:
            return "*"
        assert self.start is not None
        start = format_seconds(self.start)
        if self.kind is TimeKind.ABSOLUTE:
            return start
        if self.kind is TimeKind.RELATIVE:
            return "+" + start
        assert self.end is not None
        end = format_seconds(self.end)
        if self.kind is TimeKind.ABSOLUTE_RANGE:
            return f"{start}~{end}"
        return f"+{start}~+{end}"


# ---------------------------------------------------------------- values of system calls


@dataclass(frozen=True, slots=True)
class Symbol:
    """A C name the runner resolves: SOL_SOCKET, O_NONBLOCK, EPOLLIN, AF_INET..."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class TruncatedString:
    """``"abc"...``: a string given by its first bytes only."""

    prefix: bytes

    def __str__(self) -> str:
        return _format_bytes(self.prefix) + "..."


@dataclass(frozen=True, slots=True)
class BitOr:
    """``O_RDWR|O_NONBLOCK``: operands in the order written."""

    operands: tuple[Value, ...]

    def __str__(self) -> str:
        return "|".join(format_value(v) for v in self.operands)


@dataclass(frozen=True, slots=True)
class Array:
    """``[1]``, ``[{fd=3, events=POLLIN}]``: what the call points to, as a list."""

    items: tuple[Value, ...]

    def __str__(self) -> str:
        return "[" + ", ".join(format_value(v) for v in self.items) + "]"


@dataclass(frozen=True, slots=True)
class Struct:
    """``{sin_family=AF_INET, ...}`` or ``{..., 1000}``: named and positional members."""

    items: tuple[Value, ...]

    def __str__(self) -> str:
        return "{" + ", ".join(format_value(v) for v in self.items) + "}"


@dataclass(frozen=True, slots=True)
class Field:
    """``name=value`` inside a struct; ``msg_iov(1)=[...]`` also gives a ``length``."""

    name: str
    value: Value
    length: Value | None = None

    def __str__(self) -> str:
        length = "" if self.length is None else f"({format_value(self.length)})"
        return f"{self.name}{length}={format_value(self.value)}"


@dataclass(frozen=True, slots=True)
class Call:
    """``htons(8080)``, ``inet_addr("192.0.2.1")``: a helper the runner evaluates."""

    name: str
    args: tuple[Value, ...]

    def __str__(self) -> str:
        return f"{self.name}(" + ", ".join(format_value(v) for v in self.args) + ")"


@dataclass(frozen=True, slots=True)
class AddressOf:
    """``&value``: a pointer to the value, for calls that write through it."""

    value: Value

    def __str__(self) -> str:
        return "&" + format_value(self.value)


Value: TypeAlias = (
    int | bytes | EllipsisType | Symbol | TruncatedString | BitOr | Array | Struct | Field | Call | AddressOf
)


def format_value(value: Value) -> str:
    """Script text for one value (ints in decimal, bytes as a C string)."""
    if value is Ellipsis:
        return "..."
    if isinstance(value, bytes):
        return _format_bytes(value)
    return str(value)


# ---------------------------------------------------------------- TCP options


@dataclass(frozen=True, slots=True)
class Nop:
    def __str__(self) -> str:
        return "nop"


@dataclass(frozen=True, slots=True)
class Eol:
    def __str__(self) -> str:
        return "eol"


@dataclass(frozen=True, slots=True)
class Mss:
    value: int

    def __str__(self) -> str:
        return f"mss {self.value}"


@dataclass(frozen=True, slots=True)
class WindowScale:
    shift: int

    def __str__(self) -> str:
        return f"wscale {self.shift}"


@dataclass(frozen=True, slots=True)
class SackPermitted:
    def __str__(self) -> str:
        return "sackOK"


@dataclass(frozen=True, slots=True)
class Sack:
    """SACK blocks as (left, right) pairs, relative like every sequence number."""

    blocks: tuple[tuple[int, int], ...]

    def __str__(self) -> str:
        return "sack " + " ".join(f"{left}:{right}" for left, right in self.blocks)


@dataclass(frozen=True, slots=True)
class Timestamp:
    val: int
    ecr: int

    def __str__(self) -> str:
        return f"TS val {self.val} ecr {self.ecr}"


@dataclass(frozen=True, slots=True)
class FastOpen:
    """``FO [cookie]`` (option 34) or ``FOEXP [cookie]`` (the experimental option 254).

    The cookie stays text: it is hex digits, or a name the runner's defines replace.
    """

    cookie: str | None = None
    experimental: bool = False

    def __str__(self) -> str:
        name = "FOEXP" if self.experimental else "FO"
        return name if self.cookie is None else f"{name} {self.cookie}"


@dataclass(frozen=True, slots=True)
class Md5:
    digest: str

    def __str__(self) -> str:
        return f"md5 {self.digest}"


@dataclass(frozen=True, slots=True)
class RawOption:
    """An option this parser does not model (e.g. AccECN's ``ECN e1b 1 ceb 0 e0b 1``)."""

    text: str

    def __str__(self) -> str:
        return self.text


TcpOption: TypeAlias = Nop | Eol | Mss | WindowScale | SackPermitted | Sack | Timestamp | FastOpen | Md5 | RawOption


# ---------------------------------------------------------------- packets


class Direction(enum.Enum):
    INBOUND = "<"  # the script injects it into the stack
    OUTBOUND = ">"  # the stack must send it


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of an explicit ``address:port > address:port``; either part may be absent."""

    address: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        if self.address is None:
            return str(self.port)
        if self.port is None:
            return self.address
        # An IPv6 address takes the port after a dot, as tcpdump prints it.
        separator = "." if ":" in self.address else ":"
        return f"{self.address}{separator}{self.port}"


@dataclass(frozen=True, slots=True)
class IpInfo:
    """The bracketed IP header notes before the flags: ``[ect0]``, ``[tos 0x2]``, ``(ttl 64)``.

    ``ecn`` is one of noecn, ect0, ect1, ce, ect01.  Items this parser does not model
    are kept, as written, in ``other``.
    """

    ecn: str | None = None
    tos: int | None = None
    ttl: int | None = None
    flow_label: int | None = None
    other: tuple[str, ...] = ()

    def __str__(self) -> str:
        items: list[str] = []
        if self.ecn is not None:
            items.append(self.ecn)
        if self.tos is not None:
            items.append(f"tos {self.tos:#x}")
        if self.ttl is not None:
            items.append(f"ttl {self.ttl}")
        if self.flow_label is not None:
            items.append(f"flowlabel {self.flow_label:#x}")
        items.extend(self.other)
        return "[" + ", ".join(items) + "]"


@dataclass(frozen=True, slots=True)
class TcpPacket:
    """``S. 0:0(0) ack 1 win 257 <mss 1460,...>``.

    ``flags`` holds the letters as written with ``.`` for ACK ("" for ``-``); ``ace`` is
    the AccECN counter written after the dot (``P.6``).  ``ack``, ``window`` and
    ``urgent`` are None when not written; ``options`` is ``()`` when none are written
    and ``Ellipsis`` for ``<...>`` (any options).  ``fuzz`` keeps a trailing ``{...}``.
    """

    flags: str
    seq: int
    length: int
    ack: int | None = None
    window: int | None = None
    urgent: int | None = None
    options: tuple[TcpOption, ...] | EllipsisType = ()
    ace: int | None = None
    fuzz: str | None = None

    @property
    def end_seq(self) -> int:
        return self.seq + self.length

    def __str__(self) -> str:
        flags = (self.flags or "-") + ("" if self.ace is None else str(self.ace))
        parts = [flags, f"{self.seq}:{self.end_seq}({self.length})"]
        if self.ack is not None:
            parts.append(f"ack {self.ack}")
        if self.window is not None:
            parts.append(f"win {self.window}")
        if self.urgent is not None:
            parts.append(f"urg {self.urgent}")
        if self.options is Ellipsis:
            parts.append("<...>")
        elif self.options:
            parts.append("<" + ",".join(str(o) for o in self.options) + ">")
        if self.fuzz is not None:
            parts.append("{" + self.fuzz + "}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class UdpPacket:
    """``udp (LEN)``: a datagram with LEN bytes of payload."""

    length: int

    def __str__(self) -> str:
        return f"udp ({self.length})"


@dataclass(frozen=True, slots=True)
class EchoedPacket:
    """The header an ICMP error quotes: ``[1:1001(1000)]``, ``[udp (100)]``, ``[raw (20)]``."""

    protocol: str  # "tcp", "udp" or "raw"
    length: int
    seq: int = 0

    def __str__(self) -> str:
        if self.protocol == "tcp":
            return f"[{self.seq}:{self.seq + self.length}({self.length})]"
        return f"[{self.protocol} ({self.length})]"


@dataclass(frozen=True, slots=True)
class IcmpPacket:
    """``icmp unreachable frag_needed mtu 1400 [1:1001(1000)]``: names kept as written."""

    type: str
    code: str | None = None
    mtu: int | None = None
    echo_id: int | None = None
    echoed: EchoedPacket | None = None

    def __str__(self) -> str:
        parts = ["icmp", self.type]
        if self.code is not None:
            parts.append(self.code)
        if self.mtu is not None:
            parts.append(f"mtu {self.mtu}")
        if self.echo_id is not None:
            parts.append(f"id {self.echo_id}")
        if self.echoed is not None:
            parts.append(str(self.echoed))
        return " ".join(parts)


Packet: TypeAlias = TcpPacket | UdpPacket | IcmpPacket


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class SyscallEvent:
    """``+0...0.2 read(4, ..., 1000) = -1 EAGAIN (Resource temporarily unavailable)``.

    ``block_end`` is the time a blocking call must return, on the same footing as the
    start: after the previous event when the start is relative, absolute otherwise.
    """

    time: Time
    name: str
    args: tuple[Value, ...]
    result: Value
    errno: str | None = None
    note: str | None = None
    block_end: float | None = None
    line: int = field(default=0, compare=False)

    def __str__(self) -> str:
        block = "" if self.block_end is None else "..." + format_seconds(self.block_end)
        args = ", ".join(format_value(v) for v in self.args)
        text = f"{self.time}{block} {self.name}({args}) = {format_value(self.result)}"
        if self.errno is not None:
            text += f" {self.errno}"
        if self.note is not None:
            text += f" ({self.note})"
        return text


@dataclass(frozen=True, slots=True)
class PacketEvent:
    """A packet the script injects (``<``) or expects from the stack (``>``).

    ``src``/``dst`` are set only when the script names them; otherwise the runner's
    defaults apply.  ``encapsulation`` keeps outer headers (``ipv4 A > B:``) as text.
    """

    time: Time
    direction: Direction
    packet: Packet
    ip: IpInfo | None = None
    src: Endpoint | None = None
    dst: Endpoint | None = None
    encapsulation: tuple[str, ...] = ()
    line: int = field(default=0, compare=False)

    def __str__(self) -> str:
        parts = [str(self.time), self.direction.value, *self.encapsulation]
        if self.ip is not None:
            parts.append(str(self.ip))
        endpoints = [] if self.src is None else [f"{self.src} > {self.dst}"]
        if isinstance(self.packet, UdpPacket):
            parts += ["udp", *endpoints, f"({self.packet.length})"]
        else:
            parts += [*endpoints, str(self.packet)]
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class CommandEvent:
    """A shell command in backquotes; ``time`` is None for the untimed first and last ones."""

    time: Time | None
    command: str
    line: int = field(default=0, compare=False)

    def __str__(self) -> str:
        quoted = f"`{self.command}`"
        return quoted if self.time is None else f"{self.time} {quoted}"


@dataclass(frozen=True, slots=True)
class CodeEvent:
    """An inline ``%{ ... }%`` block (Python over TCP_INFO in Linux's suites), as text."""

    time: Time
    code: str
    line: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return f"{self.time} %{{ {self.code} }}%"


Event: TypeAlias = SyscallEvent | PacketEvent | CommandEvent | CodeEvent


@dataclass(frozen=True, slots=True)
class Option:
    """A leading ``--name=value`` line; ``value`` is None for a bare ``--name``."""

    name: str
    value: str | None = None
    line: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return f"--{self.name}" if self.value is None else f"--{self.name}={self.value}"


@dataclass(frozen=True, slots=True)
class Script:
    """A whole script: options, an optional setup command, events, an optional cleanup."""

    options: tuple[Option, ...]
    events: tuple[Event, ...]
    init_command: CommandEvent | None = None
    cleanup_command: CommandEvent | None = None

    def __str__(self) -> str:
        lines = [str(o) for o in self.options]
        if self.init_command is not None:
            lines.append(str(self.init_command))
        lines += [str(e) for e in self.events]
        if self.cleanup_command is not None:
            lines.append(str(self.cleanup_command))
        return "\n".join(lines) + "\n"
