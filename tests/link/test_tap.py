"""TapLink against the Linux kernel, on a TAP inside a throwaway namespace."""

from __future__ import annotations

import errno
import select
import socket
import struct
import sys
import time
from collections.abc import Callable

import pytest

from tests.link.frames import ETH_ARP, ETH_IPV4, arp, checksum, ethernet, ip
from tests.programs import require
from usernet.link import Link, TapLink
from usernet.link.base import NO_OFFLOADS
from usernet.link.sandbox import Sandbox
from usernet.link.tap import (
    GSO_NONE,
    GSO_TCPV4,
    NEEDS_CSUM,
    SOFTWARE_GSO,
    VNET_HDR_LEN,
    decode_vnet_header,
    encode_vnet_header,
)
from usernet.native import CSUM_FULL, CSUM_PARTIAL, build_ipv4_tcp
from usernet.stack.tcp.connection import OffloadFrame
from usernet.wire.tcp import encode_tcp_options

pytestmark = pytest.mark.network

KERNEL_IP = "192.0.2.1"
USERNET_IP = "192.0.2.2"


def wait_for(link: TapLink, wanted: Callable[[bytes], bool], timeout: float = 5.0) -> bytes:
    """The first frame from `link` that `wanted` accepts; fails after `timeout` seconds without one."""
    deadline = time.monotonic() + timeout
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        select.select([link.fileno()], [], [], left)
        for frame in link.receive():
            assert isinstance(frame, memoryview) and len(frame) <= link.mtu + 18
            data = bytes(frame)
            if wanted(data):
                return data
            seen.append(data[:42].hex())
    pytest.fail(f"no matching frame within {timeout} s; saw {seen}")


def is_arp_request_for(target: str) -> Callable[[bytes], bool]:
    def check(f: bytes) -> bool:
        return f[12:14] == struct.pack("!H", ETH_ARP) and f[20:22] == b"\x00\x01" and f[38:42] == ip(target)

    return check


def test_kernel_arps_for_usernet_then_sends_the_udp_datagram(sandbox: Sandbox):
    tap = sandbox.create_tap("usernet0", host_address=f"{KERNEL_IP}/24")
    assert isinstance(tap, Link)
    sock = sandbox.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((KERNEL_IP, 40000))
    sock.sendto(b"hello usernet", (USERNET_IP, 7))

    request = wait_for(tap, is_arp_request_for(USERNET_IP))
    kernel_mac = request[6:12]
    assert request[:6] == b"\xff" * 6 and request[28:32] == ip(KERNEL_IP)
    assert kernel_mac != tap.mac

    reply = ethernet(kernel_mac, tap.mac, ETH_ARP, arp(2, tap.mac, ip(USERNET_IP), kernel_mac, ip(KERNEL_IP)))
    tap.send(reply)
    frame = wait_for(tap, lambda f: f[12:14] == struct.pack("!H", ETH_IPV4) and f[23] == 17)

    assert frame[:6] == tap.mac and frame[6:12] == kernel_mac
    header = frame[14:34]
    assert checksum(header) == 0
    assert header[12:16] == ip(KERNEL_IP) and header[16:20] == ip(USERNET_IP)
    sport, dport, length, _ = struct.unpack("!HHHH", frame[34:42])
    assert (sport, dport, frame[42 : 34 + length]) == (40000, 7, b"hello usernet")
    # offloads are off: the kernel filled in the full UDP checksum, not a partial one
    pseudo = ip(KERNEL_IP) + ip(USERNET_IP) + struct.pack("!BBH", 0, 17, length)
    assert checksum(pseudo + frame[34 : 34 + length]) == 0
    assert tap.tx_frames == 1 and tap.rx_frames >= 2 and tap.rx_bytes >= len(request) + len(frame)


def test_usernet_mac_is_locally_administered_and_not_the_kernels(sandbox: Sandbox):
    tap = sandbox.create_tap()
    kernel_mac = sandbox.run(["cat", "/sys/class/net/usernet0/address"], capture_output=True, text=True)
    assert bytes.fromhex(kernel_mac.stdout.strip().replace(":", "")) != tap.mac
    assert tap.mac[0] & 0x02 and not tap.mac[0] & 0x01
    given = bytes.fromhex("02aabbccddee")
    assert sandbox.create_tap("usernet1", host_address="198.51.100.1/24", mac=given).mac == given


def test_mtu_is_applied_to_the_device_and_the_buffers(sandbox: Sandbox):
    tap = sandbox.create_tap(mtu=9000)
    shown = sandbox.run(["cat", "/sys/class/net/usernet0/mtu"], capture_output=True, text=True)
    assert shown.stdout.strip() == "9000" and tap.mtu == 9000


def test_receive_returns_nothing_when_the_tap_is_empty(sandbox: Sandbox):
    tap = sandbox.create_tap()
    while tap.receive():  # drain whatever the kernel said on link-up
        pass
    assert tap.receive() == []


def test_send_on_a_down_tap_counts_a_drop(sandbox: Sandbox):
    tap = sandbox.create_tap()
    sandbox.run(["ip", "link", "set", "usernet0", "down"], check=True)
    tap.send(bytes(60))
    assert (tap.dropped_tx, tap.tx_frames) == (1, 0)


def test_attach_opens_a_persistent_tap_and_reads_its_mtu(sandbox: Sandbox):
    sandbox.run(["ip", "tuntap", "add", "mode", "tap", "name", "usernet7"], check=True)
    sandbox.run(["ip", "link", "set", "usernet7", "mtu", "1400"], check=True)
    with pytest.raises(ValueError, match="frames would be cut short"):
        sandbox.in_namespace(lambda: TapLink.attach("usernet7", mtu=1300))
    tap = sandbox.in_namespace(lambda: TapLink.attach("usernet7"))
    try:
        assert tap.mtu == 1400 and tap.name == "usernet7" and not tap.closed
    finally:
        tap.close()
    assert tap.closed
    tap.close()  # idempotent


def test_creating_a_tap_without_cap_net_admin_says_so(sandbox: Sandbox):
    # Run inside the sandbox, so that even a wrongly successful create could not touch the host.
    code = "from usernet.link.tap import TapLink; TapLink.create('usernet9')"
    result = sandbox.run(
        [require("setpriv"), "--inh-caps=-net_admin", "--bounding-set=-net_admin", sys.executable, "-c", code],
        capture_output=True, text=True,
    )  # fmt: skip  # arguments grouped a line, compact
    assert result.returncode != 0
    assert "PermissionError" in result.stderr and "CAP_NET_ADMIN" in result.stderr
    assert "ip tuntap add mode tap user" in result.stderr


def test_errno_of_a_closed_tap_is_not_swallowed(sandbox: Sandbox):
    tap = sandbox.create_tap()
    tap.close()
    with pytest.raises(OSError) as info:
        tap.send(bytes(60))
    assert info.value.errno == errno.EBADF


# -- offloads: vnet headers, partial checksums, TSO ------------------------------------------


def _tcp_frame(
    dst_mac: bytes,
    src_mac: bytes,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    options: bytes = b"",
    gso_size: int | None = None,
) -> bytearray:
    """A TCP frame from usernet to the kernel's port 6000; with `gso_size`, one for the device to finish."""
    size = 54 + len(options) + len(payload)
    frame = bytearray(size) if gso_size is None else OffloadFrame(size)
    if gso_size is not None:
        frame.gso_size = gso_size  # type: ignore[attr-defined]  # a frame with a gso_size, as OffloadFrame is
    built = build_ipv4_tcp(
        frame,
        0,
        dst_mac,
        src_mac,
        ip(USERNET_IP),
        ip(KERNEL_IP),
        1,
        64,
        40001,
        6000,
        seq,
        ack,
        flags,
        65535,
        0,
        options,
        payload,
        CSUM_FULL if gso_size is None else CSUM_PARTIAL,
    )
    assert built == size, f"build_ipv4_tcp failed: {built}"
    return frame


def test_vnet_header_says_where_the_checksum_goes_and_how_to_segment():
    options = encode_tcp_options(timestamp=(1, 2))
    frame = _tcp_frame(bytes(6), bytes(6), 1, 2, 0x10, bytes(5000), options, gso_size=1448)
    header = encode_vnet_header(frame, 1448)
    assert len(header) == VNET_HDR_LEN == 10
    assert decode_vnet_header(header) == (NEEDS_CSUM, GSO_TCPV4, 14 + 20 + 32, 1448, 34, 16)
    assert header == struct.pack("=BBHHHH", 1, 1, 66, 1448, 34, 16)  # native endian, as the TAP reads it
    assert decode_vnet_header(encode_vnet_header(frame, 0)) == (NEEDS_CSUM, GSO_NONE, 0, 0, 34, 16)


def test_a_tap_claims_software_gso_none_or_every_offload(sandbox: Sandbox):
    assert sandbox.create_tap("usernet0").capabilities == SOFTWARE_GSO
    assert sandbox.create_tap("usernet2", host_address="203.0.113.1/24", gso=False).capabilities == NO_OFFLOADS
    tap = sandbox.create_tap("usernet1", host_address="198.51.100.1/24", offloads=True)
    caps = tap.capabilities
    assert caps.checksum_rx_trusted and caps.checksum_tx_partial and caps.tso_max == 65535


def test_offloaded_tcp_both_ways_with_the_kernel(sandbox: Sandbox):
    """Partial checksums and a TSO frame into the kernel, a super-segment out of it, headers never in sight."""
    tap = sandbox.create_tap(offloads=True)
    kernel_mac = bytes.fromhex(
        sandbox.run(["cat", "/sys/class/net/usernet0/address"], capture_output=True, text=True)
        .stdout.strip()
        .replace(":", "")
    )
    listener = sandbox.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((KERNEL_IP, 6000))
    listener.listen(1)
    listener.settimeout(5)

    def next_tcp(wanted: Callable[[bytes], bool]) -> bytes:
        """The first TCP frame `wanted` accepts, answering the kernel's ARP requests meanwhile."""
        deadline = time.monotonic() + 5
        while (left := deadline - time.monotonic()) > 0:
            select.select([tap.fileno()], [], [], left)
            for view in tap.receive():
                f = bytes(view)
                assert f[6:12] == kernel_mac or f[:6] == tap.mac, "a frame must start with its Ethernet header"
                if is_arp_request_for(USERNET_IP)(f):
                    tap.send(
                        ethernet(
                            kernel_mac, tap.mac, ETH_ARP, arp(2, tap.mac, ip(USERNET_IP), kernel_mac, ip(KERNEL_IP))
                        )
                    )
                elif f[12:14] == struct.pack("!H", ETH_IPV4) and f[23] == 6 and wanted(f):
                    return f
        pytest.fail("no matching TCP frame within 5 s")

    tap.send(_tcp_frame(kernel_mac, tap.mac, 1000, 0, 0x02, options=encode_tcp_options(mss=1460), gso_size=0))
    synack = next_tcp(lambda f: f[47] == 0x12)
    their_isn = int.from_bytes(synack[38:42], "big")
    assert int.from_bytes(synack[42:46], "big") == 1001, "the SYN's partial checksum was completed and accepted"
    tap.send(_tcp_frame(kernel_mac, tap.mac, 1001, their_isn + 1, 0x10))  # a plain frame behind a zero header
    conn, _ = listener.accept()
    conn.settimeout(5)
    data = bytes(range(256)) * 60  # 15360 bytes: 10 full segments and a short one
    tap.send(_tcp_frame(kernel_mac, tap.mac, 1001, their_isn + 1, 0x18, data, gso_size=1448))
    got = b""
    while len(got) < len(data):
        got += conn.recv(65536)
    assert got == data and tap.tx_gso_frames == 1

    conn.sendall(bytes(30000))
    big = next_tcp(lambda f: len(f) > tap.mtu + 14)
    assert big[34:36] == struct.pack("!H", 6000) and tap.rx_gso_frames >= 1
    assert int.from_bytes(big[16:18], "big") == len(big) - 14, "the IPv4 total length covers the whole super-segment"
    conn.close()
    listener.close()


def test_a_device_that_is_not_a_tap_is_named_as_such(sandbox: Sandbox):
    """`--tap lo` used to say only `[Errno 22] Invalid argument`."""
    with pytest.raises(
        OSError, match="cannot open 'lo' as a TAP: a network device of that name exists and is not a TAP"
    ):
        sandbox.in_namespace(lambda: TapLink.create("lo"))


def test_a_tap_another_reader_holds_is_busy(sandbox: Sandbox):
    sandbox.create_tap("usernet0")
    with pytest.raises(OSError, match="TAP 'usernet0' is busy: something else has it open"):
        sandbox.in_namespace(lambda: TapLink.attach("usernet0"))
