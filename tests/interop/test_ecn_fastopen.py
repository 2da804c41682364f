"""ECN and TCP Fast Open against the Linux kernel over a TAP, both ways.

ECN: the kernel's `tcp_ecn` is set in the test's namespace, and an nftables rule there
marks some ECT(0) packets CE (`ip ecn set ce`) on their way to usernet or from it, so each
side's receiver echoes and the other's sender must react: the kernel with a CWR (counted by
usernet), usernet with a window reduction (its counters and `info()`). Fast Open: the
kernel's `tcp_fastopen` is set in the namespace; the second connection of each pair must
carry its data in the SYN, which usernet's capture shows and TCP_INFO's TCPI_OPT_SYN_DATA
confirms on the kernel's side.
"""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

import pytest

from tests.interop.conftest import KERNEL_IP, USERNET_IP, Running, usernet_on_tap
from tests.interop.streams import (
    MB,
    TIMEOUT,
    Pattern,
    counters,
    kernel_socket,
    report,
    usernet_connect,
    wait_for,
)
from tests.programs import require
from usernet.apps.services import DISCARD_PORT, ECHO_PORT
from usernet.link.pcap import PcapReader
from usernet.link.sandbox import Sandbox
from usernet.stack import TcpConfig, TcpConnection
from usernet.stack.interface import Socket
from usernet.stack.tcp.congestion import INFINITE_SSTHRESH
from usernet.stack.tcp.states import State

pytestmark = pytest.mark.network

TOTAL = 8 * MB
PORT = 6100
TCPI_OPT_ECN = 8
TCPI_OPT_SYN_DATA = 32
_TCP_INFO = struct.Struct("=BBBBBBBB20I")  # the fields up to tcpi_snd_cwnd


def tcp_info(sock: socket.socket) -> dict[str, int]:
    """A few fields of the kernel's struct tcp_info (linux/tcp.h)."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    fields = _TCP_INFO.unpack_from(raw)
    return {"options": fields[5], "ssthresh": fields[8 + 17], "cwnd": fields[8 + 18]}


def sysctl(sandbox: Sandbox, setting: str) -> None:
    """Set a per-namespace sysctl of the test's namespace (never the root one's)."""
    sandbox.run(["sysctl", "-q", "-w", setting], check=True, capture_output=True, text=True)


def mark_ce(sandbox: Sandbox, to_usernet: int, from_usernet: int) -> None:
    """Mark that many percent of the ECT(0) packets crossing the TAP CE, each way.

    The kernel's own packets reach postrouting before GSO cuts them, so one mark there
    covers up to 64 KB of segments: that direction needs the larger share to see some.
    """
    require("nft")

    def rule(percent: int) -> str:
        return f"ip ecn ect0 numgen random mod 100 < {percent} ip ecn set ce"

    script = (
        "table inet usernet_ecn {\n"
        "  chain out { type filter hook postrouting priority 0; policy accept; "
        f'oifname "usernet0" {rule(to_usernet)}; }}\n'
        "  chain in { type filter hook prerouting priority 0; policy accept; "
        f'iifname "usernet0" {rule(from_usernet)}; }}\n'
        "}\n"
    )
    sandbox.run(["nft", "-f", "-"], input=script, check=True, capture_output=True, text=True)


def syns_with_data(pcap: Path, src: str) -> list[bytes]:
    """The payloads of the SYNs from `src` in a capture (Ethernet, IPv4)."""
    source = socket.inet_aton(src)
    out = []
    with PcapReader(pcap) as reader:
        for _, frame in reader:
            if frame[12:14] != b"\x08\x00" or frame[23] != 6 or frame[26:30] != source:
                continue
            ihl = (frame[14] & 15) * 4
            tcp = 14 + ihl
            total = int.from_bytes(frame[16:18], "big")
            hlen = (frame[tcp + 12] >> 4) * 4
            if frame[tcp + 13] & 0x02:
                out.append(bytes(frame[tcp + hlen : 14 + total]))
    return out


# -- ECN ----------------------------------------------------------------------------------------


def test_kernel_sender_to_usernet_negotiates_ecn_and_answers_echoes_with_cwr(sandbox: Sandbox):
    sysctl(sandbox, "net.ipv4.tcp_ecn=1")
    mark_ce(sandbox, to_usernet=20, from_usernet=0)
    with usernet_on_tap(sandbox) as running:
        with kernel_socket(sandbox) as sock:
            sock.connect((USERNET_IP, DISCARD_PORT))
            block = bytes(65536)
            for _ in range(TOTAL // len(block)):
                sock.sendall(block)
            info = tcp_info(sock)
        wait_for(lambda: bool(running.loop.call(lambda now: list(running.services.discard.finished))), "discard")
        stats = counters(running)
    assert info["options"] & TCPI_OPT_ECN, info
    assert stats["tcp_ecn_negotiated"] == 1
    assert stats["tcp_ecn_ce_received"] > 0 and stats["tcp_ecn_cwr_received"] > 0
    report(
        "kernel->usernet ECN",
        f"CE received {stats['tcp_ecn_ce_received']}, CWR received {stats['tcp_ecn_cwr_received']}, "
        f"kernel cwnd {info['cwnd']} ssthresh {info['ssthresh']}",
    )


def kernel_listener(sandbox: Sandbox, fastopen: int = 0) -> socket.socket:
    """A listening kernel socket on KERNEL_IP:PORT (the TAP must be up), with TCP_FASTOPEN's queue."""
    listener = kernel_socket(sandbox)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fastopen:
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, fastopen)
    listener.bind((KERNEL_IP, PORT))
    listener.listen(8)
    return listener


def test_usernet_sender_to_kernel_negotiates_ecn_and_cuts_its_window_on_echoes(sandbox: Sandbox):
    mark_ce(sandbox, to_usernet=0, from_usernet=2)  # the kernel's tcp_ecn stays 2: it accepts what usernet asks for
    infos: list[dict[str, int]] = []
    with usernet_on_tap(sandbox, tcp=TcpConfig(ecn=1)) as running, kernel_listener(sandbox) as listener:

        def sink() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                while conn.recv(1 << 20):
                    pass
                infos.append(tcp_info(conn))

        thread = threading.Thread(target=sink, daemon=True)
        thread.start()
        client = usernet_connect(running.loop, PORT, Pattern(5), TOTAL)
        assert client.done.wait(TIMEOUT), running.loop.call(lambda now: client.conn.info())
        info = running.loop.call(lambda now: client.conn.info())
        stats = counters(running)
        thread.join(10)
    assert info["ecn"] and stats["tcp_ecn_negotiated"] == 1
    assert infos and infos[0]["options"] & TCPI_OPT_ECN
    assert stats["tcp_ecn_reductions"] > 0 and info["ssthresh"] < INFINITE_SSTHRESH
    assert info["retransmits"] == 0  # the marks cut the window; nothing was lost
    report(
        "usernet->kernel ECN",
        f"reductions {stats['tcp_ecn_reductions']}, cwnd {info['cwnd']}, ssthresh {info['ssthresh']}",
    )


# -- Fast Open ------------------------------------------------------------------------------------


def test_kernel_client_sends_data_in_its_syn_to_a_usernet_listener(sandbox: Sandbox, tmp_path: Path):
    sysctl(sandbox, "net.ipv4.tcp_fastopen=1")
    pcap = tmp_path / "tfo.pcap"
    infos = []
    with usernet_on_tap(sandbox, pcap, tcp=TcpConfig(fastopen=2)) as running:

        def serve_fast_open(now: float) -> None:
            for listener in running.host.iface.tcp.listeners():
                if listener.local[1] == ECHO_PORT:
                    listener.fastopen = 16

        running.loop.call(serve_fast_open)
        for attempt in range(2):
            with kernel_socket(sandbox) as sock:
                message = b"fast open %d" % attempt
                sock.settimeout(None)  # MSG_FASTOPEN connects as connect() does: block for it
                sock.sendto(message, socket.MSG_FASTOPEN, (USERNET_IP, ECHO_PORT))
                sock.settimeout(TIMEOUT)
                got = b""
                while len(got) < len(message):
                    got += sock.recv(100)
                assert got == message
                infos.append(tcp_info(sock))
        stats = counters(running)
    assert not infos[0]["options"] & TCPI_OPT_SYN_DATA and infos[1]["options"] & TCPI_OPT_SYN_DATA
    assert stats["tcp_fastopen_cookie_requests"] == 1 and stats["tcp_fastopen_passive"] == 1
    assert syns_with_data(pcap, KERNEL_IP) == [b"", b"fast open 1"]


def test_usernet_client_sends_data_in_its_syn_to_a_kernel_listener(sandbox: Sandbox, tmp_path: Path):
    sysctl(sandbox, "net.ipv4.tcp_fastopen=3")
    pcap = tmp_path / "tfo.pcap"
    server_infos: list[dict[str, int]] = []
    with (
        usernet_on_tap(sandbox, pcap, tcp=TcpConfig(fastopen=1)) as running,
        kernel_listener(sandbox, fastopen=16) as listener,
    ):

        def echo_twice() -> None:
            for _ in range(2):
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(TIMEOUT)
                    data = conn.recv(100)
                    server_infos.append(tcp_info(conn))
                    conn.sendall(data)

        thread = threading.Thread(target=echo_twice, daemon=True)
        thread.start()
        for attempt in range(2):
            client = FastOpenClient(running, b"usernet %d" % attempt)
            deferred = running.loop.call(client.start)
            assert deferred == (attempt == 1)  # with the cookie from the first, the SYN waited for data
            assert client.done.wait(TIMEOUT)
            assert bytes(client.received) == b"usernet %d" % attempt
        stats = counters(running)
        thread.join(10)
    assert not server_infos[0]["options"] & TCPI_OPT_SYN_DATA and server_infos[1]["options"] & TCPI_OPT_SYN_DATA
    assert stats["tcp_fastopen_active"] == 1 and stats["tcp_fastopen_active_fail"] == 0
    assert syns_with_data(pcap, USERNET_IP) == [b"", b"usernet 1"]


class FastOpenClient:
    """A usernet client on the loop thread: connects with Fast Open, sends `message` at once
    (into the SYN when a cookie is known), collects the answer until the peer closes."""

    def __init__(self, running: Running, message: bytes) -> None:
        self.running = running
        self.message = message
        self.received = bytearray()
        self.done = threading.Event()

    def start(self, now: float) -> bool:
        """Connect and send; returns whether the SYN waited for the data (a cookie was known)."""
        tcp = self.running.host.iface.tcp
        conn = tcp.connect((socket.inet_aton(KERNEL_IP), PORT), now, fastopen=True)
        deferred = conn.fastopen_deferred
        conn.send(self.message, now)
        self.running.loop.handlers[conn] = self.pump
        return deferred

    def pump(self, sock: Socket, now: float) -> None:
        assert isinstance(sock, TcpConnection)
        self.received += sock.receive()
        if sock.at_eof or sock.state == State.CLOSED:
            sock.close(now)
            self.running.loop.handlers.pop(sock, None)
            self.done.set()
