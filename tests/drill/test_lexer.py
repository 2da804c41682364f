"""The lexer splits tokens the way packetdrill's scanner does, and says where each starts."""

from __future__ import annotations

import pytest

from usernet.testing.drill import DrillSyntaxError
from usernet.testing.drill.lexer import TokenKind, tokenize

K = TokenKind


def kinds_and_texts(source: str) -> list[tuple[TokenKind, str]]:
    return [(t.kind, t.text) for t in tokenize(source)[:-1]]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # The blocking form: the start, '...', the end.
        ("+0...0.200", [(K.PUNCT, "+"), (K.INT, "0"), (K.ELLIPSIS, "..."), (K.FLOAT, "0.200")]),
        ("+.1...0.2", [(K.PUNCT, "+"), (K.FLOAT, ".1"), (K.ELLIPSIS, "..."), (K.FLOAT, "0.2")]),
        # A sequence range is not an IPv6 address.
        (
            "1:1001(1000)",
            [(K.INT, "1"), (K.PUNCT, ":"), (K.INT, "1001"), (K.PUNCT, "("), (K.INT, "1000"), (K.PUNCT, ")")],
        ),
        ("192.0.2.1:8080", [(K.IPV4, "192.0.2.1"), (K.PUNCT, ":"), (K.INT, "8080")]),
        ("2001:db8::1", [(K.IPV6, "2001:db8::1")]),
        ("fe80::1:", [(K.IPV6, "fe80::1"), (K.PUNCT, ":")]),
        # AccECN's ACE counter rides on the ACK dot.
        ("P.6", [(K.WORD, "P"), (K.FLOAT, ".6")]),
        ("S.", [(K.WORD, "S"), (K.PUNCT, ".")]),
        # Ties go to the earlier rule; longer matches win.
        ("0x1f", [(K.INT, "0x1f")]),
        ("00abcd", [(K.WORD, "00abcd")]),
        ("112233", [(K.INT, "112233")]),
        ("-1 EAGAIN", [(K.INT, "-1"), (K.WORD, "EAGAIN")]),
        ("- 0", [(K.PUNCT, "-"), (K.INT, "0")]),
        ("--tolerance_usecs=10", [(K.OPTION, "--tolerance_usecs"), (K.PUNCT, "="), (K.INT, "10")]),
        # Comments vanish; code, commands and strings are one token each.
        ("a // b c\nd /* e\nf */ g", [(K.WORD, "a"), (K.WORD, "d"), (K.WORD, "g")]),
        ("%{ x = '}' }%", [(K.CODE, "%{ x = '}' }%")]),
        ("`a \\` b`", [(K.BACKQUOTE, "`a \\` b`")]),
        ('"a\\"b" "c"', [(K.STRING, '"a\\"b"'), (K.STRING, '"c"')]),
    ],
)
def test_tokens(source: str, expected: list[tuple[TokenKind, str]]) -> None:
    assert kinds_and_texts(source) == expected


def test_positions_survive_multiline_tokens() -> None:
    tokens = tokenize('x `one\ntwo` y\n\t"a\nb" z /* c\n\n*/ w')
    positions = {t.text: (t.line, t.column) for t in tokens}
    assert positions["x"] == (1, 1)
    assert positions["y"] == (2, 6)
    assert positions['"a\nb"'] == (3, 2)
    assert positions["z"] == (4, 4)
    assert positions["w"] == (6, 4)
    assert tokens[-1].kind is K.EOF


@pytest.mark.parametrize(
    ("source", "line", "column", "closer"),
    [
        ('0 write(3, "abc', 1, 12, '"'),
        ("0 close(3) = 0\n/* never closed", 2, 1, "*/"),
        ("\n  +0 %{ assert 1", 2, 6, "}%"),
        ("+0 `echo", 1, 4, "`"),
    ],
)
def test_unterminated_tokens_point_at_their_start(source: str, line: int, column: int, closer: str) -> None:
    with pytest.raises(DrillSyntaxError) as caught:
        tokenize(source, "x.pkt")
    error = caught.value
    assert (error.line, error.column) == (line, column)
    assert closer in error.message
    assert str(error).startswith(f"x.pkt:{line}:{column}: unterminated")
