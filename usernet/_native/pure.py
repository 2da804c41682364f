"""Pure-Python twins of the C functions in core.c, with identical results.

They are the reference the C code is tested against, and the path taken when the
extension is missing or USERNET_PURE=1.
"""

from __future__ import annotations

from typing import Union

BytesLike = Union[bytes, bytearray, memoryview]


def sum16(data: BytesLike, initial: int = 0) -> int:
    """Ones' complement 16-bit sum of `data` plus `initial`, folded until no carry is left.

    The buffer is read as one big integer: 2**16 is 1 modulo 0xFFFF, so the integer
    modulo 0xFFFF is the sum of its 16-bit words modulo 0xFFFF. That is one C-speed
    operation instead of a Python loop over words.
    """
    mv = memoryview(data).cast("B")
    n = len(mv)
    value = int.from_bytes(mv, "big")
    if n & 1:
        value <<= 8  # pad the odd trailing byte with zero
    total = initial + value
    if total == 0:
        return 0
    r = total % 0xFFFF
    return 0xFFFF if r == 0 else r
