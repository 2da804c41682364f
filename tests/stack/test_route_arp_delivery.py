"""An Ethernet interface's IPv4 routes hand their frames to ARP themselves (`ArpTable.send`):
each frame is counted once, goes to the MAC the neighbour entry has when it is sent (a changed
entry's new MAC, a broadcast's broadcast MAC), and waits for ARP again once the entry expires."""

from __future__ import annotations

from usernet.stack import Interface, InterfaceConfig
from usernet.wire import BROADCAST_MAC, emit_arp, emit_ethernet, parse_ethernet

US = bytes([192, 0, 2, 2])
PEER = bytes([192, 0, 2, 1])
US_MAC = bytes((2, 0, 0, 0, 0, 2))
OLD_MAC = bytes((2, 0, 0, 0, 0, 1))
NEW_MAC = bytes((2, 0, 0, 0, 0, 9))


def arp_request(sender_mac: bytes) -> bytearray:
    """The peer asks for our MAC: what teaches us (or re-teaches us) its own."""
    frame = bytearray(42)
    emit_ethernet(frame, 0, BROADCAST_MAC, sender_mac, 0x0806)
    emit_arp(frame, 14, 1, sender_mac, PEER, bytes(6), US)
    return frame


def test_frames_follow_the_neighbour_entry_as_it_changes_and_expires() -> None:
    config = InterfaceConfig.from_strings(US_MAC, ["192.0.2.2/24"], secret=b"s" * 16, arp_timeout=10.0)
    iface = Interface(config)
    iface.receive(arp_request(OLD_MAC), 0.0)
    iface.take_output()
    sock = iface.open_udp()
    before = iface.stats()

    def sent(now: float, dst: bytes = PEER) -> list[bytes]:
        sock.sendto(b"x" * 64, (dst, 7), now)
        return [parse_ethernet(f).dst for f in iface.take_output()]

    assert sent(1.0) == [OLD_MAC]
    after = iface.stats()
    assert after["tx_frames"] - before["tx_frames"] == 1
    assert after["tx_bytes"] - before["tx_bytes"] == 14 + 20 + 8 + 64
    iface.receive(arp_request(NEW_MAC), 2.0)  # the peer's MAC changed: the entry is updated
    iface.take_output()
    assert sent(3.0) == [NEW_MAC]
    sock.broadcast = True
    assert sent(3.5, bytes([192, 0, 2, 255])) == [BROADCAST_MAC]
    assert sent(13.0) == [BROADCAST_MAC]  # expired: the datagram waits, an ARP request goes out
    iface.receive(arp_request(OLD_MAC), 13.1)
    released = [f for f in iface.take_output() if len(f) == 14 + 20 + 8 + 64]  # not the ARP reply
    assert [parse_ethernet(f).dst for f in released] == [OLD_MAC]
