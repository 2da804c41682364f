"""`--link` URLs: what each form opens, and the errors for what is not a link."""

from __future__ import annotations

import argparse
import re
import socket

import pytest

from usernet.drivers.config import UsernetConfig, add_arguments, open_host
from usernet.link.udp import UdpLink
from usernet.link.url import TapUrl, TunUrl, UdpUrl, parse_link_url


def test_the_forms() -> None:
    assert parse_link_url("tap:usernet1") == TapUrl("usernet1")
    assert parse_link_url("TAP:usernet1") == TapUrl("usernet1")
    assert parse_link_url("tun:tun0") == TunUrl("tun0")
    assert str(parse_link_url("TUN:tun0")) == "tun:tun0"
    udp = parse_link_url("udp://127.0.0.1:5555?peer=127.0.0.1:5556")
    assert udp == UdpUrl(("127.0.0.1", 5555), ("127.0.0.1", 5556))
    assert str(udp) == "udp://127.0.0.1:5555?peer=127.0.0.1:5556"
    v6 = parse_link_url("udp://[::1]:5555?peer=[::1]:5556")
    assert v6 == UdpUrl(("::1", 5555), ("::1", 5556))
    assert str(v6) == "udp://[::1]:5555?peer=[::1]:5556"
    assert parse_link_url("udp://localhost:1?peer=localhost:2") == UdpUrl(("localhost", 1), ("localhost", 2))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("usernet0", "no kind of link"),
        ("eth:x", "unknown kind of link 'eth'"),
        ("tap:", "an interface name is 1 to 15"),
        ("tap:name-that-is-far-too-long", "an interface name is 1 to 15"),
        ("tap:a b", "an interface name"),
        ("tun:", "an interface name is 1 to 15"),
        ("udp://127.0.0.1:5555", "exactly one peer"),
        ("udp://127.0.0.1:5555?peer=1.2.3.4:1&peer=1.2.3.4:2", "exactly one peer"),
        ("udp://127.0.0.1?peer=127.0.0.1:1", "the local address '127.0.0.1' needs a port"),
        ("udp://127.0.0.1:0?peer=127.0.0.1:1", "needs a port, 1..65535"),
        ("udp://127.0.0.1:99999?peer=127.0.0.1:1", "local port in '127.0.0.1:99999' is not a number"),
        ("udp://127.0.0.1:1?peer=127.0.0.1:x", "peer port in '127.0.0.1:x' is not a number"),
        ("udp://127.0.0.1:1?peer=:5", "the peer address ':5' is not HOST:PORT"),
        ("udp://user@127.0.0.1:1?peer=127.0.0.1:2", "is not HOST:PORT"),
        ("udp://127.0.0.1:1/x?peer=127.0.0.1:2", "nothing may follow"),
        ("udp://127.0.0.1:1?peer=127.0.0.1:2&mtu=9000", "unknown setting 'mtu'"),
        ("udp://127.0.0.1:1?junk", "not name=value pairs"),
    ],
)
def test_bad_urls_say_what_is_wrong_and_what_to_write(url: str, why: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_link_url(url)
    assert why in str(info.value)
    assert "write tap:NAME, tun:NAME, packet:IFNAME or udp://LOCAL_HOST:PORT?peer=HOST:PORT" in str(info.value)


def test_link_wins_over_tap_and_tap_alone_is_the_default_link() -> None:
    assert UsernetConfig().link_url == TapUrl("usernet0")
    assert UsernetConfig(tap="other").link_url == TapUrl("other")
    assert UsernetConfig(tap="other", link="tap:mine").link_url == TapUrl("mine")
    config = UsernetConfig(tap="other", link="udp://127.0.0.1:1?peer=127.0.0.1:2")
    assert config.link_url == UdpUrl(("127.0.0.1", 1), ("127.0.0.1", 2))


def test_config_errors_come_when_the_config_is_made() -> None:
    with pytest.raises(ValueError, match="bad link 'udp://x'"):
        UsernetConfig(link="udp://x")
    with pytest.raises(ValueError, match="an interface name is 1 to 15"):
        UsernetConfig.from_env({"USERNET_LINK": "tun:"})
    udp = "udp://127.0.0.1:1?peer=127.0.0.1:2"
    for option in ({"sandbox": True}, {"offloads": True}, {"host_address": "192.0.2.1/24"}):
        with pytest.raises(
            ValueError, match=re.escape(f"is about a TAP or TUN device and does not go with the link {udp}")
        ):
            UsernetConfig(link=udp, **option)
    UsernetConfig(link="tap:x", sandbox=True)
    UsernetConfig(link="tun:x", sandbox=True, offloads=True, host_address="192.0.2.1/24")
    for bad in ("ns.example", "2001:db8::53:"):
        with pytest.raises(
            ValueError, match=re.escape(f"dns must be the IPv4 or IPv6 address of a DNS server, not {bad!r}")
        ):
            UsernetConfig(dns=bad)
    assert UsernetConfig(dns="2001:db8::53").dns == "2001:db8::53"


def test_option_variable_and_child_environment_agree() -> None:
    url = "udp://127.0.0.1:7001?peer=127.0.0.1:7002"
    parser = argparse.ArgumentParser()
    add_arguments(parser, environ={"USERNET_LINK": url})
    args = parser.parse_args(["--dns", "192.0.2.1"])
    config = UsernetConfig.from_args(args)
    assert (config.link, config.dns) == (url, "192.0.2.1")
    assert UsernetConfig.from_env(config.to_env()) == config
    args = parser.parse_args(["--link", "tap:t1"])
    assert UsernetConfig.from_args(args).link_url == TapUrl("t1")


def test_open_host_builds_a_udp_link_without_privileges() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = UsernetConfig(link=f"udp://127.0.0.1:{port}?peer=127.0.0.1:9", mtu=9000)
    with open_host(config) as host:
        link = host.link
        assert isinstance(link, UdpLink)
        assert link.local_address == ("127.0.0.1", port) and link.peer_address == ("127.0.0.1", 9)
        assert link.mtu == 9000 and host.iface.config.mtu == 9000
        assert host.iface.config.tso_max == 0  # no GSO on a UDP link: the stack builds each frame
    assert link.closed


def test_the_command_line_says_what_is_wrong_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="usernet")
    add_arguments(parser, environ={})
    for argv, message in (
        (
            ["--link", "udp://127.0.0.1:1"],
            "argument --link: bad link 'udp://127.0.0.1:1': a UDP link needs exactly one peer",
        ),
        (["--link", "tun:"], "argument --link: bad link 'tun:': an interface name is 1 to 15"),
        (["--dns", "ns.example"], "argument --dns: dns must be the IPv4 or IPv6 address of a DNS server"),
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert message in capsys.readouterr().err
