"""Replay: captures of real sessions (usernet and the kernel over a TAP) fed back into a fresh usernet.

The network tests record a session first, then replay it offline; the replay itself
runs on the virtual clock, so its result does not depend on this machine's timing.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.conftest import KERNEL_IP, USERNET_IP, usernet_on_tap
from usernet.link.clock import VirtualClock
from usernet.link.pcap import PcapReader
from usernet.link.sandbox import Sandbox
from usernet.tools.replay import CaptureLink, Endpoint, diff_frames, live_replay, load_capture, normalise, replay
from usernet.wire import ICMP_ECHO_REPLY, IPPROTO_ICMP, parse_ethernet, parse_icmp, parse_ipv4

MESSAGES = [b"hello usernet\n", b"x" * 3000, b"bye\n"]


def _record_tcp_session(sandbox: Sandbox, pcap: Path, gro: bool = False) -> None:
    """A kernel client talks to usernet's echo service: three exchanges, then both sides close.

    With `gro`, the capture holds what the TAP handed the stack: runs of segments merged."""
    with usernet_on_tap(sandbox, pcap=pcap, gro=gro):
        sock = sandbox.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect((USERNET_IP, 7))
        for message in MESSAGES:
            sock.sendall(message)
            got = b""
            while len(got) < len(message):
                got += sock.recv(65536)
            assert got == message
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b""
        sock.close()
        time.sleep(0.3)  # the last ACK reaches usernet before the capture closes


def _record_pings(sandbox: Sandbox, pcap: Path, count: int = 3) -> None:
    """usernet pings the kernel: the capture shows the kernel answering ARP and `count` echo requests."""
    with usernet_on_tap(sandbox, pcap=pcap, gro=False) as running:
        ping = running.loop.call(lambda now: running.host.iface.open_ping(0x1234))
        kernel = socket.inet_aton(KERNEL_IP)
        for seq in range(count):

            def send(now: float, seq: int = seq) -> None:
                ping.send(kernel, seq, bytes(range(56)), now)

            running.loop.call(send)
            deadline = time.monotonic() + 5
            while running.loop.call(lambda now: len(ping.replies)) <= seq and time.monotonic() < deadline:
                time.sleep(0.01)
        assert running.loop.call(lambda now: len(ping.replies)) == count


@pytest.mark.network
@pytest.mark.parametrize("gro", [False, True], ids=["wire-frames", "gro-merged"])
def test_replayed_tcp_session_gives_the_recorded_answers(sandbox: Sandbox, tmp_path: Path, gro: bool) -> None:
    pcap = tmp_path / "session.pcap"
    _record_tcp_session(sandbox, pcap, gro)
    frames = load_capture(str(pcap))
    result = replay(frames, Endpoint.parse(USERNET_IP, frames))
    assert result.pinned_isns == 1
    differences = result.diff()
    assert not differences, "\n".join(map(str, differences))
    assert len(result.sent) == len(result.recorded) > 6
    # Deterministic: a second replay sends byte-identical frames.
    again = replay(frames, Endpoint.parse(USERNET_IP, frames))
    assert [f for _, f in again.sent] == [f for _, f in result.sent]


@pytest.mark.network
def test_replayed_tcp_session_without_pinning_differs_in_the_isn(sandbox: Sandbox, tmp_path: Path) -> None:
    pcap = tmp_path / "session.pcap"
    _record_tcp_session(sandbox, pcap)
    frames = load_capture(str(pcap))
    result = replay(frames, Endpoint.parse(USERNET_IP, frames), pin_isn=False)
    assert result.diff()


@pytest.mark.network
def test_replaying_kernel_pings_makes_usernet_answer_them(sandbox: Sandbox, tmp_path: Path) -> None:
    pcap = tmp_path / "pings.pcap"
    _record_pings(sandbox, pcap)
    frames = load_capture(str(pcap))
    kernel = Endpoint.infer(frames)  # the only host answering: the kernel
    assert kernel.ip == socket.inet_aton(KERNEL_IP)
    result = replay(frames, kernel, speed=None)
    replies = [_echo_reply(f) for _, f in result.sent]
    assert [r for r in replies if r] == [r for r in (_echo_reply(f) for _, f in result.recorded) if r]
    assert len([r for r in replies if r]) == 3
    assert result.unrecorded_startup == 1  # usernet's gratuitous ARP: the kernel had started long before
    # Linux answers echo requests without DF, usernet sets it: the one field that differs.
    assert [d.kind for d in result.diff()] == ["changed"]
    differences = result.diff(ignore=["df"])
    assert not differences, "\n".join(map(str, differences))


@pytest.mark.network
def test_live_replay_of_pings_gets_the_kernels_answers(sandbox: Sandbox, tmp_path: Path) -> None:
    pcap = tmp_path / "pings.pcap"
    _record_pings(sandbox, pcap)
    frames = load_capture(str(pcap))
    kernel = Endpoint.infer(frames)
    usernet_side = Endpoint.parse(USERNET_IP, frames)
    with Sandbox("replay") as second:
        tap = second.create_tap("usernet0", host_address=f"{KERNEL_IP}/24")
        # The recorded frames are addressed to the recorded kernel's MAC: give the new one that MAC.
        second.run(["ip", "link", "set", "dev", "usernet0", "address", kernel.mac.hex(":")], check=True)
        received = live_replay(frames, usernet_side.mac, tap, speed=10.0, settle=0.5)
    replies = [r for r in (_echo_reply(f) for _, f in received) if r]
    assert replies == [r for r in (_echo_reply(f) for _, f in frames) if r]


def _echo_reply(frame: bytes) -> tuple[int, bytes] | None:
    eth = parse_ethernet(frame)
    if eth.ethertype != 0x0800:
        return None
    ip = parse_ipv4(eth.payload)
    if ip.protocol != IPPROTO_ICMP:
        return None
    msg = parse_icmp(ip.payload)
    return (msg.rest, bytes(msg.payload)) if msg.type == ICMP_ECHO_REPLY else None


# -- offline pieces, on hand-made frames ---------------------------------------------------------

_A = bytes.fromhex("020000000001")
_B = bytes.fromhex("020000000002")


def _udp_frame(ident: int, payload: bytes) -> bytes:
    from usernet.wire import emit_ethernet, emit_ipv4_header, emit_udp

    buf = bytearray(14 + 20 + 8 + len(payload))
    emit_ethernet(buf, 0, _B, _A, 0x0800)
    src, dst = socket.inet_aton("192.0.2.1"), socket.inet_aton("192.0.2.2")
    emit_udp(buf, 34, src, dst, 1000, 2000, payload)
    emit_ipv4_header(buf, 14, src=src, dst=dst, protocol=17, payload_length=8 + len(payload), ident=ident)
    return bytes(buf)


def test_endpoint_parse_takes_a_mac_and_an_address_or_finds_the_mac() -> None:
    frames = [(0.0, _udp_frame(1, b"x"))]
    assert Endpoint.parse("02:00:00:00:00:01/192.0.2.1/24") == Endpoint(_A, socket.inet_aton("192.0.2.1"), 24)
    assert Endpoint.parse("192.0.2.1", frames).mac == _A
    with pytest.raises(ValueError, match=r"no frame in the capture comes from 192\.0\.2\.9"):
        Endpoint.parse("192.0.2.9", frames)
    with pytest.raises(ValueError, match="six hex bytes"):
        Endpoint.parse("02:00/192.0.2.1")
    with pytest.raises(ValueError, match="cannot tell which host to play"):
        Endpoint.infer(frames)


def test_diff_ignores_ident_and_checksums_but_not_payload() -> None:
    one, other_ident, other_payload = _udp_frame(1, b"abc"), _udp_frame(2, b"abc"), _udp_frame(1, b"abd")
    assert one != other_ident and normalise(one) == normalise(other_ident)
    assert diff_frames([(0.0, one)], [(0.0, other_ident)]) == []
    (difference,) = diff_frames([(0.0, one)], [(0.0, other_payload)])
    assert difference.kind == "changed"
    (difference,) = diff_frames([(0.0, one)], [])
    assert difference.kind == "missing"
    with pytest.raises(ValueError, match="choose among tos, df, ttl"):
        diff_frames([], [], ignore=["window"])


def test_capture_link_hands_frames_over_at_their_times() -> None:
    clock = VirtualClock()
    link = CaptureLink([(0.0, b"a" * 60), (0.5, b"b" * 60)], _B, clock)
    link.poll(0.0)
    assert link.receive() == [b"a" * 60] and link.next_deadline() == 0.5
    link.poll(0.4)
    assert link.receive() == []
    link.poll(0.5)
    assert link.receive() == [b"b" * 60] and link.next_deadline() is None and link.pending == 0


def test_replay_round_trips_through_a_pcap(tmp_path: Path) -> None:
    """An ARP request toward a host is answered; the answer written out reads back."""
    from usernet.wire import emit_arp, emit_ethernet

    request = bytearray(42)
    emit_ethernet(request, 0, b"\xff" * 6, _A, 0x0806)
    emit_arp(request, 14, 1, _A, socket.inet_aton("192.0.2.1"), bytes(6), socket.inet_aton("192.0.2.2"))
    result = replay([(10.0, bytes(request))], Endpoint(_B, socket.inet_aton("192.0.2.2")))
    out = tmp_path / "out.pcap"
    result.write_pcap(str(out))
    with PcapReader(str(out)) as reader:
        written = list(reader)
    assert [f for _, f in written] == [f for _, f in result.sent]
    assert any("is-at 02:00:00:00:00:02" in line for line in result.summary())


def test_replay_runs_a_user_program_on_the_recorded_traffic() -> None:
    """A program attached with `attach` answers the recorded datagrams (upper-cased), before the services."""
    from tests.tools.test_responder import build
    from usernet.stack.interface import Interface, Socket
    from usernet.stack.udp import ANY
    from usernet.tools.query import Packet

    def attach(iface: Interface) -> Callable[[Socket, float], bool]:
        sock = iface.open_udp((ANY, 9000))

        def handler(ready: Socket, now: float) -> bool:
            if ready is not sock:
                return False
            while (item := sock.recvfrom()) is not None:
                sock.sendto(bytes(item[0]).upper(), item[1], now)
            return True

        return handler

    kernel, host = socket.inet_aton("192.0.2.1"), socket.inet_aton("192.0.2.2")
    who_has = build("arp", _A, b"\xff" * 6, kernel, host, 0, 0, 0, b"", 64)  # usernet learns the kernel's MAC
    datagrams = [build("udp", _A, _B, kernel, host, 5000, 9000, 0, word, 64) for word in (b"ab", b"cd")]
    frames = [(float(t), frame) for t, frame in enumerate([who_has, *datagrams])]
    result = replay(frames, Endpoint(_B, host), attach=attach, services=False)
    answers = [Packet(f) for _, f in result.sent]
    assert [bytes(p.udp.payload) for p in answers if p.udp is not None] == [b"AB", b"CD"]
