"""TCP through the loop's methods: two stacks on an in-memory wire, one loop, both base loops."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from typing import Any

import pytest

from tests.aio.conftest import A_IP, B_IP, Pair, connect_from_b, serve_on_b
from usernet.aio.server import Server
from usernet.aio.stream import DELIVERY, StreamTransport


class Recorder(asyncio.Protocol):
    """Every callback in order; `keep_open` is what eof_received answers."""

    def __init__(self, keep_open: bool = False) -> None:
        self.keep_open = keep_open
        self.events: list[str] = []
        self.data = bytearray()
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.eof = asyncio.get_running_loop().create_future()
        self.arrived = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.events.append("made")
        self.transport = transport  # type: ignore[assignment]  # connection_made's transport is this kind

    def data_received(self, data: bytes) -> None:
        assert self.events[0] == "made" and "lost" not in self.events
        if self.events[-1] != "data":
            self.events.append("data")
        self.data += data
        self.arrived.set()

    def eof_received(self) -> bool:
        self.events.append("eof")
        self.eof.set_result(None)
        return self.keep_open

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: Exception | None) -> None:
        assert "lost" not in self.events
        self.events.append("lost")
        self.lost.set_result(exc)

    async def until(self, size: int) -> bytes:
        while len(self.data) < size:
            self.arrived.clear()
            await self.arrived.wait()
        return bytes(self.data)


async def accepted(server: Server) -> StreamTransport:
    """The one connection `server` accepted (its handshake ends a little after the client's)."""
    while not server._clients:
        await asyncio.sleep(0.001)
    (peer,) = server._clients
    return peer


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]  # connection_made's transport is this kind

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def test_streams_api_both_ways(pair: Pair) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        writer.write(line.upper())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> None:
        await serve_on_b(pair, Echo, 7)
        reader, writer = await asyncio.open_connection(B_IP, 7)
        assert isinstance(writer.transport, StreamTransport)
        for payload in (b"bytes", bytearray(b"bytearray"), memoryview(b"memoryview")):
            writer.write(payload)
            assert await reader.readexactly(len(payload)) == bytes(payload)
        writer.writelines([b"one ", b"two"])
        assert await reader.readexactly(7) == b"one two"
        writer.close()
        await writer.wait_closed()

        server = await asyncio.start_server(handle, port=0)
        port = server.sockets[0].getsockname()[1]
        assert server.sockets[0].getsockname() == ("0.0.0.0", port) and port > 0
        client, proto = await connect_from_b(pair, lambda: Recorder(), port)
        client.write(b"hello\n")
        assert await proto.lost is None  # type: ignore[attr-defined]  # the test's own protocol or server class
        assert proto.data == b"HELLO\n"  # type: ignore[attr-defined]  # the test's own protocol or server class
        server.close()
        await server.wait_closed()

    pair.run(main())


def test_callback_order_and_exactly_one_connection_lost(pair: Pair) -> None:
    async def main() -> None:
        await serve_on_b(pair, Echo, 7)
        transport, proto = await pair.loop.create_connection(Recorder, B_IP, 7)
        transport.write(b"x" * 3000)
        await proto.until(3000)
        transport.close()
        assert transport.is_closing() and not transport.is_reading()
        transport.close()
        transport.abort()
        transport.write(b"ignored after close")
        assert await proto.lost is None
        for _ in range(5):
            await asyncio.sleep(0)
        assert proto.events == ["made", "data", "lost"]

    pair.run(main())


def test_an_answer_leaves_in_the_callback_that_brought_the_request(pair: Pair) -> None:
    # Request/response latency: what data_received writes is on the link before the loop
    # runs anything else, not one iteration later behind a call_soon flush.
    async def main() -> None:
        link = pair.b.link
        seen: list[int] = []

        class Answer(Echo):
            def data_received(self, data: bytes) -> None:
                before = link.tx_frames
                asyncio.get_running_loop().call_soon(lambda: seen.append(link.tx_frames - before))
                super().data_received(data)

        await serve_on_b(pair, Answer, 7)
        transport, proto = await pair.loop.create_connection(Recorder, B_IP, 7)
        transport.write(b"hello")  # may arrive with the handshake, before the pump delivers anything
        await proto.until(5)
        proto.data.clear()
        seen.clear()
        for size in (1, 100, 3000):
            transport.write(b"q" * size)
            await proto.until(size)
            proto.data.clear()
        assert seen and all(sent >= 1 for sent in seen), seen
        transport.close()
        await proto.lost

    pair.run(main())


def test_eof_received_decides_half_close(pair: Pair) -> None:
    async def main() -> None:
        # The peer answers only after our EOF, then closes: keep_open lets us read the answer.
        class AnswerAtEof(Recorder):
            def eof_received(self) -> bool:
                assert self.transport is not None
                self.transport.write(bytes(reversed(self.data)))
                self.transport.close()
                return True

        await serve_on_b(pair, lambda: AnswerAtEof(), 9)
        transport, proto = await pair.loop.create_connection(lambda: Recorder(keep_open=True), B_IP, 9)
        assert transport.can_write_eof()
        transport.write(b"abc")
        transport.write_eof()
        transport.write_eof()
        with pytest.raises(RuntimeError, match="write_eof"):
            transport.write(b"more")
        await proto.eof
        assert bytes(proto.data) == b"cba" and not transport.is_closing()
        transport.close()
        assert await proto.lost is None
        assert proto.events == ["made", "data", "eof", "lost"]

        # Returning False from eof_received closes our side at once.
        closer = await serve_on_b(pair, lambda: Recorder(), 0)
        port = closer.sockets[0].getsockname()[1]
        transport, proto = await pair.loop.create_connection(Recorder, B_IP, port)
        (await accepted(closer)).write_eof()
        assert await proto.lost is None
        assert proto.events == ["made", "eof", "lost"]

    pair.run(main())


def test_extra_info_and_socket_options(pair: Pair) -> None:
    async def main() -> None:
        await serve_on_b(pair, Echo, 7)
        transport, _ = await pair.loop.create_connection(Recorder, B_IP, 7, local_addr=(A_IP, 0))
        conn = transport._sock  # type: ignore[attr-defined]  # the test looks inside on purpose
        sockname = transport.get_extra_info("sockname")
        assert sockname[0] == A_IP and sockname[1] > 0
        assert transport.get_extra_info("peername") == (B_IP, 7)
        sock = transport.get_extra_info("socket")
        assert sock is transport.get_extra_info("socket")
        assert (sock.family, sock.type) == (socket.AF_INET, socket.SOCK_STREAM)
        assert sock.getsockname() == sockname and sock.getpeername() == (B_IP, 7)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert conn.nodelay and sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        assert (conn.keepalive, conn.keepidle, conn.keepintvl, conn.keepcnt) == (True, 30, 5, 3)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 50000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 60000)
        assert conn.options["sndbuf"] == 50000 and conn.options["rcvbuf"] == 60000
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 60000
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1500)
        assert conn.user_timeout == 1.5 and sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 1500
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 64
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 5)
        assert conn.options["ttl"] == 5 and sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 5
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x10)  # not one of ours: remembered
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 0x10
        transport.close()
        assert transport.get_extra_info("sockname") == sockname
        assert transport.get_extra_info("peername") == (B_IP, 7)

    pair.run(main())


async def _fill_until_paused(
    transport: asyncio.WriteTransport, proto: Any, conn: Any, sent: bytearray, block: bytes
) -> None:
    """Write (while not paused) until the transport is paused and the peer's window is closed.

    Only then does the pause hold: before the window closes the stack keeps taking bytes, and a
    pause seen early may turn into a resume while the test looks (how early depends on the
    congestion window's growth and the machine's timing).
    """
    for _ in range(2000):
        paused = bool(proto.events) and proto.events[-1] == "pause"
        if paused and conn.snd_wnd == 0:
            return
        if not paused:
            transport.write(block)
            sent += block
        await asyncio.sleep(0.002)
    raise AssertionError(f"never paused with the window closed: events {proto.events[-4:]}, window {conn.snd_wnd}")


def test_a_reader_that_stops_pauses_the_writer_and_memory_stays_bounded(pair: Pair) -> None:
    async def main() -> None:
        server = await serve_on_b(pair, lambda: Recorder(), 7)
        transport, proto = await pair.loop.create_connection(Recorder, B_IP, 7)
        peer = await accepted(server)
        peer.pause_reading()
        peer.pause_reading()  # idempotent
        assert not peer.is_reading()
        conn = transport._sock  # type: ignore[attr-defined]  # the test looks inside on purpose
        block = os.urandom(65536)
        sent = bytearray()
        await _fill_until_paused(transport, proto, conn, sent, block)
        paused_at = len(proto.events)
        # The peer's stack holds its receive buffer full and closes its window: we see a zero window.
        for _ in range(500):
            if conn.snd_wnd == 0:
                break
            await asyncio.sleep(0.01)
        assert conn.snd_wnd == 0, f"the paused reader's window never closed: {conn.snd_wnd}"
        assert peer._sock.readable > peer._sock.options["rcvbuf"] // 2  # it piles up in the stack, unread
        written = len(sent)
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert conn.unsent <= conn.options["sndbuf"]
        assert transport.get_write_buffer_size() == written - conn.bytes_sent - conn.unsent
        peer.resume_reading()
        peer.resume_reading()
        assert peer.is_reading()
        received = await peer.get_protocol().until(written)
        assert "resume" in proto.events[paused_at:]
        assert hashlib.sha256(received).digest() == hashlib.sha256(sent).digest()
        transport.close()

    pair.run(main())


def test_buffered_protocol_and_set_protocol_mid_stream(pair: Pair) -> None:
    class Buffered(asyncio.BufferedProtocol):
        def __init__(self) -> None:
            self.buf = bytearray(1000)
            self.got = bytearray()
            self.sizes: list[int] = []
            self.more = asyncio.Event()

        def get_buffer(self, sizehint: int) -> memoryview:
            return memoryview(self.buf)

        def buffer_updated(self, nbytes: int) -> None:
            self.sizes.append(nbytes)
            self.got += self.buf[:nbytes]
            self.more.set()

        def eof_received(self) -> bool:
            return False

    async def main() -> None:
        await serve_on_b(pair, Echo, 7)
        transport, first = await pair.loop.create_connection(Recorder, B_IP, 7)
        transport.write(b"to the first protocol")
        await first.until(21)
        second = Buffered()
        transport.set_protocol(second)
        assert transport.get_protocol() is second
        payload = os.urandom(5000)
        transport.write(payload)
        while len(second.got) < len(payload):
            second.more.clear()
            await second.more.wait()
        assert bytes(second.got) == payload and max(second.sizes) <= 1000
        assert bytes(first.data) == b"to the first protocol"
        transport.close()

    pair.run(main())


def test_abort_with_unread_bytes_resets_and_the_peer_hears_connection_reset(pair: Pair) -> None:
    async def main() -> None:
        server = await serve_on_b(pair, lambda: Recorder(), 7)
        transport, proto = await pair.loop.create_connection(Recorder, B_IP, 7)
        peer = await accepted(server)
        transport.pause_reading()
        peer.write(b"bytes nobody reads")
        while not pair.a.iface.tcp.connections()[0].readable:
            await asyncio.sleep(0.001)
        transport.abort()  # as a kernel socket closed with unread data: RST
        assert await proto.lost is None
        exc = await peer.get_protocol().lost
        assert isinstance(exc, ConnectionResetError)

    pair.run(main())


def test_abort_after_close_still_delivers_what_the_stack_took_then_a_fin(pair: Pair) -> None:
    # anyio's SocketStream.aclose: write_eof(), close(), one iteration, abort().
    async def main() -> None:
        server = await serve_on_b(pair, lambda: Recorder(), 7)
        transport, proto = await pair.loop.create_connection(Recorder, B_IP, 7)
        peer = await accepted(server)
        payload = os.urandom(200_000)  # within the stack's send buffer
        transport.write(payload)
        transport.write_eof()
        transport.close()
        await asyncio.sleep(0)
        transport.abort()
        assert await proto.lost is None
        recorder = peer.get_protocol()
        await recorder.eof
        assert bytes(recorder.data) == payload

    pair.run(main())


def test_connection_refused(pair: Pair) -> None:
    async def main() -> None:
        with pytest.raises(ConnectionRefusedError, match="Connect call failed"):
            await pair.loop.create_connection(Recorder, B_IP, 9)
        with pytest.raises(ExceptionGroup):
            await pair.loop.create_connection(Recorder, B_IP, 9, all_errors=True)

    pair.run(main())


def test_a_port_out_of_range_is_refused_as_a_kernel_socket_refuses_it(pair: Pair) -> None:
    """Not cut to 16 bits on the way (70000 would have reached port 4464)."""

    async def main() -> None:
        with pytest.raises(OverflowError, match="port must be 0-65535, not 70000"):
            await pair.loop.create_connection(Recorder, B_IP, 70000)
        with pytest.raises(OverflowError, match="not 70001"):
            await pair.loop.create_connection(Recorder, B_IP, 9, local_addr=("", 70001))
        with pytest.raises(OverflowError, match="not 70000"):
            await pair.loop.create_server(Recorder, B_IP, 70000)
        with pytest.raises(OverflowError, match="not -1"):
            await pair.loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=(B_IP, -1))

    pair.run(main())


def test_sendfile_through_the_fallback(pair: Pair, tmp_path: os.PathLike[str]) -> None:
    async def main() -> None:
        path = os.path.join(tmp_path, "blob")
        content = os.urandom(700_000)
        with open(path, "wb") as f:
            f.write(content)
        server = await serve_on_b(pair, lambda: Recorder(), 7)
        transport, _proto = await pair.loop.create_connection(Recorder, B_IP, 7)
        peer = await accepted(server)
        with open(path, "rb") as f:
            sent = await pair.loop.sendfile(transport, f, offset=1000, count=600_000)
            assert sent == 600_000 and f.tell() == 601_000
        assert await peer.get_protocol().until(600_000) == content[1000:601_000]
        transport.close()
        with open(path, "rb") as f, pytest.raises(ConnectionError):
            await pair.loop.sendfile(transport, f)

    pair.run(main())


def test_kernel_socket_connected_through_the_loop(pair: Pair) -> None:
    async def main() -> None:
        await serve_on_b(pair, Echo, 7)
        loop = pair.loop
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        await loop.sock_connect(sock, (B_IP, 7))
        await loop.sock_sendall(sock, b"through sock_sendall")
        got = b""
        while len(got) < 20:
            got += await loop.sock_recv(sock, 100)
        assert got == b"through sock_sendall"
        transport, proto = await loop.create_connection(Recorder, sock=sock)
        assert isinstance(transport, StreamTransport) and transport.get_extra_info("peername") == (B_IP, 7)
        transport.write(b"and now a transport")
        assert await proto.until(19) == b"and now a transport"
        transport.close()
        await proto.lost
        assert sock.fileno() == -1  # closed with the transport

    pair.run(main())


def test_names(pair: Pair) -> None:
    async def main() -> None:
        loop = pair.loop
        infos = await loop.getaddrinfo(B_IP, 80, type=socket.SOCK_STREAM)
        assert infos == socket.getaddrinfo(B_IP, 80, type=socket.SOCK_STREAM)
        assert infos[0][0] == socket.AF_INET and infos[0][4] == (B_IP, 80)
        assert await loop.getnameinfo((B_IP, 80)) == (B_IP, "http")
        assert await loop.getnameinfo((B_IP, 80), socket.NI_NUMERICSERV) == (B_IP, "80")
        with pytest.raises(socket.gaierror):
            await loop.getnameinfo((B_IP, 80), socket.NI_NAMEREQD)

    pair.run(main())


def test_loopback_stays_on_the_kernel(pair: Pair) -> None:
    async def main() -> None:
        server = await pair.loop.create_server(Echo, "127.0.0.1", 0)
        assert not isinstance(server.sockets[0], type(None)) and server.sockets[0].getsockname()[0] == "127.0.0.1"
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        assert not isinstance(writer.transport, StreamTransport)
        writer.write(b"kernel")
        assert await reader.readexactly(6) == b"kernel"
        writer.close()
        server.close()
        await server.wait_closed()

    pair.run(main())


def test_an_idle_transport_carries_no_backlog_and_makes_one_only_while_the_stack_refuses(pair: Pair) -> None:
    """A server holds thousands of idle transports: slots, no write backlog until the stack refuses bytes,
    and none again once it drained; writes keep their order through two backlogs."""

    async def main() -> None:
        server = await serve_on_b(pair, lambda: Recorder(), 7)
        transport, proto = await pair.loop.create_connection(Recorder, B_IP, 7)
        peer = await accepted(server)
        assert not hasattr(transport, "__dict__") and not hasattr(peer, "__dict__")
        for end in (transport, peer):
            assert end._pending is None and end._writable_waiters is None  # type: ignore[attr-defined]  # on purpose
        sent = bytearray()
        for burst in range(2):
            peer.pause_reading()
            block = os.urandom(65536)
            await _fill_until_paused(transport, proto, transport._sock, sent, block)  # type: ignore[attr-defined]
            assert transport.get_write_buffer_size() > 0 and transport._pending  # type: ignore[attr-defined]
            peer.resume_reading()
            received = await peer.get_protocol().until(len(sent))  # type: ignore[attr-defined]  # a Recorder
            assert proto.events[-1] == "resume" and transport.get_write_buffer_size() == 0
            assert transport._pending is None, burst  # type: ignore[attr-defined]  # drained: given back
            proto.events.clear()
        assert hashlib.sha256(received).digest() == hashlib.sha256(sent).digest()
        transport.close()

    pair.run(main())


def test_a_big_receive_reaches_data_received_in_pieces_the_heap_reuses(pair: Pair) -> None:
    class Sizes(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.sizes: list[int] = []

        def data_received(self, data: bytes) -> None:
            assert type(data) is bytes  # the asyncio contract: bytes, never a view of the stack's buffer
            self.sizes.append(len(data))
            super().data_received(data)

    async def main() -> None:
        server = await serve_on_b(pair, Sizes, 7)
        transport, _ = await pair.loop.create_connection(Recorder, B_IP, 7)
        peer = await accepted(server)
        peer.pause_reading()
        payload = os.urandom(200_000)
        transport.write(payload)
        conn = peer._sock  # type: ignore[attr-defined]  # the test looks inside on purpose
        for _ in range(1000):
            if conn.readable >= 3 * DELIVERY:
                break
            await asyncio.sleep(0.002)
        assert conn.readable >= 3 * DELIVERY, f"only {conn.readable} bytes piled up"
        peer.resume_reading()
        proto = peer.get_protocol()
        assert await proto.until(len(payload)) == payload  # type: ignore[attr-defined]  # the test's protocol
        assert max(proto.sizes) == DELIVERY and len(proto.sizes) >= 4  # type: ignore[attr-defined]  # as above
        transport.close()

    pair.run(main())


def test_the_pseudo_socket_is_made_on_the_first_ask_and_is_the_same_afterwards(pair: Pair) -> None:
    """Most programs never ask for the socket (asyncio's streams do not), so a connection makes none
    until one asks; one asked for before the close and one asked for first after it are alike."""

    async def main() -> None:
        server = await serve_on_b(pair, Echo, 7)
        transport, proto = await pair.loop.create_connection(Recorder, B_IP, 7)
        peer = await accepted(server)
        transport.write(b"a round trip")
        assert await proto.until(12) == b"a round trip"
        for end in (transport, peer):
            assert end._pseudo is None  # type: ignore[attr-defined]  # the test looks inside on purpose
        sock = transport.get_extra_info("socket")
        assert sock is transport.get_extra_info("socket") and sock is transport._pseudo  # type: ignore[attr-defined]
        assert peer._pseudo is None  # type: ignore[attr-defined]  # asking one end makes nothing for the other
        assert (sock.family, sock.type, sock.proto) == (socket.AF_INET, socket.SOCK_STREAM, 0)
        assert sock.getpeername() == (B_IP, 7) and sock.fileno() >= 0
        sockname, peer_name = peer.get_extra_info("sockname"), peer.get_extra_info("peername")
        transport.close()
        peer.close()
        assert sock.fileno() == -1
        late = peer.get_extra_info("socket")  # first asked after the close: closed already
        assert late is peer.get_extra_info("socket") and late.owner is peer
        assert late.fileno() == -1 and (late.family, late.type) == (socket.AF_INET, socket.SOCK_STREAM)
        assert late.getsockname() == sockname and late.getpeername() == peer_name
        late.close()  # as on the one asked before: a no-op once closed
        assert "SOCK_STREAM" in repr(late) and "SOCK_STREAM" in repr(sock)
        assert await proto.lost is None

    pair.run(main())


@pytest.mark.parametrize("buffered", [False, True], ids=["Protocol", "BufferedProtocol"])
def test_pause_reading_inside_a_wakeup_with_pieces_waiting_stops_there_and_resume_delivers_the_rest(
    pair: Pair, buffered: bool
) -> None:
    """One wake-up hands over what waits piece by piece; a pause in the first callback stops it there,
    and resume_reading delivers the rest once, in order."""
    piece = 1000 if buffered else DELIVERY

    class Taker:
        """Takes what arrives; pauses reading in its first callback."""

        def __init__(self) -> None:
            self.got = bytearray()
            self.calls = 0
            self.more = asyncio.Event()

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]  # a stream's

        def took(self, data: bytes) -> None:
            self.calls += 1
            self.got += data
            if self.calls == 1:
                self.transport.pause_reading()
            self.more.set()

        def eof_received(self) -> bool:
            return False

    class Plain(Taker, asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            self.took(data)

    class Buffered(Taker, asyncio.BufferedProtocol):
        def __init__(self) -> None:
            super().__init__()
            self.buf = bytearray(piece)

        def get_buffer(self, sizehint: int) -> memoryview:
            return memoryview(self.buf)

        def buffer_updated(self, nbytes: int) -> None:
            self.took(bytes(self.buf[:nbytes]))

    async def main() -> None:
        server = await serve_on_b(pair, Buffered if buffered else Plain, 7)
        transport, _ = await pair.loop.create_connection(Recorder, B_IP, 7)
        peer = await accepted(server)
        peer.pause_reading()
        payload = os.urandom(3 * piece + 100)
        transport.write(payload)
        conn = peer._sock  # type: ignore[attr-defined]  # the test looks inside on purpose
        for _ in range(1000):
            if conn.readable == len(payload):
                break
            await asyncio.sleep(0.002)
        assert conn.readable == len(payload)
        proto = peer.get_protocol()
        assert isinstance(proto, Taker) and isinstance(proto, asyncio.BufferedProtocol) == buffered
        peer.resume_reading()
        await proto.more.wait()
        await asyncio.sleep(0.01)
        assert proto.calls == 1 and bytes(proto.got) == payload[:piece] and not peer.is_reading()
        assert conn.readable == len(payload) - piece
        peer.resume_reading()  # no pause from here on
        while len(proto.got) < len(payload):
            proto.more.clear()
            await proto.more.wait()
        assert bytes(proto.got) == payload and proto.calls == 4 and conn.readable == 0
        transport.close()

    pair.run(main())
