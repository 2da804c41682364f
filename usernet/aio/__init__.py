"""The asyncio face of usernet: loops, transports, routing between usernet and the kernel, entry points.

Start with `usernet.run`, `usernet.loop_factory` or `python -m usernet`; see "The
asyncio face" in docs/architecture.md for how the pieces fit.
"""

from usernet.aio.routing import use_backend
from usernet.drivers.config import UsernetConfig

__all__ = ["UsernetConfig", "use_backend"]
