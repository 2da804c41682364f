"""Each form of the language becomes the event or value it means."""

from __future__ import annotations

from pathlib import Path

import pytest

from usernet.testing.drill import (
    AddressOf,
    Array,
    BitOr,
    Call,
    CodeEvent,
    CommandEvent,
    Direction,
    EchoedPacket,
    Endpoint,
    Eol,
    FastOpen,
    Field,
    IcmpPacket,
    IpInfo,
    Md5,
    Mss,
    Nop,
    Option,
    PacketEvent,
    RawOption,
    Sack,
    SackPermitted,
    Struct,
    Symbol,
    SyscallEvent,
    TcpPacket,
    Time,
    TimeKind,
    Timestamp,
    TruncatedString,
    UdpPacket,
    WindowScale,
    parse_file,
    parse_script,
)

SCRIPTS = Path(__file__).parent / "scripts"
REL0 = Time(TimeKind.RELATIVE, 0.0)


def one_event(line: str) -> object:
    script = parse_script(line + "\n")
    assert len(script.events) == 1
    return script.events[0]


def packet_of(line: str) -> PacketEvent:
    event = one_event(line)
    assert isinstance(event, PacketEvent)
    return event


# ---------------------------------------------------------------- times


@pytest.mark.parametrize(
    ("text", "time"),
    [
        ("0", Time(TimeKind.ABSOLUTE, 0.0)),
        ("1.25", Time(TimeKind.ABSOLUTE, 1.25)),
        ("+.1", Time(TimeKind.RELATIVE, 0.1)),
        ("+0", REL0),
        ("*", Time(TimeKind.ANY)),
        ("0.1~0.2", Time(TimeKind.ABSOLUTE_RANGE, 0.1, 0.2)),
        ("+0~+0.1", Time(TimeKind.RELATIVE_RANGE, 0.0, 0.1)),
        ("+.02 ~ +1.1", Time(TimeKind.RELATIVE_RANGE, 0.02, 1.1)),
    ],
)
def test_times(text: str, time: Time) -> None:
    assert packet_of(f"{text} > . 1:1(0) ack 1").time == time


def test_blocking_call_end_time() -> None:
    for text in ("+0...0.200", "+0 ... 0.2", "+0 ...0.2"):
        event = one_event(f"{text} accept(3, ..., ...) = 4")
        assert isinstance(event, SyscallEvent)
        assert event.time == REL0
        assert event.block_end == 0.2


# ---------------------------------------------------------------- system calls


def test_syscall_with_errno_and_note() -> None:
    event = one_event("+0 read(4, ..., 1000) = -1 EAGAIN (Resource temporarily unavailable)")
    assert event == SyscallEvent(REL0, "read", (4, ..., 1000), -1, "EAGAIN", "Resource temporarily unavailable")


def test_syscall_note_without_errno_and_errno_glued_to_note() -> None:
    first = one_event('+0 setsockopt(3, SOL_TCP, TCP_FASTOPEN_KEY, "", 0) = -1 (Invalid Argument)')
    assert isinstance(first, SyscallEvent)
    assert (first.result, first.errno, first.note) == (-1, None, "Invalid Argument")
    second = one_event("+0 write(4, ..., 100) = -1 EPIPE(Broken Pipe)")
    assert isinstance(second, SyscallEvent)
    assert (second.errno, second.note) == ("EPIPE", "Broken Pipe")


def test_syscall_without_arguments_and_spanning_lines() -> None:
    assert one_event("0 getpid() = 42") == SyscallEvent(Time(TimeKind.ABSOLUTE, 0.0), "getpid", (), 42)
    event = one_event("+0 setsockopt(3,\n    SOL_SOCKET,\n    SO_REUSEADDR, [1], 4)\n  = 0")
    assert isinstance(event, SyscallEvent)
    assert event.args == (3, Symbol("SOL_SOCKET"), Symbol("SO_REUSEADDR"), Array((1,)), 4)
    assert event.line == 1


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("...", ...),
        ("0xffffffff", 0xFFFFFFFF),
        ("-5", -5),
        ("SOL_SOCKET", Symbol("SOL_SOCKET")),
        ("O_RDWR|O_NONBLOCK", BitOr((Symbol("O_RDWR"), Symbol("O_NONBLOCK")))),
        ("SOCK_STREAM | SOCK_NONBLOCK | 4", BitOr((Symbol("SOCK_STREAM"), Symbol("SOCK_NONBLOCK"), 4))),
        ('"abc"', b"abc"),
        ('"\\x00\\x41\\n\\101\\\\\\""', b'\x00A\nA\\"'),
        ('"ab" "cd"', b"abcd"),
        ('"ab"...', TruncatedString(b"ab")),
        ("[]", Array(())),
        ("[1, [2]]", Array((1, Array((2,))))),
        ("{..., 1000}", Struct((..., 1000))),
        ("{onoff=1, linger=0}", Struct((Field("onoff", 1), Field("linger", 0)))),
        (
            '{sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.0.2.1")}',
            Struct(
                (
                    Field("sa_family", Symbol("AF_INET")),
                    Field("sin_port", Call("htons", (8080,))),
                    Field("sin_addr", Call("inet_addr", (b"192.0.2.1",))),
                )
            ),
        ),
        (
            "{msg_name(...)=..., msg_iov(1)=[{..., 10}], msg_flags=0}",
            Struct(
                (
                    Field("msg_name", ..., length=...),
                    Field("msg_iov", Array((Struct((..., 10)),)), length=1),
                    Field("msg_flags", 0),
                )
            ),
        ),
        (
            "[{fd=3, events=POLLIN|POLLOUT, revents=0}]",
            Array(
                (
                    Struct(
                        (
                            Field("fd", 3),
                            Field("events", BitOr((Symbol("POLLIN"), Symbol("POLLOUT")))),
                            Field("revents", 0),
                        )
                    ),
                )
            ),
        ),
        ("&addr", AddressOf(Symbol("addr"))),
        ("&[4]", AddressOf(Array((4,)))),
    ],
)
def test_argument_values(text: str, value: object) -> None:
    event = one_event(f"+0 f({text}) = 0")
    assert isinstance(event, SyscallEvent)
    assert event.args == (value,)


# ---------------------------------------------------------------- packets


def test_inbound_syn_with_options() -> None:
    event = packet_of("+0 < S 0:0(0) win 32792 <mss 1000,sackOK,TS val 7 ecr 0,nop,wscale 7>")
    assert event.direction is Direction.INBOUND
    assert event.packet == TcpPacket(
        "S",
        0,
        0,
        window=32792,
        options=(Mss(1000), SackPermitted(), Timestamp(7, 0), Nop(), WindowScale(7)),
    )
    assert (event.ip, event.src, event.dst, event.encapsulation) == (None, None, None, ())


def test_outbound_data_fields() -> None:
    packet = packet_of("+0 > P. 1:1001(1000) ack 1 win 257 urg 5").packet
    assert packet == TcpPacket("P.", 1, 1000, ack=1, window=257, urgent=5)
    assert isinstance(packet, TcpPacket) and packet.end_seq == 1001


def test_clauses_in_any_order() -> None:
    assert packet_of("+0 < . 1:1(0) win 10 ack 2").packet == TcpPacket(".", 1, 0, ack=2, window=10)


@pytest.mark.parametrize(
    ("text", "flags", "ace"),
    [
        (".", ".", None),
        ("-", "", None),
        ("SEWA", "SEWA", None),
        ("F.", "F.", None),
        ("P.6", "P.", 6),
        (".7", ".", 7),
        ("R", "R", None),
    ],
)
def test_flags(text: str, flags: str, ace: int | None) -> None:
    packet = packet_of(f"+0 > {text} 1:1(0)").packet
    assert isinstance(packet, TcpPacket)
    assert (packet.flags, packet.ace) == (flags, ace)


def test_any_options_and_every_option_kind() -> None:
    assert packet_of("+0 > . 1:1(0) ack 1 <...>").packet.options is Ellipsis  # type: ignore[union-attr]  # not None here
    packet = packet_of(
        "+0 < . 1:1(0) ack 1 <eol,nop,sack 1:2 3:4,FO,FO 00ab,FOEXP 1234,md5 0f0e,ECN e1b 1 ceb 0>"
    ).packet
    assert isinstance(packet, TcpPacket)
    assert packet.options == (
        Eol(),
        Nop(),
        Sack(((1, 2), (3, 4))),
        FastOpen(),
        FastOpen("00ab"),
        FastOpen("1234", experimental=True),
        Md5("0f0e"),
        RawOption("ECN e1b 1 ceb 0"),
    )


@pytest.mark.parametrize(
    ("text", "ip"),
    [
        ("[ect0]", IpInfo(ecn="ect0")),
        ("[noecn]", IpInfo(ecn="noecn")),
        ("[ce]", IpInfo(ecn="ce")),
        ("(ect1)", IpInfo(ecn="ect1")),
        ("[ect01]", IpInfo(ecn="ect01")),
        ("[tos 0x2, ttl 64]", IpInfo(tos=2, ttl=64)),
        ("[ect0, flowlabel 0x12345]", IpInfo(ecn="ect0", flow_label=0x12345)),
        ("[df, opt (7 8)]", IpInfo(other=("df", "opt (7 8)"))),
    ],
)
def test_ip_notes(text: str, ip: IpInfo) -> None:
    assert packet_of(f"+0 > {text} . 1:1(0) ack 1").ip == ip


@pytest.mark.parametrize(
    ("text", "src", "dst"),
    [
        ("192.0.2.1:8080 > 192.168.0.1:50000", Endpoint("192.0.2.1", 8080), Endpoint("192.168.0.1", 50000)),
        ("192.0.2.1.8080 > 192.168.0.1.50000:", Endpoint("192.0.2.1", 8080), Endpoint("192.168.0.1", 50000)),
        ("192.0.2.1 > 192.168.0.1", Endpoint("192.0.2.1"), Endpoint("192.168.0.1")),
        ("8080 > 50000", Endpoint(None, 8080), Endpoint(None, 50000)),
        ("2001:db8::1.80 > 2001:db8::2.90", Endpoint("2001:db8::1", 80), Endpoint("2001:db8::2", 90)),
    ],
)
def test_explicit_addresses(text: str, src: Endpoint, dst: Endpoint) -> None:
    event = packet_of(f"+0 < {text} S 0:0(0) win 100")
    assert (event.src, event.dst) == (src, dst)
    assert event.packet == TcpPacket("S", 0, 0, window=100)


def test_udp_forms() -> None:
    assert packet_of("+0 < udp (100)").packet == UdpPacket(100)
    event = packet_of("+0 > udp 53 > 4000 (28)")
    assert (event.packet, event.src, event.dst) == (UdpPacket(28), Endpoint(None, 53), Endpoint(None, 4000))


@pytest.mark.parametrize(
    ("text", "icmp"),
    [
        ("icmp unreachable", IcmpPacket("unreachable")),
        ("icmp unreachable CODE [0:10(10)]", IcmpPacket("unreachable", "CODE", echoed=EchoedPacket("tcp", 10, 0))),
        (
            "icmp unreachable frag_needed mtu 840 [1:1001(1000)]",
            IcmpPacket("unreachable", "frag_needed", mtu=840, echoed=EchoedPacket("tcp", 1000, 1)),
        ),
        ("icmp packet_too_big mtu 1400", IcmpPacket("packet_too_big", mtu=1400)),
        (
            "icmp unreachable port_unreachable [udp (28)]",
            IcmpPacket("unreachable", "port_unreachable", echoed=EchoedPacket("udp", 28)),
        ),
        ("icmp echo_reply id 7 [raw (20)]", IcmpPacket("echo_reply", echo_id=7, echoed=EchoedPacket("raw", 20))),
    ],
)
def test_icmp_forms(text: str, icmp: IcmpPacket) -> None:
    assert packet_of(f"+0 < {text}").packet == icmp


def test_fuzz_block_and_outer_header_kept_as_text() -> None:
    packet = packet_of("+0 < P. 1:21(20) ack 1 win 257 {rep tcp src_port 0x0B63}").packet
    assert isinstance(packet, TcpPacket) and packet.fuzz == "rep tcp src_port 0x0B63"
    event = packet_of("+0 < ipv4 198.51.100.1 > 198.51.100.2: . 1:1(0) ack 1 win 9")
    assert event.encapsulation == ("ipv4 198.51.100.1 > 198.51.100.2:",)


# ---------------------------------------------------------------- commands, code, options


def test_commands_code_and_untimed_setup_and_cleanup() -> None:
    script = parse_script(
        "`./setup.sh\n  --twice`\n"
        "0 `sysctl -q net.ipv4.tcp_sack=0`\n"
        "+0 %{ assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd }%\n"
        "+0 %{\nassert 1\n}%\n"
        "`./cleanup.sh`\n"
    )
    assert script.init_command == CommandEvent(None, "./setup.sh\n  --twice")
    assert script.cleanup_command == CommandEvent(None, "./cleanup.sh")
    assert script.events == (
        CommandEvent(Time(TimeKind.ABSOLUTE, 0.0), "sysctl -q net.ipv4.tcp_sack=0"),
        CodeEvent(REL0, "assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd"),
        CodeEvent(REL0, "\nassert 1\n"),
    )
    assert [e.line for e in script.events] == [3, 4, 5]


def test_options_in_both_forms() -> None:
    script = parse_script(
        "--tolerance_usecs=10000\n--ip_version ipv4\n--verbose\n"
        '--define=CC="reno"\n--local_ip=192.168.0.1 --mss=1000\n'
        "0 close(3) = 0\n"
    )
    assert script.options == (
        Option("tolerance_usecs", "10000"),
        Option("ip_version", "ipv4"),
        Option("verbose"),
        Option("define", 'CC="reno"'),
        Option("local_ip", "192.168.0.1"),
        Option("mss", "1000"),
    )
    assert [o.line for o in script.options] == [1, 2, 3, 4, 5, 5]


def test_defines_replace_words_and_callers_win() -> None:
    source = "--define=COOKIE=abcd\n--define=MSS=1000\n0 < S 0:0(0) win 9 <mss MSS,FO COOKIE>\n"
    packet = parse_script(source).events[0].packet  # type: ignore[union-attr]  # not None here
    assert packet.options == (Mss(1000), FastOpen("abcd"))
    packet = parse_script(source, defines={"MSS": "536"}).events[0].packet  # type: ignore[union-attr]  # not None here
    assert packet.options == (Mss(536), FastOpen("abcd"))


def test_line_numbers_and_comments() -> None:
    script = parse_script("// head\n\n/* a\nb */ 0 close(3) = 0 // tail\n  +0 close(4) = 0\n")
    assert [e.line for e in script.events] == [4, 5]


# ---------------------------------------------------------------- the example scripts


def test_example_scripts_have_the_expected_shape() -> None:
    counts = {p.name: len(parse_file(p).events) for p in sorted(SCRIPTS.glob("*.pkt"))}
    assert counts == {
        "client_nonblocking.pkt": 20,
        "explicit_addresses.pkt": 25,
        "loss_recovery.pkt": 20,
        "server_handshake.pkt": 20,
        "syscall_values.pkt": 17,
    }
    handshake = parse_file(SCRIPTS / "server_handshake.pkt")
    assert handshake.init_command is not None and handshake.cleanup_command is not None
    synack = handshake.events[5]
    assert isinstance(synack, PacketEvent) and synack.line == 16
    assert synack.packet.options[0] == Mss(1460)  # type: ignore[union-attr]  # from --define
    recovery = parse_file(SCRIPTS / "loss_recovery.pkt")
    assert recovery.events[-1].time == Time(TimeKind.ANY)
    assert recovery.events[14].time == Time(TimeKind.ABSOLUTE_RANGE, 0.32, 0.33)
