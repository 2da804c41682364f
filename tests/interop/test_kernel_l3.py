"""ARP, ping, UDP and garbage: usernet against the kernel over a real TAP."""

from __future__ import annotations

import errno
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from tests.interop.conftest import KERNEL_IP, PEER_IP, USERNET_IP, Running, routed_peer, usernet_on_tap
from tests.programs import require
from usernet.stack.udp import UdpSocket

pytestmark = pytest.mark.network


def test_kernel_pings_usernet(running: Running):
    result = running.sandbox.run(
        [require("ping"), "-c", "20", "-i", "0.05", "-W", "2", USERNET_IP], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "20 packets transmitted, 20 received" in result.stdout
    assert running.host.iface.stats()["icmp_echo_answered"] >= 20


def test_arping_gets_answers(running: Running):
    result = running.sandbox.run(
        [require("arping"), "-c", "3", "-w", "5", "-I", "usernet0", USERNET_IP], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    macs = set(re.findall(r"from ([0-9a-f:]{17})", result.stdout.lower()))
    assert macs == {running.host.link.mac.hex(":")}, result.stdout


def test_udp_echo_of_every_size(running: Running):
    with running.sandbox.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        rng = random.Random(1)
        for i in range(1000):
            size = i * 1473 // 1000 if i < 999 else 1472
            message = rng.randbytes(size)
            sock.sendto(message, (USERNET_IP, 7))
            reply, peer = sock.recvfrom(2048)
            assert reply == message and peer == (USERNET_IP, 7), f"datagram {i} of {size} bytes"
    assert running.echo.echoed == 1000


def test_closed_port_is_refused(running: Running):
    with running.sandbox.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        sock.connect((USERNET_IP, 9))
        sock.send(b"anyone?")
        with pytest.raises(ConnectionRefusedError):
            sock.recv(100)
    assert running.host.iface.stats()["icmp_errors_sent"] >= 1


def _garbage(rng: random.Random, kernel_mac: bytes, usernet_mac: bytes) -> list[bytes]:
    """Frames that must be dropped: truncated, wrong lengths, bad checksums, random bytes."""
    eth = usernet_mac + kernel_mac
    ip_ok = bytes.fromhex("4500001c00004000401100000c000201c0000202")  # checksum left wrong on purpose
    frames = []
    for _ in range(4000):
        kind = rng.randrange(6)
        if kind == 0:
            frames.append(eth + b"\x08\x00" + rng.randbytes(rng.randrange(0, 20)))  # truncated IPv4
        elif kind == 1:
            frames.append(eth + b"\x08\x00" + ip_ok + rng.randbytes(8))  # bad header checksum
        elif kind == 2:
            hdr = bytearray(ip_ok)
            hdr[2:4] = struct.pack("!H", rng.randrange(0, 65536))  # wrong total length
            frames.append(eth + b"\x08\x00" + bytes(hdr) + rng.randbytes(8))
        elif kind == 3:
            frames.append(eth + b"\x08\x06" + rng.randbytes(rng.randrange(0, 40)))  # broken ARP
        elif kind == 4:
            frames.append(rng.randbytes(rng.randrange(14, 200)))  # random bytes
        else:
            frames.append(eth + rng.randbytes(rng.randrange(2, 100)))
    return frames


def test_malformed_frames_are_dropped_and_counted(running: Running):
    iface = running.host.iface
    kernel_mac = bytes.fromhex(
        running.sandbox.run(["cat", "/sys/class/net/usernet0/address"], capture_output=True, text=True)
        .stdout.strip()
        .replace(":", "")
    )
    frames = _garbage(random.Random(7), kernel_mac, running.host.link.mac)
    before = iface.stats()["rx_frames"]
    with running.sandbox.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
        raw.bind(("usernet0", 0))
        for i, frame in enumerate(frames):
            raw.send(frame)
            if i % 200 == 199:
                time.sleep(0.005)  # let the reader keep up: the TAP drops what it cannot queue
    result = running.sandbox.run(
        [require("ping"), "-c", "3", "-i", "0.2", "-W", "2", USERNET_IP], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
    stats = iface.stats()
    assert stats["rx_frames"] - before >= len(frames) * 0.9
    drops = sum(v for k, v in stats.items() if k.endswith(("malformed", "bad_checksum", "not_for_us", "unknown_type")))
    assert drops >= len(frames) * 0.8, stats


def _usernet_ping(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "usernet.cli", "ping", "--sandbox", *args], capture_output=True, text=True, timeout=60
    )


def test_usernet_pings_the_kernel_from_the_cli():
    result = _usernet_ping("-c", "5", "-i", "0.1", KERNEL_IP)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 packets transmitted, 5 received" in result.stdout
    times = re.findall(r"icmp_seq=\d+ ttl=64 time=([\d.]+) ms", result.stdout)
    # The kernel answers inside the write that sends the request: a reply stamped with the
    # send's own time read 0.000 ms for every ping after the first.
    assert len(times) == 5 and all(float(t) > 0 for t in times), result.stdout


def test_usernet_ping_with_no_route_transmits_nothing_and_says_why():
    result = _usernet_ping("-c", "3", "-i", "0.1", "198.51.100.1")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "0 packets transmitted, 0 received" in result.stdout
    assert "ping: no route to the destination" in result.stderr


def test_usernet_up_writes_a_pcap_tshark_decodes(tmp_path):
    ping, tshark = require("ping"), require("tshark")
    pcap = tmp_path / "up.pcap"
    proc = subprocess.Popen(
        [sys.executable, "-m", "usernet.cli", "up", "--sandbox", "--dump", "--pcap", str(pcap), "--duration", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        name = re.search(r"namespace (usernet-\S+),", banner)
        assert name, banner
        ns = name.group(1)
        proc.stdout.readline()  # "usernet up: ..."
        ping = subprocess.run(
            ["ip", "netns", "exec", ns, ping, "-c", "3", "-i", "0.2", "-W", "2", USERNET_IP],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert ping.returncode == 0, ping.stdout
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "ICMP echo request" in out and "ICMP echo reply" in out, out
    assert "icmp_echo_answered=3" in out, out
    assert not subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.count(ns)
    fields = subprocess.run(
        [tshark, "-r", str(pcap), "-T", "fields", "-e", "frame.protocols", "-e", "_ws.expert"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert len(fields) >= 8  # ARP both ways + 3 pings + 3 replies, at least
    assert not [line for line in fields if "\t" in line and line.split("\t", 1)[1].strip()], fields
    assert all(line.startswith("eth:ethertype:") for line in fields), fields


def test_a_connect_to_an_absent_neighbour_is_no_route_to_host_on_both_sides(running: Running):
    """Neither side answers ARP for ABSENT: the kernel's connect and usernet's both end with
    EHOSTUNREACH once their resolution gives up (Linux ~3 s, usernet ~2.2 s), not with a timeout."""
    absent = "192.0.2.77"  # on the TAP's /24, nobody's
    outcome: dict[str, object] = {}

    def kernel_side() -> None:
        with running.sandbox.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            start = time.monotonic()
            outcome["kernel"] = sock.connect_ex((absent, 80)), time.monotonic() - start

    kernel = threading.Thread(target=kernel_side)
    kernel.start()
    start = time.monotonic()
    conn = running.loop.call(lambda now: running.host.iface.tcp.connect((socket.inet_aton(absent), 80), now))
    while running.loop.call(lambda now: conn.error) is None and time.monotonic() - start < 30:
        time.sleep(0.05)
    took = time.monotonic() - start
    kernel.join(35)
    error = running.loop.call(lambda now: conn.error)
    assert isinstance(error, OSError) and error.errno == errno.EHOSTUNREACH, error
    assert took < 10, f"usernet's connect took {took:.1f} s to fail"
    code, kernel_took = outcome["kernel"]  # type: ignore[misc]
    assert code == errno.EHOSTUNREACH, os.strerror(code)
    print(f"connect to an absent neighbour: usernet {took:.1f} s, kernel {kernel_took:.1f} s")


def test_ip_ttl_on_a_udp_socket_is_what_a_kernel_router_sees(sandbox):
    """TTL 1 dies at the kernel router (its time exceeded reaches the connected socket as
    EHOSTUNREACH), TTL 2 reaches the peer's closed port (ECONNREFUSED): traceroute's two answers."""
    with routed_peer(sandbox) as _peer, usernet_on_tap(sandbox, gateway=KERNEL_IP) as running:
        iface = running.host.iface

        def probe(ttl: int) -> OSError | None:
            def send(now: float) -> UdpSocket:
                sock = iface.open_udp()
                sock.connect((socket.inet_aton(PEER_IP), 33434))
                sock.set_ttl(ttl)
                sock.sendto(b"probe", None, now)
                return sock

            sock = running.loop.call(send)
            deadline = time.monotonic() + 5
            error = None
            while error is None and time.monotonic() < deadline:
                time.sleep(0.05)
                error = running.loop.call(lambda now: sock.take_error())
            running.loop.call(lambda now: sock.close())
            return error

        first, second = probe(1), probe(2)
    assert first is not None and first.errno == errno.EHOSTUNREACH, first
    assert second is not None and second.errno == errno.ECONNREFUSED, second
