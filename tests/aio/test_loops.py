"""The usernet loops are still ordinary loops, and every entry point builds them."""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings

import pytest

import usernet
from tests.aio.conftest import LOOPS
from usernet.aio.loop import UsernetSelectorEventLoop
from usernet.aio.uv import UsernetUvloop


async def basics() -> type:
    loop = asyncio.get_running_loop()
    order: list[str] = []
    done = loop.create_future()
    loop.call_soon(order.append, "soon")
    loop.call_later(0.001, lambda: done.set_result(None))
    await done
    thread = await loop.run_in_executor(None, threading.get_ident)
    assert thread != threading.get_ident()
    assert order == ["soon"]
    await asyncio.sleep(0.001)
    return type(loop)


@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_loop_basics_still_work_without_touching_the_network(kind: str) -> None:
    loop = LOOPS[kind]()
    try:
        assert loop.run_until_complete(basics()) is LOOPS[kind]
        assert loop._usernet_driver is None  # type: ignore[attr-defined]  # no TAP was opened
    finally:
        loop.close()


@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_usernet_run_is_asyncio_run_on_a_usernet_loop(kind: str) -> None:
    assert usernet.run(basics(), loop=kind) is LOOPS[kind]


@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_loop_factory_with_a_runner(kind: str) -> None:
    with asyncio.Runner(loop_factory=usernet.loop_factory(loop=kind)) as runner:
        assert runner.run(basics()) is LOOPS[kind]
        assert runner.run(basics()) is LOOPS[kind]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.run takes loop_factory from Python 3.12")
@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_loop_factory_with_asyncio_run(kind: str) -> None:
    assert asyncio.run(basics(), loop_factory=usernet.loop_factory(loop=kind)) is LOOPS[kind]  # type: ignore[call-arg]  # asyncio.run takes loop_factory from 3.12


@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_the_policy_makes_asyncio_run_use_usernet(kind: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        previous = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(usernet.EventLoopPolicy(loop=kind))
        try:
            assert asyncio.run(basics()) is LOOPS[kind]
        finally:
            asyncio.set_event_loop_policy(previous)


def test_config_and_options_are_one_or_the_other_merged() -> None:
    config = usernet.UsernetConfig(address="198.51.100.2/24")
    loop = usernet.loop_factory(config, loop="uvloop")()
    try:
        assert isinstance(loop, UsernetUvloop)
        assert loop.usernet_config == config.replace(loop="uvloop")  # type: ignore[attr-defined]  # a usernet loop, typed as any loop
    finally:
        loop.close()
    loop = usernet.loop_factory()()
    try:
        assert isinstance(loop, UsernetSelectorEventLoop)
    finally:
        loop.close()
