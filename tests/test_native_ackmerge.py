"""ACK merging in the GRO reader (`gro_read(..., merge_acks=True)`): the rules, then C against twin.

Each test queues frames on a SOCK_SEQPACKET pair (datagram boundaries as a TAP keeps
them), reads them back with merging on, and checks which frames reach the stack: always
a subsequence of the frames read, byte for byte, since merging only ever drops a pure
ACK that a later one of its flow stands for. The generated batches are judged by a
reference written from the rule's statement on the frames' descriptions (not their
bytes): a frame is merged away exactly when it follows the frame before it and the
frame after it follows it, "follows" meaning both are clean pure ACKs of one flow, the
later one's ACK advances and its timestamps are no older.
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_native import c, needs_c
from tests.test_native_gro import ECE, FIN, PSH, RST, SYN, URG, run, segment
from tests.test_native_offload import ACK, MAC, PEER_MAC
from usernet._native import pure
from usernet.link.soft import GroBuffer
from usernet.stack.route import ipv6_template
from usernet.wire.tcp import encode_tcp_options

Impl = Any
CWR = 0x80
SRC6 = bytes.fromhex("20010db8000000000000000000000001")
DST6 = bytes.fromhex("20010db8000000000000000000000002")


@dataclass(frozen=True)
class Ack:
    """What a generated frame is: a pure ACK unless it carries data, other flags or SACK blocks."""

    ack: int
    ts: tuple[int, int] | None = (100, 50)
    window: int = 512
    sport: int = 40000
    seq: int = 7000
    flags: int = ACK
    payload: int = 0
    sack: bool = False
    ident: int = 1
    corrupt: bool = False

    def frame(self) -> bytearray:
        options = encode_tcp_options(
            timestamp=self.ts, sack_blocks=((self.ack + 1000, self.ack + 2000),) if self.sack else ()
        )
        f = segment(
            bytes(self.payload),
            self.seq,
            flags=self.flags,
            ack=self.ack & 0xFFFFFFFF,
            window=self.window,
            options=options,
            sport=self.sport,
            ident=self.ident,
        )
        if self.corrupt:
            f[50] ^= 0x04  # inside the TCP header: its checksum no longer holds
        return f

    def clean(self) -> bool:
        return self.flags == ACK and not self.payload and not self.sack and not self.corrupt


def follows(a: Ack, b: Ack) -> bool:
    """The rule, stated on descriptions: may `b` stand for `a`, the frame just before it?"""

    def after(x: int, y: int) -> int:
        return ((x - y) & 0xFFFFFFFF) - (1 << 32 if (x - y) & 0x80000000 else 0)

    return (
        a.clean()
        and b.clean()
        and (a.sport, a.seq, a.ts is None) == (b.sport, b.seq, b.ts is None)
        and after(b.ack, a.ack) > 0
        and (a.ts is None or b.ts is None or (after(b.ts[0], a.ts[0]) >= 0 and after(b.ts[1], a.ts[1]) >= 0))
    )


def reference(acks: list[Ack]) -> list[int]:
    """The indices of the frames that reach the stack."""
    return [
        i
        for i in range(len(acks))
        if not (0 < i < len(acks) - 1 and follows(acks[i - 1], acks[i]) and follows(acks[i], acks[i + 1]))
    ]


def read(
    impl: Impl, frames: list[bytes | bytearray], merge: bool = True, link_len: int = 14, max_frames: int = 64
) -> tuple[pure.GroRead, list[bytes]]:
    """Queue `frames`, gro_read them with merging `merge`; (result, the frames handed out)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with a, b:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        a.setblocking(False)
        b.setblocking(False)
        for frame in frames:
            a.send(frame)
        buf = bytearray(2048 * max_frames)
        result = impl.gro_read(b.fileno(), buf, 2048, max_frames, link_len, merge)
        return result, [bytes(buf[o : o + n]) for o, n in result[0]]


def kept(impl: Impl, acks: list[Ack], **kwargs: Any) -> list[int]:
    """Which of `acks` reach the stack, by index; checks they come back byte for byte and the count adds up."""
    frames = [bytes(a.frame()) for a in acks]
    (_spans, count, joined, error), out = read(impl, frames, **kwargs)
    assert (count, joined, error) == (len(frames), 0, 0)
    indices = [frames.index(f) for f in out]
    assert [frames[i] for i in indices] == out and indices == sorted(indices)
    return indices


def advancing(n: int, start: int = 1000, step: int = 2896) -> list[Ack]:
    """`n` pure ACKs of one flow, each acknowledging `step` more bytes, timestamps counting up."""
    return [Ack(start + i * step, ts=(100 + i, 50 + i), ident=i) for i in range(n)]


# ---------------------------------------------------------------- what merges


def test_a_run_of_advancing_acks_reaches_the_stack_as_its_first_and_newest(impl: Impl) -> None:
    acks = advancing(57)
    assert kept(impl, acks) == [0, 56]


@pytest.mark.parametrize("n", [1, 2])
def test_one_or_two_acks_are_left_alone(impl: Impl, n: int) -> None:
    assert kept(impl, advancing(n)) == list(range(n))


def test_the_newest_brings_its_window_and_timestamps(impl: Impl) -> None:
    acks = [replace(a, window=512 - 8 * i) for i, a in enumerate(advancing(5))]
    frames = [a.frame() for a in acks]
    _, out = read(impl, frames)
    newest = pure.tcp_parse(out[-1][34:])
    assert (newest[4], newest[7], newest[13], newest[14]) == (acks[-1].ack, 480, 104, 54)


def test_acks_without_timestamps_merge_too(impl: Impl) -> None:
    assert kept(impl, [replace(a, ts=None) for a in advancing(6)]) == [0, 5]


@pytest.mark.parametrize("start", [0xFFFFF000, 0x7FFFF000], ids=["ack_wraps", "ack_crosses_half"])
def test_sequence_space_wraps(impl: Impl, start: int) -> None:
    acks = [replace(a, ts=(0xFFFFFFFE + i & 0xFFFFFFFF, 50)) for i, a in enumerate(advancing(4, start=start))]
    assert kept(impl, acks) == [0, 3]


# ---------------------------------------------------------------- what fast retransmit and SACK need


def test_duplicate_acks_are_all_kept(impl: Impl) -> None:
    acks = [*(Ack(1000, ident=i) for i in range(4)), Ack(5000, ts=(101, 51))]
    assert kept(impl, acks) == [0, 1, 2, 3, 4]


def test_a_duplicate_starts_a_run_of_its_own(impl: Impl) -> None:
    first = advancing(3)
    after = [replace(a, ts=(110 + i, 60 + i)) for i, a in enumerate(advancing(5, start=first[2].ack)[1:])]
    acks = [*first, replace(first[2], ident=9), *after]
    # 0, 1 (merged), 2, its duplicate 3, then 4..7 advancing from it
    assert kept(impl, acks) == [0, 2, 3, 7]


def test_an_ack_with_sack_blocks_is_kept_and_breaks_the_run(impl: Impl) -> None:
    acks = advancing(7)
    acks[3] = replace(acks[3], sack=True)
    assert kept(impl, acks) == [0, 2, 3, 4, 6]


@pytest.mark.parametrize(
    "flag", [PSH, FIN, SYN, RST, URG, ECE, CWR], ids=["psh", "fin", "syn", "rst", "urg", "ece", "cwr"]
)
def test_an_ack_with_another_flag_is_kept(impl: Impl, flag: int) -> None:
    acks = advancing(5)
    acks[2] = replace(acks[2], flags=ACK | flag)
    assert kept(impl, acks) == [0, 1, 2, 3, 4]


def test_an_older_timestamp_or_echo_is_not_merged(impl: Impl) -> None:
    for ts in ((99, 52), (102, 49)):
        acks = advancing(3)
        acks[2] = replace(acks[2], ts=ts)
        assert kept(impl, acks) == [0, 1, 2], ts


def test_an_ack_that_goes_backwards_is_kept(impl: Impl) -> None:
    acks = [*advancing(2), Ack(500, ts=(103, 53))]
    assert kept(impl, acks) == [0, 1, 2]


def test_data_a_corrupt_frame_or_another_flow_breaks_the_run(impl: Impl) -> None:
    for change in ({"payload": 10}, {"corrupt": True}, {"sport": 40001}, {"seq": 7001}):
        acks = advancing(7)
        acks[3] = replace(acks[3], **change)
        assert kept(impl, acks) == [0, 2, 3, 4, 6], change


def test_interleaved_flows_merge_nothing(impl: Impl) -> None:
    acks = [replace(a, sport=40000 + i % 2) for i, a in enumerate(advancing(8))]
    assert kept(impl, acks) == list(range(8))


def test_merging_after_a_gro_joined_run_of_data(impl: Impl) -> None:
    data = run([1000, 1000, 1000])
    acks = [a.frame() for a in advancing(4)]
    (spans, count, joined, _), out = read(impl, [*data, *acks])
    assert (len(spans), count, joined) == (3, 7, 2)
    assert out[1:] == [bytes(acks[0]), bytes(acks[3])]


def test_without_merging_every_ack_reaches_the_stack(impl: Impl) -> None:
    assert kept(impl, advancing(10), merge=False) == list(range(10))


def test_max_frames_ends_a_run(impl: Impl) -> None:
    assert kept(impl, advancing(10)[:5], max_frames=5) == [0, 4]


# ---------------------------------------------------------------- IPv6 and bare IP


def ack6(ack: int, tsval: int) -> bytearray:
    """A pure ACK over IPv6 with a timestamp."""
    link = MAC + PEER_MAC + b"\x86\xdd"
    options = encode_tcp_options(timestamp=(tsval, 9))
    frame = bytearray(len(link) + 60 + len(options))
    pure.build_tcp(frame, link, ipv6_template(SRC6, DST6, 64), 0, 40000, 80, 5, ack, ACK, 512, 0, options, b"")
    return frame


@pytest.mark.parametrize("bare", [False, True], ids=["ethernet", "bare"])
def test_ipv6_acks_merge(impl: Impl, bare: bool) -> None:
    frames = [ack6(1000 + 1428 * i, 7 + i) for i in range(6)]
    if bare:
        frames = [f[14:] for f in frames]
    (_spans, count, joined, _), out = read(impl, frames, link_len=0 if bare else 14)
    assert (count, joined, out) == (6, 0, [bytes(frames[0]), bytes(frames[5])])


def test_an_ipv6_ack_never_stands_for_an_ipv4_one(impl: Impl) -> None:
    frames = [advancing(2)[0].frame(), ack6(5000, 200), ack6(9000, 201)]
    _, out = read(impl, frames)
    assert out == [bytes(f) for f in frames]


# ---------------------------------------------------------------- the link's counter


class Counted:
    """What GroBuffer counts on: a link's receive counters."""

    def __init__(self) -> None:
        self.rx_frames = self.rx_bytes = self.rx_gro_joined = 0


@pytest.mark.parametrize("merge", [False, True])
def test_the_buffer_counts_the_acks_it_merged(merge: bool) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with a, b:
        b.setblocking(False)
        for ack in advancing(9):
            a.send(ack.frame())
        gro, link = GroBuffer(2048, merge_acks=merge), Counted()
        frames, error = gro.read(link, b.fileno(), 64)
    assert (len(frames), error, link.rx_frames, gro.acks_merged) == ((2, 0, 9, 7) if merge else (9, 0, 9, 0))


# ---------------------------------------------------------------- generated batches


def batch(rng: random.Random, n: int) -> list[Ack]:
    """Mostly advancing ACKs of one flow, with what a real link also brings among them."""
    acks: list[Ack] = []
    ack, tsval, tsecr = rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(32)
    ts = rng.random() < 0.8
    for i in range(n):
        ack += rng.choice([2896] * 6 + [1448, 0, 0, -1448, 0x80000000])
        tsval += rng.choice([0, 1, 1, -1])
        tsecr += rng.choice([0, 1, -1])
        a = Ack(ack & 0xFFFFFFFF, ts=(tsval & 0xFFFFFFFF, tsecr & 0xFFFFFFFF) if ts else None, ident=i)
        roll = rng.random()
        if roll < 0.05:
            a = replace(a, sack=True)
        elif roll < 0.1:
            a = replace(a, flags=ACK | rng.choice([PSH, FIN, ECE, CWR]))
        elif roll < 0.15:
            a = replace(a, payload=rng.randrange(1, 100))
        elif roll < 0.2:
            a = replace(a, sport=40001)
        elif roll < 0.23:
            a = replace(a, corrupt=True)
        elif roll < 0.28:
            a = replace(a, window=rng.randrange(65536))
        acks.append(a)
    return acks


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],  # impl is a module
)
@given(seed=st.integers(0, 2**32), n=st.integers(0, 40))
def test_what_reaches_the_stack_is_what_the_rule_says(impl: Impl, seed: int, n: int) -> None:
    acks = batch(random.Random(seed), n)
    assert kept(impl, acks) == reference(acks)


@needs_c
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), n=st.integers(0, 40), max_frames=st.integers(1, 40), bare=st.booleans())
def test_c_merges_what_the_twin_merges(seed: int, n: int, max_frames: int, bare: bool) -> None:
    rng = random.Random(seed)
    frames = [bytes(a.frame()) for a in batch(rng, n)]
    frames += [bytes(f) for f in run([rng.randrange(1, 1448) for _ in range(rng.randrange(4))])]
    if rng.random() < 0.2:
        rng.shuffle(frames)
    if bare:
        frames = [f[14:] for f in frames]
    link = 0 if bare else 14
    assert read(c(), frames, link_len=link, max_frames=max_frames) == read(
        pure, frames, link_len=link, max_frames=max_frames
    )
