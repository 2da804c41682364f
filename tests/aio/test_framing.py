"""Framing over real transports: usernet's (two stacks on a wire) and the kernel's (loopback), both base loops."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Awaitable, Callable
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.aio.conftest import Pair, serve_on_b
from tests.framing.cuts import split
from usernet.framing import RAW, Framed, FramingError, Length, Line, Mode, encode, read_packet, write_packet

Sender = Callable[[bytes], Awaitable[None]]


class Peer(asyncio.Protocol):
    """The far end: writes what it is told, counts flow control and what it received."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.paused = asyncio.Event()
        self.received = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received += data

    def pause_writing(self) -> None:
        self.paused.set()


async def _framed_pair(pair: Pair, backend: str, framed: Framed) -> Peer:
    """Connect `framed` to a Peer server on `backend`; returns the peer once connected."""
    loop = pair.loop
    peers: list[Peer] = []
    connected = asyncio.Event()

    def factory() -> Peer:
        peer = Peer()
        peers.append(peer)
        loop.call_soon(connected.set)
        return peer

    if backend == "usernet":
        server = await serve_on_b(pair, factory)
        port = server.sockets[0].getsockname()[1]
        await loop.create_connection(lambda: framed, B_HOST, port)
    else:
        kserver = await loop.create_server(factory, "127.0.0.1", 0)
        port = kserver.sockets[0].getsockname()[1]
        await loop.create_connection(lambda: framed, "127.0.0.1", port)
    await connected.wait()
    return peers[0]


B_HOST = "192.0.2.1"
BACKENDS = ["usernet", "kernel"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _send_split(peer: Peer, stream: bytes, cuts: list[int]) -> None:
    assert peer.transport is not None
    for piece in split(stream, cuts):
        peer.transport.write(piece)
        await asyncio.sleep(0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from([Length(1), Length(2), Length(4), Line(b"\r\n", 500)]),
    st.lists(st.binary(max_size=300), min_size=1, max_size=8),
    st.lists(st.integers(min_value=0, max_value=5000), max_size=12),
)
def test_passive_receiver_gets_exactly_the_messages(
    pair: Pair, backend: str, mode: Mode, payloads: list[bytes], cuts: list[int]
) -> None:
    if isinstance(mode, Line):
        payloads = [p.replace(b"\r", b"") + b"\r\n" for p in payloads]

    async def main() -> None:
        framed = Framed(mode)
        peer = await _framed_pair(pair, backend, framed)
        stream = b"".join(encode(mode, p) if isinstance(mode, Length) else p for p in payloads)
        await _send_split(peer, stream, cuts)
        got = [await framed.recv(timeout=5) for _ in payloads]
        assert got == payloads
        framed.close()

    pair.run(main())


def test_line_then_raw_the_memcached_get_pattern(pair: Pair, backend: str) -> None:
    async def main() -> None:
        framed = Framed(Line(b"\r\n"))
        peer = await _framed_pair(pair, backend, framed)
        assert peer.transport is not None
        peer.transport.write(b"VALUE k 0 12\r\nline\r\nbreaks\r\nEND\r\n")  # the value holds the delimiter
        header = await framed.recv(timeout=5)
        size = int(header.split()[3])
        framed.setopts(packet=RAW)
        assert await framed.recv(size + 2, timeout=5) == b"line\r\nbreaks\r\n"
        framed.setopts(packet=Line(b"\r\n"))
        assert await framed.recv(timeout=5) == b"END\r\n"
        framed.close()

    pair.run(main())


def test_active_once_delivers_one_packet_then_pauses_reading(pair: Pair, backend: str) -> None:
    async def main() -> None:
        got: asyncio.Queue[bytes] = asyncio.Queue()
        framed = Framed(Length(2), active="once", on_packet=got.put_nowait)
        peer = await _framed_pair(pair, backend, framed)
        assert peer.transport is not None
        peer.transport.write(b"".join(encode(Length(2), m) for m in (b"a", b"b", b"c")))
        assert await asyncio.wait_for(got.get(), 5) == b"a"
        await asyncio.sleep(0.05)  # lets more arrive if it would: once means one
        assert got.empty() and framed.active is False
        assert not framed.transport.is_reading()
        framed.setopts(active=True)
        assert [await asyncio.wait_for(got.get(), 5) for _ in range(2)] == [b"b", b"c"]
        assert framed.transport.is_reading()
        framed.send(b"back")
        framed.close()

    pair.run(main())


def test_passive_socket_pushes_back_on_a_fast_sender(pair: Pair, backend: str) -> None:
    async def main() -> None:
        framed = Framed(RAW)
        peer = await _framed_pair(pair, backend, framed)
        assert peer.transport is not None
        block = b"x" * 65536
        total = 0
        while not peer.paused.is_set():  # the receiver reads nothing: the sender must be stopped
            peer.transport.write(block)
            total += len(block)
            await asyncio.sleep(0)
            assert total < 64 * 2**20, "the sender was never paused"
        assert not framed.transport.is_reading()
        received = 0
        while received < total:
            received += len(await framed.recv(timeout=5))
        assert received == total

    pair.run(main())


def test_oversize_frame_is_an_error_and_the_connection_goes_on(pair: Pair, backend: str) -> None:
    async def main() -> None:
        errors: list[FramingError] = []
        got: asyncio.Queue[bytes] = asyncio.Queue()
        framed = Framed(Length(2, max_size=10), active=True, on_packet=got.put_nowait, on_error=errors.append)
        peer = await _framed_pair(pair, backend, framed)
        assert peer.transport is not None
        big = encode(Length(2), b"y" * 11)
        peer.transport.write(encode(Length(2), b"ok") + big + encode(Length(2), b"after"))
        assert await asyncio.wait_for(got.get(), 5) == b"ok"
        while not errors:
            await asyncio.sleep(0.001)
        assert "11-byte" in str(errors[0]) and framed.active is False
        framed.setopts(packet=RAW)
        assert await framed.recv(len(big), timeout=5) == big  # skip it
        framed.setopts(packet=Length(2, max_size=10), active=True)
        assert await asyncio.wait_for(got.get(), 5) == b"after"
        framed.send(b"still open")
        while len(peer.received) < 12:
            await asyncio.sleep(0.001)
        assert bytes(peer.received) == encode(Length(2), b"still open")
        framed.close()

    pair.run(main())


def test_recv_timeout_and_eof(pair: Pair, backend: str) -> None:
    async def main() -> None:
        framed = Framed(Line())
        peer = await _framed_pair(pair, backend, framed)
        assert peer.transport is not None
        with pytest.raises(TimeoutError):
            await framed.recv(timeout=0.01)
        peer.transport.write(b"partial")
        peer.transport.close()
        with pytest.raises(EOFError, match="7 bytes of an incomplete packet"):
            await framed.recv(timeout=5)
        framed.setopts(packet=RAW)
        assert await framed.recv(timeout=5) == b"partial"

    pair.run(main())


def test_stream_helpers(pair: Pair, backend: str) -> None:
    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while (packet := await read_packet(reader, Length(4))) is not None:
                await write_packet(writer, packet.upper() + b"\n", RAW)
            writer.close()

        server: asyncio.AbstractServer
        if backend == "usernet":
            server = await serve_on_b(pair, lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader(), handle))
            host = B_HOST
        else:
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            host = "127.0.0.1"
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(host, port)
        for word in (b"alpha", b"beta", b""):
            await write_packet(writer, word, Length(4))
        assert await read_packet(reader, Line()) == b"ALPHA\n"
        assert await read_packet(reader, RAW, 5) == b"BETA\n"
        writer.write(encode(Length(4), b"z" * 10)[:-3])
        writer.write_eof()
        assert await read_packet(reader, Line()) == b"\n"
        assert await read_packet(reader, Line()) is None  # the server hit EOF mid-frame and closed
        with pytest.raises(FramingError):
            small = asyncio.StreamReader()
            small.feed_data(b"\x00\x00\x01\x00")
            await read_packet(small, Length(4, max_size=100))
        writer.close()
        server.close()

    pair.run(main())


def test_a_connection_that_timed_out_is_not_reported_as_a_recv_timeout() -> None:
    """The transport's own TimeoutError (a TCP user timeout) reaches recv as it is, not as "no packet within"."""

    async def main() -> None:
        framed = Framed(Line())
        framed.connection_lost(TimeoutError(errno.ETIMEDOUT, "the peer stopped acknowledging"))
        with pytest.raises(TimeoutError, match="the peer stopped acknowledging"):
            await framed.recv(timeout=5)

    asyncio.run(main())
