"""packetdrill's script language: a parser, and a runner that holds usernet's TCP to scripts.

    from usernet.testing.drill import LINUX, run_file
    run_file("tests/drill/tcp/nagle.pkt", profile=LINUX)   # raises DrillFailure on a mismatch

The command line is `usernet drill SCRIPT.pkt...` (or `python -m usernet.testing.drill`).

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
from usernet.testing.drill.packets import DrillError
from usernet.testing.drill.parser import parse_file, parse_script
from usernet.testing.drill.profile import LINUX, PACKETDRILL, USERNET, Profile
from usernet.testing.drill.runner import DrillFailure, RunResult, run_file, run_text

__all__ = [
    "AddressOf", "Array", "BitOr", "Call", "CodeEvent", "CommandEvent", "Direction",
    "DrillSyntaxError", "EchoedPacket", "Endpoint", "Eol", "Event", "FastOpen", "Field",
    "IcmpPacket", "IpInfo", "Md5", "Mss", "Nop", "Option", "Packet", "PacketEvent",
    "RawOption", "Sack", "SackPermitted", "Script", "Struct", "Symbol", "SyscallEvent",
    "TcpOption", "TcpPacket", "Time", "TimeKind", "Timestamp", "TruncatedString", "UdpPacket",
    "Value", "WindowScale", "format_seconds", "format_value", "parse_file", "parse_script",
    "DrillError", "DrillFailure", "LINUX", "PACKETDRILL", "Profile", "RunResult", "USERNET", "run_file", "run_text",
]
