"""create_datagram_endpoint on usernet: two stacks on an in-memory wire, one loop, both base loops."""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
from collections.abc import Callable
from typing import NamedTuple

import pytest

from tests.aio.conftest import A_IP, B_IP, B_IP6, Pair, make_pair
from usernet.aio.datagram import DatagramTransport, open_endpoint
from usernet.aio.driver import Driver


class Recorder(asyncio.DatagramProtocol):
    """Every callback, in order, and a queue to wait on."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def _note(self, kind: str, value: object) -> None:
        self.events.append((kind, value))
        self.queue.put_nowait((kind, value))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # connection_made's transport is this kind
        self._note("made", None)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._note("data", (data, addr))

    def error_received(self, exc: Exception) -> None:
        self._note("error", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._note("lost", exc)

    async def next(self, kind: str) -> object:
        while True:
            got, value = await self.queue.get()
            if got == kind:
                return value


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]  # connection_made's transport is this kind

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


async def peer(
    pair: Pair, protocol: type[asyncio.DatagramProtocol], port: int, **kw: bool
) -> tuple[DatagramTransport, asyncio.DatagramProtocol]:
    """An endpoint on host B, through the same transport code the loop uses."""
    options = {"allow_broadcast": False, "reuse_port": False, **kw}
    return await open_endpoint(pair.loop, pair.b_driver, protocol, ("0.0.0.0", port), None, **options)


def test_connected_endpoint_talks_to_its_peer(pair: Pair) -> None:
    async def main() -> None:
        await peer(pair, Echo, 7)
        transport, proto = await pair.loop.create_datagram_endpoint(Recorder, remote_addr=(B_IP, 7))
        assert isinstance(transport, DatagramTransport)
        for payload in (b"bytes", bytearray(b"bytearray"), memoryview(b"memoryview")):
            transport.sendto(payload)
            assert await proto.next("data") == (bytes(payload), (B_IP, 7))
        transport.sendto(b"to the peer explicitly", (B_IP, 7))
        assert await proto.next("data") == (b"to the peer explicitly", (B_IP, 7))
        with pytest.raises(ValueError, match="Invalid address"):
            transport.sendto(b"x", (B_IP, 8))
        with pytest.raises(TypeError):
            transport.sendto("text")  # type: ignore[arg-type]  # wrong on purpose: the error is tested
        transport.close()

    pair.run(main())


def test_unconnected_endpoint_sends_anywhere_and_hears_from_anyone(pair: Pair) -> None:
    async def main() -> None:
        await peer(pair, Echo, 7)
        await peer(pair, Echo, 9)
        transport, proto = await pair.loop.create_datagram_endpoint(Recorder, local_addr=("0.0.0.0", 0))
        assert transport.get_extra_info("peername") is None
        transport.sendto(b"seven", (B_IP, 7))
        transport.sendto(b"nine", (B_IP, 9))
        got = {await proto.next("data"), await proto.next("data")}
        assert got == {(b"seven", (B_IP, 7)), (b"nine", (B_IP, 9))}
        transport.close()

    pair.run(main())


@pytest.mark.parametrize("local", [("", "tftp"), (None, "tftp")])
def test_a_service_name_is_looked_up_as_udp(pair: Pair, local: tuple[str | None, str]) -> None:
    """tftp is a UDP service only (69/udp in /etc/services): looked up as TCP, the bind would fail."""
    try:
        expected = socket.getservbyname("tftp", "udp")
    except OSError:
        pytest.skip("this system's services database has no tftp/udp")

    async def main() -> None:
        transport, _ = await pair.loop.create_datagram_endpoint(Recorder, local_addr=local)
        assert isinstance(transport, DatagramTransport)
        assert transport.get_extra_info("sockname") == ("0.0.0.0", expected)
        transport.close()

    pair.run(main())


def test_port_unreachable_reaches_error_received_on_a_connected_endpoint_only(pair: Pair) -> None:
    async def main() -> None:
        connected, proto = await pair.loop.create_datagram_endpoint(Recorder, remote_addr=(B_IP, 9))
        connected.sendto(b"anyone?")
        exc = await proto.next("error")
        assert isinstance(exc, ConnectionRefusedError)
        unconnected, quiet = await pair.loop.create_datagram_endpoint(Recorder, local_addr=(A_IP, 0))
        unconnected.sendto(b"anyone?", (B_IP, 9))
        connected.sendto(b"again")  # its error arrives after whatever the unconnected one could get
        await proto.next("error")
        assert [kind for kind, _ in quiet.events] == ["made"]

    pair.run(main())


def test_broadcast_needs_permission(pair: Pair) -> None:
    async def main() -> None:
        _, listener = await peer(pair, Recorder, 5000)
        plain, proto = await pair.loop.create_datagram_endpoint(Recorder, local_addr=("0.0.0.0", 0))
        plain.sendto(b"shout", ("192.0.2.255", 5000))
        exc = await proto.next("error")
        assert isinstance(exc, PermissionError)
        allowed, _ = await pair.loop.create_datagram_endpoint(Recorder, local_addr=("0.0.0.0", 0), allow_broadcast=True)
        allowed.sendto(b"shout", ("192.0.2.255", 5000))
        data, addr = await listener.next("data")  # type: ignore[attr-defined, misc]  # the test's own protocol or server class
        assert data == b"shout" and addr == (A_IP, allowed.get_extra_info("sockname")[1])
        sock = plain.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 0
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
        plain.sendto(b"now allowed", ("192.0.2.255", 5000))
        assert (await listener.next("data"))[0] == b"now allowed"  # type: ignore[attr-defined, index]  # the test's own protocol or server class

    pair.run(main())


def test_oversized_datagram_goes_to_error_received(pair: Pair) -> None:
    async def main() -> None:
        transport, proto = await pair.loop.create_datagram_endpoint(Recorder, local_addr=("0.0.0.0", 0))
        transport.sendto(bytes(65_508), (B_IP, 7))  # more than an IPv4 datagram holds
        exc = await proto.next("error")
        assert isinstance(exc, OSError) and exc.errno == errno.EMSGSIZE

    pair.run(main())


def test_callback_order_and_exactly_one_connection_lost(pair: Pair) -> None:
    async def main() -> None:
        await peer(pair, Echo, 7)
        transport, proto = await pair.loop.create_datagram_endpoint(Recorder, remote_addr=(B_IP, 7))
        transport.sendto(b"one")
        await proto.next("data")
        transport.sendto(b"echo arriving after close")
        transport.close()
        assert transport.is_closing()
        transport.close()
        transport.abort()
        transport.sendto(b"ignored after close")
        await proto.next("lost")
        for _ in range(5):
            await asyncio.sleep(0.001)
        kinds = [kind for kind, _ in proto.events]
        assert kinds == ["made", "data", "lost"]
        assert proto.events[-1] == ("lost", None)

    pair.run(main())


def test_abort_frees_the_port(pair: Pair) -> None:
    async def main() -> None:
        transport, proto = await pair.loop.create_datagram_endpoint(Recorder, local_addr=(A_IP, 4000))
        with pytest.raises(OSError) as info:
            await pair.loop.create_datagram_endpoint(Recorder, local_addr=(A_IP, 4000))
        assert info.value.errno == errno.EADDRINUSE
        transport.abort()
        await proto.next("lost")
        again, _ = await pair.loop.create_datagram_endpoint(Recorder, local_addr=(A_IP, 4000))
        again.close()

    pair.run(main())


def test_extra_info_shapes(pair: Pair) -> None:
    async def main() -> None:
        transport, _ = await pair.loop.create_datagram_endpoint(Recorder, remote_addr=(B_IP, 7))
        sockname = transport.get_extra_info("sockname")
        assert sockname[0] == A_IP and isinstance(sockname[1], int) and sockname[1] > 0
        assert transport.get_extra_info("peername") == (B_IP, 7)
        assert transport.get_extra_info("nothing", "default") == "default"
        sock = transport.get_extra_info("socket")
        assert sock is transport.get_extra_info("socket")
        assert (sock.family, sock.type) == (socket.AF_INET, socket.SOCK_DGRAM)
        assert sock.getsockname() == sockname and sock.getpeername() == (B_IP, 7)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 1 << 20
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_DGRAM
        assert transport.get_write_buffer_size() == 0
        transport.close()
        assert transport.get_extra_info("sockname") == sockname
        unconnected, _ = await pair.loop.create_datagram_endpoint(Recorder, local_addr=("0.0.0.0", 0))
        assert unconnected.get_extra_info("sockname")[0] == "0.0.0.0"
        with pytest.raises(OSError):
            unconnected.get_extra_info("socket").getpeername()

    pair.run(main())


def test_the_pseudo_socket_is_made_on_the_first_ask_even_after_the_close(pair: Pair) -> None:
    async def main() -> None:
        asked, _ = await pair.loop.create_datagram_endpoint(Recorder, remote_addr=(B_IP, 7))
        unasked, _ = await pair.loop.create_datagram_endpoint(Recorder, remote_addr=(B_IP, 7))
        for transport in (asked, unasked):
            transport.sendto(b"one")
            assert transport._pseudo is None  # type: ignore[attr-defined]  # the test looks inside on purpose
        sock = asked.get_extra_info("socket")
        assert sock is asked.get_extra_info("socket") and sock.fileno() >= 0
        sockname = unasked.get_extra_info("sockname")
        asked.close()
        unasked.close()
        late = unasked.get_extra_info("socket")  # first asked after the close: closed already, as `sock` is
        assert late is unasked.get_extra_info("socket")
        for closed in (sock, late):
            assert closed.fileno() == -1 and (closed.family, closed.type) == (socket.AF_INET, socket.SOCK_DGRAM)
        assert late.getsockname() == sockname and late.getpeername() == (B_IP, 7)

    pair.run(main())


def endpoint_then_loop_closed(pair: Pair, port: int) -> DatagramTransport:
    """An endpoint on A_IP:`port`, returned after its loop was closed."""

    async def main() -> DatagramTransport:
        transport, _ = await pair.loop.create_datagram_endpoint(Recorder, local_addr=(A_IP, port))
        return transport  # type: ignore[return-value]  # usernet's DatagramTransport

    transport = pair.run(main())
    pair.loop.close()
    return transport  # type: ignore[return-value]  # as above


def test_a_pseudo_socket_asked_after_the_loop_closed_is_closed(pair: Pair) -> None:
    transport = endpoint_then_loop_closed(pair, 4101)
    sock = transport.get_extra_info("socket")
    assert sock.fileno() == -1 and sock.getsockname() == (A_IP, 4101)


def test_writes_of_one_iteration_leave_together_in_the_next(pair: Pair) -> None:
    async def main() -> None:
        _, listener = await peer(pair, Recorder, 7)
        transport, _ = await pair.loop.create_datagram_endpoint(Recorder, remote_addr=(B_IP, 7))
        transport.sendto(b"arp")
        await listener.next("data")  # type: ignore[attr-defined]  # the test's own protocol or server class
        link = pair.a.link
        before = link.tx_frames
        for i in range(5):
            transport.sendto(b"%d" % i)
        assert link.tx_frames == before  # nothing leaves while the iteration runs
        await asyncio.sleep(0)
        assert link.tx_frames == before + 5

    pair.run(main())


def test_one_timer_follows_the_stack_deadline(pair: Pair) -> None:
    async def main() -> None:
        driver: Driver = pair.loop.usernet_driver()  # type: ignore[attr-defined]  # a usernet loop, typed as any loop
        transport, _ = await pair.loop.create_datagram_endpoint(Recorder, remote_addr=("192.0.2.77", 7))
        transport.sendto(b"nobody has this address: ARP retries")
        await asyncio.sleep(0)
        assert driver.armed is not None and driver.armed == pair.a.deadline()

    pair.run(main())


def test_the_stack_belongs_to_the_loop_thread(pair: Pair) -> None:
    async def main() -> None:
        transport, _ = await pair.loop.create_datagram_endpoint(Recorder, remote_addr=(B_IP, 7))
        errors: list[BaseException] = []

        def elsewhere() -> None:
            try:
                transport.sendto(b"from another thread")
            except RuntimeError as exc:
                errors.append(exc)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert errors and "call_soon_threadsafe" in str(errors[0])

    pair.run(main())
    other = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError, match="one event loop at a time"):
            Driver(other, pair.a).attach()
    finally:
        other.close()


def test_a_failing_protocol_is_reported_and_others_still_served(pair: Pair) -> None:
    class Broken(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            raise ZeroDivisionError("protocol bug")

    async def main() -> None:
        seen: list[dict[str, object]] = []
        pair.loop.set_exception_handler(lambda loop, context: seen.append(context))
        await peer(pair, Echo, 7)
        broken, _ = await pair.loop.create_datagram_endpoint(Broken, remote_addr=(B_IP, 7))
        healthy, proto = await pair.loop.create_datagram_endpoint(Recorder, remote_addr=(B_IP, 7))
        broken.sendto(b"x")
        healthy.sendto(b"y")
        assert await proto.next("data") == (b"y", (B_IP, 7))
        assert any(isinstance(c.get("exception"), ZeroDivisionError) for c in seen)

    pair.run(main())


def test_closing_the_loop_detaches_and_frees_the_stack(pair: Pair) -> None:
    transport = endpoint_then_loop_closed(pair, 4100)
    assert transport.is_closing()  # type: ignore[attr-defined]  # usernet's DatagramTransport
    assert pair.a.iface.udp.lookup(socket.inet_aton(A_IP), 4100) is None
    pair.a.link.nudge = lambda: None  # type: ignore[attr-defined]  # B's driver is gone with the loop
    other = asyncio.new_event_loop()
    try:
        driver = Driver(other, pair.a)
        driver.attach()  # the host is free for another loop
        driver.detach()
    finally:
        other.close()


Outcome = tuple[object, list[tuple[str, object]], list[tuple[object, object]], bool]


def _failure(exc: object) -> object:
    return None if exc is None else (type(exc), str(exc))


async def sendto_outcome(
    loop: asyncio.AbstractEventLoop, local: tuple[str, int], addr: object, *, on_usernet: bool = True
) -> Outcome:
    """What `sendto(b"x", addr)` on a new unconnected endpoint on `local` (usernet's or a kernel
    socket's, as `on_usernet` says) does: what it raised, the protocol's callbacks, what the
    exception handler heard, and whether the transport is closing."""
    heard: list[tuple[object, object]] = []
    loop.set_exception_handler(lambda _, context: heard.append((context["message"], _failure(context["exception"]))))
    transport, proto = await loop.create_datagram_endpoint(Recorder, local_addr=local)
    assert isinstance(transport, DatagramTransport) == on_usernet
    raised = None
    try:
        transport.sendto(b"x", addr)  # type: ignore[arg-type]  # malformed on purpose
    except Exception as exc:
        raised = exc
    for _ in range(3):  # connection_lost comes one iteration after a fatal error
        await asyncio.sleep(0)
    closing = transport.is_closing()
    transport.close()
    events = [(kind, _failure(value)) for kind, value in proto.events]  # type: ignore[attr-defined]  # a Recorder
    return _failure(raised), events, heard, closing


def kernel_outcome(local: tuple[str, int], addr: object) -> Outcome:
    """sendto_outcome on a kernel socket through the stdlib's own loop and transport: the reference."""
    loop = asyncio.SelectorEventLoop()
    try:
        return loop.run_until_complete(sendto_outcome(loop, local, addr, on_usernet=False))
    finally:
        loop.close()


# Each a function of the host (the kernel endpoint's peer is 127.0.0.1, the usernet one's B_IP).
MALFORMED_IPV4: dict[str, Callable[[str], object]] = {
    "one item": lambda host: (host,),
    "three items": lambda host: (host, 7, 0),
    "not a tuple": lambda host: host,
    "a list": lambda host: [host, 7],
    "a str port": lambda host: (host, "7"),
    "a float port": lambda host: (host, 7.0),
    "an int host": lambda host: (1, 7),
    "a None host": lambda host: (None, 7),
    "a null in the host": lambda host: (host + "\0", 7),
    "a port above 65535": lambda host: (host, 70000),
    "a negative port": lambda host: (host, -1),
}


@pytest.mark.parametrize("shape", sorted(MALFORMED_IPV4))
def test_a_malformed_address_fails_sendto_as_on_a_kernel_socket(pair: Pair, shape: str) -> None:
    make = MALFORMED_IPV4[shape]
    expected = kernel_outcome(("127.0.0.1", 0), make("127.0.0.1"))
    assert expected[0] is None and expected[1][-1][0] == "lost"  # a fatal write error, not an exception
    assert pair.run(sendto_outcome(pair.loop, ("0.0.0.0", 0), make(B_IP))) == expected


MALFORMED_IPV6: dict[str, Callable[[str], object]] = {
    "one item": lambda host: (host,),
    "five items": lambda host: (host, 7, 0, 0, 0),
    "not a tuple": lambda host: host,
    "a str flowinfo": lambda host: (host, 7, "0"),
    "a str scope id": lambda host: (host, 7, 0, "0"),
    "a flowinfo above 20 bits": lambda host: (host, 7, 1 << 20),
    "a port above 65535": lambda host: (host, 70000, 0, 0),
}


@pytest.mark.parametrize("shape", sorted(MALFORMED_IPV6))
def test_a_malformed_ipv6_address_fails_sendto_as_on_a_kernel_socket(loop_kind: str, shape: str) -> None:
    make = MALFORMED_IPV6[shape]
    expected = kernel_outcome(("::1", 0), make("::1"))
    assert expected[0] is None and expected[1][-1][0] == "lost"  # a fatal write error, not an exception
    with make_pair(loop_kind, ipv6=True) as pair:
        assert pair.run(sendto_outcome(pair.loop, ("::", 0), make(B_IP6))) == expected


def test_well_formed_addresses_of_other_spellings_are_taken(pair: Pair) -> None:
    """What the kernel's sendto takes besides (str, int): a bytes or bytearray host, an
    index-able port, a tuple subclass; a bytearray host is not hashable, so it is not cached."""

    class Port:
        def __index__(self) -> int:
            return 7

    class Named(NamedTuple):
        host: str
        port: int

    async def main() -> None:
        _, listener = await peer(pair, Recorder, 7)
        transport, proto = await pair.loop.create_datagram_endpoint(Recorder, local_addr=("0.0.0.0", 0))
        for addr in ((B_IP.encode(), 7), (bytearray(B_IP.encode()), 7), (B_IP, Port()), Named(B_IP, 7)):
            transport.sendto(b"taken", addr)  # type: ignore[arg-type]  # spellings typeshed does not name
            assert await listener.next("data")  # type: ignore[attr-defined]  # the test's own protocol or server class
        assert [kind for kind, _ in proto.events] == ["made"]
        transport.close()

    pair.run(main())


def test_a_malformed_address_on_a_connected_endpoint_is_an_invalid_address(pair: Pair) -> None:
    async def main() -> None:
        transport, _ = await pair.loop.create_datagram_endpoint(Recorder, remote_addr=(B_IP, 7))
        with pytest.raises(ValueError, match="Invalid address"):
            transport.sendto(b"x", (B_IP,))  # as asyncio's: the connected address or None, nothing else
        transport.close()

    pair.run(main())
