"""The sans-IO decoder: any split of a framed stream gives back exactly the messages sent."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.framing.cuts import split
from usernet.framing import RAW, Decoder, FramingError, Length, Line, Mode, encode

MODES: list[Mode] = [Length(1), Length(2), Length(4), Line(b"\n", 300), Line(b"\r\n", 300)]


def _messages_for(mode: Mode, payloads: list[bytes]) -> list[bytes]:
    """What a receiver in `mode` must get for `payloads` (lines get their delimiter, without inner ones)."""
    if isinstance(mode, Line):
        return [p.replace(mode.delimiter[:1], b"") + mode.delimiter for p in payloads]
    return payloads


def _decode_chunks(mode: Mode, chunks: list[bytes]) -> list[bytes]:
    decoder = Decoder(mode)
    out = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (packet := decoder.next()) is not None:
            out.append(packet)
    assert decoder.buffered == 0
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(MODES),
    st.lists(st.binary(max_size=200), max_size=12),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_any_split_gives_exactly_the_messages(mode: Mode, payloads: list[bytes], cuts: list[int]) -> None:
    messages = _messages_for(mode, payloads)
    stream = b"".join(encode(mode, m) if isinstance(mode, Length) else m for m in messages)
    assert _decode_chunks(mode, split(stream, cuts)) == messages


@pytest.mark.parametrize("mode", MODES, ids=repr)
def test_every_byte_boundary_and_byte_by_byte(mode: Mode) -> None:
    messages = _messages_for(mode, [b"", b"a", b"hello world", bytes(range(1, 200))])
    stream = b"".join(encode(mode, m) if isinstance(mode, Length) else m for m in messages)
    for cut in range(len(stream) + 1):
        assert _decode_chunks(mode, [stream[:cut], stream[cut:]]) == messages
    assert _decode_chunks(mode, [stream[i : i + 1] for i in range(len(stream))]) == messages


def test_line_then_raw_keeps_buffered_bytes_at_every_boundary() -> None:
    stream = b"VALUE key 0 10\r\n0123456789\r\nEND\r\n"
    for cut in range(len(stream) + 1):
        decoder = Decoder(Line(b"\r\n"))
        decoder.feed(stream[:cut])
        header = decoder.next()
        decoder.feed(stream[cut:])
        if header is None:
            header = decoder.next()
        assert header == b"VALUE key 0 10\r\n"
        decoder.set_mode(RAW)
        assert decoder.take(12) == b"0123456789\r\n"
        decoder.set_mode(Line(b"\r\n"))
        assert decoder.next() == b"END\r\n"
        assert decoder.buffered == 0


def test_switching_between_length_sizes_mid_stream() -> None:
    decoder = Decoder(Length(1))
    decoder.feed(encode(Length(1), b"one") + encode(Length(4), b"four") + encode(Length(2), b"two"))
    assert decoder.next() == b"one"
    decoder.set_mode(Length(4))
    assert decoder.next() == b"four"
    decoder.set_mode(Length(2))
    assert decoder.next() == b"two"


def test_oversize_length_is_an_error_that_consumes_nothing() -> None:
    decoder = Decoder(Length(2, max_size=10))
    frame = encode(Length(2), b"x" * 11)
    decoder.feed(frame)
    with pytest.raises(FramingError) as info:
        decoder.next()
    assert info.value.errno == errno.EMSGSIZE and "11-byte" in str(info.value)
    assert decoder.buffered == len(frame)  # still there: the owner decides
    decoder.set_mode(RAW)
    assert decoder.take(len(frame)) == frame


def test_line_without_delimiter_past_the_limit_is_an_error() -> None:
    decoder = Decoder(Line(b"\n", max_length=8))
    decoder.feed(b"12345678")
    assert decoder.next() is None  # at the limit: a delimiter may still come
    decoder.feed(b"9")
    with pytest.raises(FramingError):
        decoder.next()
    decoder2 = Decoder(Line(b"\n", max_length=8))
    decoder2.feed(b"123456789\n")
    with pytest.raises(FramingError):
        decoder2.next()
    assert decoder2.buffered == 10


def test_encode_refuses_what_the_prefix_cannot_carry() -> None:
    assert encode(Length(1), b"x" * 255)[0] == 255
    with pytest.raises(FramingError):
        encode(Length(1), b"x" * 256)
    with pytest.raises(FramingError):
        encode(Length(4, max_size=3), b"four")
    assert encode(Line(), b"as is") == b"as is"
    with pytest.raises(ValueError):
        Length(3)  # type: ignore[arg-type]  # the point: a size the type does not allow
    with pytest.raises(ValueError):
        Line(b"")


def test_raw_take() -> None:
    decoder = Decoder()
    assert decoder.next() is None
    decoder.feed(b"abcdef")
    assert decoder.take(10) is None
    assert decoder.take(2) == b"ab"
    assert decoder.next() == b"cdef"
