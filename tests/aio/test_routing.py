"""Which stack a socket lands on, and the kernel path staying the kernel's."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket

import pytest

from tests.aio.conftest import A_IP, A_IP6, B_IP, B_IP6, LOOPS, Pair, make_pair
from tests.stack.test_ipv6_sim import PREFIX, addresses, router_advert, settled
from tests.stack.test_ipv6_sim import iface as ipv6_iface
from usernet.aio import use_backend
from usernet.aio.datagram import DatagramTransport
from usernet.aio.routing import Router
from usernet.aio.server import Server, listen
from usernet.aio.stream import connect, open_stream
from usernet.drivers.config import UsernetConfig

NET = [ipaddress.IPv4Interface("192.0.2.2/24")]


@pytest.mark.parametrize(
    ("local", "remote", "expected"),
    [
        (None, None, "usernet"),  # a server on the wildcard: reached through usernet
        ("0.0.0.0", None, "usernet"),
        ("192.0.2.2", None, "usernet"),
        ("127.0.0.1", None, "kernel"),  # a specific kernel address is the kernel's
        (None, "192.0.2.9", "usernet"),
        (None, "192.0.2.255", "usernet"),
        (None, "255.255.255.255", "usernet"),
        (None, "198.51.100.1", "kernel"),  # off usernet's network, no gateway
        (None, "127.0.0.1", "kernel"),
        ("127.0.0.1", "192.0.2.9", "kernel"),  # the local address decides
    ],
)
def test_the_rule_without_a_gateway(local: str | None, remote: str | None, expected: str) -> None:
    assert Router(NET).choose(local, remote) == expected


def test_a_gateway_takes_everything_but_loopback_and_multicast() -> None:
    router = Router(NET, ipaddress.IPv4Address("192.0.2.1"))
    assert router.choose(None, "198.51.100.1") == "usernet"
    assert router.choose(None, "127.0.0.1") == "kernel"
    assert router.choose(None, "224.0.0.251") == "kernel"


def test_only_refuses_the_kernel_with_a_clear_error() -> None:
    router = Router(NET, only=True)
    assert router.choose(None, "192.0.2.9") == "usernet"
    with pytest.raises(OSError) as info:
        router.choose(None, "198.51.100.1")
    assert info.value.errno == errno.ENETUNREACH
    assert "--only" in str(info.value) and "--gateway" in str(info.value)


def test_use_backend_overrides_the_rule_inside_the_block_only() -> None:
    router = Router(NET)
    with use_backend("kernel"):
        assert router.choose(None, "192.0.2.9") == "kernel"
    with use_backend("usernet"):
        assert router.choose("127.0.0.1", None) == "usernet"
    assert router.choose(None, "192.0.2.9") == "usernet"
    with pytest.raises(ValueError), use_backend("carrier pigeon"):  # type: ignore[arg-type]  # wrong on purpose: the error is tested
        pass


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]  # connection_made's transport is this kind

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


class Waiter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.got.done():
            self.got.set_result(data)


async def kernel_round_trip() -> None:
    loop = asyncio.get_running_loop()
    server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    port = server.get_extra_info("sockname")[1]
    client, proto = await loop.create_datagram_endpoint(Waiter, remote_addr=("127.0.0.1", port))
    for transport in (server, client):
        assert not isinstance(transport, DatagramTransport)
        assert transport.get_extra_info("socket").fileno() >= 0  # a real kernel socket
    client.sendto(b"via the kernel")
    assert await asyncio.wait_for(proto.got, 5) == b"via the kernel"  # type: ignore[attr-defined]  # the test's own protocol or server class
    client.close()
    server.close()


@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_loopback_stays_on_the_kernel_and_no_tap_is_opened(kind: str) -> None:
    loop = LOOPS[kind](config=UsernetConfig(tap="usernet-never"))
    try:
        loop.run_until_complete(kernel_round_trip())
        assert loop._usernet_driver is None  # type: ignore[attr-defined]  # the test looks inside on purpose
    finally:
        loop.close()


@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_only_refuses_loopback_from_the_loop(kind: str) -> None:
    loop = LOOPS[kind](config=UsernetConfig(only=True))

    async def main() -> None:
        with pytest.raises(OSError) as info:
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=("127.0.0.1", 9))
        assert info.value.errno == errno.ENETUNREACH
        with pytest.raises(OSError):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=("::1", 9))

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_names_resolve_through_getaddrinfo_and_use_backend_picks_the_kernel(pair: Pair) -> None:
    async def main() -> None:
        loop = pair.loop
        transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=(B_IP, 7))
        assert isinstance(transport, DatagramTransport)
        kernel, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=("localhost", 9))
        assert not isinstance(kernel, DatagramTransport)
        with use_backend("kernel"):
            forced, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("0.0.0.0", 0))
        assert not isinstance(forced, DatagramTransport)
        for t in (transport, kernel, forced):
            t.close()

    pair.run(main())


def test_a_slaac_address_is_usernets_once_the_router_follows_the_stack() -> None:
    """Sans-IO, on the virtual clock: the address SLAAC forms is usernet's own for the rule while it lives."""
    iface = settled(ipv6_iface())
    router = Router.for_interface(iface.config, only=True)
    iface.receive(router_advert(valid=600, preferred=300), 5.0)
    iface.poll(5.0)
    iface.poll(6.0)
    (formed,) = [a for a, state in addresses(iface).items() if a[:8] == PREFIX[:8] and state == "PREFERRED"]
    text = str(ipaddress.IPv6Address(formed))
    with pytest.raises(OSError, match="not reachable through usernet"):
        router.choose(text, None)  # not followed: an address of nobody's
    router.follow(iface)
    assert router.is_local(text) and router.choose(text, None) == "usernet"
    assert router.choose(text, "2001:db8:7::9") == "usernet", "a connection from it"
    iface.poll(5.0 + 600)  # its valid lifetime is over: the address is gone, and so is the rule's answer
    assert not router.is_local(text)


def test_an_ipv4_address_given_later_is_usernets_for_a_router_that_follows() -> None:
    """A DHCP lease that moves puts a new address on the running interface: the rule follows it."""
    iface = settled(ipv6_iface())
    router = Router.for_interface(iface.config, only=False)
    router.follow(iface)
    assert router.choose("192.0.2.77", None) == "kernel"
    iface.readdress_ipv4(((ipaddress.IPv4Address("192.0.2.77").packed, 24),), None, 1.0)
    assert router.choose("192.0.2.77", None) == "usernet"


def test_bind_and_connect_from_a_slaac_address_through_the_loop(loop_kind: str) -> None:
    """Both hosts hear one router advertisement; A connects from the address it formed to B's server,
    B answering on the prefix the advertisement put on the link."""
    with make_pair(loop_kind, ipv6=True) as pair:

        async def main() -> None:
            loop = pair.loop
            a_driver = loop.usernet_driver()  # type: ignore[attr-defined]  # a usernet loop, typed as any loop
            for host in (pair.a, pair.b):
                host.iface.receive(router_advert(), loop.time())
            await a_driver.ipv6_settled()
            await pair.b_driver.ipv6_settled()
            assert pair.a.iface.ipv6 is not None
            (formed,) = [a for a in pair.a.iface.ipv6.local_addresses if a[:8] == PREFIX[:8]]
            text = str(ipaddress.IPv6Address(formed))
            endpoint, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(text, 0))
            assert isinstance(endpoint, DatagramTransport), "bound to the SLAAC address: usernet's"
            endpoint.close()
            server = Server(pair.loop, pair.b_driver, listen(pair.b_driver, ["::"], 0, 10), EchoStream)
            await server.start_serving()
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(B_IP6, port, local_addr=(text, 0))
            assert writer.get_extra_info("sockname")[0] == text
            writer.write(b"from a SLAAC address")
            assert await reader.readexactly(20) == b"from a SLAAC address"
            writer.close()
            server.close()

        pair.run(main())


class EchoStream(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]  # a stream server's transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_no_slaac_in_the_rule_on_a_tun(kind: str) -> None:
    """A TUN has no router advertisements: a global IPv6 destination off usernet's prefix and
    without a gateway is the kernel's there, usernet's on a TAP (SLAAC may bring a router)."""
    for link, expected in (("tun:usernet-never", "kernel"), ("tap:usernet-never", "usernet")):
        loop = LOOPS[kind](config=UsernetConfig(link=link, address="2001:db8::2/64"))
        try:
            assert loop.usernet_router.choose(None, "2001:db9::1") == expected
            assert loop.usernet_router.choose(None, "2001:db8::1") == "usernet"
            assert loop._usernet_driver is None  # the test looks inside: nothing opened
        finally:
            loop.close()


class Recorder(asyncio.Protocol):
    """Echoes back, and keeps the peer name its transport gives."""

    def __init__(self, peers: list[tuple[object, ...]]) -> None:
        self.peers = peers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]  # a stream server's transport
        self.peers.append(transport.get_extra_info("peername"))

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


@pytest.mark.parametrize("v6only", [True, False])
def test_create_server_on_an_ipv6_kernel_socket_is_usernets(loop_kind: str, v6only: bool) -> None:
    """uvicorn's way on "::": bind an AF_INET6 socket itself, hand it to create_server(sock=). It listens
    on usernet, on IPv6 with IPV6_V6ONLY, on both families without (one socket, dual-stack)."""
    with make_pair(loop_kind, ipv6=True) as pair:

        async def from_b(host: str, port: int) -> bytes:
            conn = await connect(pair.loop, pair.b_driver, (host, port), None)
            reader = asyncio.StreamReader()
            protocol = asyncio.StreamReaderProtocol(reader)
            transport, _ = await open_stream(pair.loop, pair.b_driver, conn, lambda: protocol)
            transport.write(b"over " + host.encode())
            answer = await reader.readexactly(len(host) + 5)
            transport.close()
            return answer

        async def main() -> None:
            kernel = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            kernel.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
            kernel.bind(("::", 0))
            peers: list[tuple[object, ...]] = []
            server = await pair.loop.create_server(lambda: Recorder(peers), sock=kernel)
            assert isinstance(server, Server)
            port = server.sockets[0].getsockname()[1]
            assert await from_b(A_IP6, port) == f"over {A_IP6}".encode()
            if not v6only:
                assert await from_b(A_IP, port) == f"over {A_IP}".encode()
            else:
                with pytest.raises(ConnectionRefusedError):
                    await from_b(A_IP, port)
            assert peers[0][0] == B_IP6 and len(peers[0]) == 4
            server.close()
            await server.wait_closed()

        pair.run(main())


def test_a_datagram_endpoint_on_an_ipv6_kernel_socket_is_usernets(loop_kind: str) -> None:
    """create_datagram_endpoint(sock=) with an AF_INET6 socket bound to "::": usernet's, on IPv6,
    naming its peers with the 4-tuples of an AF_INET6 socket."""
    with make_pair(loop_kind, ipv6=True) as pair:

        async def main() -> None:
            await pair.loop.usernet_driver().ipv6_settled()  # type: ignore[attr-defined]  # a usernet loop
            await pair.b_driver.ipv6_settled()
            kernel = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            kernel.bind(("::", 0))
            got: asyncio.Future[tuple[bytes, tuple[object, ...]]] = pair.loop.create_future()

            class Collect(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
                    got.set_result((data, addr))

            transport, _ = await pair.loop.create_datagram_endpoint(Collect, sock=kernel)
            assert isinstance(transport, DatagramTransport)
            port = transport.get_extra_info("sockname")[1]
            peer = pair.b.iface.open_udp((ipaddress.IPv6Address(B_IP6).packed, 0))
            peer.sendto(b"to a kernel-made socket", (ipaddress.IPv6Address(A_IP6).packed, port), pair.loop.time())
            pair.b_driver.request_flush()
            data, addr = await got
            assert data == b"to a kernel-made socket" and addr == (B_IP6, peer.local[1], 0, 0)
            transport.close()
            peer.close()

        pair.run(main())
