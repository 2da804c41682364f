from __future__ import annotations

import io
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.link.frames import (
    BROADCAST,
    ETH_ARP,
    ETH_IPV4,
    arp,
    ethernet,
    icmp_echo,
    ip,
    ipv4,
    udp_frame,
)
from tests.programs import require
from usernet.link import MemoryWire, PcapReader, PcapTap, PcapWriter, VirtualClock
from usernet.link.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, MAGIC_MICRO, MAGIC_NANO, SNAPLEN

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")

frames_and_times = st.lists(
    st.tuples(st.binary(min_size=1, max_size=1600), st.integers(0, 2**32 - 2), st.integers(0, 999_999_999)),
    max_size=20,
)


@settings(max_examples=50, deadline=None)
@given(frames_and_times)
def test_round_trip_keeps_bytes_and_nanoseconds(records: list[tuple[bytes, int, int]]):
    buf = io.BytesIO()
    with PcapWriter(buf) as writer:
        for data, seconds, nanos in records:
            writer.write(data, seconds + nanos / 1e9)
    buf.seek(0)
    reader = PcapReader(buf)
    assert (reader.nanosecond, reader.snaplen, reader.linktype) == (True, SNAPLEN, LINKTYPE_ETHERNET)
    back = list(reader)
    assert [data for _, data in back] == [data for data, _, _ in records]
    for (stamp, _), (_, seconds, nanos) in zip(back, records, strict=True):
        assert abs(stamp - (seconds + nanos / 1e9)) <= 1e-9 * max(1.0, seconds) * 4


def test_a_timestamp_past_32_bit_seconds_is_refused_clearly():
    with PcapWriter(io.BytesIO()) as writer:
        writer.write(b"x", 2**32 - 1 + 0.5)  # the last second pcap can hold
        with pytest.raises(ValueError, match="32-bit seconds"):
            writer.write(b"x", 2**32 - 1 + 0.9999999999)  # rounds to the next second
        assert writer.frames == 1


def test_writer_header_is_nanosecond_ethernet(tmp_path: Path):
    path = tmp_path / "x.pcap"
    with PcapWriter(path) as writer:
        writer.write(b"\x01" * 60, 1.5)
    raw = path.read_bytes()
    assert struct.unpack_from("<IHHiIII", raw) == (MAGIC_NANO, 2, 4, 0, 0, SNAPLEN, 1)
    assert struct.unpack_from("<IIII", raw, 24) == (1, 500_000_000, 60, 60)


def test_frames_longer_than_snaplen_are_cut_but_keep_their_length():
    buf = io.BytesIO()
    with PcapWriter(buf, snaplen=100) as writer:
        writer.write(b"\xaa" * 150, 0.0)
    buf.seek(0)
    assert list(PcapReader(buf)) == [(0.0, b"\xaa" * 100)]
    assert struct.unpack_from("<IIII", buf.getvalue(), 24)[2:] == (100, 150)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("magic, fraction, scale", [(MAGIC_MICRO, 250_000, 1e-6), (MAGIC_NANO, 250_000_000, 1e-9)])
def test_reader_takes_both_byte_orders_and_resolutions(order: str, magic: int, fraction: int, scale: float):
    raw = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    raw += struct.pack(order + "IIII", 3, fraction, 4, 4) + b"abcd"
    reader = PcapReader(io.BytesIO(raw))
    assert reader.nanosecond == (magic == MAGIC_NANO)
    assert list(reader) == [(pytest.approx(3 + fraction * scale), b"abcd")]


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "shorter than a pcap header"),
        (b"\x00" * 24, "unknown magic"),
        (b"\x0a\x0d\x0d\x0a" + b"\x00" * 40, "pcapng"),
        (struct.pack("<IHHiIII", MAGIC_NANO, 2, 4, 0, 0, 65535, 1) + b"\x00" * 8, "record header is cut short"),
        (
            struct.pack("<IHHiIII", MAGIC_NANO, 2, 4, 0, 0, 65535, 1) + struct.pack("<IIII", 0, 0, 10, 10) + b"abc",
            "promises 10 bytes",
        ),
    ],
)
def test_reader_refuses_bad_files_clearly(raw: bytes, message: str, tmp_path: Path):
    path = tmp_path / "bad.pcap"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=message):
        list(PcapReader(path))


def test_pcap_tap_records_both_directions_with_the_clock():
    clock = VirtualClock(5.0)
    wire = MemoryWire(clock, latency=0.5)
    buf = io.BytesIO()
    writer = PcapWriter(buf)
    tap = PcapTap(wire.a, writer, clock)
    tap.send(b"out" * 20)
    wire.b.send(b"in!" * 20)
    clock.advance(0.5)
    assert wire.b.receive() == [b"out" * 20]
    assert tap.receive() == [b"in!" * 20]
    writer.close()
    buf.seek(0)
    assert list(PcapReader(buf)) == [(5.0, b"out" * 20), (5.5, b"in!" * 20)]
    assert (tap.tx_frames, tap.rx_frames, tap.mac, tap.mtu) == (1, 1, wire.a.mac, 1500)


def valid_frames() -> list[bytes]:
    kernel, usernet = ip("192.0.2.1"), ip("192.0.2.2")
    return [
        ethernet(BROADCAST, MAC_A, ETH_ARP, arp(1, MAC_A, kernel, bytes(6), usernet)),
        ethernet(MAC_A, MAC_B, ETH_ARP, arp(2, MAC_B, usernet, MAC_A, kernel)),
        udp_frame(MAC_B, MAC_A, "192.0.2.1", "192.0.2.2", 40000, 7, b"hello usernet"),
        udp_frame(MAC_B, MAC_A, "192.0.2.1", "192.0.2.2", 40000, 7, bytes(range(256)) * 5),
        ethernet(MAC_B, MAC_A, ETH_IPV4, ipv4(kernel, usernet, 1, icmp_echo(7, 1, b"p" * 56))),
        ethernet(MAC_A, MAC_B, ETH_IPV4, ipv4(usernet, kernel, 1, icmp_echo(7, 1, b"p" * 56, reply=True))),
    ]


def tshark_expert(path: Path) -> list[tuple[int, str]]:
    """(frame number, expert info) per frame, with IP and UDP checksum validation switched on."""
    tshark = require("tshark")
    result = subprocess.run(
        [tshark, "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
         "-T", "fields", "-e", "frame.number", "-e", "_ws.expert"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip  # arguments grouped a line, compact
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t", 1) for line in result.stdout.splitlines()]
    return [(int(row[0]), row[1] if len(row) > 1 else "") for row in rows]


def test_tshark_decodes_every_frame_without_complaint(tmp_path: Path):
    path = tmp_path / "valid.pcap"
    frames = valid_frames()
    with PcapWriter(path) as writer:
        for i, f in enumerate(frames):
            writer.write(f, 1.0 + i * 0.001)
    assert tshark_expert(path) == [(i + 1, "") for i in range(len(frames))]


def test_tshark_check_catches_a_bad_checksum(tmp_path: Path):
    """The check above can fail: one flipped payload bit makes tshark complain about that frame."""
    path = tmp_path / "bad.pcap"
    frames = valid_frames()
    damaged = bytearray(frames[2])
    damaged[-1] ^= 0x01
    frames[2] = bytes(damaged)
    with PcapWriter(path) as writer:
        for f in frames:
            writer.write(f, 1.0)
    complaints = [number for number, expert in tshark_expert(path) if expert]
    assert complaints == [3]


def test_an_ip_only_links_capture_says_its_packets_are_raw_ip(tmp_path: Path) -> None:
    path = tmp_path / "tun.pcap"
    with PcapWriter(path, linktype=LINKTYPE_RAW) as writer:
        writer.write(b"\x45" + bytes(19), 1.0)
    with PcapReader(path) as reader:
        assert reader.linktype == LINKTYPE_RAW
        assert [frame for _, frame in reader] == [b"\x45" + bytes(19)]
