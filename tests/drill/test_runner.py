"""The packetdrill runner: the project's TCP scripts pass, and broken expectations fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from usernet.stack.tcp.config import TcpConfig
from usernet.testing.drill.__main__ import main
from usernet.testing.drill.code import Unsupported, run_code
from usernet.testing.drill.packets import DrillError
from usernet.testing.drill.profile import (
    LINUX,
    PACKETDRILL,
    PROFILES,
    USERNET,
    Profile,
    apply_command,
    window_scale_for,
)
from usernet.testing.drill.runner import DrillFailure, run_file, run_text

TCP_SCRIPTS = sorted((Path(__file__).parent / "tcp").glob("*.pkt"))


def _header(path: Path, key: str) -> str | None:
    """`// key: value` in a script's comments."""
    for line in path.read_text().splitlines():
        if line.startswith(f"// {key}:"):
            return line.split(":", 1)[1].strip()
    return None


def _xfail_reason(path: Path) -> str | None:
    return _header(path, "xfail")


def profile_of(path: Path) -> Profile:
    """The profile a script's `// profile:` line names (usernet's by default)."""
    return PROFILES[_header(path, "profile") or "usernet"]


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(
            p,
            id=p.stem,
            marks=[pytest.mark.xfail(reason=r, raises=DrillFailure, strict=True)] if (r := _xfail_reason(p)) else [],
        )
        for p in TCP_SCRIPTS
    ],
)
def test_tcp_script(path: Path) -> None:
    """Each script runs against the profile its `// profile:` line names (usernet's by default)."""
    result = run_file(path, profile=profile_of(path))
    assert result.events > 0


def test_quick_acks_are_the_linux_profiles() -> None:
    """usernet's own profile leaves quick-ACK mode off: the linux profile is what makes quickack.pkt pass."""
    with pytest.raises(DrillFailure):
        run_file(Path(__file__).parent / "tcp" / "quickack.pkt", profile=USERNET)


def test_there_are_scripts_for_every_topic() -> None:
    assert len(TCP_SCRIPTS) >= 25


ACTIVE_OPEN = """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
   +0 > S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
  +.1 < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 700 ecr 100,nop,wscale 7>
   +0 > . 1:1(0) ack 1 <nop,nop,TS val 200 ecr 700>
"""
SMALL_SEGMENT = " +.01 < P. 1:101(100) ack 1 win 500 <nop,nop,TS val 710 ecr 200>\n"


def failure(text: str, **options: str) -> DrillFailure:
    with pytest.raises(DrillFailure) as info:
        run_text(text, options=options, filename="t.pkt")
    return info.value


def test_the_baseline_passes() -> None:
    run_text(ACTIVE_OPEN + SMALL_SEGMENT + " +.04 > . 1:1(0) ack 101 <...>\n")


def test_a_wrong_ack_names_the_line_and_both_packets() -> None:
    exc = failure(ACTIVE_OPEN + SMALL_SEGMENT + " +.04 > . 1:1(0) ack 102 <...>\n")
    assert exc.line == 8
    assert "tcp_ack_seq: expected: 102 (0x66) vs actual: 101 (0x65)" in exc.message
    assert "script packet:  0.150000 . 1:1(0) ack 102 <...>" in exc.message
    assert "actual packet:  0.150000 . 1:1(0) ack 101 win" in exc.message


def test_a_packet_sent_too_late_is_missing_at_its_time() -> None:
    exc = failure(ACTIVE_OPEN + SMALL_SEGMENT + " +.01 > . 1:1(0) ack 101 <...>\n")
    assert "expected outbound packet at 0.120000 sec" in exc.message and "sent nothing" in exc.message


def test_a_packet_sent_too_early_is_a_timing_error() -> None:
    exc = failure(ACTIVE_OPEN + SMALL_SEGMENT + " +.1 > . 1:1(0) ack 101 <...>\n")
    assert "timing error: expected outbound packet at  0.210000 sec but happened at 0.150000" in exc.message


def test_an_unexpected_packet_fails_the_next_expectation() -> None:
    exc = failure(ACTIVE_OPEN + "   +0 write(3, ..., 10) = 10\n   +0 > P. 1:21(20) ack 1 <...>\n")
    assert "payload: expected 20 bytes vs actual 10 bytes" in exc.message


def test_options_are_compared_in_order_unless_any() -> None:
    exc = failure(ACTIVE_OPEN.replace("<nop,nop,TS val 200 ecr 700>", "<TS val 200 ecr 700,nop,nop>"))
    assert "bad outbound TCP options" in exc.message
    exc = failure(ACTIVE_OPEN.replace("wscale 7>\n  +.1", "wscale 6>\n  +.1"))
    assert "bad value outbound TCP option 3" in exc.message


def test_ts_val_is_checked_only_with_a_tick() -> None:
    wrong = ACTIVE_OPEN.replace("TS val 200 ecr 700", "TS val 900 ecr 700")
    run_text(wrong)
    exc = failure(wrong, tcp_ts_tick_usecs="1000")
    assert "bad outbound TCP timestamp value" in exc.message


def test_a_wrong_return_value_or_errno_fails() -> None:
    exc = failure(ACTIVE_OPEN + "   +0 read(3, ..., 100) = 0\n")
    assert exc.line == 7
    assert "read: expected result 0 but got -1 EAGAIN" in exc.message
    exc = failure(ACTIVE_OPEN + "   +0 read(3, ..., 100) = -1 ECONNRESET\n")
    assert "expected errno ECONNRESET but got -1 EAGAIN" in exc.message


def test_a_blocking_call_must_return_at_its_time() -> None:
    blocking = ACTIVE_OPEN + "   +0 fcntl(3, F_SETFL, O_RDWR) = 0\n"
    late = blocking + "   +0...0.05 read(3, ..., 100) = 100\n" + SMALL_SEGMENT
    exc = failure(late)
    assert "expected system call return at 0.150000 sec but happened at 0.110000 sec" in exc.message
    never = blocking + "   +0...0.05 read(3, ..., 100) = 100\n +.01 < . 1:1(0) ack 1 win 500\n"
    assert "never returned" in failure(never).message


def test_segments_are_joined_unless_strict() -> None:
    tso = ACTIVE_OPEN + "   +0 write(3, ..., 3000) = 3000\n   +0 > P. 1:3001(3000) ack 1 <...>\n"
    run_text(tso)
    exc = failure(tso, strict_segments=None)  # type: ignore[arg-type]  # None: the runner's default, not a bool
    assert "expected: P. vs actual: ." in exc.message


def test_sysctl_commands_change_the_stack() -> None:
    script = (
        "`sysctl -q net.ipv4.tcp_timestamps=0\nsysctl -q net.ipv4.tcp_sack=0\nsysctl -q net.ipv4.foo=1`\n"
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
        "+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n"
        "+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)\n"
        "+0 > S 0:0(0) <mss 1460,nop,wscale 7>\n"
    )
    result = run_text(script)
    assert "`sysctl -q net.ipv4.foo=1`" in result.skipped
    assert "sysctl tcp_timestamps=0" in result.applied


def test_apply_command_maps_buffers_routes_and_defaults() -> None:
    effect = apply_command(
        "../common/defaults.sh\nip route change 192.0.2.0/24 dev tun0 initcwnd 4 rto_min 50ms\n"
        "tc qdisc add dev tun0 root pfifo",
        TcpConfig(),
        LINUX,
    )
    assert effect.tcp.window_scale == 8 and effect.tcp.rcvbuf == 540000 and effect.tcp.syn_retries == 5
    assert effect.tcp.initial_window == 4 and effect.tcp.rto_min == 0.05 and effect.tcp.congestion == "cubic"
    assert effect.skipped == ["tc qdisc add dev tun0 root pfifo"]
    assert window_scale_for(6 * 1024 * 1024) == 7 and window_scale_for(65535) == 0


def test_profiles() -> None:
    assert USERNET.tcp == TcpConfig()
    assert LINUX.tcp.window_scale == 7 and LINUX.tcp.initial_window == 10 and LINUX.tcp.congestion == "cubic"
    assert PACKETDRILL.tcp.window_scale == 8


def test_scripts_that_cannot_run_say_why() -> None:
    with pytest.raises(DrillError, match="epoll_create"):
        run_text("0 epoll_create(1) = 3\n")
    with pytest.raises(DrillError, match="needs its window"):
        run_text("0 < S 0:0(0) <mss 1460>\n")
    with pytest.raises(DrillError, match="IPv4 only"):
        run_text("--ip_version=ipv6\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.pkt"
    good.write_text(ACTIVE_OPEN)
    bad = tmp_path / "bad.pkt"
    bad.write_text(ACTIVE_OPEN.replace("ack 1 <nop", "ack 2 <nop"))
    assert main([str(good)]) == 0
    assert main([str(good), str(bad), "--profile", "linux"]) == 1
    captured = capsys.readouterr()
    assert "ok   " in captured.out and "FAIL " in captured.err and "bad.pkt:6:" in captured.err


def test_code_snippets_are_evaluated_not_executed() -> None:
    names = {"tcpi_snd_cwnd": 10, "tcpi_rto": 300000}
    assert run_code("assert tcpi_snd_cwnd == 10\nprint(tcpi_rto)", names) is None
    assert run_code("assert 250000 <= tcpi_rto < 2 * 200000 and not tcpi_snd_cwnd < 3", names) is None
    problem = run_code("assert tcpi_snd_cwnd == 11, tcpi_snd_cwnd", names)
    assert problem == "assertion failed: tcpi_snd_cwnd == 11 (10); tcpi_snd_cwnd = 10"
    for code in ("__import__('os').system('true')", "import os", "x = 1", "assert tcpi_ca_state == 0"):
        with pytest.raises(Unsupported):
            run_code(code, names)


def test_a_snippet_the_runner_cannot_evaluate_is_listed_as_skipped() -> None:
    result = run_text(ACTIVE_OPEN + "   +0 %{ assert tcpi_ca_state == 0 }%\n")
    assert any("tcpi_ca_state is not a tcp_info field" in s for s in result.skipped)
    exc = failure(ACTIVE_OPEN + "   +0 %{ assert tcpi_snd_cwnd == 9 }%\n")
    assert exc.line == 7 and "tcpi_snd_cwnd = 10" in exc.message


def test_descriptors_the_script_numbers_differently_are_mapped() -> None:
    script = ACTIVE_OPEN.replace("= 3", "= 7").replace("(3,", "(7,")
    script += "   +0 poll([{fd=7, events=POLLOUT, revents=POLLOUT}], 1, 0) = 1\n   +0 close(7) = 0\n"
    script += "   +0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 8\n   +0 close(8) = 0\n   +0 close(7) = -1 EBADF\n"
    assert run_text(script).events == 11


def test_tcp_info_fields_are_compared_and_unknown_ones_named() -> None:
    exc = failure(ACTIVE_OPEN + "   +0 getsockopt(3, SOL_TCP, TCP_INFO, {tcpi_snd_cwnd=11}, ...) = 0\n")
    assert "tcpi_snd_cwnd: expected 11 vs actual 10" in exc.message
    with pytest.raises(DrillError, match="tcpi_reordering"):
        run_text(ACTIVE_OPEN + "   +0 getsockopt(3, SOL_TCP, TCP_INFO, {tcpi_reordering=3}, ...) = 0\n")


def test_proc_writes_and_microsecond_rto_min_are_mapped() -> None:
    effect = apply_command(
        'echo "4096 87380 6291456" > /proc/sys/net/ipv4/tcp_rmem\nsysctl -q net.ipv4.tcp_rto_min_us=50000',
        TcpConfig(),
        LINUX,
    )
    assert effect.tcp.rcvbuf == 87380 and effect.tcp.rto_min == 0.05 and not effect.skipped
