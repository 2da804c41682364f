"""Header prediction over IPv6 at the interface: a connection's segments take the shortcut, and
what the shortcut turns away (a bad checksum, a CE mark) still reaches TCP the general way."""

from __future__ import annotations

import hashlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import engine_cpu
from tests.stack import test_ipv6_sim as sim
from usernet.native import build_tcp
from usernet.stack import Interface, TcpConnection
from usernet.stack.route import ipv6_template
from usernet.wire.tcp import ACK, PSH, SYN

A6 = bytes.fromhex("20010db8000000000000000000000001")
B6 = bytes.fromhex("20010db8000000000000000000000002")
TICK = 0.001


def connected() -> tuple[Interface, Interface, TcpConnection, TcpConnection, float]:
    """Two interfaces on one Ethernet with static IPv6 addresses, one connection between them."""
    return engine_cpu.connected(ipv6=True)


def test_an_ipv6_transfer_goes_almost_entirely_through_the_shortcut() -> None:
    a, b, client, server, now = connected()
    up, down = bytes(range(256)) * 2000, bytes(range(255, -1, -1)) * 1500
    got_up, got_down = bytearray(), bytearray()
    sent_up = sent_down = 0
    for _ in range(5000):
        sent_up += client.send(up[sent_up:], now)
        sent_down += server.send(down[sent_down:], now)
        now += TICK
        engine_cpu.step(a, b, now)
        got_up += server.receive()
        got_down += client.receive()
        if len(got_up) == len(up) and len(got_down) == len(down):
            break
    assert hashlib.sha256(got_up).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(got_down).digest() == hashlib.sha256(down).digest()
    for iface in (a, b):
        stats = iface.stats()
        assert stats["tcp_rx_predicted"] >= stats["tcp_rx_segments"] - 3, stats


def test_an_ipv6_listeners_handshake_takes_the_shortcut_with_both_addresses_right() -> None:
    """The SYN reaches the listener from `receive_predicted`: its addresses come from the
    prediction's destination and the flow key, whose 128-bit source sits above bit 32."""
    _a, b, client, server, _now = connected()
    assert server.local == (B6, 7) and server.remote == (A6, client.local[1])
    stats = b.stats()
    assert stats["tcp_rx_predicted"] == stats["tcp_rx_segments"], stats


def inject(iface: Interface, conn: TcpConnection, payload: bytes, now: float, *, ce: bool = False) -> bytearray:
    """A segment from the connection's peer, in order, built by hand as the peer's stack would."""
    ip = bytearray(ipv6_template(conn.remote[0], conn.local[0], 64))
    if ce:
        ip[1] |= 0x30
    frame = bytearray(14 + 60 + len(payload))
    link = iface.mac + bytes((2, 0, 0, 0, 0, 9)) + b"\x86\xdd"
    build_tcp(frame, link, bytes(ip), 0, conn.remote[1], conn.local[1], conn.rcv_nxt, conn.snd_nxt, ACK | PSH, 65535,
              0, b"", payload)  # fmt: skip
    return frame


def test_what_the_ipv6_shortcut_turns_away_reaches_the_connection_the_general_way() -> None:
    _a, b, _client, server, now = connected()
    before = b.stats()
    bad = inject(b, server, b"evil", now)
    bad[-1] ^= 0xFF
    b.receive(bad, now)
    marked = inject(b, server, b"congested", now, ce=True)
    b.receive(marked, now)
    after = b.stats()
    assert after["tcp_bad_checksum"] == before["tcp_bad_checksum"] + 1
    assert after["tcp_rx_predicted"] == before["tcp_rx_predicted"], "neither took the shortcut"
    assert after["tcp_rx_segments"] == before["tcp_rx_segments"] + 1, "the CE-marked one reached TCP"
    assert server.receive() == b"congested"
    b.receive(inject(b, server, b"plain", now), now)
    assert b.stats()["tcp_rx_predicted"] == before["tcp_rx_predicted"] + 1
    assert server.receive() == b"plain"


def test_ipv6_udp_datagrams_take_the_shortcut_to_a_bound_socket() -> None:
    a, b = engine_cpu.pair(ipv6=True)
    server = b.open_udp((B6, 53))
    client = a.open_udp((bytes(16), 0))
    for i in range(5):
        client.sendto(b"question %d" % i, (B6, 53), 0.0)
        for _ in range(3):  # the first waits for neighbour discovery
            for src, dst in ((a, b), (b, a)):
                for frame in src.take_output():
                    dst.receive(frame, 0.0)
        got = server.recvfrom()
        assert got is not None and got[0] == b"question %d" % i and got[1] == (A6, client.local[1])
    assert b.stats()["udp_rx_predicted"] == 5
    client.sendto(b"nobody", (B6, 54), 0.0)
    for frame in a.take_output():
        b.receive(frame, 0.0)
    assert b.stats()["udp_no_socket"] == 1, "a closed port goes the general way, which answers it"


A_PAIR = engine_cpu.connected(ipv6=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.binary(max_size=64), data=st.data())
def test_damaged_ipv6_frames_for_a_live_connection_never_raise(payload: bytes, data: st.DataObject) -> None:
    _a, b, _client, server, now = A_PAIR
    frame = inject(b, server, payload, now)
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(frame) - 1), st.integers(1, 255)), max_size=4))
    for at, mask in flips:
        frame[at] ^= mask
    cut = data.draw(st.integers(0, len(frame)))
    b.receive(memoryview(frame)[:cut], now)
    b.receive(frame, now)
    b.take_output()
    b.take_ready()
    server.receive()


def test_a_segment_to_an_address_that_expired_is_not_for_us_on_either_path() -> None:
    """A SLAAC address whose valid lifetime ran out is no longer ours (RFC 4862 §5.5.4): a segment
    to it is dropped as not for us, whether or not header prediction could parse it."""
    i = sim.settled(sim.iface())
    i.receive(sim.router_advert(valid=100, preferred=50), 5.0)
    i.poll(5.0)
    i.poll(6.0)
    (formed,) = [a for a in sim.addresses(i) if a[:8] == sim.PREFIX[:8]]
    listener = i.tcp.listen((bytes(16), 80))
    peer = bytes.fromhex("20010db8ffff00000000000000000001")  # off the link, through the router

    def segment(seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
        frame = bytearray(14 + 60 + len(payload))
        link = sim.MAC + sim.ROUTER_MAC + b"\x86\xdd"
        build_tcp(frame, link, ipv6_template(peer, formed, 64), 0, 40000, 80, seq, ack, flags, 65535, 0, b"", payload)
        return bytes(frame)

    i.receive(segment(1000, 0, SYN), 7.0)
    i.flush(7.0)
    (syn_ack,) = [f for f in i.take_output() if f[12:14] == b"\x86\xdd" and f[20] == 6]
    iss = int.from_bytes(syn_ack[14 + 40 + 4 : 14 + 40 + 8], "big")
    i.receive(segment(1001, iss + 1, ACK), 7.0)
    conn = listener.accept()
    assert conn is not None and conn.local[0] == formed
    i.receive(segment(1001, iss + 1, ACK | PSH, b"before"), 8.0)
    assert conn.receive() == b"before"
    i.poll(5.0 + 100)
    assert formed not in sim.addresses(i), "the valid lifetime ended"
    before = i.stats()
    i.receive(segment(1007, iss + 1, ACK | PSH, b"after"), 106.0)
    after = i.stats()
    assert after["ipv6_not_for_us"] == before["ipv6_not_for_us"] + 1
    assert after["tcp_rx_predicted"] == before["tcp_rx_predicted"]
    assert conn.receive() == b"", "nothing reaches the connection still on it"
