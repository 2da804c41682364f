"""Buffer autotuning as Linux's: a bulk receiver's buffer grows toward what one receiver RTT
delivers (tcp_rcv_space_adjust), up to `rcvbuf_max`; a sender's toward twice its congestion
window (tcp_sndbuf_expand), up to `sndbuf_max`; a size the program set stays put."""

from __future__ import annotations

import random

from tests.tcp.net import B_IP, PORT, Net, Peer, digest
from usernet.stack import TcpConfig
from usernet.stack.tcp.rcvspace import ReceiveSpace

MB = 1_000_000


def _bulk(
    tcp: TcpConfig, size: int = 8 * MB, latency: float = 0.02, rcvbuf: int | None = None
) -> tuple[float, Peer, Net]:
    """`size` bytes A → B over a link of `latency` each way: the virtual seconds until B has
    read them all, B's side, and the net. `rcvbuf`: B's program sets it once connected."""
    net = Net(seed=1, latency=latency, tcp=tcp)
    data = random.Random(1).randbytes(size)
    net.b.iface.tcp.listen((B_IP, PORT))
    net.server_data.append(b"")
    client = Peer(net.a.iface.tcp.connect((B_IP, PORT), net.now()), data)
    net.peers[client.conn] = client
    start = net.now()
    server: Peer | None = None
    while net.now() - start < 60:
        net.sim.run(0.01)
        if server is None:
            server = next((p for p in net.peers.values() if p is not client), None)
            if server is not None and rcvbuf is not None:
                server.conn.set_option("rcvbuf", rcvbuf)
        if server is not None and len(server.received) == size:
            break
    assert server is not None and digest(server.received) == digest(data)
    return net.now() - start, server, net


def test_a_bulk_receiver_over_a_long_path_grows_its_buffer_and_its_rate() -> None:
    fixed, fixed_server, _ = _bulk(TcpConfig(rcvbuf_max=0, sndbuf_max=0))
    tuned, tuned_server, net = _bulk(TcpConfig())
    assert fixed_server.conn.options["rcvbuf"] == 262144  # 256 KiB per 40 ms round trip: ~6.5 MB/s at most
    assert tuned_server.conn.options["rcvbuf"] > 4 * 262144
    assert net.b.iface.stats()["tcp_rcvbuf_grown"] >= 1
    assert net.a.iface.stats()["tcp_sndbuf_grown"] >= 1  # the sender's buffer outgrew its 256 KiB too
    assert tuned < fixed / 2, (tuned, fixed)
    print(f"8 MB over a 40 ms RTT: {fixed:.2f} s with a fixed 256 KiB buffer, {tuned:.2f} s autotuned")


def test_the_ceiling_bounds_the_growth() -> None:
    _, server, _ = _bulk(TcpConfig(rcvbuf_max=600_000), size=4 * MB)
    assert 262144 < server.conn.options["rcvbuf"] <= 600_000


def test_a_buffer_the_program_set_is_not_tuned() -> None:
    """As SO_RCVBUF on Linux: the size is the program's."""
    _, server, net = _bulk(TcpConfig(), size=4 * MB, rcvbuf=131072)
    assert server.conn.options["rcvbuf"] == 131072
    assert net.b.iface.stats()["tcp_rcvbuf_grown"] == 0


def test_a_sender_needs_its_buffer_to_grow_as_well() -> None:
    """The receiver's window alone does not help while the sender holds 256 KiB at most."""
    fixed, _, _ = _bulk(TcpConfig(rcvbuf_max=0, sndbuf_max=0))
    receiver_only, _, net = _bulk(TcpConfig(sndbuf_max=0))
    assert net.a.iface.stats()["tcp_sndbuf_grown"] == 0
    assert receiver_only > fixed * 0.8, (receiver_only, fixed)


def test_small_exchanges_leave_the_buffer_as_it_was() -> None:
    """Request/response reads a few bytes per round trip: never more than the first space."""
    net = Net(seed=1, latency=0.02)
    client, server = net.transfer(b"q" * 2000, b"r" * 2000)
    assert server.conn.options["rcvbuf"] == client.conn.options["rcvbuf"] == 262144
    assert server.conn.options["sndbuf"] == client.conn.options["sndbuf"] == 262144
    assert net.b.iface.stats()["tcp_rcvbuf_grown"] == net.a.iface.stats()["tcp_rcvbuf_grown"] == 0


def test_the_growth_is_linuxs_formula() -> None:
    """tcp_rcv_space_adjust: rcvwin = 2·copied + 16·advmss, plus 2·rcvwin·(copied − space)/space."""
    space = ReceiveSpace(copied_seq=0, rcv_nxt=0, window=262144, advmss=1460, now=0.0)
    assert space.space == 14600  # ten segments, Linux's first measurement
    # The first window arrives after 40 ms: the receiver's RTT; the user has read 100,000 bytes.
    limit = space.adjust(100_000, 262144, 262144, 1460, 262144, 6291456, 0.04)
    rcvwin = 2 * 100_000 + 16 * 1460
    assert limit == rcvwin + 2 * (rcvwin * (100_000 - 14600) // 14600)
    assert space.rtt == 0.04 and space.space == 100_000
    # Less than an RTT later nothing is measured; reading no more than last time grows nothing.
    assert space.adjust(150_000, 300_000, 262144, 1460, limit, 6291456, 0.05) == limit
    assert space.adjust(180_000, 300_000, 262144, 1460, limit, 6291456, 0.09) == limit
    # The ceiling caps it.
    assert space.adjust(2_000_000, 2_000_000, 262144, 1460, limit, 3_000_000, 0.2) == 3_000_000
