"""cffi build script (API, out-of-line mode), run by setuptools during `pip install`.

Paths are relative to the project root, where setuptools runs it. No -march=native:
the wheel built here may run on another CPU; the checksum loop is written so that
plain -O3 on x86-64 or aarch64 already runs it at tens of GB/s.
"""

from pathlib import Path

from cffi import FFI

HEADER = Path(__file__).with_name("core.h")


def cdef_from_header(text: str) -> str:
    """The cdef, derived from core.h so the prototypes are written once.

    cffi's cdef takes no preprocessor lines except `#define NAME ...` (a constant whose
    value the compiler supplies): include guards and #includes are dropped, and every
    `#define UN_*` becomes such a constant. Comments are cffi's to strip.
    """
    lines = []
    for line in text.splitlines():
        if line.startswith("#define UN_"):
            lines.append(f"#define {line.split()[1]} ...")
        elif not line.startswith("#"):
            lines.append(line)
    return "\n".join(lines)


CDEF = cdef_from_header(HEADER.read_text())

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "usernet._native._core",
    '#include "core.h"',
    sources=["usernet/_native/core.c", "usernet/_native/offload.c"],
    include_dirs=["usernet/_native"],
    extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra"],
)
