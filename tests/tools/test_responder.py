"""The responder: the compiled matcher agrees with the naive one, answers are built right, and the
example rule sets answer the kernel's arping, ping, a TCP client and a UDP client over a TAP."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.link.test_udp import linked_pair
from usernet.drivers.host import Host
from usernet.link.base import Link
from usernet.link.clock import VirtualClock
from usernet.link.memory import MemoryWire
from usernet.link.packet import prepare_veth, veth_link
from usernet.link.sandbox import Sandbox
from usernet.programs import find
from usernet.stack import Interface, InterfaceConfig
from usernet.stack.tcp.states import State
from usernet.tools.query import Matcher, Packet, Query
from usernet.tools.responder import Responder, Station, load_rules, serve, simulate, tcp_answer
from usernet.wire import (
    ACK,
    FIN,
    RST,
    SYN,
    emit_arp,
    emit_ethernet,
    emit_icmp,
    emit_ipv4_header,
    emit_tcp,
    emit_udp,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "responders"
MACS = [bytes.fromhex(h) for h in ("020000000001", "020000000002", "ffffffffffff")]
IPS = [socket.inet_aton(a) for a in ("192.0.2.1", "192.0.2.2", "192.0.2.50", "198.51.100.7")]
PORTS = [7, 80, 2323, 4210]
FLAGS = [SYN, SYN | ACK, ACK, FIN | ACK, RST, ACK | 0x08]
PAYLOADS = [b"", b"HELLO", b"GET temp\n", b"x" * 7]


def build(kind: str, src_mac: bytes, dst_mac: bytes, src: bytes, dst: bytes, a: int, b: int, x: int, data: bytes,
          ttl: int) -> bytes:  # fmt: skip  # the generator's knobs, one per strategy below
    """A frame of `kind` from the generated knobs: ARP op/addresses, ICMP type, UDP or TCP ports/flags."""
    if kind == "arp":
        buf = bytearray(42)
        emit_ethernet(buf, 0, dst_mac, src_mac, 0x0806)
        emit_arp(buf, 14, 1 + x % 2, src_mac, src, bytes(6), dst)
        return bytes(buf)
    l4 = {"icmp": 8, "udp": 8, "tcp": 20}[kind] + len(data)
    buf = bytearray(34 + l4)
    emit_ethernet(buf, 0, dst_mac, src_mac, 0x0800)
    proto = {"icmp": 1, "udp": 17, "tcp": 6}[kind]
    emit_ipv4_header(buf, 14, src, dst, proto, l4, ttl=ttl)
    if kind == "icmp":
        emit_icmp(buf, 34, (0, 8)[x % 2], 0, (a << 16) | b, data)
    elif kind == "udp":
        emit_udp(buf, 34, src, dst, a, b, data)
    else:
        emit_tcp(buf, 34, src, dst, a, b, 1000 + x, 2000, FLAGS[x % len(FLAGS)], 65535, b"", data)
    return bytes(buf)


packets = st.builds(
    build,
    st.sampled_from(["arp", "icmp", "udp", "tcp"]),
    st.sampled_from(MACS),
    st.sampled_from(MACS),
    st.sampled_from(IPS),
    st.sampled_from(IPS),
    st.sampled_from(PORTS),
    st.sampled_from(PORTS),
    st.integers(0, 11),
    st.sampled_from(PAYLOADS),
    st.sampled_from([1, 63, 64]),
)

#: Fields a generated query may name, and the values they take in generated packets.
DOMAINS: dict[str, list[Any]] = {
    "eth_src": MACS, "eth_dst": MACS, "arp_op": [1, 2], "arp_tpa": IPS, "arp_spa": IPS,
    "ip_src": IPS, "ip_dst": IPS, "ip_protocol": [1, 6, 17], "ip_ttl": [1, 63, 64],
    "icmp_type": [0, 8], "icmp_code": [0], "udp_sport": PORTS, "udp_dport": PORTS, "udp_payload": PAYLOADS,
    "tcp_sport": PORTS, "tcp_dport": PORTS, "tcp_flags": FLAGS, "tcp_payload": PAYLOADS,
}  # fmt: skip  # a table


def _even(value: Any) -> bool:
    return (value[-1] if isinstance(value, bytes) and value else value if isinstance(value, int) else 0) % 2 == 0


@st.composite
def specs(draw: st.DrawFn, name: str) -> Any:
    domain = DOMAINS[name]
    kind = draw(st.sampled_from(["value", "set", "range", "predicate"]))
    if kind == "value":
        return draw(st.sampled_from(domain))
    if kind == "set":
        return draw(st.sets(st.sampled_from(domain), min_size=1, max_size=3))
    if kind == "range" and isinstance(domain[0], int):
        low = draw(st.integers(0, 80))
        return range(low, low + draw(st.integers(1, 4000)))
    return _even


@st.composite
def queries(draw: st.DrawFn) -> Query:
    names = draw(st.lists(st.sampled_from(sorted(DOMAINS)), max_size=4, unique=True))
    return Query(**{name: draw(specs(name)) for name in names})


@settings(max_examples=300, deadline=None)
@given(st.lists(queries(), min_size=1, max_size=25), st.lists(packets, min_size=1, max_size=20))
def test_compiled_matcher_selects_exactly_what_the_naive_matcher_selects(
    rules: list[Query], frames: list[bytes]
) -> None:
    matcher = Matcher(rules)
    for frame in frames:
        packet = Packet(frame)
        assert matcher.match(packet) == matcher.naive(packet)


def test_the_matcher_dispatches_on_fixed_fields_instead_of_trying_every_query() -> None:
    """500 queries on distinct ports: a packet reaches a leaf holding only the one for its port."""
    rules = [Query(udp_dport=port, ip_dst="192.0.2.2") for port in range(1000, 1500)]
    matcher = Matcher(rules)
    frame = build("udp", MACS[0], MACS[1], IPS[0], IPS[1], 5, 1234, 0, b"", 64)
    packet = Packet(frame)
    assert matcher.match(packet) == [234]
    assert matcher.depth() == 2
    tried: list[tuple[str, str]] = []

    def counting(p: Packet, layer: str, name: str) -> Any:
        tried.append((layer, name))
        return p.field(layer, name)

    Matcher(rules, counting).match(packet)
    assert len(tried) == 2  # one lookup per dispatch level, no test at the leaf


def test_queries_refuse_unknown_fields_and_bad_addresses() -> None:
    with pytest.raises(ValueError, match="'tcp_flag' is not a packet field"):
        Query(tcp_flag=SYN)
    with pytest.raises(ValueError, match="not a MAC address"):
        Query(eth_src="02:00")
    net = Matcher([Query(ip_dst="192.0.2.0/25")])
    assert net.match(Packet(build("udp", MACS[0], MACS[1], IPS[0], IPS[2], 1, 2, 0, b"", 64))) == [0]
    assert net.match(Packet(build("udp", MACS[0], MACS[1], IPS[0], IPS[3], 1, 2, 0, b"", 64))) == []


def test_tcp_answer_swaps_the_flow_and_acknowledges_what_the_segment_carried() -> None:
    syn = Packet(build("tcp", MACS[0], MACS[1], IPS[0], IPS[1], 40000, 2323, 0, b"", 64))
    assert syn.tcp is not None and syn.tcp.flags == SYN
    answer = Packet(tcp_answer(syn, SYN, seq=77, mss=1460))
    assert answer.tcp is not None and answer.ip is not None and answer.eth is not None
    assert (answer.ip.src, answer.ip.dst, answer.eth.dst) == (IPS[1], IPS[0], MACS[0])
    assert (answer.tcp.sport, answer.tcp.dport) == (2323, 40000)
    assert (answer.tcp.seq, answer.tcp.ack, answer.tcp.flags, answer.tcp.mss) == (77, 1001, SYN | ACK, 1460)
    data = Packet(build("tcp", MACS[0], MACS[1], IPS[0], IPS[1], 40000, 2323, 2, b"x" * 7, 64))
    reply = Packet(tcp_answer(data, 0))
    assert reply.tcp is not None and (reply.tcp.seq, reply.tcp.ack) == (2000, 1002 + 7)


def test_fake_tcp_service_in_simulation_against_usernets_own_tcp() -> None:
    """A usernet client and the banner service on a MemoryWire, on a virtual clock: handshake,
    banner, the client's close answered by the service's FIN; nothing retransmitted."""
    clock = VirtualClock()
    wire = MemoryWire(clock, latency=0.001)
    iface = Interface(InterfaceConfig.from_strings(wire.a.mac, ["192.0.2.2/24"]))
    host = Host(wire.a, iface)
    station = Station(load_rules(str(EXAMPLES / "tcp_banner.py")), wire.b)
    host.start(0.0)
    conn = iface.tcp.connect((socket.inet_aton("192.0.2.60"), 2323), 0.0)
    received = b""
    for _ in range(10_000):
        now = clock()
        host.pump(now)
        received += conn.receive()
        if received.endswith(b"\r\n") and conn.state is State.ESTABLISHED:
            conn.close(now)
        host.flush(now)
        station.step(now)
        if conn.state is State.TIME_WAIT or conn.error is not None:
            break
        deadlines = [d for d in (host.deadline(), station.deadline()) if d is not None]
        clock.set(max(now, min(deadlines)))
    assert received == b"220 usernet responder: nothing to see here\r\n"
    assert conn.state is State.TIME_WAIT and conn.error is None
    assert iface.stats().get("tcp_retransmits", 0) == 0
    counters = station.responder.counters()
    assert (counters["syn"], counters["handshake done"], counters["fin"]) == (1, 1, 1)


def _udp_to_device(payload: bytes, sport: int = 5555) -> bytes:
    return build("udp", MACS[0], MACS[1], IPS[0], socket.inet_aton("192.0.2.70"), sport, 4210, 0, payload, 64)


def test_the_device_double_keeps_a_state_per_peer() -> None:
    responder = load_rules(str(EXAMPLES / "udp_device.py"))

    def ask(payload: bytes, sport: int = 5555) -> bytes:
        (answer,) = simulate(responder, [(0.0, _udp_to_device(payload, sport))])
        udp = Packet(answer[1]).udp
        assert udp is not None
        return bytes(udp.payload)

    assert ask(b"GET temp") == b"ERR\n"  # no session yet
    assert ask(b"HELLO") == b"HELLO thermostat 1.0\n"
    assert ask(b"SET target 23") == b"OK target 23\n"
    assert ask(b"GET target") == b"target 23\n"
    assert ask(b"GET target", sport=6666) == b"ERR\n"  # another peer, another conversation
    assert ask(b"BYE") == b"BYE\n"
    assert ask(b"GET temp") == b"ERR\n"
    counters = responder.counters()
    assert (counters["hello"], counters["error"], counters["set target"], counters["get target"]) == (1, 3, 1, 1)


def test_a_rules_file_without_a_responder_is_refused(tmp_path: Path) -> None:
    rules = tmp_path / "rules.py"
    rules.write_text("x = 1\n")
    with pytest.raises(ValueError, match="must define `responder = Responder"):
        load_rules(str(rules))
    with pytest.raises(ValueError, match="rule names must be unique"):
        Responder([*load_rules(str(EXAMPLES / "arp_icmp.py")).rules] * 2)


# -- over a TAP, against the kernel ----------------------------------------------------------


@contextlib.contextmanager
def _serving(sandbox: Sandbox, example: str, packet: bool = False) -> Iterator[Responder]:
    """The example's responder on a TAP in `sandbox` (or with `packet`, an AF_PACKET link on a
    veth pair), on a thread, until the block ends."""
    responder = load_rules(str(EXAMPLES / example))
    link: Link = veth_link(sandbox) if packet else sandbox.create_tap("usernet0", host_address="192.0.2.1/24")
    stop = threading.Event()
    errors: list[BaseException] = []

    def body() -> None:
        try:
            serve(responder, link, until=lambda now: stop.is_set(), wait=0.01)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    try:
        yield responder
    finally:
        stop.set()
        thread.join(5)
        link.close()
        assert not thread.is_alive() and not errors, errors


@pytest.mark.network
@pytest.mark.parametrize("packet", [False, True], ids=["tap", "af_packet"])
def test_arp_icmp_responder_answers_the_kernels_arping_and_ping(sandbox: Sandbox, packet: bool) -> None:
    with _serving(sandbox, "arp_icmp.py", packet) as responder:
        arping = sandbox.run(
            [find("arping"), "-c", "2", "-w", "5", "-I", "usernet0", "192.0.2.53"], capture_output=True, text=True
        )
        assert arping.returncode == 0, arping.stdout + arping.stderr
        assert "02:00:5e:00:02:35" in arping.stdout.lower()
        ping = sandbox.run(
            [find("ping"), "-c", "3", "-i", "0.2", "-W", "2", "192.0.2.57"], capture_output=True, text=True
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert "3 received" in ping.stdout
    counters = responder.counters()
    assert counters["ping"] == 3 and counters["arp who-has"] >= 3


@pytest.mark.network
def test_fake_tcp_service_completes_handshakes_and_sends_its_banner(sandbox: Sandbox) -> None:
    with _serving(sandbox, "tcp_banner.py") as responder:
        for _ in range(2):
            sock = sandbox.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(("192.0.2.60", 2323))
            banner = b""
            while not banner.endswith(b"\r\n"):
                banner += sock.recv(100)
            assert banner == b"220 usernet responder: nothing to see here\r\n"
            sock.sendall(b"hello?\n")
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(100) == b""  # the responder's FIN
            sock.close()
        nc = sandbox.run([find("nc"), "-w", "3", "-N", "192.0.2.60", "2323"], input=b"", capture_output=True)
        assert nc.stdout == b"220 usernet responder: nothing to see here\r\n", nc.stderr
    counters = responder.counters()
    assert counters["syn"] == 3 and counters["handshake done"] == 3 and counters["fin"] == 3


@pytest.mark.network
def test_device_double_answers_a_kernel_udp_client(sandbox: Sandbox) -> None:
    with _serving(sandbox, "udp_device.py"):
        sock = sandbox.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(5)
        sock.connect(("192.0.2.70", 4210))
        answers = []
        for request in (b"HELLO", b"GET temp", b"SET target 25", b"GET target", b"BYE"):
            sock.send(request)
            answers.append(sock.recv(100))
    assert answers == [b"HELLO thermostat 1.0\n", b"temp 21.5\n", b"OK target 25\n", b"target 25\n", b"BYE\n"]


@pytest.mark.network
def test_respond_command_on_a_packet_link_answers_the_kernels_ping(sandbox: Sandbox) -> None:
    prepare_veth(sandbox)
    respond = sandbox.popen(
        [sys.executable, "-m", "usernet.cli", "respond", str(EXAMPLES / "arp_icmp.py"), "--link", "packet:usernet0p",
         "--duration", "30"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip  # the command line as one reads it
    try:
        assert respond.stdout is not None
        assert respond.stdout.readline() == "respond: on packet:usernet0p\n"
        ping = sandbox.run(["ping", "-c", "2", "-i", "0.2", "-W", "2", "192.0.2.55"], capture_output=True, text=True)
        assert "2 received" in ping.stdout, ping.stdout + ping.stderr
    finally:
        respond.terminate()
        respond.wait(10)


def test_a_responder_on_a_udp_link_needs_no_privileges() -> None:
    """The responder on one end of a UdpLink pair (QEMU's socket netdev format), frames on loopback."""
    ours, theirs = linked_pair()
    try:
        station = Station(load_rules(str(EXAMPLES / "arp_icmp.py")), ours)
        who_has = build("arp", MACS[0], b"\xff" * 6, IPS[0], socket.inet_aton("192.0.2.51"), 0, 0, 0, b"", 64)
        theirs.send(who_has)
        deadline = time.monotonic() + 5
        answers: list[bytes] = []
        while not answers and time.monotonic() < deadline:
            station.step(time.monotonic())
            answers = [bytes(f) for f in theirs.receive()]
            time.sleep(0.005)
        (answer,) = answers
        arp = Packet(answer).arp
        assert arp is not None and arp.op == 2 and arp.sha == bytes.fromhex("02005e000233")
    finally:
        ours.close()
        theirs.close()
