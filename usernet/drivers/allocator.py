"""Fixed malloc thresholds for a process that moves frames: the same heap behaviour in every run.

A bulk transfer makes and frees buffers of 64-256 KiB at every wake-up of the loop: TSO
and GRO frames, send-buffer chunks, the bytes a protocol is handed. glibc's defaults put
the two thresholds that decide what happens to them at 128 KiB and then move them by the
process's own history (the first big block it frees raises both). So whether a process
gives those buffers back to the kernel at each free, and takes ~40-60 page faults a wake-up
to get them back, depends on what it happened to allocate first: the same program
settled at one of two throughputs, run after run (docs/performance.md, "Bulk that does
not depend on luck"). Fixing the thresholds makes the fast heap the rule.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "fix_thresholds", "is_glibc"]

#: Blocks below this come from the heap and are reused there (glibc's default: 128 KiB, moving).
MMAP_THRESHOLD = 1 << 20
#: Free memory at the heap's top is given back to the kernel only beyond this (default 128 KiB, moving).
TRIM_THRESHOLD = 2 << 20
# malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: What glibc reads from the environment: a person who set either keeps their choice.
_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

_fixed = False


def fix_thresholds() -> bool:
    """Set glibc's mmap and trim thresholds once per process; False where that is not glibc's
    to set (another C library, or the environment already chose)."""
    global _fixed
    if _fixed:
        return True
    if not is_glibc() or any(name in os.environ for name in _ENVIRONMENT):
        return False
    libc = ctypes.CDLL(None)
    _fixed = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _fixed


def is_glibc() -> bool:
    """Whether this process runs on glibc, whose thresholds these are."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        return False  # not glibc: the name is unknown there
