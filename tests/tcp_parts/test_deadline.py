"""`ConnectionTimers.deadline`, written out timer by timer: the earliest of the five
armed, None when none is, whichever of them are set and in whatever order they fall."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any, cast

from usernet.stack.tcp.timers import ConnectionTimers

TIMERS = ("_rto_at", "_persist_at", "_delack_at", "_keepalive_at", "_close_at")


def test_deadline_is_the_earliest_armed_timer() -> None:
    values = (None, 1.0, 2.0, 3.0)
    for combo in itertools.product(values, repeat=len(TIMERS)):
        conn = cast(Any, SimpleNamespace(**dict(zip(TIMERS, combo, strict=True))))
        armed = [t for t in combo if t is not None]
        assert ConnectionTimers.deadline(conn) == (min(armed) if armed else None), combo
