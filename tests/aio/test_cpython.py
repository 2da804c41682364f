"""A part of CPython's own asyncio test suite (installed with Python), run on usernet's loops.

The loop here (the stdlib-based one) drives a stack whose address is 127.0.0.1/8 on a link that hands every
frame back to its sender, so the tests' own "127.0.0.1" servers and clients — both in
one loop — talk to each other through usernet's TCP, not the kernel's. Tests that need
something usernet does not offer are listed in KNOWN with the reason; docs/asyncio.md
keeps the tally.
"""

from __future__ import annotations

import asyncio
import unittest
from typing import Any

import pytest

from tests.aio.conftest import LOOPS, Nudging
from usernet.drivers.host import Host
from usernet.link.memory import MemoryEndpoint
from usernet.stack import Interface, InterfaceConfig

test_buffered_proto = pytest.importorskip("test.test_asyncio.test_buffered_proto")
test_server = pytest.importorskip("test.test_asyncio.test_server")
test_streams = pytest.importorskip("test.test_asyncio.test_streams")

#: Tests whose peer is a kernel socket in a thread (test_utils.run_test_server, tcp_client):
#: their "127.0.0.1" is usernet's here, so the kernel peer is out of reach by construction.
_KERNEL_PEER = "its peer is a kernel socket in a thread, which cannot reach usernet's 127.0.0.1"
KNOWN: dict[str, str] = {
    name: _KERNEL_PEER
    for name in (
        "test_async_writer_api", "test_async_writer_api_exception_after_close", "test_drain_raises",
        "test_eof_feed_when_closing_writer", "test_loop_is_closed_resource_warnings", "test_open_connection",
        "test_open_connection_error", "test_open_connection_no_loop_ssl", "test_unclosed_resource_warnings",
        "test_wait_closed_on_close", "test_wait_closed_on_close_with_unread_data", "test_start_server_1",
        "test_unclosed_server_resource_warnings",
    )
}  # fmt: skip  # arguments grouped a line, compact

_MIRROR_MAC = b"\x02\x75\x6e\x00\x00\x01"


def mirror_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A usernet loop whose stack is 127.0.0.1/8 and hears what it sends."""
    holder: list[asyncio.AbstractEventLoop] = []
    link = Nudging(MemoryEndpoint(lambda: holder[0].time(), 1500, _MIRROR_MAC, 0.0, 4096))
    host = Host(link, Interface(InterfaceConfig.from_strings(link.mac, ["127.0.0.1/8"])))
    loop = LOOPS[kind](host=host)
    holder.append(loop)
    link.nudge = loop.usernet_driver().wake  # type: ignore[attr-defined]  # a usernet loop, typed as any loop
    return loop


def _on_usernet(base: type, kind: str) -> type:
    """`base` with every way it makes a loop producing a usernet mirror loop."""

    def new_loop(self: Any) -> asyncio.AbstractEventLoop:
        return mirror_loop(kind)

    def set_up(self: Any) -> None:
        base.setUp(self)
        if isinstance(getattr(self, "loop", None), asyncio.AbstractEventLoop) and not hasattr(
            self.loop, "usernet_driver"
        ):
            self.loop.close()
            self.loop = mirror_loop(kind)
            self.set_event_loop(self.loop)

    members: dict[str, Any] = {
        "new_loop": new_loop,
        "create_event_loop": new_loop,
        "setUp": set_up,
        "__module__": __name__,
    }
    for name, reason in KNOWN.items():
        if hasattr(base, name):
            members[name] = unittest.skip(reason)(getattr(base, name))
    return type(f"{base.__name__}OnUsernet", (base,), members)


# The mixins reach into the stdlib selector loop's internals, so they run on that base loop.
StreamTestsOnUsernet = _on_usernet(test_streams.StreamTests, "asyncio")
StartServerTestsOnUsernet = _on_usernet(test_server.SelectorStartServerTests, "asyncio")
BufferedProtocolTestsOnUsernet = _on_usernet(
    type("BufferedProtocolTests", (test_buffered_proto.BaseTestBufferedProtocol, unittest.TestCase), {}), "asyncio"
)
