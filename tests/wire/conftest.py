"""Run the wire tests on the C core and on its pure-Python twins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from usernet import native
from usernet._native import pure
from usernet.wire import icmp, icmpv6, ipv4, tcp, udp

# every native function the wire modules imported, by module
_NATIVE_USES = (
    (ipv4, ("sum16", "internet_checksum")),
    (icmp, ("sum16", "internet_checksum")),
    (icmpv6, ("sum16", "pseudo_sum_v6")),
    (udp, ("l4_checksum_v4",)),
    (tcp, ("l4_checksum_v4", "tcp_parse")),
)


@pytest.fixture(params=["c", "pure"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the wire modules at one implementation of the native functions."""
    if request.param == "c":
        if not native.available():
            pytest.skip("the C core is not built")
        for module, names in _NATIVE_USES:
            for name in names:
                assert getattr(module, name) is getattr(native, name)
    else:
        for module, names in _NATIVE_USES:
            for name in names:
                monkeypatch.setattr(module, name, getattr(pure, name))
    yield request.param
