"""The C core against its pure-Python twins, independent oracles and frames built by Linux.

Every behavioural test runs on both implementations (`impl` fixture); the differential
tests then check that C and Python agree exactly, error codes and exceptions included.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from usernet import native
from usernet._native import pure

needs_c = pytest.mark.skipif(native.c_impl is None, reason="the C core is not loaded (USERNET_PURE=1?)")
fast = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Impl = Any  # the twin module or the C namespace: the same functions


def c() -> SimpleNamespace:
    assert native.c_impl is not None
    return native.c_impl


def outcome(function: Callable[..., Any], *args: Any) -> Any:
    """A native call's result, or the code of the NativeError it raised: C and twin must agree on both."""
    try:
        return function(*args)
    except pure.NativeError as exc:
        return exc.code


# ---------------------------------------------------------------- oracles


def oracle_sum16(data: bytes, initial: int = 0) -> int:
    """Word by word, end-around carry after every addition: nothing shared with either twin."""
    total = initial
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    padded = data + b"\x00" if len(data) % 2 else data
    for i in range(0, len(padded), 2):
        total += (padded[i] << 8) | padded[i + 1]
        if total > 0xFFFF:
            total -= 0xFFFF
    return total


def random_bytes(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


# ---------------------------------------------------------------- the machinery


def test_c_core_is_used_unless_pure_is_requested() -> None:
    assert native.available() is (os.environ.get("USERNET_PURE", "") in ("", "0"))


def test_pure_environment_falls_back_to_the_twins() -> None:
    code = (
        "from usernet import native; from usernet._native import pure; "
        "print(native.available(), native.c_impl is None, native.tcp_parse is pure.tcp_parse)"
    )
    env = dict(os.environ, USERNET_PURE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True"]


@needs_c
def test_facade_functions_are_the_c_ones() -> None:
    assert native.tcp_parse is c().tcp_parse
    assert native.build_ipv4_tcp is c().build_ipv4_tcp
    assert native.sum16 is c().sum16


@needs_c
def test_c_constants_equal_the_twins() -> None:
    from usernet._native._core import lib

    assert (lib.UN_TCP_SHORT, lib.UN_TCP_BAD_OFFSET, lib.UN_TCP_OFFSET_PAST_END, lib.UN_TCP_BAD_OPTION) == (
        pure.TCP_SHORT,
        pure.TCP_BAD_OFFSET,
        pure.TCP_OFFSET_PAST_END,
        pure.TCP_BAD_OPTION,
    )
    assert (lib.UN_CSUM_FULL, lib.UN_CSUM_PARTIAL) == (pure.CSUM_FULL, pure.CSUM_PARTIAL)
    assert {
        lib.UN_BUILD_NO_ROOM,
        lib.UN_BUILD_BAD_OPTIONS,
        lib.UN_BUILD_TOO_LONG,
        lib.UN_BUILD_BAD_ADDRESS,
        lib.UN_BUILD_BAD_FLAGS,
        lib.UN_BUILD_BAD_CSUM_MODE,
        lib.UN_BUILD_BAD_TEMPLATE,
        lib.UN_GSO_NOT_TCP,
        lib.UN_GRO_NO_ROOM,
    } == set(pure.BUILD_ERRORS)
    assert lib.UN_GSO_NOT_TCP == pure.GSO_NOT_TCP and lib.UN_GRO_NO_ROOM == pure.GRO_NO_ROOM
    assert lib.UN_BUILD_NO_ROOM == -10 and lib.UN_BUILD_BAD_OPTIONS == -11 and lib.UN_BUILD_TOO_LONG == -12
    assert set(pure.TCP_ERRORS) == {-1, -2, -3, -4}
    assert (lib.UN_BUILD_BAD_TEMPLATE, lib.UN_LINK_HEADER_MAX) == (pure.BUILD_BAD_TEMPLATE, pure.LINK_HEADER_MAX)


# ---------------------------------------------------------------- sum16 and checksums


def test_rfc1071_example(impl: Impl) -> None:
    data = bytes.fromhex("0001f203f4f5f6f7")  # RFC 1071 section 3: sum ddf2, checksum 220d
    assert impl.sum16(data) == 0xDDF2
    assert impl.internet_checksum(data) == 0x220D


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ([0xFFFF, 0xFFFF, 0x0001], 0x0001),  # first fold leaves 0x10000: folding once would give 0
        ([0xFFFF] * 3, 0xFFFF),
        ([0x8000, 0x8000], 0x0001),
        ([0x0000] * 4, 0x0000),
        ([0xFFFF, 0x0001], 0x0001),
    ],
)
def test_carry_is_folded_until_none_is_left(impl: Impl, words: list[int], expected: int) -> None:
    data = struct.pack(f"!{len(words)}H", *words)
    assert oracle_sum16(data) == expected
    assert impl.sum16(data) == expected


def test_initial_value_with_carries(impl: Impl) -> None:
    assert impl.sum16(b"\xff\xff", 0xFFFFFFFF) == oracle_sum16(b"\xff\xff", 0xFFFFFFFF)
    assert impl.sum16(b"", 0x1FFFF) == 0x0001
    assert impl.sum16(b"") == 0


@fast
@given(data=st.binary(max_size=300), initial=st.integers(0, 2**32 - 1))
def test_sum16_matches_word_by_word_oracle(data: bytes, initial: int) -> None:
    expected = oracle_sum16(data, initial)
    assert pure.sum16(data, initial) == expected
    if native.c_impl is not None:
        assert native.c_impl.sum16(data, initial) == expected


@needs_c
@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(0, 65535), shift=st.integers(0, 7), initial=st.integers(0, 2**32 - 1))
def test_sum16_c_equals_twin_for_every_length_and_alignment(seed: int, n: int, shift: int, initial: int) -> None:
    backing = bytearray(random_bytes(seed, n + shift))
    view = memoryview(backing)[shift:]  # unaligned start for shift % 8 != 0
    assert c().sum16(view, initial) == pure.sum16(view, initial)
    assert c().internet_checksum(view) == pure.internet_checksum(view)


@needs_c
@pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 9, 15, 16, 17, 1479, 1480, 1481, 65533, 65534, 65535])
def test_sum16_explicit_lengths_and_offsets(n: int) -> None:
    for shift in range(8):
        data = random_bytes(n * 8 + shift, n + shift)
        view = memoryview(data)[shift:]
        expected = oracle_sum16(bytes(view)) if n < 2000 else pure.sum16(view)
        assert c().sum16(view) == expected
        assert pure.sum16(view) == expected
    heavy = b"\xff" * n  # every addition carries
    assert c().sum16(heavy) == pure.sum16(heavy) == oracle_sum16(heavy)


def test_sum16_takes_any_buffer(impl: Impl) -> None:
    words = memoryview(bytearray(b"\x12\x34\x56\x78")).cast("H")
    assert impl.sum16(words) == impl.sum16(b"\x12\x34\x56\x78") == 0x68AC


def test_out_of_range_arguments_raise_what_cffi_raises(impl: Impl) -> None:
    with pytest.raises(OverflowError):
        impl.sum16(b"", -1)
    with pytest.raises(OverflowError):
        impl.sum16(b"", 2**32)
    with pytest.raises(TypeError):
        impl.sum16(b"", 1.5)
    with pytest.raises(OverflowError):
        impl.checksum_update16(0x10000, 0, 0)
    with pytest.raises(OverflowError):
        impl.pseudo_sum_v4(b"\x01" * 4, b"\x02" * 4, 6, 65536)
    with pytest.raises(TypeError):
        impl.pseudo_sum_v4(bytearray(4), b"\x02" * 4, 6, 20)
    with pytest.raises(ValueError):
        impl.pseudo_sum_v4(b"\x01" * 3, b"\x02" * 4, 6, 20)
    with pytest.raises(ValueError):
        impl.pseudo_sum_v6(b"\x01" * 4, b"\x02" * 16, 6, 20)
    with pytest.raises(ValueError):
        impl.l4_checksum_v4(b"\x01" * 4, b"\x02" * 5, 6, b"")


@fast
@given(
    src=st.binary(min_size=4, max_size=4),
    dst=st.binary(min_size=4, max_size=4),
    proto=st.integers(0, 255),
    length=st.integers(0, 65535),
)
def test_pseudo_sum_v4_matches_oracle(src: bytes, dst: bytes, proto: int, length: int) -> None:
    expected = oracle_sum16(src + dst + struct.pack("!BBH", 0, proto, length))
    for implementation in (pure, native.c_impl):
        if implementation is not None:
            assert implementation.pseudo_sum_v4(src, dst, proto, length) == expected


@fast
@given(
    src=st.binary(min_size=16, max_size=16),
    dst=st.binary(min_size=16, max_size=16),
    nh=st.integers(0, 255),
    length=st.integers(0, 2**32 - 1),
)
def test_pseudo_sum_v6_matches_oracle(src: bytes, dst: bytes, nh: int, length: int) -> None:
    expected = oracle_sum16(src + dst + struct.pack("!I3xB", length, nh))
    for implementation in (pure, native.c_impl):
        if implementation is not None:
            assert implementation.pseudo_sum_v6(src, dst, nh, length) == expected


@fast
@given(
    src=st.binary(min_size=4, max_size=4),
    dst=st.binary(min_size=4, max_size=4),
    proto=st.sampled_from([6, 17]),
    segment=st.binary(max_size=2000),
    shift=st.integers(0, 3),
)
def test_l4_checksum_v4_matches_oracle(src: bytes, dst: bytes, proto: int, segment: bytes, shift: int) -> None:
    pseudo = src + dst + struct.pack("!BBH", 0, proto, len(segment))
    expected = ~oracle_sum16(pseudo + segment) & 0xFFFF
    view = memoryview(b"\x00" * shift + segment)[shift:]
    for implementation in (pure, native.c_impl):
        if implementation is not None:
            assert implementation.l4_checksum_v4(src, dst, proto, view) == expected


@fast
@given(seed=st.integers(0, 2**32), words=st.integers(1, 800), data=st.data())
def test_checksum_update16_equals_full_recompute(seed: int, words: int, data: st.DataObject) -> None:
    block = bytearray(random_bytes(seed, 2 * words))
    index = data.draw(st.integers(0, words - 1))
    new = data.draw(st.integers(0, 0xFFFF))
    before = pure.internet_checksum(block)
    (old,) = struct.unpack_from("!H", block, 2 * index)
    struct.pack_into("!H", block, 2 * index, new)
    assume(any(block))  # all-zero data: equation 3 gives 0x0000, a recompute 0xFFFF (RFC 1624 section 3)
    after = pure.internet_checksum(block)
    assert pure.checksum_update16(before, old, new) == after
    if native.c_impl is not None:
        assert native.c_impl.checksum_update16(before, old, new) == after


# ---------------------------------------------------------------- frames from Linux


class Frame(NamedTuple):
    mode: str  # "full" or "partial"
    proto: str  # "tcp" or "udp"
    data: bytes


def load_frames() -> list[Frame]:
    path = Path(__file__).parent / "data" / "native_frames.txt"
    frames = []
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            mode, proto, hexdata = line.split()
            frames.append(Frame(mode, proto, bytes.fromhex(hexdata)))
    return frames


FRAMES = load_frames()


def frame_id(frame: Frame) -> str:
    return f"{frame.mode}-{frame.proto}-{len(frame.data)}"


def rebuild(impl: Impl, frame: bytes, mode: int) -> tuple[int, bytearray]:
    """Build the frame again from its parsed fields: the result must be byte-identical."""
    dst_mac, src_mac = frame[0:6], frame[6:12]
    ip = frame[14:34]
    ident, ttl, proto = struct.unpack_from("!H", ip, 4)[0], ip[8], ip[9]
    src_ip, dst_ip = ip[12:16], ip[16:20]
    l4 = memoryview(frame)[34:]
    buf = bytearray(len(frame) + 8)
    if proto == 6:
        p = impl.tcp_parse(l4)
        assert p[0] == pure.TCP_OK
        hlen = p[5]
        n = impl.build_ipv4_tcp(
            buf,
            3,
            dst_mac,
            src_mac,
            src_ip,
            dst_ip,
            ident,
            ttl,
            p[1],
            p[2],
            p[3],
            p[4],
            p[6],
            p[7],
            p[9],
            l4[20:hlen],
            l4[hlen:],
            mode,
        )
    else:
        n = impl.build_ipv4_udp(
            buf, 3, dst_mac, src_mac, src_ip, dst_ip, ident, ttl, *struct.unpack_from("!HH", l4), l4[8:], mode
        )
    return n, buf


@pytest.mark.parametrize("frame", FRAMES, ids=frame_id)
def test_linux_frames_rebuild_byte_for_byte(impl: Impl, frame: Frame) -> None:
    mode = pure.CSUM_FULL if frame.mode == "full" else pure.CSUM_PARTIAL
    n, buf = rebuild(impl, frame.data, mode)
    assert n == len(frame.data)
    assert bytes(buf[3 : 3 + n]) == frame.data
    assert buf[:3] == bytes(3) and buf[3 + n :] == bytes(5)


@pytest.mark.parametrize("frame", [f for f in FRAMES if f.mode == "full"], ids=frame_id)
def test_linux_checksums_verify_to_zero(impl: Impl, frame: Frame) -> None:
    data = memoryview(frame.data)
    assert impl.internet_checksum(data[14:34]) == 0
    proto = 6 if frame.proto == "tcp" else 17
    assert impl.l4_checksum_v4(bytes(data[26:30]), bytes(data[30:34]), proto, data[34:]) == 0


def test_linux_syn_options(impl: Impl) -> None:
    syn = memoryview(FRAMES[0].data)[34:]
    parsed = impl.tcp_parse(syn)
    assert parsed == (0, 43070, 7007, parsed[3], 0, 40, 0x02, 64240, parsed[8], 0, 1460, 10, 1, 3949720819, 0, ())


# ---------------------------------------------------------------- tcp_parse


def tcp_header(options: bytes = b"", flags: int = 0x10, doff: int | None = None) -> bytes:
    words = doff if doff is not None else 5 + len(options) // 4
    return (
        struct.pack("!HHIIBBHHH", 1000, 80, 7, 9, (words << 4) | (flags >> 8), flags & 0xFF, 512, 0xABCD, 3) + options
    )


@pytest.mark.parametrize(
    ("segment", "status"),
    [
        (b"", -1),
        (bytes(19), -1),
        (tcp_header(doff=4), -2),
        (tcp_header(doff=0), -2),
        (tcp_header(doff=6), -3),
        (tcp_header(b"\x02\x04\x05", doff=6)[:23], -3),
        (tcp_header(b"\x01\x01\x01\x02"), -4),  # kind with no room for its length byte
        (tcp_header(b"\x02\x01\x00\x00"), -4),  # length below 2
        (tcp_header(b"\x08\x0a\x00\x00"), -4),  # length past the header
        (tcp_header(b"\xfe\x00\x00\x00"), -4),
    ],
)
def test_tcp_parse_errors(impl: Impl, segment: bytes, status: int) -> None:
    with pytest.raises(pure.NativeError) as refused:
        impl.tcp_parse(segment)
    assert refused.value.code == status
    assert str(refused.value) == pure.TCP_ERRORS[status]


def test_tcp_parse_options(impl: Impl) -> None:
    sack = b"\x05\x12" + struct.pack("!4I", 1, 2, 0xFFFFFFFF, 4)
    options = b"\x02\x04\x05\xb4\x01\x03\x03\x0e\x04\x02\x08\x0a" + struct.pack("!II", 5, 6) + b"\x01\x01" + sack
    segment = tcp_header(options, flags=0x1C2) + b"payload"
    assert impl.tcp_parse(segment) == (
        0,
        1000,
        80,
        7,
        9,
        20 + len(options),
        0x1C2,
        512,
        0xABCD,
        3,
        1460,
        14,
        1,
        5,
        6,
        ((1, 2), (0xFFFFFFFF, 4)),
    )


def test_tcp_parse_wrong_length_known_options_are_ignored(impl: Impl) -> None:
    options = b"\x02\x05\x05\xb4\x00" + b"\x03\x02" + b"\x04\x03\x00" + b"\x05\x06\x00\x00\x00\x01" + b"\x08\x02"
    options += b"\x00" * (-len(options) % 4)
    assert impl.tcp_parse(tcp_header(options))[10:] == (-1, -1, 0, -1, -1, ())


def test_tcp_parse_stops_at_eol_and_skips_unknown(impl: Impl) -> None:
    assert impl.tcp_parse(tcp_header(b"\x00\x02\x01\x00"))[0] == 0  # garbage after EOL is ignored
    parsed = impl.tcp_parse(tcp_header(b"\x1e\x06\x02\x04\x05\xb4\x02\x04\x01\x00\x01\x01"))
    assert parsed[0] == 0 and parsed[10] == 0x100  # unknown kind 30 skipped; the last MSS wins


def test_tcp_parse_four_sack_blocks(impl: Impl) -> None:
    edges = list(range(100, 108))
    options = b"\x01\x01\x05\x22" + struct.pack("!8I", *edges) + b"\x01\x01"
    parsed = impl.tcp_parse(tcp_header(options))
    assert parsed[15] == tuple(zip(edges[0::2], edges[1::2], strict=True))


def test_tcp_parse_on_unaligned_views_and_other_formats(impl: Impl) -> None:
    segment = tcp_header(b"\x02\x04\x05\xb4") + b"xyz"
    backing = bytearray(b"\x00" + segment)
    assert impl.tcp_parse(memoryview(backing)[1:]) == impl.tcp_parse(segment)
    assert impl.tcp_parse(memoryview(bytearray(segment + b"\x00")).cast("H")) == impl.tcp_parse(segment + b"\x00")


@needs_c
def test_tcp_parse_is_thread_safe() -> None:
    """The C parse writes into a per-thread array while the GIL is released: threads must not mix."""
    segments = [tcp_header(b"\x01\x01\x05\x0a" + struct.pack("!II", i, i + 1)) for i in range(4)]
    expected = [pure.tcp_parse(s) for s in segments]
    mixed: list[int] = []

    def worker(i: int) -> None:
        for _ in range(3000):
            if c().tcp_parse(segments[i]) != expected[i]:
                mixed.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mixed == []


option_atoms = st.sampled_from(
    [
        b"\x00",
        b"\x01",
        b"\x02\x04\x05\xb4",
        b"\x03\x03\x07",
        b"\x04\x02",
        b"\x08\x0a" + bytes(range(8)),
        b"\x05\x0a" + bytes(range(8)),
        b"\x05\x12" + bytes(range(16)),
        b"\x05\x22" + bytes(range(32)),
        b"\x02\x03\x01",
        b"\x05\x0b" + bytes(9),
        b"\x1e\x02",
        b"\x02",
        b"\x08\x00",
    ]
)


@needs_c
@fast
@given(data=st.binary(max_size=80))
def test_tcp_parse_c_equals_twin_on_random_bytes(data: bytes) -> None:
    assert outcome(c().tcp_parse, data) == outcome(pure.tcp_parse, data)


@needs_c
@fast
@given(
    atoms=st.lists(option_atoms, max_size=12),
    flags=st.integers(0, 0x1FF),
    payload=st.binary(max_size=20),
    mutations=st.lists(st.tuples(st.integers(0, 79), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 100),
)
def test_tcp_parse_c_equals_twin_on_mutated_segments(
    atoms: list[bytes], flags: int, payload: bytes, mutations: list[tuple[int, int]], cut: int
) -> None:
    options = b"".join(atoms)[:40]
    options += b"\x01" * (-len(options) % 4)
    segment = bytearray(tcp_header(options, flags) + payload)
    unmutated = outcome(pure.tcp_parse, segment)
    assert unmutated == pure.TCP_BAD_OPTION or unmutated[0] == pure.TCP_OK
    for position, value in mutations:
        if position < len(segment):
            segment[position] = value
    segment = segment[:cut]
    assert outcome(c().tcp_parse, segment) == outcome(pure.tcp_parse, segment)


# ---------------------------------------------------------------- builders


MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
IP_A, IP_B = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])


def test_build_tcp_round_trips_through_tcp_parse(impl: Impl) -> None:
    buf = bytearray(200)
    options = b"\x01\x01\x08\x0a" + struct.pack("!II", 11, 12)
    n = impl.build_ipv4_tcp(
        buf,
        10,
        MAC_A,
        MAC_B,
        IP_A,
        IP_B,
        0x1234,
        64,
        40000,
        7,
        100,
        200,
        0x118,
        1000,
        0,
        memoryview(options),
        bytearray(b"abc"),
    )
    assert n == 14 + 20 + 32 + 3
    frame = memoryview(buf)[10 : 10 + n]
    assert frame[12:14] == b"\x08\x00" and frame[14] == 0x45 and frame[20:22] == b"\x40\x00"
    assert impl.internet_checksum(frame[14:34]) == 0
    assert impl.l4_checksum_v4(IP_A, IP_B, 6, frame[34:]) == 0
    assert impl.tcp_parse(frame[34:])[:15] == (
        0,
        40000,
        7,
        100,
        200,
        32,
        0x118,
        1000,
        impl.tcp_parse(frame[34:])[8],
        0,
        -1,
        -1,
        0,
        11,
        12,
    )


def test_build_udp_sends_zero_checksum_as_ffff(impl: Impl) -> None:
    buf = bytearray(100)
    n = impl.build_ipv4_udp(buf, 0, MAC_A, MAC_B, IP_A, IP_B, 1, 64, 5000, 53, b"\x00\x00")
    first = struct.unpack_from("!H", buf, 40)[0]
    n = impl.build_ipv4_udp(buf, 0, MAC_A, MAC_B, IP_A, IP_B, 1, 64, 5000, 53, struct.pack("!H", first))
    assert n == 44
    assert buf[40:42] == b"\xff\xff"
    assert impl.l4_checksum_v4(IP_A, IP_B, 17, buf[34:n]) == 0


def test_build_partial_checksum_holds_the_pseudo_header_sum(impl: Impl) -> None:
    buf = bytearray(100)
    n = impl.build_ipv4_tcp(
        buf, 0, MAC_A, MAC_B, IP_A, IP_B, 1, 64, 1, 2, 3, 4, 0x10, 5, 0, b"", b"hi", pure.CSUM_PARTIAL
    )
    assert struct.unpack_from("!H", buf, 50)[0] == impl.pseudo_sum_v4(IP_A, IP_B, 6, n - 34)


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"buf": bytearray(53)}, -10),
        ({"buf": bytearray(100), "offset": 50}, -10),
        ({"options": b"\x01\x01\x01"}, -11),
        ({"options": b"\x01" * 44}, -11),
        ({"payload": bytes(65536 - 40)}, -12),
        ({"src_mac": b"\x00" * 5}, -13),
        ({"dst_ip": b"\x00" * 16}, -13),
        ({"flags": 0x200}, -14),
        ({"csum_mode": 2}, -15),
    ],
)
def test_build_tcp_errors(impl: Impl, kwargs: dict[str, Any], status: int) -> None:
    args: dict[str, Any] = dict(
        buf=bytearray(54),
        offset=0,
        dst_mac=MAC_A,
        src_mac=MAC_B,
        src_ip=IP_A,
        dst_ip=IP_B,
        ident=0,
        ttl=64,
        sport=1,
        dport=2,
        seq=0,
        ack=0,
        flags=0x02,
        window=0,
        urgent=0,
        options=b"",
        payload=b"",
        csum_mode=0,
    )
    args.update(kwargs)
    before = bytes(args["buf"])
    with pytest.raises(pure.NativeError) as refused:
        impl.build_ipv4_tcp(**args)
    assert refused.value.code == status
    assert bytes(args["buf"]) == before
    assert status in pure.BUILD_ERRORS


def test_build_udp_errors(impl: Impl) -> None:
    assert outcome(impl.build_ipv4_udp, bytearray(41), 0, MAC_A, MAC_B, IP_A, IP_B, 0, 64, 1, 2, b"") == -10
    assert impl.build_ipv4_udp(bytearray(42), 0, MAC_A, MAC_B, IP_A, IP_B, 0, 64, 1, 2, b"") == 42
    assert outcome(impl.build_ipv4_udp, bytearray(42), 0, MAC_A, MAC_B, IP_A, IP_B, 0, 64, 1, 2, bytes(65508)) == -12
    assert outcome(impl.build_ipv4_udp, bytearray(99), 0, MAC_A, MAC_B[:4], IP_A, IP_B, 0, 64, 1, 2, b"") == -13
    assert outcome(impl.build_ipv4_udp, bytearray(99), 0, MAC_A, MAC_B, IP_A, IP_B, 0, 64, 1, 2, b"", 7) == -15


def test_build_refuses_bad_buffers_and_arguments(impl: Impl) -> None:
    with pytest.raises(BufferError):
        impl.build_ipv4_udp(bytes(100), 0, MAC_A, MAC_B, IP_A, IP_B, 0, 64, 1, 2, b"")
    with pytest.raises(TypeError):
        impl.build_ipv4_udp(bytearray(100), 0, bytearray(MAC_A), MAC_B, IP_A, IP_B, 0, 64, 1, 2, b"")
    with pytest.raises(OverflowError):
        impl.build_ipv4_udp(bytearray(100), -1, MAC_A, MAC_B, IP_A, IP_B, 0, 64, 1, 2, b"")
    with pytest.raises(OverflowError):
        impl.build_ipv4_tcp(bytearray(100), 0, MAC_A, MAC_B, IP_A, IP_B, 0, 256, 1, 2, 0, 0, 0, 0, 0, b"", b"")
    with pytest.raises(OverflowError):
        impl.build_ipv4_tcp(bytearray(100), 0, MAC_A, MAC_B, IP_A, IP_B, 0, 64, 1, 2, 2**32, 0, 0, 0, 0, b"", b"")


byte_kinds = st.sampled_from(["bytes", "bytearray", "memoryview", "unaligned"])


def as_kind(data: bytes, kind: str) -> bytes | bytearray | memoryview:
    if kind == "bytes":
        return data
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview":
        return memoryview(data)
    return memoryview(b"\x00" + data)[1:]


addresses = st.one_of(st.binary(min_size=4, max_size=4), st.binary(max_size=7))
macs = st.one_of(st.binary(min_size=6, max_size=6), st.binary(max_size=7))


@needs_c
@fast
@given(
    offset=st.integers(0, 40),
    room=st.integers(-4, 30),
    dst_mac=macs,
    src_mac=macs,
    src_ip=addresses,
    dst_ip=addresses,
    ident=st.integers(0, 0xFFFF),
    ttl=st.integers(0, 255),
    sport=st.integers(0, 0xFFFF),
    dport=st.integers(0, 0xFFFF),
    seq=st.integers(0, 2**32 - 1),
    ack=st.integers(0, 2**32 - 1),
    flags=st.integers(0, 0x3FF),
    window=st.integers(0, 0xFFFF),
    urgent=st.integers(0, 0xFFFF),
    options=st.binary(max_size=44),
    payload=st.binary(max_size=1600),
    kinds=st.tuples(byte_kinds, byte_kinds),
    csum_mode=st.integers(0, 2),
)
def test_build_ipv4_tcp_c_equals_twin(
    offset: int,
    room: int,
    dst_mac: bytes,
    src_mac: bytes,
    src_ip: bytes,
    dst_ip: bytes,
    ident: int,
    ttl: int,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    urgent: int,
    options: bytes,
    payload: bytes,
    kinds: tuple[str, str],
    csum_mode: int,
) -> None:
    size = max(0, offset + 54 + len(options) + len(payload) + room)
    fill = random_bytes(size, size)
    results = []
    for implementation in (pure, c()):
        buf = bytearray(fill)
        n = outcome(
            implementation.build_ipv4_tcp,
            memoryview(buf),
            offset,
            dst_mac,
            src_mac,
            src_ip,
            dst_ip,
            ident,
            ttl,
            sport,
            dport,
            seq,
            ack,
            flags,
            window,
            urgent,
            as_kind(options, kinds[0]),
            as_kind(payload, kinds[1]),
            csum_mode,
        )
        results.append((n, buf))
    assert results[0] == results[1]
    n, buf = results[0]
    if n > 0:
        frame = memoryview(buf)[offset : offset + n]
        assert struct.unpack_from("!HHII", frame, 34) == (sport, dport, seq, ack)
        if csum_mode == pure.CSUM_FULL:
            assert pure.l4_checksum_v4(src_ip, dst_ip, 6, frame[34:]) == 0


@needs_c
@fast
@given(
    offset=st.integers(0, 40),
    room=st.integers(-4, 30),
    dst_mac=macs,
    src_ip=addresses,
    ident=st.integers(0, 0xFFFF),
    ttl=st.integers(0, 255),
    sport=st.integers(0, 0xFFFF),
    dport=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=1600),
    kind=byte_kinds,
    csum_mode=st.integers(0, 2),
)
def test_build_ipv4_udp_c_equals_twin(
    offset: int,
    room: int,
    dst_mac: bytes,
    src_ip: bytes,
    ident: int,
    ttl: int,
    sport: int,
    dport: int,
    payload: bytes,
    kind: str,
    csum_mode: int,
) -> None:
    size = max(0, offset + 42 + len(payload) + room)
    fill = random_bytes(size, size)
    results = []
    for implementation in (pure, c()):
        buf = bytearray(fill)
        n = outcome(
            implementation.build_ipv4_udp,
            buf,
            offset,
            dst_mac,
            MAC_B,
            src_ip,
            IP_B,
            ident,
            ttl,
            sport,
            dport,
            as_kind(payload, kind),
            csum_mode,
        )
        results.append((n, buf))
    assert results[0] == results[1]
    n, buf = results[0]
    if n > 0 and csum_mode == pure.CSUM_FULL:
        assert pure.l4_checksum_v4(src_ip, IP_B, 17, memoryview(buf)[offset + 34 : offset + n]) == 0


@needs_c
@pytest.mark.parametrize("payload_length", [65535 - 40 - 40, 65535 - 40 - 40 + 1])
def test_build_largest_segment(payload_length: int) -> None:
    options = b"\x01" * 40
    payload = random_bytes(payload_length, payload_length)
    results = []
    for implementation in (pure, c()):
        buf = bytearray(70000)
        n = outcome(
            implementation.build_ipv4_tcp,
            buf,
            1,
            MAC_A,
            MAC_B,
            IP_A,
            IP_B,
            9,
            64,
            1,
            2,
            3,
            4,
            0x18,
            5,
            0,
            options,
            payload,
        )
        results.append((n, buf))
    assert results[0] == results[1]
    assert results[0][0] == (65535 + 14 if payload_length == 65535 - 80 else -12)
