"""What one idle object costs: the bytes Python allocates to make it, by tracemalloc (exact, no timing)."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Callable

COUNT = 200
#: Less than the smallest object a list, dict or bytearray attribute would add (an empty list is 56 bytes).
NOTHING = 16


def bytes_beyond_itself(make: Callable[[], object]) -> float:
    """Bytes per object that making it allocates beyond the object itself (its own attributes' lists, buffers...).

    Below `NOTHING` means none: what is left is the bookkeeping of the list the objects are kept in.
    """
    gc.collect()
    make()  # warm up: code objects and caches on the first call
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        made = [make() for _ in range(COUNT)]
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    return (grown - sys.getsizeof(made)) / COUNT - sys.getsizeof(made[0])
