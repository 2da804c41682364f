"""Whatever bytes arrive, the interface counts and drops: it never raises and keeps answering."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.stack.simpair import B_IP, make_pair
from usernet.stack import Interface, InterfaceConfig
from usernet.wire import ETHERTYPE_IPV4, IPPROTO_UDP, emit_ethernet, emit_ipv4_header, emit_udp

MAC = b"\x02\x00\x00\x00\x00\x02"
PEER = b"\x02\x00\x00\x00\x00\x01"
IFACE = Interface(InterfaceConfig.from_strings(MAC, ["192.0.2.2/24"], secret=b"k" * 16))
IFACE.open_udp((b"\x00" * 4, 7))


def _valid_udp_frame(payload: bytes) -> bytearray:
    frame = bytearray(42 + len(payload))
    emit_ethernet(frame, 0, MAC, PEER, ETHERTYPE_IPV4)
    emit_ipv4_header(frame, 14, bytes([192, 0, 2, 1]), B_IP, IPPROTO_UDP, 8 + len(payload))
    emit_udp(frame, 34, bytes([192, 0, 2, 1]), B_IP, 5555, 7, payload)
    return frame


def _total_counted(stats: dict[str, int]) -> int:
    return stats["rx_frames"]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data):
    IFACE.receive(data, 0.0)
    IFACE.receive(MAC + PEER + b"\x08\x00" + data, 0.0)
    IFACE.receive(MAC + PEER + b"\x08\x06" + data, 0.0)
    IFACE.take_output()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64), st.data())
def test_mutated_valid_frames_never_raise(payload, data):
    frame = _valid_udp_frame(payload)
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(frame) - 1), st.integers(1, 255)), max_size=4))
    for pos, mask in flips:
        frame[pos] ^= mask
    cut = data.draw(st.integers(0, len(frame)))
    IFACE.receive(memoryview(frame)[:cut], 1.0)
    IFACE.receive(frame, 1.0)
    IFACE.take_output()
    IFACE.take_ready()


def test_each_kind_of_damage_lands_in_its_counter():
    pair = make_pair()
    iface = pair.b.iface
    mac = iface.mac
    good = _valid_udp_frame(b"ok")
    good[0:6] = mac
    cases = {
        "eth_malformed": bytes(good[:10]),
        "eth_not_for_us": b"\x02\x99\x99\x99\x99\x99" + bytes(good[6:]),
        "eth_unknown_type": bytes(good[:12]) + b"\x88\xcc" + bytes(good[14:]),
        "ipv4_malformed": bytes(good[:14]) + b"\x65" + bytes(good[15:]),
        "ipv4_bad_checksum": bytes(good[:24]) + b"\x00\x00" + bytes(good[26:]),
        "udp_bad_checksum": bytes(good[:-1]) + b"!",
        "arp_malformed": bytes(good[:12]) + b"\x08\x06" + b"\x00" * 10,
    }
    for counter, frame in cases.items():
        before = iface.stats()[counter]
        iface.receive(frame, pair.now())
        assert iface.stats()[counter] == before + 1, counter
    # And it still answers.
    ping = pair.a.iface.open_ping(3)
    ping.send(B_IP, 1, b"still there?", pair.now())
    pair.sim.run(0.5)
    assert ping.receive()[2] == b"still there?"


def test_unknown_protocol_gets_protocol_unreachable():
    pair = make_pair()
    frame = bytearray(34 + 4)
    emit_ethernet(frame, 0, pair.b.iface.mac, pair.wire.a.mac, ETHERTYPE_IPV4)
    emit_ipv4_header(frame, 14, bytes([192, 0, 2, 1]), B_IP, 99, 4)
    pair.wire.a.send(frame)
    pair.sim.run(0.5)
    assert pair.b.iface.stats()["ipv4_unknown_protocol"] == 1
    assert pair.b.iface.stats()["icmp_errors_sent"] == 1
