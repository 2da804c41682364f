"""A parser for packetdrill's script language: scripts become typed, timed events.

    from usernet.testing.drill import parse_file
    script = parse_file("tests/drill/scripts/handshake.pkt")
    for event in script.events:
        ...

See docs/drill.md for what is supported.
"""

from usernet.testing.drill.lexer import DrillSyntaxError
from usernet.testing.drill.model import (
    AddressOf, Array, BitOr, Call, CodeEvent, CommandEvent, Direction, EchoedPacket, Endpoint,
    Eol, Event, FastOpen, Field, IcmpPacket, IpInfo, Md5, Mss, Nop, Option, Packet,
    PacketEvent, RawOption, Sack, SackPermitted, Script, Struct, Symbol, SyscallEvent,
    TcpOption, TcpPacket, Time, TimeKind, Timestamp, TruncatedString, UdpPacket, Value,
    WindowScale, format_seconds, format_value,
)
from usernet.testing.drill.parser import parse_file, parse_script

__all__ = [
    "AddressOf", "Array", "BitOr", "Call", "CodeEvent", "CommandEvent", "Direction",
    "DrillSyntaxError", "EchoedPacket", "Endpoint", "Eol", "Event", "FastOpen", "Field",
    "IcmpPacket", "IpInfo", "Md5", "Mss", "Nop", "Option", "Packet", "PacketEvent",
    "RawOption", "Sack", "SackPermitted", "Script", "Struct", "Symbol", "SyscallEvent",
    "TcpOption", "TcpPacket", "Time", "TimeKind", "Timestamp", "TruncatedString", "UdpPacket",
    "Value", "WindowScale", "format_seconds", "format_value", "parse_file", "parse_script",
]
