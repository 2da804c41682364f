"""usernet: a userspace TCP/UDP/IP stack for asyncio on a Linux TAP device.

The asyncio entry points are imported on first use, so `import usernet` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["EventLoopPolicy", "UsernetConfig", "loop_factory", "run", "use_backend"]

_LAZY = {
    "run": "usernet.aio.runner",
    "loop_factory": "usernet.aio.runner",
    "EventLoopPolicy": "usernet.aio.policy",
    "UsernetConfig": "usernet.drivers.config",
    "use_backend": "usernet.aio.routing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'usernet' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
