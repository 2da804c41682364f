"""DNS messages: hand-built vectors (compression, escapes), crafted pointer loops, and hypothesis:
built messages parse back to themselves; random and mutated bytes give MalformedPacket or a message."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.wire.test_fuzz import mutated
from usernet.wire.dns import (
    CLASS_IN,
    FLAG_QR,
    FLAG_RD,
    FLAG_TC,
    RCODE_NXDOMAIN,
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    TYPE_MX,
    TYPE_SOA,
    TYPE_TXT,
    Message,
    Question,
    Record,
    Soa,
    build_query,
    emit_message,
    emit_names,
    name_key,
    parse_message,
    parse_names,
)
from usernet.wire.errors import MalformedPacket
from usernet.wire.icmpv6 import parse_icmpv6
from usernet.wire.ipv6 import ALL_NODES
from usernet.wire.ndp import emit_router_advert, parse_router_advert


def header(ident: int, flags: int, qd: int = 0, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


def test_query_bytes_are_rfc_1035s() -> None:
    assert build_query(0x1234, "www.Example.com", TYPE_A) == (
        header(0x1234, FLAG_RD, qd=1) + b"\x03www\x07Example\x03com\x00" + b"\x00\x01\x00\x01"
    )
    assert build_query(1, "", TYPE_A, recursion=False) == header(1, 0, qd=1) + b"\x00\x00\x01\x00\x01"


def test_a_compressed_answer_decodes() -> None:
    # The answer names point back at the question's name (offset 12), as servers write them.
    question = b"\x03www\x07example\x03com\x00" + b"\x00\x01\x00\x01"
    cname = b"\xc0\x0c" + struct.pack("!HHIH", TYPE_CNAME, CLASS_IN, 300, 6) + b"\x03web\xc0\x10"
    a = b"\xc0\x2d" + struct.pack("!HHIH", TYPE_A, CLASS_IN, 60, 4) + bytes([192, 0, 2, 7])
    wire = header(7, FLAG_QR | FLAG_RD, qd=1, an=2) + question + cname + a
    assert len(header(0, 0)) + len(question) + 12 == 0x2D  # where "web.example.com" starts
    message = parse_message(wire)
    assert message.questions == (Question("www.example.com", TYPE_A, CLASS_IN),)
    assert message.answers == (
        Record("www.example.com", TYPE_CNAME, CLASS_IN, 300, "web.example.com"),
        Record("web.example.com", TYPE_A, CLASS_IN, 60, "192.0.2.7"),
    )
    assert message.is_response and not message.truncated and message.rcode == 0
    assert emit_message(message) == wire  # the encoder compresses the same way


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("a\\.b.c", b"\x03a.b\x01c\x00"),
        ("x\\\\y", b"\x03x\\y\x00"),
        ("sp\\032ace", b"\x06sp ace\x00"),
        ("\\000\\255", b"\x02\x00\xff\x00"),
    ],
)
def test_label_bytes_that_are_not_plain_text_are_escaped(name: str, wire: bytes) -> None:
    message = parse_message(header(0, 0, qd=1) + wire + b"\x00\x01\x00\x01")
    assert message.questions[0].name == name
    assert emit_message(message).endswith(wire + b"\x00\x01\x00\x01")


@pytest.mark.parametrize(
    ("absolute", "wire"),
    [("a.b.", b"\x01a\x01b\x00"), ("x\\\\.", b"\x02x\\\x00"), ("\\\\\\\\.", b"\x02\\\\\x00")],
)
def test_a_trailing_dot_ends_the_name_even_after_an_escaped_backslash(absolute: str, wire: bytes) -> None:
    assert build_query(1, absolute, TYPE_A) == header(1, FLAG_RD, qd=1) + wire + b"\x00\x01\x00\x01"


def test_names_compare_without_ascii_case() -> None:
    assert name_key("WWW.Example.COM") == name_key("www.example.com") == "www.example.com"


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (header(0, 0, qd=1) + b"\xc0\x0c\x00\x01\x00\x01", "does not point backwards"),  # to itself
        (header(0, 0, qd=1) + b"\xc0\x20\x00\x01\x00\x01", "does not point backwards"),  # forwards
        # a label, then a pointer back to that label: the smallest loop that points backwards once
        (header(0, 0, qd=1) + b"\x01a\xc0\x0c\x00\x01\x00\x01", "does not point backwards"),
        (header(0, 0, qd=1) + b"\x41a\x00\x00\x01\x00\x01", "label type 0x40"),
        (header(0, 0, qd=1) + b"\x05ab", "runs past the end"),
        (header(0, 0, qd=1) + b"\x03abc", "runs past the end"),
        (header(0, 0, qd=1) + b"\xc0", "cut off"),
        (header(0, 0, qd=1) + b"\x00\x00", "question for . is cut short"),
        (header(0, 0, qd=1) + b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63 + b"\x3f" + b"d" * 63
         + b"\x00\x00\x01\x00\x01", "longer than 255"),
        (header(0, 0, an=1) + b"\x00" + struct.pack("!HHIH", TYPE_A, 1, 0, 3) + b"abc", "holds 3 bytes, not 4"),
        (header(0, 0, an=1) + b"\x00" + struct.pack("!HHIH", TYPE_A, 1, 0, 9) + b"abcd", "runs past the end"),
        (header(0, 0, an=1) + b"\x00" + struct.pack("!HHIH", TYPE_TXT, 1, 0, 3) + b"\x05ab", "TXT string"),
        (header(0, 0, an=1) + b"\x00" + struct.pack("!HHIH", TYPE_CNAME, 1, 0, 3) + b"\x00ab", "bytes after"),
        (header(0, 0, an=1) + b"\x00" + struct.pack("!HHIH", TYPE_SOA, 1, 0, 2) + b"\x00\x00", "SOA record"),
        (header(0, 0, an=1) + b"\x00\x00\x01", "cut short"),
        (b"\x00" * 11, "shorter than the 12-byte header"),
    ],
)  # fmt: skip
def test_crafted_messages_are_refused_with_a_reason(wire: bytes, why: str) -> None:
    with pytest.raises(MalformedPacket) as info:
        parse_message(wire)
    assert info.value.layer == "dns" and why in info.value.reason


def test_a_long_chain_of_backward_pointers_is_followed() -> None:
    # Question 0 is "a"; each next question's name is one label and a pointer to the one before.
    body = b"\x01a\x00\x00\x01\x00\x01"
    starts = [12]
    for i in range(40):
        starts.append(12 + len(body))
        body += b"\x01" + bytes([ord("b") + i % 20]) + (0xC000 | starts[-2]).to_bytes(2, "big") + b"\x00\x01\x00\x01"
    message = parse_message(header(0, 0, qd=41) + body)
    last = message.questions[-1].name
    assert last.count(".") == 40 and last.endswith(".c.b.a") and len(message.questions) == 41


def test_encoding_refuses_what_no_message_can_hold() -> None:
    with pytest.raises(ValueError, match="every label is 1 to 63"):
        build_query(1, "a..b", TYPE_A)
    with pytest.raises(ValueError, match="every label is 1 to 63"):
        build_query(1, "x" * 64, TYPE_A)
    with pytest.raises(ValueError, match="longer than 255"):
        build_query(1, ".".join(["x" * 60] * 5), TYPE_A)
    with pytest.raises(ValueError, match="not ASCII"):
        build_query(1, "bücher.example", TYPE_A)
    with pytest.raises(ValueError, match="backslash"):
        build_query(1, "a\\99", TYPE_A)
    with pytest.raises(ValueError, match="holds an IPv4 address"):
        emit_message(Message(1, 0, answers=(Record("a", TYPE_A, 1, 0, "::1"),)))
    with pytest.raises(ValueError, match="out of range"):
        emit_message(Message(1 << 16, 0))
    with pytest.raises(ValueError, match="does not fit a record of type 5"):
        emit_message(Message(1, 0, answers=(Record("a", TYPE_CNAME, 1, 0, b"raw"),)))


# -- hypothesis -------------------------------------------------------------------------------

label = st.binary(min_size=1, max_size=12)


def _text(label: bytes) -> str:
    """The text form of one wire label, through the parser (the one definition of it)."""
    return parse_message(header(0, 0, qd=1) + bytes([len(label)]) + label + b"\x00\x00\x01\x00\x01").questions[0].name


@st.composite
def dns_names(draw: st.DrawFn) -> str:
    return ".".join(_text(x) for x in draw(st.lists(label, max_size=5)))


u16 = st.integers(0, 0xFFFF)
ttl = st.integers(0, 0x7FFFFFFF)


@st.composite
def records(draw: st.DrawFn) -> Record:
    rtype = draw(st.sampled_from((TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_MX, TYPE_SOA, TYPE_TXT, 99)))
    data: object
    if rtype == TYPE_A:
        data = ".".join(str(b) for b in draw(st.binary(min_size=4, max_size=4)))
    elif rtype == TYPE_AAAA:
        data = str(ipaddress.IPv6Address(draw(st.binary(min_size=16, max_size=16))))
    elif rtype == TYPE_CNAME:
        data = draw(dns_names())
    elif rtype == TYPE_MX:
        data = (draw(u16), draw(dns_names()))
    elif rtype == TYPE_SOA:
        data = Soa(draw(dns_names()), draw(dns_names()), *draw(st.tuples(*[st.integers(0, 0xFFFFFFFF)] * 5)))
    elif rtype == TYPE_TXT:
        data = tuple(draw(st.lists(st.binary(max_size=30), max_size=3)))
    else:
        data = draw(st.binary(max_size=20))
    return Record(draw(dns_names()), rtype, draw(u16), draw(ttl), data)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    questions = tuple(draw(st.lists(st.builds(Question, dns_names(), u16, u16), max_size=2)))
    sections = [tuple(draw(st.lists(records(), max_size=3))) for _ in range(3)]
    return Message(draw(u16), draw(u16), questions, *sections)


@settings(max_examples=300, deadline=None)
@given(message=messages(), compress=st.booleans())
@example(
    message=Message(0, 0, (Question("f.x", 1, 1), Question("F.x", 1, 1)), (), (), ()), compress=True
)  # names differing in case only: a case-folded pointer made the second the first
def test_built_messages_parse_back_to_themselves(message: Message, compress: bool) -> None:
    wire = emit_message(message, compress=compress)
    assert parse_message(wire) == message
    if compress:
        assert len(wire) <= len(emit_message(message, compress=False))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200) | mutated(messages().map(emit_message)))
def test_any_bytes_give_a_message_or_malformed_packet(data: bytes) -> None:
    try:
        message = parse_message(data)
    except MalformedPacket as exc:
        assert exc.layer == "dns" and exc.reason
        return
    assert isinstance(message, Message)
    emit_message(message)  # whatever parses can be written again


def test_flags() -> None:
    message = Message(1, FLAG_QR | FLAG_TC | RCODE_NXDOMAIN)
    assert message.is_response and message.truncated and message.rcode == RCODE_NXDOMAIN


def test_a_router_advertisement_carries_servers_and_search_domains() -> None:
    """RFC 8106: RDNSS and DNSSL options, the names uncompressed and padded to 8 bytes."""
    src, server = bytes.fromhex("fe80" + "00" * 13 + "01"), ipaddress.IPv6Address("2001:db8::53").packed
    buf = bytearray(200)
    n = emit_router_advert(
        buf, 0, src, ALL_NODES, 0, None, dns=(server,), dns_lifetime=600, domains=("lan", "Corp.example")
    )
    options = parse_router_advert(parse_icmpv6(buf[:n], src, ALL_NODES)).options
    assert options.dns == ((server, 600),) and options.domains == (("lan", 600), ("Corp.example", 600))
    assert parse_names(memoryview(emit_names(("a.b", "c")) + bytes(3))) == ("a.b", "c")


@pytest.mark.parametrize(
    ("listed", "why"),
    [
        (b"\x01a\x00\x03lan\xc0\x00", "compressed"),  # "lan" then a pointer back to "a"
        (b"\x01a\x00\x00\x01", "padding"),
        (b"\x05a", "runs past the end"),
    ],
)
def test_a_search_list_must_be_whole_uncompressed_names_and_zeros(listed: bytes, why: str) -> None:
    with pytest.raises(MalformedPacket, match=why):
        parse_names(memoryview(listed))
