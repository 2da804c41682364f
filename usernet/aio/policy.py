"""An event-loop policy for code that still uses policies (Python 3.11–3.13).

Policies are deprecated from Python 3.14 (removal planned for 3.16): prefer
`usernet.loop_factory` with `asyncio.run(..., loop_factory=...)` or `asyncio.Runner`.
This is a thin shim: the policy only decides which loop `new_event_loop()` builds.
"""

from __future__ import annotations

import asyncio
from typing import Any

from usernet.drivers.config import UsernetConfig

__all__ = ["EventLoopPolicy"]


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """Makes `asyncio.new_event_loop()` (and so `asyncio.run`) return usernet loops.

    `EventLoopPolicy()` uses the process's installed stack or USERNET_* variables;
    `EventLoopPolicy(config)` or keyword options give each new loop its own stack.
    """

    def __init__(self, config: UsernetConfig | None = None, **options: Any) -> None:
        super().__init__()
        from usernet.aio.runner import loop_factory

        self._factory = loop_factory(config, **options)

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return self._factory()
