"""The contracts between usernet's asyncio objects: the driver's StackOwner, the pseudo-socket's
SocketOwner and the transports' abstract base.

mypy checks each owner where it is registered; these tests catch at run time what a
subclass or a new owner kind could still forget: an abstract method left out makes the
transport impossible to instantiate, and every owner answers every call of its protocol.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest

from usernet.aio.datagram import DatagramTransport
from usernet.aio.driver import StackOwner
from usernet.aio.server import _Listening
from usernet.aio.sockets import Held
from usernet.aio.stream import StreamTransport, _Waker
from usernet.aio.transport import SocketOwner, UsernetTransport
from usernet.socket.usernet_sockets import UsernetTcp, UsernetUdp

OWNERS = [StreamTransport, DatagramTransport, _Listening, Held, _Waker, UsernetTcp, UsernetUdp]
SOCKET_OWNERS = [StreamTransport, DatagramTransport, _Listening, Held]


@pytest.mark.parametrize("kind", [StreamTransport, DatagramTransport])
def test_each_transport_kind_implements_every_abstract_method(kind: type[UsernetTransport]) -> None:
    assert not inspect.isabstract(kind), sorted(kind.__abstractmethods__)


def test_a_transport_missing_an_abstract_method_cannot_be_made() -> None:
    class Forgetful(UsernetTransport):
        def readiness(self) -> tuple[bool, bool]:
            return False, False

    with pytest.raises(TypeError, match="stack_ready"):
        Forgetful(None, None, None, asyncio.Protocol(), None)  # type: ignore[abstract, arg-type]  # refused before __init__


@pytest.mark.parametrize("kind", OWNERS, ids=lambda kind: kind.__name__)
def test_every_owner_kind_answers_the_driver(kind: type) -> None:
    for method in ("stack_ready", "stack_detached"):
        assert hasattr(StackOwner, method)
        assert callable(getattr(kind, method, None)), f"{kind.__name__} lacks StackOwner.{method}"
        assert inspect.signature(getattr(kind, method)).parameters.keys() == {"self"}


@pytest.mark.parametrize("kind", SOCKET_OWNERS, ids=lambda kind: kind.__name__)
def test_every_pseudo_socket_owner_answers_the_pseudo_socket(kind: type) -> None:
    for method in ("sockname", "peername", "apply_option", "live_option", "readiness", "close"):
        assert hasattr(SocketOwner, method)
        want = inspect.signature(getattr(SocketOwner, method)).parameters.keys()
        assert inspect.signature(getattr(kind, method)).parameters.keys() == want, f"{kind.__name__}.{method}"
