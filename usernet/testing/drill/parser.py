"""Recursive-descent parser for packetdrill scripts.

The grammar is packetdrill's (options, an optional untimed setup command, timed events,
an optional untimed cleanup command), read token by token so that an event may span
lines.  Where packetdrill itself reports a semantic error that needs no kernel
(inconsistent sequence numbers, a time range on a syscall, ``<...>`` on an inbound
packet) the parser reports it too, so a broken script fails before it runs.  Parts this
parser does not model (unknown TCP options, IP header notes, fuzz blocks, outer headers)
are kept as text instead of rejected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import EllipsisType

from usernet.testing.drill.lexer import DrillSyntaxError, Token, TokenKind, error_at, tokenize
from usernet.testing.drill.model import (
    AddressOf,
    Array,
    BitOr,
    Call,
    CodeEvent,
    CommandEvent,
    Direction,
    EchoedPacket,
    Endpoint,
    Eol,
    Event,
    FastOpen,
    Field,
    IcmpPacket,
    IpInfo,
    Md5,
    Mss,
    Nop,
    Option,
    Packet,
    PacketEvent,
    RawOption,
    Sack,
    SackPermitted,
    Script,
    Struct,
    Symbol,
    SyscallEvent,
    TcpOption,
    TcpPacket,
    Time,
    TimeKind,
    Timestamp,
    TruncatedString,
    UdpPacket,
    Value,
    WindowScale,
)

__all__ = ["parse_file", "parse_script"]

TCP_FLAG_LETTERS = "SFRPUEWA"
ECN_MARKS = frozenset({"noecn", "ect0", "ect1", "ce", "ect01"})
ENCAPSULATIONS = frozenset({"ipv4", "ipv6", "gre", "GREv0", "mpls"})
U8, U16, U32 = 0xFF, 0xFFFF, 0xFFFFFFFF
_SIMPLE_ESCAPES = {
    "n": 10,
    "t": 9,
    "r": 13,
    "0": 0,
    "a": 7,
    "b": 8,
    "f": 12,
    "v": 11,
    "\\": 92,
    '"': 34,
    "'": 39,
    "?": 63,
}
_OPENERS = {"(": ")", "[": "]", "{": "}"}


def parse_script(source: str, filename: str | None = None, defines: Mapping[str, str] | None = None) -> Script:
    """Parse a whole script.

    ``defines`` replaces words before they are read, like packetdrill's
    ``--define=NAME=VALUE`` (which the script's own header may also give; ``defines``
    wins over it).  Raises DrillSyntaxError with the line and column of the problem.
    """
    return _Parser(source, filename, defines or {}).script()


def parse_file(path: str | os.PathLike[str], defines: Mapping[str, str] | None = None) -> Script:
    """Parse the script in a file; errors name the file."""
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    return parse_script(source, os.fspath(path), defines)


def _decode_string(token: Token, source: str, filename: str | None) -> bytes:
    """The bytes of a C string literal (escapes such as \\x41, \\n, \\101 decoded)."""
    body = token.text[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out += char.encode("utf-8")
            i += 1
            continue
        i += 1
        escape = body[i]
        if escape == "x":
            digits = ""
            while i + 1 < len(body) and len(digits) < 2 and body[i + 1] in "0123456789abcdefABCDEF":
                digits += body[i + 1]
                i += 1
            if not digits:
                raise error_at(source, token.start + 1 + i, "\\x needs hex digits, e.g. \\x41", filename)
            out.append(int(digits, 16))
        elif escape in "01234567":
            digits = escape
            while i + 1 < len(body) and len(digits) < 3 and body[i + 1] in "01234567":
                digits += body[i + 1]
                i += 1
            out.append(int(digits, 8) & 0xFF)
        elif escape in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[escape])
        else:
            out += escape.encode("utf-8")
        i += 1
    return bytes(out)


class _Parser:
    """One parse of one script: the tokens, a cursor, and the defines in force."""

    def __init__(self, source: str, filename: str | None, defines: Mapping[str, str]) -> None:
        self.source = source
        self.filename = filename
        self.tokens = tokenize(source, filename)
        self.pos = 0
        self.caller_defines = dict(defines)
        self.defines = dict(defines)

    # ------------------------------------------------------------ token access

    def peek(self, ahead: int = 0) -> Token:
        token = self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]
        if token.kind is TokenKind.WORD and token.text in self.defines:
            return self._substitute(token, self.defines[token.text])
        return token

    def _substitute(self, token: Token, value: str) -> Token:
        """The token a defined word stands for, placed where the word is.

        A value that is one token keeps its kind (so a defined number can be an MSS);
        anything else stands as a word, as packetdrill does.
        """
        try:
            replacement = tokenize(value, self.filename)
        except DrillSyntaxError:
            replacement = []
        if len(replacement) == 2:
            kind, text = replacement[0].kind, replacement[0].text
        else:
            kind, text = TokenKind.WORD, value
        return Token(kind, text, token.line, token.column, token.start, token.end)

    def advance(self) -> Token:
        token = self.peek()
        if self.pos < len(self.tokens) - 1:
            self.pos += 1
        return token

    def is_punct(self, text: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind is TokenKind.PUNCT and token.text == text

    def is_word(self, *words: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind is TokenKind.WORD and token.text in words

    def error(self, token: Token, message: str) -> DrillSyntaxError:
        return error_at(self.source, token.start, message, self.filename)

    def missing(self, what: str) -> DrillSyntaxError:
        """Report that ``what`` should come next.

        When the line ended first, the caret goes at the end of that line: the next
        line's first token is the start of another event, not the mistake.
        """
        token = self.peek()
        if self.pos > 0:
            previous = self.tokens[self.pos - 1]
            if "\n" in self.source[previous.end : token.start]:
                return error_at(
                    self.source,
                    previous.end,
                    f"expected {what}, but the event ends after {previous.describe()}",
                    self.filename,
                )
        return self.error(token, f"expected {what}, found {token.describe()}")

    def expect_punct(self, text: str, context: str) -> Token:
        if not self.is_punct(text):
            raise self.missing(f"'{text}' {context}")
        return self.advance()

    def expect_word(self, word: str, context: str) -> Token:
        if not self.is_word(word):
            raise self.missing(f"'{word}' {context}")
        return self.advance()

    def integer(self, what: str, low: int = 0, high: int = U32) -> int:
        token = self.peek()
        if token.kind is not TokenKind.INT:
            raise self.missing(f"{what} (an integer)")
        value = int(token.text, 16) if token.text.startswith("0x") else int(token.text)
        if not low <= value <= high:
            raise self.error(token, f"{what} {value} is out of range ({low}..{high})")
        self.advance()
        return value

    def raw_until(self, stops: frozenset[str], opening: Token, context: str) -> tuple[str, Token]:
        """Source text up to the first of ``stops`` outside brackets, and that stop token.

        The stop token is left unread: the caller decides what it means.  ``opening`` is
        where the error points if no stop comes.
        """
        first = self.peek()
        depth: list[str] = []
        while True:
            token = self.peek()
            if token.kind is TokenKind.EOF:
                raise self.error(opening, f"{context} is not closed before the end of the script")
            if token.kind is TokenKind.PUNCT:
                if not depth and token.text in stops:
                    text = " ".join(self.source[first.start : token.start].split())
                    return text, token
                if token.text in _OPENERS:
                    depth.append(_OPENERS[token.text])
                elif depth and token.text == depth[-1]:
                    depth.pop()
            self.advance()

    # ------------------------------------------------------------ script

    def script(self) -> Script:
        options = self.options()
        init: CommandEvent | None = None
        cleanup: CommandEvent | None = None
        events: list[Event] = []
        if self.peek().kind is TokenKind.BACKQUOTE:
            init = self.command(None)
        while self.peek().kind is not TokenKind.EOF:
            token = self.peek()
            if token.kind is TokenKind.BACKQUOTE:
                command = self.command(None)
                if self.peek().kind is not TokenKind.EOF:
                    raise self.error(
                        token,
                        "a `command` without a time may only come before the first event or "
                        "after the last one; give it a time, e.g. +0 `...`",
                    )
                cleanup = command
                break
            events.append(self.event(after_event=bool(events) or init is not None))
        return Script(tuple(options), tuple(events), init, cleanup)

    def options(self) -> list[Option]:
        options: list[Option] = []
        while self.peek().kind is TokenKind.OPTION:
            flag = self.advance()
            name = flag.text[2:]
            value: str | None = None
            if self.is_punct("=") and self.peek().line == flag.line:
                equals = self.advance()
                value = self.option_value(flag.line)
                if value is None:
                    raise self.error(equals, f"expected a value after '--{name}='")
            else:
                value = self.option_value(flag.line)
            if name == "define" and value is not None and "=" in value:
                key, _, definition = value.partition("=")
                if key not in self.caller_defines:
                    self.defines[key] = definition
            options.append(Option(name, value, flag.line))
        return options

    def option_value(self, line: int) -> str | None:
        """The rest of the option's line (a lone "string" loses its quotes)."""
        taken: list[Token] = []
        while True:
            token = self.tokens[self.pos]
            if token.kind in (TokenKind.OPTION, TokenKind.EOF) or token.line != line:
                break
            taken.append(token)
            self.advance()
        if not taken:
            return None
        if len(taken) == 1 and taken[0].kind is TokenKind.STRING:
            return taken[0].text[1:-1]
        return self.source[taken[0].start : taken[-1].end]

    # ------------------------------------------------------------ events

    def event(self, after_event: bool) -> Event:
        first = self.peek()
        time = self.time(after_event)
        block_end: float | None = None
        if self.peek().kind is TokenKind.ELLIPSIS:
            ellipsis = self.advance()
            block_end = self.seconds("the time a blocking call returns, as in +0...0.200")
            if not (self.peek().kind is TokenKind.WORD and self.is_punct("(", ahead=1)):
                raise self.error(ellipsis, "'...' after the time is only for blocking system calls")
        action = self.peek()
        event: Event
        if action.kind is TokenKind.PUNCT and action.text in "<>":
            event = self.packet_event(time, first.line)
        elif action.kind is TokenKind.BACKQUOTE:
            event = self.command(time)
        elif action.kind is TokenKind.CODE:
            self.advance()
            event = CodeEvent(time, action.text[2:-2].strip(" \t"), first.line)
        elif action.kind is TokenKind.WORD and self.is_punct("(", ahead=1):
            event = self.syscall_event(time, block_end, first.line)
        else:
            raise self.error(
                action,
                f"expected a system call, a packet ('<' or '>'), a `command` or a %{{ code }}% "
                f"after the time, found {action.describe()}",
            )
        outbound = isinstance(event, PacketEvent) and event.direction is Direction.OUTBOUND
        if time.kind in (TimeKind.ANY, TimeKind.ABSOLUTE_RANGE, TimeKind.RELATIVE_RANGE) and not outbound:
            shown = "'*'" if time.kind is TimeKind.ANY else "a time range"
            raise self.error(first, f"{shown} can only be used with outbound packets ('>')")
        return event

    def time(self, after_event: bool) -> Time:
        token = self.peek()
        if self.is_punct("*"):
            self.advance()
            return Time(TimeKind.ANY)
        relative = self.is_punct("+")
        if not relative and token.kind not in (TokenKind.INT, TokenKind.FLOAT):
            where = " (is it part of the event above?)" if after_event else ""
            raise self.error(
                token,
                f"expected the time of an event (such as 0.1, +0.1, * or 0.1~0.2), found {token.describe()}{where}",
            )
        if relative:
            self.advance()
        start = self.seconds("a time in seconds after '+'" if relative else "a time")
        if not self.is_punct("~"):
            return Time(TimeKind.RELATIVE if relative else TimeKind.ABSOLUTE, start)
        self.advance()
        if relative != self.is_punct("+"):
            raise self.error(
                self.peek(),
                "a time range is either absolute on both ends (0.1~0.2) or relative on both (+0.1~+0.2)",
            )
        if relative:
            self.advance()
        end_token = self.peek()
        end = self.seconds("the end of the time range")
        if end < start:
            raise self.error(end_token, f"time range is backwards: it ends ({end}) before it starts ({start})")
        return Time(TimeKind.RELATIVE_RANGE if relative else TimeKind.ABSOLUTE_RANGE, start, end)

    def seconds(self, what: str) -> float:
        token = self.peek()
        numeric = token.kind in (TokenKind.INT, TokenKind.FLOAT) and not token.text.startswith("0x")
        if not numeric:
            raise self.missing(what)
        if token.text.startswith("-"):
            raise self.error(token, "a time cannot be negative")
        self.advance()
        return round(float(token.text), 6)

    def command(self, time: Time | None) -> CommandEvent:
        token = self.advance()
        return CommandEvent(time, token.text[1:-1], token.line)

    # ------------------------------------------------------------ system calls

    def syscall_event(self, time: Time, block_end: float | None, line: int) -> SyscallEvent:
        name = self.advance().text
        self.advance()  # '('
        args = self.value_list(")", f"the arguments of {name}()")
        self.expect_punct("=", f"and the expected result after {name}(...), as in = 0")
        result = self.value()
        errno: str | None = None
        note: str | None = None
        if self.peek().kind is TokenKind.WORD:
            errno = self.advance().text
        if self.is_punct("("):
            opening = self.advance()
            note, _ = self.raw_until(frozenset(")"), opening, "the note in '('")
            self.advance()
        return SyscallEvent(time, name, tuple(args), result, errno, note, block_end, line)

    def value_list(self, closer: str, context: str) -> list[Value]:
        """Comma-separated values up to ``closer`` (consumed); the opener is already read."""
        values: list[Value] = []
        if self.is_punct(closer):
            self.advance()
            return values
        while True:
            values.append(self.value())
            if self.is_punct(","):
                self.advance()
                continue
            self.expect_punct(closer, f"or ',' in {context}")
            return values

    def value(self) -> Value:
        operands = [self.unary()]
        while self.is_punct("|"):
            self.advance()
            operands.append(self.unary())
        return operands[0] if len(operands) == 1 else BitOr(tuple(operands))

    def unary(self) -> Value:
        if self.is_punct("&"):
            self.advance()
            return AddressOf(self.unary())
        return self.primary()

    def primary(self) -> Value:
        token = self.peek()
        kind = token.kind
        if kind is TokenKind.ELLIPSIS:
            self.advance()
            return Ellipsis
        if kind is TokenKind.INT:
            return self.integer("a value", -(1 << 63), (1 << 64) - 1)
        if kind is TokenKind.STRING:
            data = b""
            while self.peek().kind is TokenKind.STRING:  # "ab" "cd" concatenates
                data += _decode_string(self.advance(), self.source, self.filename)
            if self.peek().kind is TokenKind.ELLIPSIS:
                self.advance()
                return TruncatedString(data)
            return data
        if kind is TokenKind.WORD:
            self.advance()
            if self.is_punct("("):
                self.advance()
                args = self.value_list(")", f"{token.text}(...)")
                if not self.is_punct("="):
                    return Call(token.text, tuple(args))
                if len(args) != 1:
                    raise self.error(token, f"{token.text}(...)= takes one length in the parentheses")
                self.advance()
                return Field(token.text, self.value(), args[0])
            if self.is_punct("="):
                self.advance()
                return Field(token.text, self.value())
            return Symbol(token.text)
        if self.is_punct("["):
            self.advance()
            return Array(tuple(self.value_list("]", "the array")))
        if self.is_punct("{"):
            self.advance()
            return Struct(tuple(self.value_list("}", "the struct")))
        raise self.missing(
            "a value (a number, a \"string\", '...', a constant such as O_NONBLOCK, [array], {struct} or &value)"
        )

    # ------------------------------------------------------------ packets

    def packet_event(self, time: Time, line: int) -> PacketEvent:
        direction = Direction(self.advance().text)
        encapsulation: list[str] = []
        while self.is_word(*ENCAPSULATIONS):
            head = self.peek()
            text, _ = self.raw_until(frozenset(":"), head, f"the outer header '{head.text} ...'")
            self.advance()
            encapsulation.append(text + ":")
        ip_token = self.peek()
        ip = self.ip_info() if self.is_punct("[") or self.is_punct("(") else None
        src = dst = None
        if self.at_endpoint():
            src, dst = self.endpoints()
        packet: Packet
        if self.is_word("udp"):
            self.advance()
            if self.at_endpoint():
                if src is not None:
                    raise self.error(self.peek(), "the addresses are already given before 'udp'")
                src, dst = self.endpoints()
            self.expect_punct("(", "before the UDP payload length, as in udp (100)")
            length = self.integer("the UDP payload length", 0, U16)
            self.expect_punct(")", "after the UDP payload length")
            packet = UdpPacket(length)
        elif self.is_word("icmp"):
            packet = self.icmp_packet()
        else:
            packet = self.tcp_packet(direction)
        if ip is not None and ip.ecn == "ect01" and direction is not Direction.OUTBOUND:
            raise self.error(ip_token, "[ect01] can only be used with outbound packets")
        return PacketEvent(time, direction, packet, ip, src, dst, tuple(encapsulation), line)

    def ip_info(self) -> IpInfo:
        opening = self.advance()
        closer = _OPENERS[opening.text]
        ecn: str | None = None
        tos = ttl = flow_label = None
        other: list[str] = []
        while True:
            item = self.peek()
            text, stop = self.raw_until(
                frozenset({",", closer}), opening, f"the '{opening.text}' of the IP header notes"
            )
            self.advance()
            words = text.split()
            if len(words) == 1 and words[0] in ECN_MARKS:
                ecn = words[0]
            elif len(words) == 2 and words[0] in ("tos", "ttl", "flowlabel"):
                try:
                    number = int(words[1], 0)
                except ValueError:
                    raise self.error(item, f"expected an integer after '{words[0]}', found {words[1]!r}") from None
                if words[0] == "tos":
                    tos = number
                elif words[0] == "ttl":
                    ttl = number
                else:
                    flow_label = number
            elif text:
                other.append(text)
            if stop.text == closer:
                return IpInfo(ecn, tos, ttl, flow_label, tuple(other))

    def at_endpoint(self) -> bool:
        token = self.peek()
        if token.kind in (TokenKind.IPV4, TokenKind.IPV6):
            return True
        return token.kind is TokenKind.INT and self.is_punct(">", ahead=1)

    def endpoints(self) -> tuple[Endpoint, Endpoint]:
        src = self.endpoint()
        self.expect_punct(">", "between the source and destination of the packet")
        dst = self.endpoint()
        if self.is_punct(":"):  # tcpdump's "a.b.c.d.port:" form
            self.advance()
        return src, dst

    def endpoint(self) -> Endpoint:
        token = self.peek()
        if token.kind is TokenKind.INT:
            return Endpoint(None, self.integer("a port", 0, U16))
        if token.kind not in (TokenKind.IPV4, TokenKind.IPV6):
            raise self.missing("an address or a port")
        self.advance()
        port: int | None = None
        after = self.peek()
        if self.is_punct(":") and self.peek(1).kind is TokenKind.INT:
            self.advance()
            port = self.integer("a port", 0, U16)
        elif after.kind is TokenKind.FLOAT and after.start == token.end and after.text.startswith("."):
            port = int(after.text[1:])
            if port > U16:
                raise self.error(after, f"a port {port} is out of range (0..{U16})")
            self.advance()
        return Endpoint(token.text, port)

    def tcp_packet(self, direction: Direction) -> TcpPacket:
        flags, ace = self.tcp_flags()
        seq, length = self.sequence()
        clauses: dict[str, int] = {}
        options: tuple[TcpOption, ...] | EllipsisType = ()
        seen_options = False
        fuzz: str | None = None
        limits = {"ack": U32, "win": U16, "urg": U16}
        while True:
            token = self.peek()
            if self.is_word(*limits):
                if token.text in clauses:
                    raise self.error(token, f"'{token.text}' is given twice")
                self.advance()
                clauses[token.text] = self.integer(f"the '{token.text}' value", 0, limits[token.text])
            elif self.is_punct("<") and not seen_options:
                options = self.tcp_options(direction)
                seen_options = True
            elif self.is_punct("{") and fuzz is None:
                self.advance()
                fuzz, _ = self.raw_until(frozenset("}"), token, "the '{' block after the packet")
                self.advance()
            else:
                break
        return TcpPacket(
            flags,
            seq,
            length,
            clauses.get("ack"),
            clauses.get("win"),
            clauses.get("urg"),
            options,
            ace,
            fuzz,
        )

    def tcp_flags(self) -> tuple[str, int | None]:
        token = self.peek()
        if self.is_punct("-"):
            self.advance()
            return "", None
        if self.is_punct("."):
            self.advance()
            return ".", None
        if token.kind is TokenKind.FLOAT and token.text.startswith("."):
            self.advance()
            return ".", int(token.text[1:])
        if token.kind is not TokenKind.WORD:
            raise self.missing("TCP flags (letters from S F R P U E W A, '.' for ACK, '-' for none), 'udp' or 'icmp'")
        bad = [c for c in token.text if c not in TCP_FLAG_LETTERS]
        if bad:
            raise self.error(
                token,
                f"unknown TCP flag {bad[0]!r} in {token.text!r}: use letters from S F R P U E W A, "
                "'.' for ACK, '-' for none",
            )
        self.advance()
        after = self.peek()
        if self.is_punct("."):
            self.advance()
            return token.text + ".", None
        if after.kind is TokenKind.FLOAT and after.text.startswith("."):
            self.advance()
            return token.text + ".", int(after.text[1:])
        return token.text, None

    def sequence(self) -> tuple[int, int]:
        start_token = self.peek()
        if start_token.kind is not TokenKind.INT:
            raise self.missing("the sequence range start:end(length), as in 1:1001(1000)")
        start = self.integer("the start sequence number")
        self.expect_punct(":", "in start:end(length)")
        end = self.integer("the end sequence number")
        self.expect_punct("(", "in start:end(length)")
        length = self.integer("the payload length", 0, U16)
        self.expect_punct(")", "in start:end(length)")
        if end != start + length:
            raise self.error(
                start_token,
                f"inconsistent sequence numbers: {start}:{end} spans {end - start} bytes "
                f"but the length says ({length})",
            )
        return start, length

    def tcp_options(self, direction: Direction) -> tuple[TcpOption, ...] | EllipsisType:
        opening = self.advance()  # '<'
        if self.peek().kind is TokenKind.ELLIPSIS and self.is_punct(">", ahead=1):
            if direction is not Direction.OUTBOUND:
                raise self.error(opening, "<...> (any options) can only be used with outbound packets ('>')")
            self.advance()
            self.advance()
            return Ellipsis
        options: list[TcpOption] = []
        while True:
            options.append(self.tcp_option())
            if self.is_punct(","):
                self.advance()
                continue
            self.expect_punct(">", "or ',' in the TCP options")
            return tuple(options)

    def tcp_option(self) -> TcpOption:
        token = self.peek()
        name = token.text if token.kind is TokenKind.WORD else ""
        simple: dict[str, TcpOption] = {"nop": Nop(), "eol": Eol(), "sackOK": SackPermitted()}
        if name in simple:
            self.advance()
            return simple[name]
        if name == "mss":
            self.advance()
            return Mss(self.integer("the MSS", 0, U16))
        if name == "wscale":
            self.advance()
            return WindowScale(self.integer("the window scale shift", 0, U8))
        if name == "TS":
            self.advance()
            self.expect_word("val", "after TS, as in TS val 100 ecr 0")
            val = self.integer("the TS value", 0, U32)
            self.expect_word("ecr", "after the TS value, as in TS val 100 ecr 0")
            return Timestamp(val, self.integer("the TS echo reply", 0, U32))
        if name == "sack":
            self.advance()
            blocks: list[tuple[int, int]] = []
            while self.peek().kind is TokenKind.INT or not blocks:
                left = self.integer("a SACK block's left edge (as in sack 1001:2001)")
                self.expect_punct(":", "in a SACK block left:right")
                blocks.append((left, self.integer("a SACK block's right edge")))
            return Sack(tuple(blocks))
        if name in ("FO", "FOEXP"):
            self.advance()
            cookie = None
            if self.peek().kind in (TokenKind.WORD, TokenKind.INT):
                cookie = self.advance().text
            return FastOpen(cookie, experimental=name == "FOEXP")
        if name == "md5":
            self.advance()
            digest = self.peek()
            if digest.kind not in (TokenKind.WORD, TokenKind.INT):
                raise self.missing("the MD5 digest in hex")
            return Md5(self.advance().text)
        if token.kind is not TokenKind.WORD:
            raise self.missing("a TCP option (mss, nop, TS, sack...)")
        text, _ = self.raw_until(frozenset({",", ">"}), token, f"the TCP option '{token.text}'")
        return RawOption(text)

    def icmp_packet(self) -> IcmpPacket:
        self.advance()  # 'icmp'
        kind = self.peek()
        if kind.kind is not TokenKind.WORD:
            raise self.missing("the ICMP type after 'icmp' (e.g. unreachable)")
        self.advance()
        code = None
        if self.peek().kind is TokenKind.WORD and not self.is_word("mtu", "id"):
            code = self.advance().text
        mtu = echo_id = None
        if self.is_word("mtu"):
            self.advance()
            mtu = self.integer("the MTU", 0, U16)
        if self.is_word("id"):
            self.advance()
            echo_id = self.integer("the echo id", 0, U16)
        echoed = None
        if self.is_punct("["):
            self.advance()
            if self.is_word("udp", "raw"):
                protocol = self.advance().text
                self.expect_punct("(", f"after '{protocol}', as in [{protocol} (100)]")
                echoed = EchoedPacket(protocol, self.integer("the payload length", 0, U16))
                self.expect_punct(")", "after the payload length")
            else:
                seq, length = self.sequence()
                echoed = EchoedPacket("tcp", length, seq)
            self.expect_punct("]", "after the packet the ICMP message quotes")
        return IcmpPacket(kind.text, code, mtu, echo_id, echoed)
