"""Tokens of packetdrill's script language, and the error every stage of parsing raises.

The token rules follow packetdrill's own scanner: the longest match wins and, on a tie,
the earlier rule (so ``0`` is an integer, ``0x1f`` a hex integer, ``00ab`` a word,
``192.0.2.1`` an IPv4 address and ``.5`` a float).  Whitespace and newlines carry no
meaning: an event may span lines, so every token records where it starts for error
messages.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from typing import NamedTuple

__all__ = ["DrillSyntaxError", "Token", "TokenKind", "tokenize"]


class DrillSyntaxError(ValueError):
    """A script that does not parse, with the place and a caret under it.

    ``line`` and ``column`` are 1-based; ``str()`` shows the offending source line so a
    message is useful without opening the file.
    """

    def __init__(
        self,
        line: int,
        column: int,
        message: str,
        source_line: str = "",
        filename: str | None = None,
    ) -> None:
        self.line = line
        self.column = column
        self.message = message
        self.source_line = source_line
        self.filename = filename
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.filename or '<script>'}:{self.line}:{self.column}"
        text = f"{where}: {self.message}"
        if self.source_line:
            # Keep tabs in the caret line so the caret sits under the right character.
            lead = "".join(c if c == "\t" else " " for c in self.source_line[: self.column - 1])
            text += f"\n    {self.source_line}\n    {lead}^"
        return text


def error_at(source: str, offset: int, message: str, filename: str | None) -> DrillSyntaxError:
    """Build a DrillSyntaxError for a character offset into ``source``."""
    offset = max(0, min(offset, len(source)))
    line = source.count("\n", 0, offset) + 1
    line_start = source.rfind("\n", 0, offset) + 1
    line_end = source.find("\n", offset)
    source_line = source[line_start : line_end if line_end >= 0 else len(source)].rstrip("\r")
    return DrillSyntaxError(line, offset - line_start + 1, message, source_line, filename)


class TokenKind(enum.Enum):
    INT = "integer"
    FLOAT = "number"
    WORD = "word"
    STRING = "string"
    BACKQUOTE = "`command`"
    CODE = "%{ code }%"
    OPTION = "--option"
    ELLIPSIS = "'...'"
    IPV4 = "IPv4 address"
    IPV6 = "IPv6 address"
    PUNCT = "punctuation"
    EOF = "end of script"


class Token(NamedTuple):
    kind: TokenKind
    text: str  # exactly as written, quotes and delimiters included
    line: int
    column: int
    start: int  # offset of the first character
    end: int  # offset one past the last character

    def describe(self) -> str:
        """Name the token for an error message."""
        if self.kind is TokenKind.EOF:
            return "the end of the script"
        shown = self.text if len(self.text) <= 30 else self.text[:27] + "..."
        return repr(shown)


# Candidates for the longest match, in tie-breaking order.
_RULES: tuple[tuple[TokenKind, re.Pattern[str]], ...] = (
    (TokenKind.ELLIPSIS, re.compile(r"\.\.\.")),
    (TokenKind.OPTION, re.compile(r"--[A-Za-z0-9_]+")),
    (TokenKind.FLOAT, re.compile(r"-?[0-9]*\.[0-9]+")),
    (TokenKind.INT, re.compile(r"-?[0-9]+")),
    (TokenKind.INT, re.compile(r"0x[0-9A-Fa-f]+")),
    (TokenKind.WORD, re.compile(r"[A-Za-z0-9_]+")),
    (TokenKind.IPV4, re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")),
)
_IPV6_CANDIDATE = re.compile(r"[0-9A-Fa-f]*:[0-9A-Fa-f:]*(?:[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+)?")
_WHITESPACE = re.compile(r"[ \t\r\n\f\v]+")
# Delimited tokens: (opening text, closing pattern, kind or None for comments, what).
_DELIMITED: tuple[tuple[str, re.Pattern[str], TokenKind | None, str], ...] = (
    ("//", re.compile(r"[^\n]*"), None, "comment"),
    ("/*", re.compile(r".*?\*/", re.DOTALL), None, "/* comment"),
    ("%{", re.compile(r".*?\}%", re.DOTALL), TokenKind.CODE, "%{ code block"),
    ('"', re.compile(r'(?:\\.|[^"\\])*"', re.DOTALL), TokenKind.STRING, "string"),
    ("`", re.compile(r"(?:\\.|[^`\\])*`", re.DOTALL), TokenKind.BACKQUOTE, "`command`"),
)
_CLOSERS = {"/*": "*/", "%{": "}%", '"': '"', "`": "`"}


def _ipv6_length(source: str, pos: int) -> int:
    """Length of an IPv6 address at ``pos``, or 0.

    A run like ``1:1001`` (a sequence range) is not an address: only text that
    ``ipaddress`` accepts and that has ``::`` or all eight groups counts.
    """
    match = _IPV6_CANDIDATE.match(source, pos)
    if match is None:
        return 0
    text = match.group()
    for candidate in (text, text[:-1] if text.endswith(":") and not text.endswith("::") else ""):
        if not candidate or ("::" not in candidate and candidate.count(":") != 7):
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        return len(candidate)
    return 0


def tokenize(source: str, filename: str | None = None) -> list[Token]:
    """Split a script into tokens, skipping whitespace and comments; ends with EOF."""
    tokens: list[Token] = []
    pos = 0
    line = 1
    line_start = 0
    size = len(source)
    while pos < size:
        ws = _WHITESPACE.match(source, pos)
        if ws is not None:
            newlines = source.count("\n", pos, ws.end())
            if newlines:
                line += newlines
                line_start = source.rfind("\n", pos, ws.end()) + 1
            pos = ws.end()
            continue
        kind: TokenKind | None = None
        end = pos
        delimited = False
        for opener, rest, delimited_kind, what in _DELIMITED:
            if source.startswith(opener, pos):
                body = rest.match(source, pos + len(opener))
                if body is None:
                    closer = _CLOSERS[opener]
                    raise error_at(source, pos, f"unterminated {what}: add the closing {closer}", filename)
                kind, end, delimited = delimited_kind, body.end(), True
                break
        if not delimited:
            for rule_kind, pattern in _RULES:
                match = pattern.match(source, pos)
                if match is not None and match.end() > end:
                    kind, end = rule_kind, match.end()
            ipv6 = _ipv6_length(source, pos)
            if pos + ipv6 > end:
                kind, end = TokenKind.IPV6, pos + ipv6
            if kind is None:
                kind, end = TokenKind.PUNCT, pos + 1
        if kind is not None:
            tokens.append(Token(kind, source[pos:end], line, pos - line_start + 1, pos, end))
        newlines = source.count("\n", pos, end)
        if newlines:
            line += newlines
            line_start = source.rfind("\n", pos, end) + 1
        pos = end
    tokens.append(Token(TokenKind.EOF, "", line, pos - line_start + 1, pos, pos))
    return tokens
