"""`usernet replay` and `usernet respond --simulate` on a small hand-made capture, offline."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.tools.test_responder import EXAMPLES, build
from usernet.cli import main
from usernet.link.pcap import PcapReader, PcapWriter
from usernet.wire import emit_arp, emit_ethernet

KERNEL_MAC = bytes.fromhex("020000000001")
HOST_MAC = bytes.fromhex("020000000002")


def _capture(path: Path) -> None:
    """The kernel asks who has 192.0.2.2 and pings it; the host answers both (as usernet would)."""
    request = bytearray(42)
    emit_ethernet(request, 0, b"\xff" * 6, KERNEL_MAC, 0x0806)
    emit_arp(request, 14, 1, KERNEL_MAC, socket.inet_aton("192.0.2.1"), bytes(6), socket.inet_aton("192.0.2.2"))
    reply = bytearray(42)
    emit_ethernet(reply, 0, KERNEL_MAC, HOST_MAC, 0x0806)
    emit_arp(reply, 14, 2, HOST_MAC, socket.inet_aton("192.0.2.2"), KERNEL_MAC, socket.inet_aton("192.0.2.1"))
    kernel, host = socket.inet_aton("192.0.2.1"), socket.inet_aton("192.0.2.2")
    ping = build("icmp", KERNEL_MAC, HOST_MAC, kernel, host, 7, 1, 1, b"abc", 64)
    with PcapWriter(str(path)) as writer:
        for t, frame in enumerate([bytes(request), bytes(reply), ping]):
            writer.write(frame, 100.0 + t)


def test_replay_command_summarises_writes_and_diffs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture, out = tmp_path / "in.pcap", tmp_path / "out.pcap"
    _capture(capture)
    # The recorded host sent only the ARP reply; usernet also answers the ping: --diff says so.
    assert main(["replay", str(capture), "--as", "192.0.2.2", "--diff", "-w", str(out)]) == 1
    text = capsys.readouterr().out
    assert "ARP, Reply 192.0.2.2 is-at 02:00:00:00:00:02" in text
    assert "extra:" in text and "ICMP echo reply" in text
    with PcapReader(str(out)) as reader:
        assert len(list(reader)) == 3  # announcement, ARP reply, echo reply
    assert main(["replay", str(capture), "--as", "nonsense"]) == 2


def test_respond_command_simulates_a_rule_set_over_a_capture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = tmp_path / "in.pcap"
    kernel, device = socket.inet_aton("192.0.2.1"), socket.inet_aton("192.0.2.70")
    with PcapWriter(str(capture)) as writer:
        for t, payload in enumerate([b"HELLO", b"GET id"]):
            writer.write(build("udp", KERNEL_MAC, HOST_MAC, kernel, device, 5000, 4210, 0, payload, 64), float(t))
    assert main(["respond", str(EXAMPLES / "udp_device.py"), "--simulate", str(capture)]) == 0
    text = capsys.readouterr().out
    assert "respond: 2 answers" in text
    rows = [line.strip().rsplit(maxsplit=1) for line in text.splitlines() if line.startswith("  ")]
    counts = {row[0]: row[1] for row in rows if not row[0].startswith(">")}
    assert counts["hello"] == "1" and counts["id"] == "1" and counts["error"] == "0"


@pytest.mark.network
def test_live_replay_command_gets_a_kernels_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The recorded kernel's ARP request and ping, sent to a fresh kernel playing the recorded host."""
    capture, out = tmp_path / "in.pcap", tmp_path / "answers.pcap"
    _capture(capture)
    assert main(["replay", str(capture), "--live", "--as", "192.0.2.1", "--speed", "10", "-w", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ARP, Reply 192.0.2.2 is-at 02:00:00:00:00:02" in text
    assert "192.0.2.2 > 192.0.2.1: ICMP echo reply, id 7, seq 1" in text
    with PcapReader(str(out)) as reader:
        assert len(list(reader)) >= 2
