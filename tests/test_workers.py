"""The workers' sharing rules without a TAP: ephemeral port slices, the seat a worker is handed,
the options, and the steering frame a worker writes before each SYN it opens a connection with."""

from __future__ import annotations

import itertools

import pytest

from usernet.drivers.config import UsernetConfig, open_host
from usernet.drivers.workers import EPHEMERAL_PORTS, WorkerSeat, port_slice
from usernet.link.queue import steering_frame
from usernet.wire.ethernet import emit_ethernet
from usernet.wire.ipv4 import emit_ipv4_header, parse_ipv4
from usernet.wire.tcp import emit_tcp, parse_tcp

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
US, KERNEL = bytes([192, 0, 2, 2]), bytes([192, 0, 2, 1])


@pytest.mark.parametrize("count", [1, 2, 3, 7, 64])
def test_the_slices_are_disjoint_contiguous_and_cover_the_range(count: int) -> None:
    slices = [port_slice(i, count) for i in range(count)]
    assert slices[0][0] == EPHEMERAL_PORTS[0] and slices[-1][1] == EPHEMERAL_PORTS[1]
    for (_, high), (low, _) in itertools.pairwise(slices):
        assert low == high + 1
    sizes = [high - low + 1 for low, high in slices]
    assert max(sizes) - min(sizes) <= 1


def test_a_slice_for_a_worker_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValueError):
        port_slice(2, 2)
    with pytest.raises(ValueError):
        port_slice(0, 10, (1000, 1004))


def test_a_seat_survives_its_spec_and_bad_ones_say_what_a_seat_is() -> None:
    seat = WorkerSeat(1, 2, 7, MAC_A)
    assert WorkerSeat.parse(seat.spec) == seat
    assert seat.ephemeral_ports == port_slice(1, 2)
    for bad in ("1/2:7", "2/2:7:020000000001", "x/2:7:020000000001", "0/1:3:0200"):
        with pytest.raises(ValueError, match="INDEX/COUNT:FD:MAC"):
            WorkerSeat.parse(bad)


def test_the_options_decide_who_supervises() -> None:
    assert UsernetConfig(workers=2).supervises
    assert not UsernetConfig(workers=1).supervises
    assert not UsernetConfig(workers=2, worker=WorkerSeat(0, 2, 3, MAC_A).spec).supervises
    assert UsernetConfig.from_env({"USERNET_WORKERS": "4"}).workers == 4
    with pytest.raises(ValueError, match="TAP"):
        UsernetConfig(workers=2, link="udp://127.0.0.1:1?peer=127.0.0.1:2")
    with pytest.raises(ValueError, match="handover"):
        UsernetConfig(workers=2, handover="/tmp/x.sock")
    with pytest.raises(ValueError, match="pcap"):
        UsernetConfig(workers=2, pcap="/tmp/x.pcap")
    with pytest.raises(ValueError):
        UsernetConfig(workers=-1)


def test_a_command_that_serves_as_one_process_refuses_workers() -> None:
    with pytest.raises(ValueError, match="python -m usernet"), open_host(UsernetConfig(workers=2)):
        pass


def _segment(flags: int, payload: bytes = b"") -> bytes:
    buf = bytearray(14 + 20 + 20 + len(payload))
    emit_ethernet(buf, 0, MAC_B, MAC_A, 0x0800)
    emit_ipv4_header(buf, 14, US, KERNEL, 6, 20 + len(payload))
    emit_tcp(buf, 34, US, KERNEL, 40000, 80, 12345, 0 if flags == 0x02 else 99, flags, 65535, payload=payload)
    return bytes(buf)


def test_an_opening_syn_gets_a_valid_rst_of_its_flow() -> None:
    steer = steering_frame(memoryview(_segment(0x02)))
    assert steer is not None and steer[:12] == MAC_B + MAC_A
    ip = parse_ipv4(steer[14:])  # checksums verified
    assert (ip.src, ip.dst) == (US, KERNEL)
    tcp = parse_tcp(ip.payload, ip.src, ip.dst)
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.flags) == (40000, 80, 12345, 0x04)


@pytest.mark.parametrize("flags", [0x12, 0x10, 0x18, 0x04, 0x11])
def test_other_segments_and_frames_are_not_steered(flags: int) -> None:
    assert steering_frame(_segment(flags, b"data")) is None
    assert steering_frame(b"\xff" * 42) is None  # ARP-sized, not IPv4/TCP
