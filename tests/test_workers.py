"""The workers' sharing rules without a TAP: ephemeral port slices, the seat a worker is handed,
the options, and how a worker keeps the connections it opens on its queue (OwnFlows)."""

from __future__ import annotations

import itertools

import pytest

from usernet.drivers.config import UsernetConfig, open_host
from usernet.drivers.workers import EPHEMERAL_PORTS, WorkerSeat, port_slice
from usernet.link.queue import CLOSED_SWEEPS, IDLE_SWEEPS, REFRESH, OwnFlows
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
    with pytest.raises(ValueError, match="IPv4 only"):
        UsernetConfig(workers=2, ipv6=True)
    with pytest.raises(ValueError, match="pcap"):
        UsernetConfig(workers=2, pcap="/tmp/x.pcap")
    with pytest.raises(ValueError):
        UsernetConfig(workers=-1)


def test_a_command_that_serves_as_one_process_refuses_workers() -> None:
    with pytest.raises(ValueError, match="python -m usernet"), open_host(UsernetConfig(workers=2)):
        pass


def _segment(flags: int, seq: int = 12345, payload: bytes = b"") -> bytes:
    buf = bytearray(14 + 20 + 20 + len(payload))
    emit_ethernet(buf, 0, MAC_B, MAC_A, 0x0800)
    emit_ipv4_header(buf, 14, US, KERNEL, 6, 20 + len(payload))
    emit_tcp(buf, 34, US, KERNEL, 40000, 80, seq, 0 if flags == 0x02 else 99, flags, 65535, payload=payload)
    return bytes(buf)


def _rst_of(frame: bytes) -> int:
    """The sequence number of RST `frame` of the test's flow, its checksums verified."""
    assert frame[:12] == MAC_B + MAC_A
    ip = parse_ipv4(frame[14:])
    assert (ip.src, ip.dst) == (US, KERNEL)
    tcp = parse_tcp(ip.payload, ip.src, ip.dst)
    assert (tcp.sport, tcp.dport, tcp.flags) == (40000, 80, 0x04)
    return tcp.seq


def test_an_opening_syn_is_preceded_by_a_rst_of_its_flow() -> None:
    flows = OwnFlows()
    steer = flows.sent(memoryview(_segment(0x02)))
    assert steer is not None and _rst_of(steer) == 12345
    assert len(flows) == 1


@pytest.mark.parametrize("flags", [0x12, 0x10, 0x18, 0x04, 0x11])
def test_segments_of_flows_it_did_not_open_are_left_alone(flags: int) -> None:
    flows = OwnFlows()
    assert flows.sent(_segment(flags, payload=b"data")) is None
    assert flows.sent(b"\xff" * 42) is None  # ARP-sized, not IPv4/TCP
    assert len(flows) == 0 and flows.next_deadline() is None and flows.sweep(100.0) == []


def test_a_flow_silent_for_a_whole_sweep_gets_a_rst_out_of_any_window() -> None:
    flows = OwnFlows()
    flows.sent(_segment(0x02, seq=0xFFFFFF00))
    assert flows.sweep(0.0) == []  # the first sweep only sets the clock
    assert flows.next_deadline() == REFRESH
    assert flows.sweep(REFRESH - 0.01) == []  # not due
    assert flows.sweep(REFRESH) == []  # the SYN went since the last sweep
    flows.sent(_segment(0x10, seq=0xFFFFFF01))  # a segment: not silent for this sweep either
    assert flows.sweep(2 * REFRESH) == []
    (renew,) = flows.sweep(3 * REFRESH)
    assert _rst_of(renew) == (0xFFFFFF01 + (1 << 31)) & 0xFFFFFFFF  # half the sequence space away
    (again,) = flows.sweep(4 * REFRESH)
    assert again == renew


def test_a_flow_is_forgotten_at_its_rst_after_its_fin_or_after_long_silence() -> None:
    flows = OwnFlows()
    flows.sent(_segment(0x02))
    flows.sent(_segment(0x14))  # RST|ACK: ours, the connection is gone
    assert len(flows) == 0 and flows.next_deadline() is None
    now = 0.0
    for closing, sweeps in ((True, CLOSED_SWEEPS), (False, IDLE_SWEEPS)):
        flows.sent(_segment(0x02))
        if closing:
            flows.sent(_segment(0x11))  # FIN|ACK
        flows.sweep(now)  # the clock starts (or the last sweep is not due yet)
        now += REFRESH
        flows.sweep(now)  # the frames sent count for this one
        renewed = 0
        for _ in range(sweeps):
            now += REFRESH
            renewed += len(flows.sweep(now))
        assert len(flows) == 0 and renewed == sweeps - 1
