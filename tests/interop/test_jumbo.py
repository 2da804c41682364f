"""Jumbo frames: with a large MTU on the TAP, TCP segments grow to match and bytes stay intact.

Bigger frames are the cheapest lever a stack on TAP has (one write() per frame); these
tests show the whole path — TAP, MSS from the MTU, reassembly, echo — at 9000 and 65000.
"""

from __future__ import annotations

import time

import pytest

from tests.interop.conftest import USERNET_IP, usernet_on_tap
from tests.interop.streams import MB, Pattern, finished, kernel_echo_roundtrip, kernel_socket, report, wait_for
from usernet.apps.services import ECHO_PORT
from usernet.link.sandbox import Sandbox

pytestmark = pytest.mark.network

TOTAL = 20 * MB


@pytest.mark.parametrize("mtu", [9000, 65000])
def test_echo_at_jumbo_mtu(sandbox: Sandbox, mtu: int):
    with usernet_on_tap(sandbox, mtu=mtu) as running:
        with kernel_socket(sandbox) as sock:
            sock.connect((USERNET_IP, ECHO_PORT))
            start = time.monotonic()
            check = kernel_echo_roundtrip(sock, TOTAL, Pattern(mtu))
            elapsed = time.monotonic() - start
        check.assert_complete(TOTAL)
        wait_for(lambda: bool(finished(running, "echo")), "the echo connection to finish")
        [record] = finished(running, "echo")
        assert record.error is None and record.moved == TOTAL
        # The MSS follows the MTU (less IPv4 and TCP headers and the timestamp option).
        assert record.info["mss"] == mtu - 40 - 12, record.info
        report(
            f"echo at MTU {mtu}", f"{TOTAL / MB / elapsed:.1f} MB/s each way; retransmits {record.info['retransmits']}"
        )
