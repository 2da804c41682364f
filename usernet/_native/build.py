"""cffi build script (API, out-of-line mode), run by setuptools during `pip install`.

Paths are relative to the project root, where setuptools runs it.
"""

from cffi import FFI

CDEF = """
uint32_t un_sum16(const uint8_t *data, size_t len, uint32_t initial);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "usernet._native._core",
    '#include "core.h"',
    sources=["usernet/_native/core.c"],
    include_dirs=["usernet/_native"],
    extra_compile_args=["-O2", "-std=c11"],
)
