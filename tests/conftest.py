"""Shared by every test folder: the `sandbox` fixture, skipping network tests when not root, a
check that no namespace made by this session outlives it, and `impl`: each native test runs
once on the pure-Python twins and once on the C core (when it is loaded)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from usernet import native
from usernet._native import pure
from usernet.link.sandbox import Sandbox

IMPLS = [pytest.param(pure, id="pure")]
if native.c_impl is not None:
    IMPLS.append(pytest.param(native.c_impl, id="c"))


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> object:
    """The twin module or the C namespace: the same functions."""
    return request.param


_created: set[str] = set()


def _network_unavailable() -> str | None:
    """Why tests marked `network` cannot run here, or None if they can.

    Not being root is the one reason to skip. A missing program or /dev/net/tun fails the
    tests that need it, with a message saying what to install (tests/programs.py).
    """
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) for network namespaces and TAP devices"
    return None


def pytest_configure(config: pytest.Config) -> None:
    """Record the name of every Sandbox this session opens, whoever opens it."""
    original = Sandbox.open

    def recording_open(self: Sandbox) -> Sandbox:
        _created.add(self.name)
        return original(self)

    Sandbox.open = recording_open  # type: ignore[method-assign]  # the test records calls
    config.add_cleanup(lambda: setattr(Sandbox, "open", original))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _network_unavailable()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"network test skipped: {reason}")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)


def _existing_namespaces() -> set[str]:
    result = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return {line.split()[0] for line in result.stdout.splitlines() if line.strip()}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a namespace this session created is still there, then remove it."""
    if not _created or shutil.which("ip") is None:
        return
    leaked = sorted(_created & _existing_namespaces())
    if not leaked:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = f"LEAKED NETWORK NAMESPACES (a Sandbox was not closed): {', '.join(leaked)}"
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("!", message, red=True, bold=True)
    else:
        print(message)
    for name in leaked:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """An open network namespace for one test, closed (with all it holds) afterwards."""
    with Sandbox("test") as box:
        yield box
