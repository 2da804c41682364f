"""str() of anything parsed is script text that parses back to an equal object."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usernet.testing.drill import (
    AddressOf,
    Array,
    BitOr,
    Call,
    Direction,
    Eol,
    FastOpen,
    Field,
    IpInfo,
    Md5,
    Mss,
    Nop,
    PacketEvent,
    RawOption,
    Sack,
    SackPermitted,
    Struct,
    Symbol,
    SyscallEvent,
    TcpPacket,
    Time,
    TimeKind,
    Timestamp,
    TruncatedString,
    WindowScale,
    format_value,
    parse_file,
    parse_script,
)
from usernet.testing.drill.model import Value

SCRIPTS = Path(__file__).parent / "scripts"
REL0 = Time(TimeKind.RELATIVE, 0.0)

names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True)
ints = st.integers(-(2**31), 2**32 - 1)
leaves: st.SearchStrategy[Value] = st.one_of(
    ints,
    st.binary(max_size=8),
    st.just(...),
    names.map(Symbol),
    st.binary(max_size=4).map(TruncatedString),
)
# BitOr operands are leaves or calls: "a|b=c" or "&a|b" would read back grouped differently.
bit_or = st.lists(st.one_of(ints, names.map(Symbol)), min_size=2, max_size=4).map(lambda items: BitOr(tuple(items)))


def _compound(inner: st.SearchStrategy[Value]) -> st.SearchStrategy[Value]:
    items = st.lists(st.one_of(inner, bit_or), max_size=3).map(tuple)
    return st.one_of(
        items.map(Array),
        items.map(Struct),
        st.builds(Call, names, items),
        st.builds(Field, names, st.one_of(inner, bit_or), st.one_of(st.none(), ints, st.just(...))),
        inner.filter(lambda v: not isinstance(v, Field)).map(AddressOf),
    )


values = st.recursive(leaves, _compound, max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(values, bit_or), max_size=4), st.one_of(ints, bit_or, st.just(...)))
def test_syscall_values_round_trip(args: list[Value], result: Value) -> None:
    event = SyscallEvent(REL0, "call", tuple(args), result)
    assert parse_script(str(event)).events == (event,)


tcp_options = st.one_of(
    st.just(Nop()),
    st.just(Eol()),
    st.just(SackPermitted()),
    st.integers(0, 0xFFFF).map(Mss),
    st.integers(0, 255).map(WindowScale),
    st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), min_size=1, max_size=4).map(
        lambda blocks: Sack(tuple(blocks))
    ),
    st.builds(FastOpen, st.one_of(st.none(), st.from_regex(r"[0-9a-f]{2,16}", fullmatch=True)), st.booleans()),
    st.from_regex(r"[0-9a-f]{2,32}", fullmatch=True).map(Md5),
    st.from_regex(r"x[a-z]{0,5}( [0-9]{1,4}){0,3}", fullmatch=True).map(RawOption),
)


@st.composite
def tcp_events(draw: st.DrawFn) -> PacketEvent:
    direction = draw(st.sampled_from(Direction))
    seq = draw(st.integers(0, 2**31))
    options = draw(st.one_of(st.lists(tcp_options, max_size=5).map(tuple), st.just(...)))
    if direction is Direction.INBOUND and options is Ellipsis:
        options = ()
    letters = draw(st.sampled_from(["", "S", "F", "R", "P", "SEW", "EA", "U"]))
    ack = draw(st.booleans())
    packet = TcpPacket(
        flags=letters + ("." if ack else ""),
        ace=draw(st.integers(0, 7)) if ack and draw(st.booleans()) else None,
        seq=seq,
        length=draw(st.integers(0, 0xFFFF)),
        ack=draw(st.one_of(st.none(), st.integers(0, 2**32 - 1))),
        window=draw(st.one_of(st.none(), st.integers(0, 0xFFFF))),
        urgent=draw(st.one_of(st.none(), st.integers(0, 0xFFFF))),
        options=options,
    )
    ecn = draw(st.sampled_from([None, "noecn", "ect0", "ect1", "ce"]))
    ip = None if ecn is None else IpInfo(ecn=ecn, tos=draw(st.one_of(st.none(), st.integers(0, 255))))
    start = draw(st.integers(0, 10**7)) / 10**6
    kinds = [TimeKind.ABSOLUTE, TimeKind.RELATIVE]
    if direction is Direction.OUTBOUND:
        kinds += [TimeKind.ANY, TimeKind.ABSOLUTE_RANGE, TimeKind.RELATIVE_RANGE]
    kind = draw(st.sampled_from(kinds))
    if kind is TimeKind.ANY:
        time = Time(kind)
    elif kind in (TimeKind.ABSOLUTE_RANGE, TimeKind.RELATIVE_RANGE):
        # Scripts carry microseconds: the parser rounds to them, so the model must too.
        time = Time(kind, start, round(start + draw(st.integers(0, 10**6)) / 10**6, 6))
    else:
        time = Time(kind, start)
    return PacketEvent(time, direction, packet, ip)


@settings(max_examples=150, deadline=None)
@given(tcp_events())
def test_tcp_packets_round_trip(event: PacketEvent) -> None:
    assert parse_script(str(event)).events == (event,)


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.pkt")), ids=lambda p: p.name)
def test_example_scripts_round_trip(path: Path) -> None:
    script = parse_file(path)
    assert parse_script(str(script)) == script


def test_format_value_writes_bytes_as_c_strings() -> None:
    assert format_value(b'a"\\\x00\xff') == '"a\\"\\\\\\x00\\xff"'
    assert format_value(...) == "..."


CORPUS = os.environ.get("USERNET_DRILL_CORPUS")


@pytest.mark.skipif(not CORPUS, reason="set USERNET_DRILL_CORPUS to a folder of .pkt scripts")
def test_external_corpus_parses_and_round_trips() -> None:
    """Opt-in: packetdrill's own suites are GPL, so they are read from outside the repository."""
    paths = sorted(Path(CORPUS or ".").rglob("*.pkt"))
    assert paths, f"no .pkt files under {CORPUS}"
    for path in paths:
        script = parse_file(path)
        assert parse_script(str(script)) == script, path
