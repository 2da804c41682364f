"""Ports outside 0-65535 are refused by the stack itself, not cut to 16 bits.

A port that the wire cannot carry would otherwise bind a listener no segment can reach,
or (once something wraps it) bind or connect to another port than the one asked for. The
asyncio face refuses these first, with the stdlib's OverflowError; these tests pin that a
caller of the sans-IO layers gets a PortRangeError (an OSError with EINVAL and a
ValueError) naming the port and the range.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

from tests.stack.simpair import A_IP, B_IP, Pair
from usernet.stack.ports import PortRangeError

BAD_PORTS = [-1, 65536, 70000]

Opener = Callable[[Pair, object], object]


def _listen(pair: Pair, port: object) -> object:
    return pair.a.iface.tcp.listen((A_IP, port))  # type: ignore[arg-type]  # the point is a bad port


def _connect_from(pair: Pair, port: object) -> object:
    return pair.a.iface.tcp.connect((B_IP, 80), pair.now(), (A_IP, port))  # type: ignore[arg-type]


def _open_udp(pair: Pair, port: object) -> object:
    return pair.a.iface.open_udp((A_IP, port))  # type: ignore[arg-type]


CALLS: dict[str, Opener] = {"tcp listen": _listen, "tcp connect local": _connect_from, "udp open": _open_udp}


@pytest.mark.parametrize("port", BAD_PORTS)
@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_local_port_outside_the_range_is_refused(pair: Pair, call: Opener, port: int) -> None:
    with pytest.raises(ValueError, match=f"port {port} is out of range 0-65535") as info:
        call(pair, port)
    assert isinstance(info.value, PortRangeError)
    assert info.value.errno == errno.EINVAL


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_local_port_that_is_not_an_int_is_refused(pair: Pair, call: Opener) -> None:
    with pytest.raises(PortRangeError, match="port '80' is out of range 0-65535"):
        call(pair, "80")


def test_the_range_ends_are_taken(pair: Pair) -> None:
    """0 asks for an ephemeral port; 65535 is the highest a header holds."""
    assert pair.a.iface.tcp.listen((A_IP, 0)).local[1] != 0
    assert pair.a.iface.tcp.listen((A_IP, 65535)).local == (A_IP, 65535)
    assert pair.a.iface.tcp.connect((B_IP, 80), pair.now(), (A_IP, 0)).local[1] != 0
    assert pair.a.iface.tcp.connect((B_IP, 81), pair.now(), (A_IP, 65535)).local == (A_IP, 65535)
    assert pair.a.iface.open_udp((A_IP, 0)).local[1] != 0
    assert pair.a.iface.open_udp((A_IP, 65535)).local == (A_IP, 65535)


@pytest.mark.parametrize("port", [0, 65536, 70000])
def test_a_destination_port_outside_the_range_is_refused(pair: Pair, port: int) -> None:
    """The destination's range starts at 1: port 0 cannot be connected or sent to."""
    message = f"destination port {port} is out of range 1-65535"
    with pytest.raises(PortRangeError, match=message):
        pair.a.iface.tcp.connect((B_IP, port), pair.now())
    with pytest.raises(PortRangeError, match=message):
        pair.a.iface.open_udp().sendto(b"x", (B_IP, port), pair.now())
