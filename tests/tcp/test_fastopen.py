"""TCP Fast Open (RFC 7413): cookies, the option, data in the SYN both ways, and every fallback."""

from __future__ import annotations

from typing import Any

import pytest

from tests.tcp.net import A_IP, B_IP, PORT, Net
from tests.tcp.scripted import PEER, PEER_ISN, US, Scripted
from tests.tcp.scripted import PORT as US_PORT
from usernet.stack import TcpConfig, TcpConnection
from usernet.stack.tcp.isn import FastOpenCookies
from usernet.stack.tcp.states import State
from usernet.wire.tcp import ACK, PSH, SYN, encode_tcp_options, fastopen_option, parse_tcp

BOTH = TcpConfig(fastopen=3)
PLAIN = encode_tcp_options(mss=1460, wscale=0)


# -- cookies and the option ---------------------------------------------------------------


def test_cookies_are_per_client_and_server_and_survive_one_key_rotation() -> None:
    cookies = FastOpenCookies(b"k" * 16, period=100.0)
    cookie = cookies.make(10.0, A_IP, B_IP)
    assert len(cookie) == 8 and cookie == FastOpenCookies(b"k" * 16, 100.0).make(50.0, A_IP, B_IP)
    assert cookies.valid(10.0, A_IP, B_IP, cookie)
    assert not cookies.valid(10.0, bytes([192, 0, 2, 9]), B_IP, cookie)
    assert not cookies.valid(10.0, A_IP, bytes([192, 0, 2, 9]), cookie)
    assert not FastOpenCookies(b"j" * 16, 100.0).valid(10.0, A_IP, B_IP, cookie)
    assert cookies.make(110.0, A_IP, B_IP) != cookie  # the key rotated
    assert cookies.valid(150.0, A_IP, B_IP, cookie)  # the previous key still serves
    assert not cookies.valid(250.0, A_IP, B_IP, cookie)
    assert not cookies.valid(10.0, A_IP, B_IP, cookie[:4])


@pytest.mark.parametrize("cookie", [b"", b"\x01\x02\x03\x04", bytes(range(8)), bytes(range(16))])
def test_the_option_round_trips_after_the_others(cookie: bytes) -> None:
    options = encode_tcp_options(mss=1460, sack_permitted=True, timestamp=(1, 0), wscale=7, fastopen=cookie)
    assert len(options) % 4 == 0 and len(options) <= 40
    segment = bytes(20) + options
    assert fastopen_option(segment, len(segment)) == cookie


def test_the_option_absent_malformed_or_in_the_experimental_kind() -> None:
    assert fastopen_option(bytes(20) + PLAIN, 20 + len(PLAIN)) is None
    experimental = bytes([254, 12, 0xF9, 0x89]) + bytes(range(8))
    assert fastopen_option(bytes(20) + experimental, 32) == bytes(range(8))
    odd = bytes([34, 5, 1, 2, 3, 1, 1, 1])
    assert fastopen_option(bytes(20) + odd, 28) is None
    overrun = bytes([34, 30, 1, 2])
    assert fastopen_option(bytes(20) + overrun, 24) is None
    with pytest.raises(ValueError, match="4 to 16 bytes"):
        encode_tcp_options(fastopen=b"abc")


# -- two stacks ---------------------------------------------------------------------------


class Recorder:
    """A link that keeps a copy of every frame sent through it: the test's capture."""

    def __init__(self, link: Any, log: list[bytes]) -> None:
        self._link = link
        self._log = log

    def __getattr__(self, name: str) -> Any:
        return getattr(self._link, name)

    def send(self, frame: Any) -> None:
        self._log.append(bytes(frame))
        self._link.send(frame)


class Pair:
    """A client on A and a Fast Open listener on B, run on the virtual clock."""

    def __init__(self, client: TcpConfig = BOTH, server: TcpConfig = BOTH, qlen: int = 16) -> None:
        self.net = Net(tcp=client, tcp_b=server)
        self.log: list[bytes] = []
        for host in (self.net.a, self.net.b):
            host.link = Recorder(host.link, self.log)
        self.listener = self.net.b.iface.tcp.listen((B_IP, PORT))
        self.listener.fastopen = qlen
        self.net.sim.on_ready = lambda host, sock: None

    def run(self, seconds: float = 1.0) -> None:
        self.net.sim.run(seconds)

    def connect(self, data: bytes) -> TcpConnection:
        conn = self.net.a.iface.tcp.connect((B_IP, PORT), self.net.now(), fastopen=True)
        if data:
            conn.send(data, self.net.now())
        return conn

    def syns(self) -> list[tuple[int, bytes, bytes | None]]:
        """(flags, payload, Fast Open option) of every SYN either side sent, from the capture."""
        out = []
        for frame in self.log:
            mv = memoryview(frame)
            if mv[12:14] != b"\x08\x00" or mv[23] != 6:
                continue  # ARP
            src, dst = bytes(mv[26:30]), bytes(mv[30:34])
            seg = parse_tcp(mv[34:], src, dst)
            if seg.flags & SYN:
                out.append((seg.flags, bytes(seg.payload), fastopen_option(mv[34:], seg.header_length)))
        return out

    @property
    def a(self) -> dict[str, int]:
        return self.net.a.iface.counters.as_dict()

    @property
    def b(self) -> dict[str, int]:
        return self.net.b.iface.counters.as_dict()


@pytest.fixture
def pair() -> Pair:
    return Pair()


def _learn_cookie(pair: Pair) -> None:
    """A first connection asks for a cookie and gets it; closed again."""
    conn = pair.connect(b"")
    pair.run()
    assert conn.state == State.ESTABLISHED and not conn.fastopen_deferred
    server = pair.listener.accept()
    assert server is not None
    conn.close(pair.net.now())
    server.close(pair.net.now())
    pair.run(1.0)


def test_first_connection_asks_for_a_cookie_the_second_sends_data_in_its_syn(pair: Pair) -> None:
    _learn_cookie(pair)
    [(_, payload, request), (_, _, cookie)] = pair.syns()
    assert request == b"" and payload == b"" and cookie is not None and len(cookie) == 8
    assert pair.b["tcp_fastopen_cookie_requests"] == 1
    conn = pair.net.a.iface.tcp.connect((B_IP, PORT), pair.net.now(), fastopen=True)
    pair.run(0.1)
    assert conn.fastopen_deferred and conn.state == State.SYN_SENT
    assert len(pair.syns()) == 2  # the SYN waits for data
    conn.send(b"GET / HTTP/1.0\r\n\r\n", pair.net.now())
    pair.run(0.0015)  # the SYN crossed the wire (1 ms), the SYN-ACK is on its way back
    server = pair.listener.accept()
    assert server is not None and server.state == State.SYN_RECEIVED
    assert server.receive() == b"GET / HTTP/1.0\r\n\r\n"
    server.send(b"HTTP/1.0 200 OK\r\n\r\n", pair.net.now())
    pair.run()
    assert conn.state == server.state == State.ESTABLISHED
    assert conn.receive() == b"HTTP/1.0 200 OK\r\n\r\n"
    _syn, payload, sent_cookie = pair.syns()[2]
    assert payload == b"GET / HTTP/1.0\r\n\r\n" and sent_cookie == cookie
    assert pair.a["tcp_fastopen_active"] == 1 and pair.b["tcp_fastopen_passive"] == 1
    assert conn.info()["fastopen_data"] == server.info()["fastopen_data"] == 18
    assert conn.info()["retransmits"] == 0 and conn.info()["unacked"] == 0


def test_a_bad_cookie_gets_a_fresh_one_and_the_data_is_sent_again(pair: Pair) -> None:
    _learn_cookie(pair)
    pair.net.b.iface.tcp.fastopen_cookies = FastOpenCookies(b"other key", 3600.0)  # the server's key changed
    conn = pair.connect(b"hello")
    pair.run()
    server = pair.listener.accept()
    assert server is not None and conn.state == server.state == State.ESTABLISHED
    assert server.receive() == b"hello" and conn.info()["unacked"] == 0
    assert pair.b["tcp_fastopen_cookie_invalid"] == 1 and pair.b["tcp_fastopen_passive"] == 0
    assert pair.a["tcp_fastopen_active_fail"] == 1
    syns = pair.syns()
    assert syns[2][1] == b"hello" and syns[3][2] == FastOpenCookies(b"other key", 3600.0).make(0, A_IP, B_IP)
    pair.connect(b"world")
    pair.run()
    other = pair.listener.accept()
    assert other is not None and other.receive() == b"world" and pair.b["tcp_fastopen_passive"] == 1


def test_a_listener_without_fast_open_acknowledges_the_syn_alone(pair: Pair) -> None:
    _learn_cookie(pair)
    pair.listener.fastopen = 0  # TCP_FASTOPEN off: cookies are neither checked nor handed out
    conn = pair.connect(b"hello")
    pair.run()
    accepted = pair.listener.accept()
    assert accepted is not None and accepted.receive() == b"hello"
    assert pair.a["tcp_fastopen_active_fail"] == 1 and pair.b["tcp_fastopen_passive"] == 0
    assert pair.syns()[2][1] == b"hello" and pair.syns()[3][2] is None
    assert conn.info()["unacked"] == 0


def test_the_fast_open_queue_limits_connections_waiting_for_their_handshake() -> None:
    pair = Pair(qlen=1)
    _learn_cookie(pair)
    first = pair.connect(b"one")
    second = pair.connect(b"two")
    pair.run()
    assert first.state == second.state == State.ESTABLISHED
    assert pair.b["tcp_fastopen_passive"] == pair.b["tcp_fastopen_overflow"] == 1
    received = set()
    while (conn := pair.listener.accept()) is not None:
        received.add(conn.receive())
    assert received == {b"one", b"two"}


def test_a_client_without_the_client_bit_sends_no_option() -> None:
    pair = Pair(client=TcpConfig(fastopen=2))
    conn = pair.connect(b"x")
    pair.run()
    assert conn.state == State.ESTABLISHED and all(option is None for _, _, option in pair.syns())


def scripted_client_with_cookie() -> tuple[Scripted, bytes]:
    """A Fast Open client that asked a scripted server for a cookie and got one."""
    s = Scripted(TcpConfig(fastopen=1))
    first = s.iface.tcp.connect((PEER, 8080), 0.0, fastopen=True)
    [syn] = s.flush()
    assert fastopen_option(syn.payload.obj[34:], syn.header_length) == b""  # type: ignore[index]
    cookie = bytes(range(8))
    options = encode_tcp_options(mss=1400, fastopen=cookie)
    s.inject(PEER_ISN, syn.seq + 1, SYN | ACK, options=options, sport=8080, dport=first.local[1])
    s.flush()
    first.abort(0.0)
    s.flush()
    return s, cookie


def test_a_lost_syn_with_data_is_sent_again_without_it_and_nothing_is_lost() -> None:
    s, cookie = scripted_client_with_cookie()
    conn = s.iface.tcp.connect((PEER, 8080), 0.0, fastopen=True)
    assert s.flush() == []
    conn.send(b"payload", 0.0)
    [syn] = s.flush()
    assert bytes(syn.payload) == b"payload"
    assert fastopen_option(syn.payload.obj[34:], syn.header_length) == cookie  # type: ignore[index]
    [(_, again)] = s.advance(1.5)
    assert again.flags == SYN and not bytes(again.payload)
    # the server got the first one after all: its SYN-ACK covers the data
    s.inject(PEER_ISN, syn.seq + 8, SYN | ACK, options=PLAIN, sport=8080, dport=conn.local[1])
    s.flush()
    assert conn.state == State.ESTABLISHED and conn.info()["unacked"] == 0
    assert s.iface.counters.tcp_fastopen_active == 1


def test_syn_data_is_bounded_by_the_mss_the_server_gave_with_its_cookie() -> None:
    s, _ = scripted_client_with_cookie()
    conn = s.iface.tcp.connect((PEER, 8080), 0.0, fastopen=True)
    conn.send(b"z" * 5000, 0.0)
    [syn] = s.flush()
    assert len(syn.payload) == 1400
    s.inject(PEER_ISN, syn.seq + 1, SYN | ACK, options=PLAIN, sport=8080, dport=conn.local[1])
    out = s.flush()
    assert out[0].seq == syn.seq + 1 and sum(len(seg.payload) for seg in out) == 5000  # all again, in order
    assert s.iface.counters.tcp_fastopen_active_fail == 1


def test_a_server_takes_syn_data_only_with_a_valid_cookie() -> None:
    s = Scripted(BOTH)
    listener = s.iface.tcp.listen((US, US_PORT))
    listener.fastopen = 4
    good = s.iface.tcp.fastopen_cookies.make(0.0, PEER, US)
    s.inject(PEER_ISN, 0, SYN, b"early", options=encode_tcp_options(mss=1460, fastopen=good))
    [synack] = s.flush()
    assert synack.ack == PEER_ISN + 6
    assert fastopen_option(synack.payload.obj[34:], synack.header_length) is None  # type: ignore[index]
    conn = listener.accept()
    assert conn is not None and conn.state == State.SYN_RECEIVED and conn.receive() == b"early"
    assert listener.accept() is None
    s.inject(PEER_ISN + 6, synack.seq + 1, ACK | PSH, b" and late")
    s.flush()
    assert conn.state == State.ESTABLISHED and conn.receive() == b" and late"
    assert listener.accept() is None and listener.half_open == 0
    s.inject(PEER_ISN + 50_000, 0, SYN, b"forged", options=encode_tcp_options(mss=1460, fastopen=bytes(8)), sport=41000)
    [synack] = s.flush()
    assert synack.ack == PEER_ISN + 50_001 and listener.accept() is None
