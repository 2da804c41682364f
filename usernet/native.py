"""The one place that chooses between the C core and its pure-Python twins.

Everything else imports the functions from here. The compiled module is used when it
imports and USERNET_PURE is not set; otherwise the twins are used and a warning says
so once, so a missing compiler costs speed, never correctness.
"""

from __future__ import annotations

import os
import warnings

from usernet._native import pure
from usernet._native.pure import BytesLike

__all__ = ["available", "sum16", "internet_checksum", "BytesLike"]

_lib = None
_ffi = None
if os.environ.get("USERNET_PURE", "") not in ("", "0"):
    _reason = "USERNET_PURE is set"
else:
    try:
        from usernet._native._core import ffi as _ffi, lib as _lib  # type: ignore[import-not-found]

        _reason = ""
    except ImportError as exc:  # pragma: no cover - depends on the install
        _reason = f"the C extension did not import ({exc}); reinstall with a C compiler present"
        warnings.warn(f"usernet: using the pure-Python core, slower: {_reason}", RuntimeWarning, stacklevel=2)


def available() -> bool:
    """True when the compiled C core is in use."""
    return _lib is not None


if _lib is not None and _ffi is not None:
    _c_sum16 = _lib.un_sum16
    _from_buffer = _ffi.from_buffer

    def sum16(data: BytesLike, initial: int = 0) -> int:
        """Ones' complement 16-bit sum of `data` plus `initial` (< 2**32), fully folded."""
        buf = _from_buffer(data)
        return _c_sum16(buf, len(buf), initial)

else:
    sum16 = pure.sum16


def internet_checksum(data: BytesLike) -> int:
    """RFC 1071 Internet checksum of `data` (any bytes-like object, any alignment)."""
    return ~sum16(data) & 0xFFFF
