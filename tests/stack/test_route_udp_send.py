"""Route.send_udp's own arithmetic: the path MTU bounds the IP packet (its header bytes, the UDP
header and the payload), and a length the caller passes is the one `len(payload)` would give."""

from __future__ import annotations

import pytest

from usernet.stack import Interface, InterfaceConfig
from usernet.wire import BROADCAST_MAC, emit_arp, emit_ethernet

US = bytes([192, 0, 2, 2])
PEER = bytes([192, 0, 2, 1])
PEER_MAC = bytes((2, 0, 0, 0, 0, 1))


def resolved() -> Interface:
    iface = Interface(InterfaceConfig.from_strings(bytes((2, 0, 0, 0, 0, 2)), ["192.0.2.2/24"], secret=b"s" * 16))
    frame = bytearray(42)
    emit_ethernet(frame, 0, BROADCAST_MAC, PEER_MAC, 0x0806)
    emit_arp(frame, 14, 1, PEER_MAC, PEER, bytes(6), US)
    iface.receive(frame, 0.0)
    iface.take_output()
    return iface


@pytest.mark.parametrize(("payload", "frames"), [(1500 - 28, 1), (1500 - 27, 2)])
def test_the_path_mtu_bounds_the_ip_packet(payload: int, frames: int) -> None:
    iface = resolved()
    route = iface.route_to(PEER, None)
    assert route is not None
    route.send_udp(1000, 2000, bytes(payload), 1.0)
    out = iface.take_output()
    assert len(out) == frames and all(len(f) <= 14 + 1500 for f in out)


def test_a_length_given_builds_the_frame_len_would() -> None:
    iface = resolved()
    route = iface.route_to(PEER, None)
    assert route is not None
    payload = memoryview(b"abcdefgh" * 8)
    route.send_udp(1000, 2000, payload, 1.0)
    route.send_udp(1000, 2000, payload, 1.0, len(payload))
    first, second = iface.take_output()
    assert len(first) == 14 + 20 + 8 + 64
    # all but the IPv4 ident (bytes 18-19) and the header checksum it changes (24-25)
    assert first[:18] == second[:18] and first[20:24] == second[20:24] and first[26:] == second[26:]
