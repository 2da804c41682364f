"""What one read or write of a connection's field costs, by where the field lives.

Run `python -m benchmarks.state_access [--number 2000000]` (no root). For the established
path in C (docs/architecture.md, "The established path in C") the sequence variables move
into C memory that Python code still reads on its slow paths; this compares the ways
Python can reach them: a `__slots__` attribute (today), a cffi struct's field, a property
over that field (the names unchanged for the rest of the code), and an element of a
`memoryview` cast over the same memory, read with an index constant. The figure is ns per
access, the loop's own cost (`pass`) subtracted, the best of five repeats.
"""

from __future__ import annotations

import argparse
import timeit

from cffi import FFI

_ffi = FFI()
_ffi.cdef("typedef struct { int64_t snd_una; int64_t rcv_nxt; } tcb;")
SND_UNA = 0  # the field's index in the memoryview, as layout.py would name it


class Slots:
    __slots__ = ("snd_una", "tcb")

    def __init__(self) -> None:
        self.snd_una = 123_456_789
        self.tcb = _ffi.new("tcb *")
        self.tcb.snd_una = 123_456_789


class OverC(Slots):
    __slots__ = ()

    @property
    def una(self) -> int:
        return self.tcb.snd_una

    @una.setter
    def una(self, value: int) -> None:
        self.tcb.snd_una = value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2_000_000, help="accesses per repeat")
    number = parser.parse_args().number
    s = OverC()
    names = {"s": s, "c": s.tcb, "mv": memoryview(_ffi.buffer(s.tcb)).cast("q"), "SND_UNA": SND_UNA}
    empty = min(timeit.repeat("pass", number=number, repeat=5)) / number
    cases = [
        ("slot", "s.snd_una", "s.snd_una = 123_456_790"),
        ("cffi struct field", "c.snd_una", "c.snd_una = 123_456_790"),
        ("property over the field", "s.una", "s.una = 123_456_790"),
        ("memoryview element", "mv[SND_UNA]", "mv[SND_UNA] = 123_456_790"),
    ]
    print(f"{'where the field lives':26} {'read ns':>8} {'write ns':>9}")
    for title, read, write in cases:
        r, w = (
            min(timeit.repeat(stmt, globals=names, number=number, repeat=5)) / number - empty for stmt in (read, write)
        )
        print(f"{title:26} {r * 1e9:8.1f} {w * 1e9:9.1f}")


if __name__ == "__main__":
    main()
