"""SendBuffer and ReceiveBuffer against a plain bytearray model."""

from __future__ import annotations

import random
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tcp_parts.footprint import NOTHING, bytes_beyond_itself
from usernet.stack.tcp.buffers import ReceiveBuffer, SendBuffer


def _data(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


# Sizes straddle the internal thresholds: small writes gather in the tail, writes of
# 4 KiB and more become chunks of their own, and the tail is sealed at 64 KiB.
sizes = st.integers(0, 300) | st.integers(4000, 9000)
send_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"), sizes, st.integers(0, 1 << 30), st.sampled_from(["bytes", "bytearray", "memoryview"])
        ),
        st.tuples(st.just("peek"), st.integers(0, 40000), st.integers(0, 20000)),
        st.tuples(st.just("ack"), st.floats(0, 1)),
        st.tuples(st.just("limit"), st.integers(1, 100000)),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 100000), send_ops)
def test_send_buffer_matches_model(limit: int, ops: list[tuple]) -> None:
    buf = SendBuffer(limit)
    model = bytearray()
    views: list[tuple[memoryview | bytes, bytes]] = []
    for op in ops:
        if op[0] == "write":
            _, n, seed, kind = op
            raw = _data(seed, n)
            data: bytes | bytearray | memoryview = (
                raw if kind == "bytes" else bytearray(raw) if kind == "bytearray" else memoryview(raw)
            )
            taken = buf.write(data)
            assert taken == min(n, max(0, buf.limit - len(model)))
            model += raw[:taken]
            if isinstance(data, bytearray):
                data[:] = bytes(len(data))  # the caller reusing its buffer must not matter
        elif op[0] == "peek":
            _, offset, n = op
            got = buf.peek(offset, n)
            assert bytes(got) == bytes(model[offset : offset + n])
            views.append((got, bytes(got)))
        elif op[0] == "ack":
            n = int(op[1] * len(model))
            buf.ack(n)
            del model[:n]
        else:
            buf.limit = op[1]
        assert len(buf) == len(model)
        assert buf.free == max(0, buf.limit - len(model))
    for view, seen in views:  # earlier peeks survive later writes and acks unchanged
        assert bytes(view) == seen


def test_send_buffer_many_chunks_compact_and_stay_addressable() -> None:
    buf = SendBuffer(1 << 24)
    model = bytearray()
    for i in range(300):
        chunk = _data(i, 5000)
        assert buf.write(chunk) == 5000
        model += chunk
        if i % 3 == 2:
            buf.ack(12000)
            del model[:12000]
        offset = (i * 7919) % len(model)
        assert bytes(buf.peek(offset, 7000)) == bytes(model[offset : offset + 7000])
    assert len(buf) == len(model)


def test_peek_inside_one_written_chunk_is_a_view_not_a_copy() -> None:
    buf = SendBuffer(1 << 20)
    chunk = _data(1, 64000)
    buf.write(chunk)
    seg = buf.peek(1460, 1460)
    assert isinstance(seg, memoryview) and seg.obj is chunk


def test_acknowledged_chunks_are_released_at_once() -> None:
    buf = SendBuffer(1 << 20)
    first = _data(2, 10000)
    buf.write(first)
    buf.write(_data(3, 10000))
    refs = sys.getrefcount(first)
    buf.ack(10000)  # the second chunk is still held, so no compaction happens
    assert sys.getrefcount(first) == refs - 1


def test_small_writes_are_gathered() -> None:
    buf = SendBuffer(1 << 20)
    for i in range(100):
        buf.write(bytes([i]) * 10)
    got = buf.peek(0, 1000)
    assert bytes(got) == b"".join(bytes([i]) * 10 for i in range(100))


def test_write_to_full_buffer_takes_nothing() -> None:
    buf = SendBuffer(10)
    assert buf.write(b"x" * 25) == 10
    assert buf.write(b"y") == 0 and buf.free == 0
    buf.ack(4)
    assert buf.free == 4 and buf.write(b"abcdef") == 4
    assert bytes(buf.peek(0, 100)) == b"xxxxxxabcd"


def test_ack_beyond_the_data_is_refused() -> None:
    buf = SendBuffer(100)
    buf.write(b"abc")
    with pytest.raises(ValueError, match="holds 3"):
        buf.ack(4)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SendBuffer(0)
    with pytest.raises(ValueError):
        ReceiveBuffer(0)


recv_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 3000), st.integers(0, 1 << 30)),
        st.tuples(st.just("read"), st.integers(-1, 4000)),
        st.tuples(st.just("read_all")),
        st.tuples(st.just("read_into"), st.integers(0, 4000)),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 20000), recv_ops)
def test_receive_buffer_matches_model(limit: int, ops: list[tuple]) -> None:
    buf = ReceiveBuffer(limit)
    model = bytearray()
    for op in ops:
        if op[0] == "append":
            raw = _data(op[2], op[1])
            taken = buf.append(memoryview(raw))
            assert taken == min(len(raw), limit - len(model))
            model += raw[:taken]
        elif op[0] == "read":
            n = max(op[1], 0)
            assert buf.read(op[1]) == bytes(model[:n])
            del model[:n]
        elif op[0] == "read_all":
            out = buf.read_all()
            assert isinstance(out, bytes) and out == bytes(model)
            model.clear()
        else:
            dest = bytearray(op[1])
            n = buf.read_into(dest)
            assert n == min(op[1], len(model))
            assert dest[:n] == model[:n]
            del model[:n]
        assert len(buf) == len(model)
        assert buf.free == limit - len(model)


# An idle connection's buffers allocate nothing until first used (a server holds thousands).


def test_an_unused_send_buffer_holds_no_lists_or_tail() -> None:
    assert bytes_beyond_itself(lambda: SendBuffer(100_000)) < NOTHING


def test_an_unused_receive_buffer_holds_no_bytearray() -> None:
    assert bytes_beyond_itself(lambda: ReceiveBuffer(100_000)) < NOTHING


@pytest.mark.parametrize("first", [b"x" * 10, b"y" * 5000, bytearray(b"z" * 70_000)])
def test_a_send_buffer_first_used_behaves_as_always(first: bytes) -> None:
    buf = SendBuffer(100_000)
    assert len(buf) == 0 and buf.peek(0, 10) == b"" and buf.free == 100_000
    buf.ack(0)  # acknowledging nothing on a buffer never written to
    assert buf.write(first) == len(first)
    assert bytes(buf.peek(0, len(first))) == bytes(first)  # the first peek seals a tail into the first chunk
    assert buf.write(b"more") == 4
    assert bytes(buf.peek(len(first) - 2, 6)) == bytes(first[-2:]) + b"more"
    buf.ack(len(first) + 4)  # everything acknowledged: the buffer is empty again, then reused
    assert len(buf) == 0 and buf.write(b"again" * 1000) == 5000
    assert bytes(buf.peek(0, 5000)) == b"again" * 1000


def test_a_receive_buffer_first_used_behaves_as_always() -> None:
    buf = ReceiveBuffer(8)
    assert len(buf) == 0 and buf.free == 8
    assert buf.read(4) == b"" and buf.read_all() == b"" and buf.read_into(bytearray(4)) == 0
    assert buf.append(b"0123456789") == 8  # the first data is cut to the limit
    assert buf.free == 0 and buf.append(b"x") == 0
    assert buf.read(3) == b"012" and buf.read_all() == b"34567"
    assert buf.append(memoryview(b"ab")) == 2
    into = bytearray(4)
    assert buf.read_into(into) == 2 and into[:2] == b"ab" and len(buf) == 0
