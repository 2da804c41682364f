"""The contracts between usernet's asyncio objects: the driver's StackOwner and the transports' abstract base.

mypy checks each owner where it is registered; these tests catch at run time what a
subclass or a new owner kind could still forget: an abstract method left out makes the
transport impossible to instantiate, and every owner answers both StackOwner calls.
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
from usernet.aio.transport import UsernetTransport
from usernet.socket.usernet_sockets import UsernetTcp, UsernetUdp

OWNERS = [StreamTransport, DatagramTransport, _Listening, Held, _Waker, UsernetTcp, UsernetUdp]


@pytest.mark.parametrize("kind", [StreamTransport, DatagramTransport])
def test_each_transport_kind_implements_every_abstract_method(kind: type[UsernetTransport]) -> None:
    assert not inspect.isabstract(kind), sorted(kind.__abstractmethods__)


def test_a_transport_missing_an_abstract_method_cannot_be_made() -> None:
    class Forgetful(UsernetTransport):
        def _readiness(self) -> tuple[bool, bool]:
            return False, False

    with pytest.raises(TypeError, match="stack_ready"):
        Forgetful(None, None, None, asyncio.Protocol(), None)  # type: ignore[abstract, arg-type]  # refused before __init__


@pytest.mark.parametrize("kind", OWNERS, ids=lambda kind: kind.__name__)
def test_every_owner_kind_answers_the_driver(kind: type) -> None:
    for method in ("stack_ready", "stack_detached"):
        assert hasattr(StackOwner, method)
        assert callable(getattr(kind, method, None)), f"{kind.__name__} lacks StackOwner.{method}"
        assert inspect.signature(getattr(kind, method)).parameters.keys() == {"self"}
