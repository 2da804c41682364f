"""TCP on an interface with transmit offloads (partial checksums, TSO) and trusted receive.

The frames are read as the link would: frames for the device to cut are `OffloadFrame`s
whose checksum the test completes the way the kernel does before parsing them, so a
wrong pseudo-header sum shows up as a checksum failure here; a frame of one segment goes
out whole, its checksum complete, and is parsed as it is.
"""

from __future__ import annotations

import pytest

from tests.tcp.scripted import PEER, PEER_ISN, SYN_OPTIONS, US, Scripted
from usernet.drivers.host import Host, offload_options
from usernet.link.base import LinkCapabilities
from usernet.link.clock import VirtualClock
from usernet.link.fault import FaultInjector
from usernet.link.memory import MemoryEndpoint, MemoryWire
from usernet.native import build_ipv4_tcp, internet_checksum
from usernet.stack import Interface, InterfaceConfig
from usernet.stack.tcp.connection import OffloadFrame
from usernet.wire.tcp import ACK, PSH, TcpSegment, parse_tcp

MSS = 1460 - 12  # the SYN's MSS less the timestamp option
OFFLOADS = {"tx_checksum_partial": True, "tso_max": 65535, "rx_checksum_trusted": True}


class Offloaded(Scripted):
    """Scripted with the frames taken apart as a TSO-capable device would take them."""

    def _segments(self) -> list[TcpSegment]:
        self.sent: list[bytearray] = []
        segments = []
        for frame in self.iface.take_output():
            done = bytearray(frame)
            if isinstance(frame, OffloadFrame):
                done[50:52] = internet_checksum(done[34:]).to_bytes(2, "big")  # what NEEDS_CSUM makes the kernel do
            segments.append(parse_tcp(memoryview(bytes(done))[34:], US, PEER))
            self.sent.append(frame)
        return segments

    def frames(self) -> list[tuple[bytearray, TcpSegment]]:
        segments = self.flush()
        return list(zip(self.sent, segments, strict=True))


def established(**options: object) -> tuple[Offloaded, object, int, int]:
    s = Offloaded(**(options or OFFLOADS))
    conn, synack = s.accept_handshake(SYN_OPTIONS, window=65535)
    return s, conn, synack.seq + 1, synack.timestamp[0]


def ack(s: Offloaded, upto: int, tsecr: int) -> None:
    s.inject(PEER_ISN + 1, upto, ACK, window=65535, options=s.ts(200, tsecr))


def test_a_flush_sends_the_congestion_window_as_one_tso_segment() -> None:
    s, conn, first, tsecr = established()
    assert conn.send(bytes(300_000), s.now) == 262144
    [(frame, seg)] = s.frames()
    assert len(seg.payload) == 10 * MSS and seg.seq == first  # the initial window, whole
    assert frame.gso_size == MSS and len(frame) > 1514
    ack(s, first + 10 * MSS, tsecr)
    [(frame, seg)] = s.frames()
    cwnd = conn.info()["cwnd"]
    assert cwnd > 10 * MSS and frame.gso_size == MSS
    assert len(seg.payload) == cwnd - cwnd % MSS  # all that slow start allows, in whole MSS


def test_while_data_is_in_flight_small_openings_wait_for_a_batch() -> None:
    s, conn, first, tsecr = established()
    conn.send(bytes(300_000), s.now)
    s.frames()
    ack(s, first + MSS, tsecr)
    assert s.frames() == [], "one MSS freed by an ACK is not worth a segment while 9 are in flight"
    ack(s, first + 10 * MSS, tsecr)
    [(_frame, seg)] = s.frames()
    assert seg.seq == first + 10 * MSS and len(seg.payload) % MSS == 0 and len(seg.payload) > 10 * MSS


def test_the_tail_goes_at_once_with_push_and_a_small_last_piece() -> None:
    s, conn, _first, _ = established()
    conn.send(bytes(3 * MSS + 100), s.now)
    [(frame, seg)] = s.frames()
    assert len(seg.payload) == 3 * MSS + 100 and seg.flags == ACK | PSH and frame.gso_size == MSS


def test_segments_never_exceed_an_ipv4_packet() -> None:
    s, conn, first, tsecr = established()
    conn.send(bytes(262144), s.now)
    s.frames()
    ack(s, first + 10 * MSS, tsecr)
    s.frames()
    ack(s, first + 30 * MSS, tsecr)
    for frame, seg in s.frames():
        assert len(frame) - 14 <= 65535 and len(seg.payload) % MSS == 0


@pytest.mark.parametrize("tso_max", [0, 9000])
def test_tso_max_bounds_the_segment(tso_max: int) -> None:
    s, conn, _first, _ = established(tx_checksum_partial=True, tso_max=tso_max)
    conn.send(bytes(100_000), s.now)
    frames = s.frames()
    largest = max(len(seg.payload) for _, seg in frames)
    assert largest == (MSS if tso_max == 0 else (9000 - 52) // MSS * MSS)
    assert all(isinstance(frame, OffloadFrame) == (len(seg.payload) > MSS) for frame, seg in frames)
    assert all(frame.gso_size == MSS for frame, _ in frames if isinstance(frame, OffloadFrame))


def test_a_pure_ack_goes_out_whole_with_its_checksum_complete() -> None:
    s, _conn, first, tsecr = established()
    s.inject(PEER_ISN + 1, first, ACK, payload=bytes(4 * MSS), options=s.ts(300, tsecr))
    [(frame, seg)] = s.frames()
    assert not isinstance(frame, OffloadFrame) and internet_checksum(frame[14:34]) == 0
    assert seg.flags == ACK and not seg.payload
    assert seg.ack == PEER_ISN + 1 + 4 * MSS


def test_a_trusted_link_delivers_super_segments_whatever_their_checksum() -> None:
    """The kernel's 64 KB segments carry partial checksums: the stack takes them as they are."""
    s, conn, first, tsecr = established()
    payload = bytes(range(256)) * 200
    frame = bytearray(54 + 12 + len(payload))
    build_ipv4_tcp(
        frame,
        0,
        s.iface.mac,
        bytes(6),
        PEER,
        US,
        1,
        64,
        40000,
        80,
        PEER_ISN + 1,
        first,
        ACK,
        65535,
        0,
        s.ts(300, tsecr),
        payload,
    )
    frame[50:52] = b"\x12\x34"  # not the checksum of anything
    s.iface.receive(frame, s.now)
    assert conn.receive() == payload
    assert s.iface.stats().get("tcp_bad_checksum", 0) == 0


def test_an_untrusted_link_still_drops_bad_checksums() -> None:
    s, conn, first, tsecr = established(tx_checksum_partial=True)
    frame = bytearray(54 + 12 + 100)
    build_ipv4_tcp(
        frame,
        0,
        s.iface.mac,
        bytes(6),
        PEER,
        US,
        1,
        64,
        40000,
        80,
        PEER_ISN + 1,
        first,
        ACK,
        65535,
        0,
        s.ts(300, tsecr),
        bytes(100),
    )
    frame[50:52] = b"\x12\x34"
    s.iface.receive(frame, s.now)
    assert conn.receive() == b"" and s.iface.stats()["tcp_bad_checksum"] == 1


class _OffloadingLink(MemoryEndpoint):
    """A memory endpoint that claims the TAP's offloads, to see what wrappers and Host make of them."""

    capabilities = LinkCapabilities(checksum_rx_trusted=True, checksum_tx_partial=True, tso_max=65535)


def test_offload_options_follow_the_link_and_wrappers_keep_only_the_receive_side() -> None:
    clock = VirtualClock()
    plain = MemoryWire(clock).a
    assert offload_options(plain) == {
        "rx_checksum_trusted": False,
        "tx_checksum_partial": False,
        "tso_max": 0,
        "ethernet": True,
    }
    link = _OffloadingLink(clock, 1500, bytes.fromhex("020000000009"), 0.0, 16)
    assert offload_options(link) == {
        "rx_checksum_trusted": True,
        "tx_checksum_partial": True,
        "tso_max": 65535,
        "ethernet": True,
    }
    wrapped = FaultInjector(link, clock, seed=1)
    assert offload_options(wrapped) == {
        "rx_checksum_trusted": True,
        "tx_checksum_partial": False,
        "tso_max": 0,
        "ethernet": True,
    }


def test_host_refuses_an_interface_expecting_offloads_its_link_lacks() -> None:
    link = MemoryWire(VirtualClock()).a
    config = InterfaceConfig.from_strings(link.mac, ["192.0.2.2/24"], **OFFLOADS)
    with pytest.raises(ValueError, match="offload_options"):
        Host(link, Interface(config))
    Host(link, Interface(InterfaceConfig.from_strings(link.mac, ["192.0.2.2/24"], **offload_options(link))))
