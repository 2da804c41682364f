"""The asyncio face's IPv6 pieces without a network: the routing rule, the options, the address tuples,
and a dual-stack exchange between two usernet stacks on a virtual wire."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import socket

import pytest

from tests.aio.conftest import A_IP, A_IP6, B_IP, B_IP6, make_pair
from usernet.aio.addresses import name, pack, pack_local
from usernet.aio.routing import Router
from usernet.aio.stream import connect, open_stream
from usernet.drivers.config import UsernetConfig, add_arguments
from usernet.stack.node import ANY, ANY6

NETS = [ipaddress.ip_interface("192.0.2.2/24"), ipaddress.ip_interface("2001:db8::2/64")]


@pytest.mark.parametrize(
    ("local", "remote", "expected"),
    [
        ("::", None, "usernet"),
        ("2001:db8::2", None, "usernet"),
        ("::1", None, "kernel"),
        (None, "2001:db8::9", "usernet"),  # on usernet's IPv6 network
        (None, "fe80::1%usernet0", "usernet"),  # link-local: on usernet's link, the scope left out
        (None, "2001:db8:1::1", "kernel"),  # off-link, no IPv6 gateway and no SLAAC
        (None, "::1", "kernel"),
    ],
)
def test_the_rule_for_ipv6(local: str | None, remote: str | None, expected: str) -> None:
    assert Router(NETS).choose(local, remote) == expected


def test_an_ipv6_gateway_or_slaac_takes_global_ipv6_but_not_loopback_or_multicast() -> None:
    for router in (
        Router(NETS, gateway6=ipaddress.IPv6Address("fe80::1")),
        Router(NETS[:1], ipv6=True, slaac=True),
    ):
        assert router.choose(None, "2606:4700::1") == "usernet"
        assert router.choose(None, "::1") == "kernel" and router.choose(None, "ff05::1") == "kernel"
    assert Router(NETS[:1]).choose(None, "fe80::1") == "kernel"  # IPv6 off: not usernet's link


def test_address_tuples_of_both_families() -> None:
    assert name((bytes([192, 0, 2, 2]), 80)) == ("192.0.2.2", 80)
    assert name((ipaddress.IPv6Address("2001:db8::2").packed, 80)) == ("2001:db8::2", 80, 0, 0)
    assert pack("") == ANY and pack("::") == ANY6 and pack("0.0.0.0") == ANY
    assert pack("fe80::1%usernet0") == ipaddress.IPv6Address("fe80::1").packed
    assert pack_local(None, ANY6) == ANY6 and pack_local("", bytes(4)) == ANY


def _parse(*argv: str) -> UsernetConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser, {})
    return UsernetConfig.from_args(parser.parse_args(list(argv)))


def test_address_given_several_times_and_a_gateway_per_family() -> None:
    config = _parse("--address", "192.0.2.2/24", "--address", "2001:db8::2/64", "--gateway", "192.0.2.1",
                    "--gateway", "2001:db8::1")  # fmt: skip
    assert [str(a) for a in config.addresses] == ["192.0.2.2/24", "2001:db8::2/64"]
    assert (config.gateway_of(4), config.gateway_of(6), config.wants_ipv6) == ("192.0.2.1", "2001:db8::1", True)
    assert not _parse().wants_ipv6 and _parse("--ipv6").wants_ipv6
    assert UsernetConfig(address="192.0.2.2/24,2001:db8::2/64").addresses == tuple(NETS)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"address": ""}, "has no address"),  # IPv6 ones alone will do (an IPv6-only link)
        ({"address": "2001:db8::2/64", "handover": "/run/x"}, "handover matches .* by their IPv4 address"),
        ({"gateway": "2001:db9::1"}, "not on usernet's networks"),
        ({"address": "192.0.2.2/24,2001:db8::2/64", "gateway": "2001:db8::1,2001:db8::3"}, "more than one gateway"),
    ],
)
def test_bad_ipv6_settings_say_what_is_wrong(changes: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UsernetConfig(**changes)  # type: ignore[arg-type]  # fields by name, as the options give them


def test_a_link_local_gateway_needs_no_ipv6_network() -> None:
    assert UsernetConfig(gateway="fe80::1").gateway_of(6) == "fe80::1"


def test_a_server_on_no_host_takes_both_families_with_their_tuples(loop_kind: str) -> None:
    """asyncio.start_server(host=None) on usernet listens on 0.0.0.0 and :: (IPV6_V6ONLY); a peer
    reaches it by either address, and each side names the other in its family's tuple."""
    with make_pair(loop_kind, ipv6=True) as pair:

        async def scenario() -> list[tuple[object, object]]:
            seen: list[tuple[object, object]] = []

            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                seen.append((writer.get_extra_info("sockname"), writer.get_extra_info("peername")))
                writer.write(await reader.read(100))
                await writer.drain()
                writer.close()

            server = await asyncio.start_server(handle, None, 8080)
            families = sorted(s.family for s in server.sockets)
            assert families == sorted([socket.AF_INET, socket.AF_INET6])
            await pair.b_driver.ipv6_settled()
            for count, host in enumerate((A_IP6, A_IP), 1):
                conn = await connect(pair.loop, pair.b_driver, (host, 8080), None)
                transport, _ = await open_stream(pair.loop, pair.b_driver, conn, asyncio.Protocol)
                transport.write(b"hi")
                while len(seen) < count:  # the handler has run (pair.run bounds the wait)
                    await asyncio.sleep(0.01)
                transport.close()
            server.close()
            return seen

        seen = pair.run(scenario())
        assert seen == [
            ((A_IP6, 8080, 0, 0), (B_IP6, seen[0][1][1], 0, 0)),  # type: ignore[index]  # a tuple, as asserted
            ((A_IP, 8080), (B_IP, seen[1][1][1])),  # type: ignore[index]  # as above
        ]
