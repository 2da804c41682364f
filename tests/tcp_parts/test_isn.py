"""RFC 6528 ISNs and the SYN-cookie format."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usernet.stack.tcp.isn import IsnGenerator, SynCookies

KEY = bytes(range(16))
A = bytes([192, 0, 2, 2])
B = bytes([192, 0, 2, 1])


def test_isn_is_keyed_and_depends_on_every_part_of_the_tuple() -> None:
    gen = IsnGenerator(KEY)
    base = gen.isn(10.0, A, 80, B, 40000)
    assert gen.isn(10.0, A, 80, B, 40000) == base
    assert IsnGenerator(KEY).isn(10.0, A, 80, B, 40000) == base
    others = {
        IsnGenerator(bytes(16)).isn(10.0, A, 80, B, 40000),
        gen.isn(10.0, B, 80, B, 40000),
        gen.isn(10.0, A, 81, B, 40000),
        gen.isn(10.0, A, 80, A, 40000),
        gen.isn(10.0, A, 80, B, 40001),
        gen.isn(10.0, B, 40000, A, 80),
    }
    assert base not in others and len(others) == 6


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 10**6))
def test_isn_advances_with_a_4_microsecond_clock(ms: int, later_ms: int) -> None:
    gen = IsnGenerator(KEY)
    t = ms / 1000
    dt = later_ms / 1000
    step = (gen.isn(t + dt, A, 80, B, 5555) - gen.isn(t, A, 80, B, 5555)) % (1 << 32)
    assert abs(step - (later_ms * 250) % (1 << 32)) <= 1  # float rounding of now*250000


def test_timestamp_offset_is_keyed_per_connection_and_not_the_isn_hash() -> None:
    gen = IsnGenerator(KEY)
    off = gen.ts_offset(A, 80, B, 40000)
    assert off == IsnGenerator(KEY).ts_offset(A, 80, B, 40000)
    assert off != gen.ts_offset(A, 80, B, 40001)
    assert off != gen.isn(0.0, A, 80, B, 40000)
    assert 0 <= off < 1 << 32


def test_secret_length_is_checked() -> None:
    with pytest.raises(ValueError, match=r"os\.urandom"):
        IsnGenerator(b"")
    with pytest.raises(ValueError):
        SynCookies(bytes(33))


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1e7), st.integers(0, (1 << 32) - 1), st.integers(1, 70000), st.floats(0, 127.9))
def test_cookie_round_trip(now: float, client_isn: int, mss: int, delay: float) -> None:
    jar = SynCookies(KEY)  # 64 s periods, 2 periods of age allowed: always valid below 128 s
    cookie = jar.encode(now, A, 80, B, 40000, client_isn, mss)
    seq, ack = (client_isn + 1) % (1 << 32), (cookie + 1) % (1 << 32)
    granted = jar.validate(now + delay, A, 80, B, 40000, seq, ack)
    table = SynCookies.MSS_TABLE
    assert granted == max([m for m in table if m <= mss], default=table[0])


def test_cookie_expires_after_max_age_periods() -> None:
    jar = SynCookies(KEY, period=64.0, max_age=2)
    cookie = jar.encode(100.0, A, 80, B, 40000, 7, 1460)  # count 1
    ack = (cookie + 1) % (1 << 32)
    assert jar.validate(3 * 64 + 63.9, A, 80, B, 40000, 8, ack) == 1460  # count 3: age 2
    assert jar.validate(4 * 64.0, A, 80, B, 40000, 8, ack) is None  # count 4: age 3
    assert jar.validate(1.0, A, 80, B, 40000, 8, ack) is None  # from the future


def test_cookie_survives_the_counter_wrap() -> None:
    jar = SynCookies(KEY)
    cookie = jar.encode(31 * 64 + 10.0, A, 80, B, 40000, 7, 1460)  # count 31
    assert jar.validate(32 * 64 + 10.0, A, 80, B, 40000, 8, cookie + 1) == 1460  # count 32 = 0 mod 32


def test_forged_or_misdirected_acks_are_refused() -> None:
    jar = SynCookies(KEY)
    cookie = jar.encode(1000.0, A, 80, B, 40000, 12345, 1460)
    ack = cookie + 1
    assert jar.validate(1000.0, A, 80, B, 40000, 12346, ack) == 1460
    assert jar.validate(1000.0, A, 80, B, 40001, 12346, ack) is None
    assert jar.validate(1000.0, A, 81, B, 40000, 12346, ack) is None
    assert jar.validate(1000.0, B, 80, B, 40000, 12346, ack) is None
    assert jar.validate(1000.0, A, 80, B, 40000, 12347, ack) is None  # another client ISN
    assert SynCookies(bytes(16)).validate(1000.0, A, 80, B, 40000, 12346, ack) is None
    for bit in range(32):  # including the MSS index and the time counter
        assert jar.validate(1000.0, A, 80, B, 40000, 12346, ((cookie ^ (1 << bit)) + 1) % (1 << 32)) is None


def test_cookie_layout() -> None:
    jar = SynCookies(KEY, period=64.0)
    cookie = jar.encode(64 * 37 + 1.0, A, 80, B, 40000, 1, 9000)
    assert cookie >> 27 == 37 % 32
    assert (cookie >> 24) & 7 == SynCookies.MSS_TABLE.index(8960)
