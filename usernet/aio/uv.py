"""uvloop with usernet: the same mixin as the stdlib loop, on `uvloop.Loop`.

Imported only when uvloop is wanted, so `import usernet.aio` does not load it.
"""

from __future__ import annotations

import uvloop

from usernet.aio.loop import UsernetLoopMixin
from usernet.drivers.config import UsernetConfig
from usernet.drivers.host import Host

__all__ = ["UsernetUvloop"]

#: The class uvloop shipped, kept before `install` points `uvloop.Loop` at UsernetUvloop.
BaseUvloop: type[uvloop.Loop] = uvloop.Loop


class UsernetUvloop(UsernetLoopMixin, BaseUvloop):  # type: ignore[misc, valid-type]  # a base held in a variable
    """uvloop's loop with usernet's stack for the sockets the Router sends there."""

    def __init__(self, *, config: UsernetConfig | None = None, host: Host | None = None) -> None:
        super().__init__()
        self._usernet_setup(config, host)
