"""Broken scripts fail with the line, the column and a message that says what to write."""

from __future__ import annotations

import pytest

from usernet.testing.drill import DrillSyntaxError, parse_script

CASES = [
    # (script, line, column, a fragment of the message)
    ("0 close(3)\n+0 close(4) = 0\n", 1, 11, "expected '=' and the expected result after close(...)"),
    ("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 > S. 0:0(0) ack\n", 2, 19, "the 'ack' value"),
    ("+0 < SX 0:0(0) win 10\n", 1, 6, "unknown TCP flag 'X'"),
    ("+0 < S 1:1001(100)\n", 1, 8, "inconsistent sequence numbers"),
    ("+0 < S 0:0\n", 1, 11, "'(' in start:end(length)"),
    ("*  write(3, ..., 10) = 10\n", 1, 1, "'*' can only be used with outbound packets"),
    ("0.1~0.2 < . 1:1(0) ack 1\n", 1, 1, "a time range can only be used with outbound packets"),
    ("+0 < S. 0:0(0) ack 1 <...>\n", 1, 22, "<...> (any options) can only be used with outbound"),
    ("+0 < [ect01] . 1:1(0) ack 1\n", 1, 6, "[ect01] can only be used with outbound packets"),
    ("0 write(3, ..., 10) = 10 @\n", 1, 26, "(is it part of the event above?)"),
    ("0 < S 0:0(0) win 70000\n", 1, 18, "70000 is out of range (0..65535)"),
    ("0 < S 0:0(0) <wscale 300>\n", 1, 22, "out of range (0..255)"),
    ("`a`\n0 close(3) = 0\n`b`\n0 close(4) = 0\n", 3, 1, "a `command` without a time"),
    ("-1 close(3) = 0\n", 1, 1, "a time cannot be negative"),
    ("+0.2~+0.1 > S 0:0(0)\n", 1, 7, "time range is backwards"),
    ("+0.2~0.3 > S 0:0(0)\n", 1, 6, "either absolute on both ends"),
    ("0 > S 0:0(0) <mss>\n", 1, 18, "expected the MSS"),
    ("0 > S 0:0(0) <mss 1460 nop>\n", 1, 24, "expected '>' or ','"),
    ("0 > S 0:0(0) <TS val 1>\n", 1, 23, "expected 'ecr'"),
    ("0 foo bar\n", 1, 3, "expected a system call, a packet"),
    ("+0...0.1 > S 0:0(0)\n", 1, 3, "only for blocking system calls"),
    ("0 read(3, ..., 10 = 1\n", 1, 19, "expected ')' or ','"),
    ("0 read(3, 1.5) = 1\n", 1, 11, "expected a value"),
    ('0 write(3, "\\x", 1) = 1\n', 1, 14, "\\x needs hex digits"),
    ("0 < icmp [0:1(1)]\n", 1, 10, "the ICMP type"),
    ("0 < udp 100\n", 1, 9, "'(' before the UDP payload length"),
    ("0 f(x(1, 2)=3) = 0\n", 1, 5, "takes one length"),
    ("--opt=\n0 close(3) = 0\n", 1, 6, "expected a value after '--opt='"),
    ("0 close(3) = 0 (never closed\n", 1, 16, "the note in '(' is not closed before the end"),
    ("0 < [ect0 . 1:1(0)\n", 1, 5, "the '[' of the IP header notes is not closed"),
    ("0 < . 1:1(0) {mut tcp\n", 1, 14, "the '{' block after the packet is not closed"),
    ("0 < 192.0.2.1:8080 S 0:0(0)\n", 1, 20, "expected '>' between the source and destination"),
    ("0 < 192.0.2.1.70000 > 192.0.2.2.1 S 0:0(0)\n", 1, 14, "port 70000 is out of range"),
]


@pytest.mark.parametrize(("source", "line", "column", "fragment"), CASES)
def test_error_position_and_message(source: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(DrillSyntaxError) as caught:
        parse_script(source, "case.pkt")
    error = caught.value
    assert fragment in error.message
    assert (error.line, error.column) == (line, column), str(error)
    assert error.filename == "case.pkt"


def test_message_shows_the_line_and_a_caret_under_the_column() -> None:
    with pytest.raises(DrillSyntaxError) as caught:
        parse_script("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\t+0 < SX 0:0(0)\n", "s.pkt")
    lines = str(caught.value).splitlines()
    assert lines[0] == "s.pkt:2:7: " + caught.value.message
    assert lines[1] == "    \t+0 < SX 0:0(0)"
    assert lines[2] == "    \t     ^"  # the tab is kept so the caret lines up


def test_is_a_value_error_and_unnamed_scripts_say_so() -> None:
    with pytest.raises(ValueError, match=r"^<script>:1:1: "):
        parse_script("x\n")
