"""The receive and offload functions on an IP-only link (`link_len=0`): C against twin, and
each against its own Ethernet reading of the same packet.

A bare IP packet is an Ethernet frame without its first 14 bytes, so the oracle is the
Ethernet path the other native tests already check against the wire layer: what
`rx_ipv4_tcp(frame[14:], ..., 0)` says must be what `rx_ipv4_tcp(frame, ...)` says, 14
bytes earlier; GSO's segments and GRO's merged frames must be the Ethernet ones cut the
same way. Damaged frames get a valid Ethernet header back before the comparison, so that
only the IP part differs from one reading to the other.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_native import c, needs_c
from tests.test_native_gro import gro, run, segment
from tests.test_native_offload import MAC, PEER_MAC, fast, tcp_frame, written_frames
from tests.test_native_rx_udp import damage, mutated
from usernet._native import pure
from usernet.wire.tcp import encode_tcp_options

Impl = Any
ETHERNET = MAC + PEER_MAC + b"\x08\x00"
IMPLS = [pytest.param(pure, id="pure"), pytest.param("c", id="c", marks=needs_c)]


def implementation(which: Any) -> Impl:
    return c() if which == "c" else which


def shifted(parsed: tuple[Any, ...] | None, at: int) -> tuple[Any, ...] | None:
    """An rx result with its payload offset (position `at`) 14 bytes earlier: the same packet without Ethernet."""
    if parsed is None:
        return None
    return (*parsed[:at], parsed[at] - 14, *parsed[at + 1 :])


def damaged_tcp(seed: int, size: int, flips: int, cut: int) -> bytearray:
    rng = random.Random(seed)
    options = rng.choice([b"", encode_tcp_options(timestamp=(1, 2)), encode_tcp_options(mss=1460, wscale=7)])
    frame = tcp_frame(rng.randbytes(size), options=options, flags=rng.getrandbits(9), seq=rng.getrandbits(32))
    for _ in range(flips):
        frame[rng.randrange(14, len(frame))] ^= 1 << rng.randrange(8)
    del frame[max(14, len(frame) - cut) :]
    return frame


@pytest.mark.parametrize("which", IMPLS)
@fast
@given(trusted=st.booleans(), seed=st.integers(0, 2**32), size=st.integers(0, 1500), flips=st.integers(0, 3),
       cut=st.integers(0, 60))  # fmt: skip
def test_rx_tcp_reads_a_bare_packet_as_the_same_frame_with_ethernet(
    which: Any, trusted: bool, seed: int, size: int, flips: int, cut: int
) -> None:
    impl = implementation(which)
    frame = damaged_tcp(seed, size, flips, cut)
    expected = shifted(impl.rx_ipv4_tcp(frame, MAC, trusted), -2)
    assert impl.rx_ipv4_tcp(frame[14:], MAC, trusted, 0) == expected
    assert impl.rx_ipv4_tcp(frame[14:], b"", trusted, 0) == expected, "no MAC on a link without Ethernet"


@pytest.mark.parametrize("which", IMPLS)
@fast
@given(trusted=st.booleans(), **damage)
def test_rx_udp_reads_a_bare_packet_as_the_same_frame_with_ethernet(
    which: Any, trusted: bool, seed: int, size: int, flips: int, cut: int, pad: int
) -> None:
    impl = implementation(which)
    frame = mutated(seed, size, flips, cut, pad)
    if len(frame) < 14:
        return
    frame[:14] = ETHERNET
    expected = shifted(impl.rx_ipv4_udp(frame, MAC, trusted), 4)
    assert impl.rx_ipv4_udp(frame[14:], MAC, trusted, 0) == expected


@needs_c
@fast
@given(trusted=st.booleans(), link_len=st.sampled_from([0, 0, 14, 4, 13, 15]), **damage)
def test_rx_c_equals_twin_whatever_the_link_length(
    trusted: bool, link_len: int, seed: int, size: int, flips: int, cut: int, pad: int
) -> None:
    frame = mutated(seed, size, flips, cut, pad)
    packet = frame[14:] if link_len == 0 else frame
    assert c().rx_ipv4_udp(packet, MAC, trusted, link_len) == pure.rx_ipv4_udp(packet, MAC, trusted, link_len)
    tcp = damaged_tcp(seed, size, flips, cut)
    packet = tcp[14:] if link_len == 0 else tcp
    assert c().rx_ipv4_tcp(packet, MAC, trusted, link_len) == pure.rx_ipv4_tcp(packet, MAC, trusted, link_len)


@pytest.mark.parametrize("which", IMPLS)
def test_rx_knows_only_ethernet_and_no_link_header(which: Any) -> None:
    impl = implementation(which)
    frame = tcp_frame(b"hello")
    assert impl.rx_ipv4_tcp(frame, MAC, False, 14) is not None
    for link_len in (4, 13, 15, 64):
        assert impl.rx_ipv4_tcp(frame, MAC, False, link_len) is None


@pytest.mark.parametrize("which", IMPLS)
@pytest.mark.parametrize("gso_size", [0, 536, 1448])
@pytest.mark.parametrize("size", [0, 1, 3000, 20000])
def test_gso_cuts_a_bare_packet_as_the_ethernet_frame(which: Any, gso_size: int, size: int) -> None:
    impl = implementation(which)
    frame = tcp_frame(
        random.Random(size).randbytes(size), mode=pure.CSUM_PARTIAL, options=encode_tcp_options(timestamp=(3, 4))
    )
    with_ethernet = written_frames(impl, frame, gso_size)
    bare = written_frames(impl, frame[14:], gso_size, link_len=0)
    assert bare[0][:2] == with_ethernet[0][:2]
    assert bare[0][2] == with_ethernet[0][2] - 14 * with_ethernet[0][0]
    assert bare[1] == [s[14:] for s in with_ethernet[1]]
    assert bare[1] == [bytes(s[14:]) for s in pure.gso_segments(frame, gso_size)]


@pytest.mark.parametrize("which", IMPLS)
def test_gso_refuses_an_unknown_link_header(which: Any) -> None:
    impl = implementation(which)
    frame = tcp_frame(b"x" * 3000, mode=pure.CSUM_PARTIAL)
    with pytest.raises(pure.NativeError) as caught:
        impl.gso_write(-1, frame, 1448, 4)
    assert caught.value.code == pure.GSO_NOT_TCP


def unpadded(frames: list[bytearray]) -> list[bytes]:
    """The frames without Ethernet and without its padding: the IP packets a TUN hands over."""
    return [bytes(f[14 : 14 + ((f[16] << 8) | f[17])]) for f in frames]


@pytest.mark.parametrize("which", IMPLS)
@fast
@given(
    sizes=st.lists(st.integers(1, 1448), min_size=1, max_size=12),
    breaks=st.lists(st.integers(0, 11), max_size=3),
    seed=st.integers(0, 2**16),
)
def test_gro_merges_bare_packets_as_the_ethernet_frames(
    which: Any, sizes: list[int], breaks: list[int], seed: int
) -> None:
    impl = implementation(which)
    frames = run(sizes)
    rng = random.Random(seed)
    for i in breaks:  # out of order, a flag, another flow: places where a run must stop
        if i < len(frames):
            frames[i] = segment(rng.randbytes(sizes[i]), rng.getrandbits(32), flags=rng.choice([0x10, 0x18, 0x11]))
    (_spans, read, joined, error), out, left = gro(impl, frames)
    (_bare_spans, *bare_counts), bare_out, bare_left = gro(impl, unpadded(frames), link_len=0)
    assert bare_counts == [read, joined, error] and bare_left == left == []
    assert bare_out == [f[14:] for f in out]


@needs_c
@fast
@given(
    sizes=st.lists(st.integers(1, 1448), min_size=1, max_size=8),
    flips=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 1500), st.integers(0, 7)), max_size=3),
    link_len=st.sampled_from([0, 14, 4]),
)
def test_gro_c_equals_twin_whatever_the_link_length(
    sizes: list[int], flips: list[tuple[int, int, int]], link_len: int
) -> None:
    frames = run(sizes)
    for i, at, bit in flips:
        if i < len(frames):
            frames[i][at % len(frames[i])] ^= 1 << bit
    packets = unpadded(frames) if link_len == 0 else [bytes(f) for f in frames]
    got = gro(c(), packets, link_len=link_len)
    assert got == gro(pure, packets, link_len=link_len)


def test_gro_joins_nothing_behind_an_unknown_link_header() -> None:
    frames = run([100, 100, 100])
    (_spans, read, joined, error), out, _ = gro(pure, frames, link_len=4)
    assert (read, joined, error) == (3, 0, 0) and out == [bytes(f) for f in frames]
