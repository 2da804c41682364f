"""vnet headers with checksum offload and TSO on the TAP, and software GSO/GRO, against the kernel, both directions.

The same transfers run in three modes: plain (no offload at all: the path every link
without them takes), software (the TAP's default: the stack hands over 64 KB frames and
the link cuts them, and the link joins received in-order segments before the stack sees
them) and vnet offloads. The TapLink's counters prove which big frames really crossed,
rather than something quietly segmenting or merging everything elsewhere.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.interop.conftest import USERNET_IP, Running, usernet_on_tap
from tests.interop.streams import (
    CHUNK,
    KERNEL_PORT,
    MB,
    TIMEOUT,
    Pattern,
    StreamCheck,
    finished,
    kernel_echo_roundtrip,
    kernel_echo_server,
    kernel_socket,
    report,
    usernet_connect,
    wait_for,
)
from usernet.apps.services import CHARGEN_PORT, DISCARD_PORT, ECHO_PORT
from usernet.link.sandbox import Sandbox
from usernet.link.tap import TapLink

pytestmark = pytest.mark.network

TOTAL = 20 * MB
BULK = 100 * MB


def tap_of(running: Running) -> TapLink:
    link = running.host.link
    assert isinstance(link, TapLink)
    return link


def gso_counts(running: Running) -> tuple[int, int]:
    tap = tap_of(running)
    return running.loop.call(lambda now: (tap.rx_gso_frames, tap.tx_gso_frames))


#: TapLink settings of each mode.
MODES = {
    "plain": {"offloads": False, "gso": False, "gro": False},
    "software": {"offloads": False, "gso": True, "gro": True},
    "offloads": {"offloads": True},
}


def assert_offloads_used(running: Running, mode: str) -> None:
    tap = tap_of(running)
    # Both sides in one call on the loop's thread: a frame arriving between two separate
    # reads would count on one side only and fail the comparisons below now and then.
    stats, (rx, tx, written, dropped, read, joined, merged) = running.loop.call(
        lambda now: (
            running.host.iface.stats(),
            (
                tap.rx_gso_frames,
                tap.tx_gso_frames,
                tap.tx_frames,
                tap.dropped_tx,
                tap.rx_frames,
                tap.rx_gro_joined,
                tap.rx_acks_merged,
            ),
        )
    )
    assert stats.get("tcp_bad_checksum", 0) == 0
    if mode == "offloads":
        assert rx > 0, "the kernel sent no super-segment: TSO towards usernet is not in use"
        assert tx > 0, "usernet sent no segment for the kernel to cut up: TSO towards the kernel is not in use"
    elif mode == "software":
        assert rx == 0, "a TAP without vnet headers got a super-segment"
        assert tx > 0, "usernet sent no big frame for software GSO to cut up"
        assert written > stats["tx_frames"], "the TAP wrote no more frames than the stack handed it"
        assert dropped == 0
        assert joined > 0, "software GRO joined no segment"
        assert read == stats["rx_frames"] + joined + merged, "frames read = the stack's + joined + ACKs merged"
    else:
        assert (rx, tx) == (0, 0)
        assert joined == merged == 0


@pytest.mark.parametrize("mode", MODES)
def test_kernel_client_through_usernet_echo(sandbox: Sandbox, mode: str):
    with usernet_on_tap(sandbox, **MODES[mode]) as running:
        with kernel_socket(sandbox) as sock:
            sock.connect((USERNET_IP, ECHO_PORT))
            start = time.monotonic()
            check = kernel_echo_roundtrip(sock, TOTAL, Pattern(11))
            elapsed = time.monotonic() - start
        check.assert_complete(TOTAL)
        wait_for(lambda: bool(finished(running, "echo")), "the echo connection to finish")
        [record] = finished(running, "echo")
        assert record.error is None and record.moved == TOTAL
        assert_offloads_used(running, mode)
        report(
            f"kernel->usernet echo, {mode}",
            f"{TOTAL / MB / elapsed:.1f} MB/s each way; gso frames (rx, tx) {gso_counts(running)}",
        )


@pytest.mark.parametrize("mode", MODES)
def test_usernet_client_through_kernel_echo(sandbox: Sandbox, mode: str):
    with usernet_on_tap(sandbox, **MODES[mode]) as running, kernel_socket(sandbox) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("192.0.2.1", KERNEL_PORT))
        listener.listen(1)
        server = threading.Thread(target=kernel_echo_server, args=(listener,), daemon=True)
        server.start()
        pattern = Pattern(12)
        check = StreamCheck(pattern)
        start = time.monotonic()
        client = usernet_connect(running.loop, KERNEL_PORT, pattern, TOTAL, check)
        assert client.done.wait(TIMEOUT), f"transfer stuck: {running.loop.call(lambda now: client.conn.info())}"
        elapsed = time.monotonic() - start
        server.join(10)
        assert client.conn.error is None
        check.assert_complete(TOTAL)
        assert_offloads_used(running, mode)
        report(
            f"usernet->kernel echo, {mode}",
            f"{TOTAL / MB / elapsed:.1f} MB/s each way; gso frames (rx, tx) {gso_counts(running)}",
        )


@pytest.mark.parametrize("mode", MODES)
def test_bulk_each_way_discard_and_chargen(sandbox: Sandbox, mode: str):
    """100 MB into discard (kernel -> usernet) and 100 MB out of chargen (usernet -> kernel).

    The rates are reported for whoever runs with -s; only the byte counts are asserted.
    """
    block = bytes(CHUNK)
    with usernet_on_tap(sandbox, **MODES[mode]) as running:
        with kernel_socket(sandbox) as sock:
            sock.connect((USERNET_IP, DISCARD_PORT))
            start = time.monotonic()
            sent = 0
            while sent < BULK:
                sock.sendall(block)
                sent += len(block)
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(1) == b""
            into = sent / MB / (time.monotonic() - start)
        wait_for(lambda: bool(finished(running, "discard")), "the discard connection to finish")
        [record] = finished(running, "discard")
        assert record.error is None and record.moved == sent
        with kernel_socket(sandbox) as sock:
            sock.connect((USERNET_IP, CHARGEN_PORT))
            buf = bytearray(CHUNK)
            start = time.monotonic()
            got = 0
            while got < BULK:
                n = sock.recv_into(buf)
                assert n, "chargen closed early"
                got += n
            out = got / MB / (time.monotonic() - start)
        assert_offloads_used(running, mode)
        if mode == "software":
            # Each ~52 KB burst the stack writes draws ~12 kernel ACKs before the next read.
            tap = tap_of(running)
            assert running.loop.call(lambda now: tap.rx_acks_merged) > 0, "100 MB sent and no pure ACK merged"
        rx, tx = gso_counts(running)
        report(
            f"bulk at MTU 1500, {mode}",
            f"kernel->usernet {into:.1f} MB/s, usernet->kernel {out:.1f} MB/s; gso frames (rx, tx) {(rx, tx)}",
        )
