"""Loss recovery against the Linux kernel: RACK-TLP (usernet's default) over real loss both ways.

The kernel peer is one routed hop away (`routed_peer`: a forwarded packet that netfilter
drops is lost for real), and the router drops 2% of what it forwards in each direction:
toward usernet (the kernel's data, its ACKs of ours) and toward the peer (our data, our
ACKs). This machine's kernel has no sch_netem, hence nftables' random drop.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.interop.conftest import KERNEL_IP, usernet_on_tap
from tests.interop.streams import (
    KERNEL_PORT,
    MB,
    TIMEOUT,
    Pattern,
    StreamCheck,
    counters,
    kernel_echo_roundtrip,
    kernel_echo_server,
    kernel_socket,
    report,
    usernet_connect,
)
from tests.interop.test_kernel_tcp import PEER_IP, routed_peer
from usernet.apps.services import ECHO_PORT
from usernet.link.sandbox import Sandbox

pytestmark = pytest.mark.network

SIZE = 10 * MB
KEYS = (
    "tcp_timeouts",
    "tcp_tlp_probes",
    "tcp_tlp_recoveries",
    "tcp_rack_losses",
    "tcp_fast_retransmits",
    "tcp_retransmits",
    "tcp_dsack_received",
    "tcp_dsack_sent",
    "tcp_undos",
)


def test_lossy_echo_both_ways_with_rack_against_linux(sandbox: Sandbox) -> None:
    with routed_peer(sandbox) as peer, usernet_on_tap(sandbox, gateway=KERNEL_IP) as running:
        sandbox.drop_rate(2, "usernet0")  # toward usernet
        sandbox.drop_rate(2, "fwd0")  # toward the kernel peer
        before = counters(running)
        with kernel_socket(peer) as sock:  # the kernel sends, usernet echoes
            sock.connect(("192.0.2.2", ECHO_PORT))
            start = time.monotonic()
            check = kernel_echo_roundtrip(sock, SIZE, Pattern(21))
            elapsed_in = time.monotonic() - start
        check.assert_complete(SIZE)
        with kernel_socket(peer) as listener:  # usernet sends, the kernel echoes
            listener.bind((PEER_IP, KERNEL_PORT))
            listener.listen(8)
            server = threading.Thread(target=kernel_echo_server, args=(listener,), daemon=True)
            server.start()
            back = StreamCheck(Pattern(22))
            start = time.monotonic()
            client = usernet_connect(running.loop, KERNEL_PORT, Pattern(22), SIZE, back, PEER_IP)
            assert client.done.wait(TIMEOUT), running.loop.call(lambda now: client.conn.info())
            elapsed_out = time.monotonic() - start
            server.join(10)
        back.assert_complete(SIZE)
        after = counters(running)
    delta = {k: after[k] - before[k] for k in KEYS}
    assert delta["tcp_rack_losses"] > 0, f"2% loss both ways, yet RACK found nothing: {delta}"
    report(
        "RACK-TLP, 2% drop both ways, 10 MB echo each way",
        f"kernel client {SIZE / MB / elapsed_in:.1f} MB/s, usernet client {SIZE / MB / elapsed_out:.1f} MB/s; {delta}",
    )
