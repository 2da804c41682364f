"""usernet on a real TAP inside a throwaway namespace, the Linux kernel on the other side."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from usernet.host import Host
from usernet.sandbox import Sandbox
from usernet.selectloop import run
from usernet.services import UdpEcho
from usernet.stack import Interface, InterfaceConfig

USERNET_IP = "192.0.2.2"
KERNEL_IP = "192.0.2.1"

pytestmark = pytest.mark.network


@dataclass
class Running:
    sandbox: Sandbox
    host: Host
    echo: UdpEcho


@pytest.fixture
def running(sandbox: Sandbox) -> Iterator[Running]:
    """usernet up on a TAP in `sandbox`, serving UDP echo from a background thread."""
    link = sandbox.create_tap("usernet0", host_address=f"{KERNEL_IP}/24")
    host = Host(link, Interface(InterfaceConfig.from_strings(link.mac, [f"{USERNET_IP}/24"])))
    echo = UdpEcho(host.iface)
    stop = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            run(host, echo.handle, until=lambda now: stop.is_set())
        except BaseException as exc:  # surfaced in the test, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield Running(sandbox, host, echo)
    finally:
        stop.set()
        thread.join(timeout=5)
        link.close()
    assert not thread.is_alive(), "the usernet loop did not stop"
    assert not errors, f"the usernet loop crashed: {errors[0]!r}"
