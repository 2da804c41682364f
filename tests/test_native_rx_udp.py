"""UDP receive fast path (`rx_ipv4_udp`): C against twin, and each against the wire layer.

The fast path may only say yes to what the general path (`usernet.wire`) would accept as a
unicast, unfragmented UDP/IPv4 datagram to our MAC, and must not turn away one it would
accept: so every verdict is compared with an independent reading through the wire parsers,
on hand-made edge cases and on randomly damaged frames, not only C with its twin.
"""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import IMPLS
from tests.test_native import FRAMES, Frame, c, frame_id, needs_c
from tests.test_native_offload import DST, MAC, PEER_MAC, SRC, unicast_ipv4
from usernet._native import pure
from usernet.wire import MalformedPacket, parse_udp

fast = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Impl = Any

SPORT, DPORT = 40000, 53
IP_OPTIONS = [b"", b"\x01\x01\x01\x00", b"\x07\x27\x04" + bytes(37)]  # none, NOPs + EOL, a 40-byte record route


def fix_ip_checksum(frame: bytearray) -> None:
    """Recompute the IPv4 header checksum so that a deliberate change is the only fault."""
    hlen = max(20, (frame[14] & 0x0F) * 4)  # a too-small IHL still gets a right 20-byte header
    frame[24:26] = b"\0\0"
    struct.pack_into("!H", frame, 24, pure.internet_checksum(frame[14 : 14 + hlen]))


def udp_frame(payload: bytes, *, options: bytes = b"", ident: int = 7) -> bytearray:
    """A correct datagram to MAC; IPv4 options go in after the fact (the builder writes none)."""
    frame = bytearray(42 + len(payload))
    built = pure.build_ipv4_udp(frame, 0, MAC, PEER_MAC, SRC, DST, ident, 64, SPORT, DPORT, payload, pure.CSUM_FULL)
    assert built == len(frame)
    if options:
        frame[34:34] = options  # the UDP checksum does not cover the IPv4 header: it stays right
        frame[14] = 0x40 | (20 + len(options)) // 4
        struct.pack_into("!H", frame, 16, 28 + len(options) + len(payload))
        fix_ip_checksum(frame)
    return frame


def set_udp_length(frame: bytearray, length: int) -> None:
    """Set the UDP length field and a checksum that is right for that length."""
    udp = 14 + (frame[14] & 0x0F) * 4
    struct.pack_into("!HH", frame, udp + 4, length, 0)
    csum = pure.l4_checksum_v4(SRC, DST, 17, frame[udp : udp + length]) or 0xFFFF
    struct.pack_into("!H", frame, udp + 6, csum)


def reference_rx(frame: bytes, mac: bytes, trusted: bool) -> tuple[int, ...] | None:
    """What rx_ipv4_udp must say, read through the wire layer."""
    try:
        ip = unicast_ipv4(frame, mac, 17)
        if ip is None:
            return None
        udp = parse_udp(ip.payload, ip.src, ip.dst, verify_checksum=not trusted)
    except MalformedPacket:
        return None
    return (
        int.from_bytes(ip.src, "big"),
        udp.sport,
        int.from_bytes(ip.dst, "big"),
        udp.dport,
        14 + ip.header_length + 8,
        len(udp.payload),
    )


def expected(payload_at: int, size: int) -> tuple[int, ...]:
    return (0xC0000201, SPORT, 0xC0000202, DPORT, payload_at, size)


@pytest.mark.parametrize("options", IP_OPTIONS, ids=["no-options", "4-option-bytes", "40-option-bytes"])
@pytest.mark.parametrize("size", [0, 1, 18, 1472])
def test_rx_parses_a_valid_datagram_like_the_wire_layer(impl: Impl, options: bytes, size: int) -> None:
    frame = udp_frame(random.randbytes(size), options=options)
    got = impl.rx_ipv4_udp(frame, MAC, False)
    assert got == expected(42 + len(options), size)
    assert got == reference_rx(bytes(frame), MAC, False)
    assert impl.rx_ipv4_udp(bytes(frame), MAC, False) == impl.rx_ipv4_udp(memoryview(frame), MAC, False) == got


@pytest.mark.parametrize("size", [0, 1, 17])
def test_rx_ignores_ethernet_padding_after_the_ipv4_total_length(impl: Impl, size: int) -> None:
    frame = udp_frame(b"p" * size) + b"\xee" * (60 - 42 - size)  # padded to Ethernet's 60-byte minimum
    assert impl.rx_ipv4_udp(frame, MAC, False) == expected(42, size) == reference_rx(bytes(frame), MAC, False)


def test_rx_takes_a_zero_checksum_as_none(impl: Impl) -> None:
    frame = udp_frame(b"hello")
    frame[40:42] = b"\0\0"
    frame[-1] ^= 0xFF  # a payload no checksum would match: with the field 0 none is computed
    assert impl.rx_ipv4_udp(frame, MAC, False) == expected(42, 5) == reference_rx(bytes(frame), MAC, False)


def test_rx_does_not_check_a_trusted_links_checksum(impl: Impl) -> None:
    frame = udp_frame(b"hello")
    frame[-1] ^= 0x40
    assert impl.rx_ipv4_udp(frame, MAC, False) is None
    assert impl.rx_ipv4_udp(frame, MAC, True) == expected(42, 5) == reference_rx(bytes(frame), MAC, True)


def test_rx_stops_the_payload_at_the_udp_length(impl: Impl) -> None:
    frame = udp_frame(b"0123456789")
    set_udp_length(frame, 8 + 4)  # the IPv4 payload carries 6 bytes more than UDP claims
    assert impl.rx_ipv4_udp(frame, MAC, False) == expected(42, 4) == reference_rx(bytes(frame), MAC, False)


def spoiled(spoil: str) -> tuple[bytearray, bytes]:
    """A datagram with exactly one fault, and the MAC to offer it to."""
    frame = udp_frame(b"x" * 30, options=IP_OPTIONS[1])
    ip_fields = {
        "version": (14, 0x66),
        "ihl_below_5": (14, 0x44),
        "tcp": (23, 6),
        "more_fragments": (20, 0x20),
        "fragment_offset": (21, 0x01),
    }
    if spoil in ip_fields:
        at, value = ip_fields[spoil]
        frame[at] = value
        fix_ip_checksum(frame)
    elif spoil in ("total_below_header_and_udp", "total_past_end"):
        struct.pack_into("!H", frame, 16, 24 + 7 if spoil == "total_below_header_and_udp" else len(frame) - 13)
        fix_ip_checksum(frame)
    elif spoil == "short":
        frame = udp_frame(b"")[:41]
    elif spoil == "broadcast":
        frame[:6] = b"\xff" * 6
    elif spoil in ("ethertype", "vlan"):
        frame[12:14] = b"\x86\xdd" if spoil == "ethertype" else b"\x81\x00"
    elif spoil == "ip_checksum":
        frame[22] ^= 1  # the TTL: only the IPv4 header checksum notices
    elif spoil in ("udp_length_below_8", "udp_length_past_ip"):
        set_udp_length(frame, 7 if spoil == "udp_length_below_8" else 8 + 30 + 1)
    elif spoil == "udp_checksum":
        frame[-1] ^= 0x40
    mac = {"other_mac": PEER_MAC, "mac_too_long": MAC + b"\0", "mac_too_short": MAC[:5]}.get(spoil, MAC)
    return frame, mac


NONE_CASES = [
    "short",
    "other_mac",
    "mac_too_long",
    "mac_too_short",
    "broadcast",
    "ethertype",
    "vlan",
    "version",
    "ihl_below_5",
    "total_below_header_and_udp",
    "total_past_end",
    "tcp",
    "more_fragments",
    "fragment_offset",
    "ip_checksum",
    "udp_length_below_8",
    "udp_length_past_ip",
    "udp_checksum",
]


@pytest.mark.parametrize("spoil", NONE_CASES)
def test_rx_leaves_everything_else_to_the_general_path(impl: Impl, spoil: str) -> None:
    frame, mac = spoiled(spoil)
    assert impl.rx_ipv4_udp(frame, mac, False) is None
    assert reference_rx(bytes(frame), mac, False) is None, "the fault must be one the wire layer sees too"
    if spoil == "udp_checksum":
        assert impl.rx_ipv4_udp(frame, mac, True) is not None, "a trusted link's checksum is not looked at"
    else:
        assert impl.rx_ipv4_udp(frame, mac, True) is None, "trust only skips the UDP checksum"


@pytest.mark.parametrize("frame", [f for f in FRAMES if f.mode == "full" and f.proto == "udp"], ids=frame_id)
def test_rx_on_frames_captured_from_linux(impl: Impl, frame: Frame) -> None:
    mac = frame.data[:6]
    got = impl.rx_ipv4_udp(frame.data, mac, False)
    assert got is not None and got == reference_rx(frame.data, mac, False)


def mutated(seed: int, size: int, flips: int, cut: int, pad: int) -> bytearray:
    """A good frame, damaged: flipped bits, rewritten lengths, cut short or padded.

    Half the time the IPv4 checksum is repaired afterwards, so that damage to the header
    reaches the checks behind it instead of always failing on the checksum.
    """
    rng = random.Random(seed)
    frame = udp_frame(rng.randbytes(size), options=rng.choice(IP_OPTIONS), ident=rng.getrandbits(16))
    for _ in range(flips):
        frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
    ihl = (frame[14] & 0x0F) * 4
    if rng.random() < 0.3:
        struct.pack_into("!H", frame, 16, max(0, len(frame) - 14 + rng.randint(-12, 4)))
    if rng.random() < 0.3 and 14 + ihl + 8 <= len(frame):
        struct.pack_into("!H", frame, 14 + ihl + 4, max(0, len(frame) - 14 - ihl + rng.randint(-12, 4)))
    if rng.random() < 0.2:
        struct.pack_into("!H", frame, 20, rng.choice([0, 0x4000, 0x2000, 0x0001, 0x6000]))  # DF, MF, offset
    if rng.random() < 0.2 and 14 + ihl + 8 <= len(frame):
        frame[14 + ihl + 6 : 14 + ihl + 8] = b"\0\0"
    if rng.random() < 0.5 and 14 + max(20, ihl) <= len(frame):
        fix_ip_checksum(frame)
    del frame[max(0, len(frame) - cut) :]
    return frame + rng.randbytes(pad)


damage = {
    "seed": st.integers(0, 2**32),
    "size": st.integers(0, 600),
    "flips": st.integers(0, 3),
    "cut": st.one_of(st.just(0), st.integers(1, 60)),
    "pad": st.sampled_from([0, 0, 1, 18]),
}


@pytest.mark.parametrize("implementation", IMPLS)
@fast
@given(trusted=st.booleans(), **damage)
def test_rx_agrees_with_the_wire_layer_on_damaged_frames(
    implementation: Impl, trusted: bool, seed: int, size: int, flips: int, cut: int, pad: int
) -> None:
    frame = mutated(seed, size, flips, cut, pad)
    assert implementation.rx_ipv4_udp(frame, MAC, trusted) == reference_rx(bytes(frame), MAC, trusted)


@needs_c
@fast
@given(trusted=st.booleans(), **damage)
def test_rx_c_equals_twin_on_damaged_frames(
    trusted: bool, seed: int, size: int, flips: int, cut: int, pad: int
) -> None:
    frame = mutated(seed, size, flips, cut, pad)
    assert c().rx_ipv4_udp(frame, MAC, trusted) == pure.rx_ipv4_udp(frame, MAC, trusted)


@pytest.mark.parametrize("mac", [bytearray(MAC), memoryview(MAC), MAC.hex()], ids=["bytearray", "memoryview", "str"])
def test_rx_refuses_a_non_bytes_address_like_cffi(impl: Impl, mac: Any) -> None:
    with pytest.raises(TypeError):
        impl.rx_ipv4_udp(udp_frame(b""), mac, False)
    with pytest.raises(TypeError):
        impl.rx_ipv4_udp(udp_frame(b"")[:20], mac, False)  # refused before the frame is looked at
