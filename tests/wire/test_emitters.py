"""Emitters refuse what they cannot write with a ValueError, and lay TCP options out as Linux does."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from usernet.wire import (
    ACK,
    emit_arp,
    emit_ethernet,
    emit_icmp,
    emit_ipv4_header,
    emit_tcp,
    emit_udp,
    encode_tcp_options,
)

IP = b"\xc0\x00\x02\x01"
MAC = b"\x02\x00\x00\x00\x00\x01"

EMITTERS: dict[str, tuple[int, Callable[..., int]]] = {
    "ethernet": (14, lambda buf, at, **kw: emit_ethernet(buf, at, kw.get("mac", MAC), MAC, kw.get("big", 0x0800))),
    "arp": (
        28,
        lambda buf, at, **kw: emit_arp(buf, at, kw.get("big", 1), kw.get("mac", MAC), kw.get("ip", IP), MAC, IP),
    ),
    "ipv4": (20, lambda buf, at, **kw: emit_ipv4_header(buf, at, kw.get("ip", IP), IP, 6, 0, ttl=kw.get("big", 64))),
    "icmp": (12, lambda buf, at, **kw: emit_icmp(buf, at, 8, 0, kw.get("big", 0), b"ping")),
    "udp": (12, lambda buf, at, **kw: emit_udp(buf, at, kw.get("ip", IP), IP, kw.get("big", 9), 9, b"ping")),
    "tcp": (
        24,
        lambda buf, at, **kw: emit_tcp(buf, at, kw.get("ip", IP), IP, 1, 2, kw.get("big", 3), 4, ACK, 5, b"", b"ping"),
    ),
}


@pytest.mark.parametrize("name", EMITTERS)
def test_exact_fit_works_and_one_byte_less_does_not(name: str) -> None:
    length, emit = EMITTERS[name]
    assert emit(bytearray(length + 3), 3) == length
    buf = bytearray(length + 2)
    with pytest.raises(ValueError, match="pass a larger buffer"):
        emit(buf, 3)
    assert buf == bytearray(length + 2)  # nothing written
    with pytest.raises(ValueError, match="pass a larger buffer"):
        emit(bytearray(length + 3), -1)


@pytest.mark.parametrize("name", EMITTERS)
def test_out_of_range_field_is_a_value_error(name: str) -> None:
    length, emit = EMITTERS[name]
    with pytest.raises(ValueError, match="out of range"):
        emit(bytearray(length), 0, big=1 << 40)


@pytest.mark.parametrize("name", [n for n in EMITTERS if n not in ("icmp",)])
def test_wrong_address_sizes_are_refused(name: str) -> None:
    length, emit = EMITTERS[name]
    key = "mac" if name == "ethernet" else "ip"
    for bad in (b"\x01\x02\x03", b"\x01" * 7, "1.2.3.4"):
        with pytest.raises(ValueError, match="must be"):
            emit(bytearray(length), 0, **{key: bad})


def test_oversized_payloads_are_refused() -> None:
    with pytest.raises(ValueError, match="65515"):
        emit_ipv4_header(bytearray(20), 0, IP, IP, 17, 65516)
    with pytest.raises(ValueError, match="65527"):
        emit_udp(bytearray(70000), 0, IP, IP, 1, 2, bytes(65528))


def test_tcp_emit_checks_options_and_flags() -> None:
    buf = bytearray(80)
    for options in (b"\x01" * 3, b"\x01" * 44):
        with pytest.raises(ValueError, match="multiple of 4 bytes and at most 40"):
            emit_tcp(buf, 0, IP, IP, 1, 2, 3, 4, ACK, 5, options)
    with pytest.raises(ValueError, match="9 bits"):
        emit_tcp(buf, 0, IP, IP, 1, 2, 3, 4, 0x200, 5)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # Linux SYN with everything: mss, sackOK folded into the TS padding, nop, wscale
        (
            {"mss": 1460, "sack_permitted": True, "timestamp": (1, 0), "wscale": 7},
            "020405b4 0402080a 00000001 00000000 01030307",
        ),
        # without timestamps sackOK comes behind two NOPs, before the window scale
        ({"mss": 1460, "sack_permitted": True, "wscale": 7}, "020405b4 01010402 01030307"),
        ({"timestamp": (5, 6)}, "0101080a 00000005 00000006"),
        ({"timestamp": (5, 6), "sack_blocks": ((10, 20),)}, "0101080a 00000005 00000006 0101050a 0000000a 00000014"),
        ({}, ""),
    ],
)
def test_tcp_option_layout_matches_linux(options: dict[str, object], expected: str) -> None:
    assert encode_tcp_options(**options) == bytes.fromhex(expected)  # type: ignore[arg-type]  # keywords from a dict


def test_tcp_options_limits() -> None:
    four = tuple((i, i + 1) for i in range(4))
    assert len(encode_tcp_options(sack_blocks=four)) == 36
    with pytest.raises(ValueError, match="3 with timestamps"):
        encode_tcp_options(timestamp=(1, 2), sack_blocks=four)
    with pytest.raises(ValueError, match=r"0\.\.14"):
        encode_tcp_options(wscale=15)
    with pytest.raises(ValueError, match="out of range"):
        encode_tcp_options(mss=70000)
    with pytest.raises(ValueError, match="out of range"):
        encode_tcp_options(timestamp=(-1, 0))
