"""cffi build script (API, out-of-line mode), run by setuptools during `pip install`.

Paths are relative to the project root, where setuptools runs it. No -march=native:
the wheel built here may run on another CPU; the checksum loop is written so that
plain -O3 on x86-64 or aarch64 already runs it at tens of GB/s.
"""

from cffi import FFI

CDEF = """
#define UN_TCP_SHORT ...
#define UN_TCP_BAD_OFFSET ...
#define UN_TCP_OFFSET_PAST_END ...
#define UN_TCP_BAD_OPTION ...
#define UN_TCP_FIELDS ...
#define UN_TCP_OUT_LEN ...
#define UN_CSUM_FULL ...
#define UN_CSUM_PARTIAL ...
#define UN_BUILD_NO_ROOM ...
#define UN_BUILD_BAD_OPTIONS ...
#define UN_BUILD_TOO_LONG ...
#define UN_BUILD_BAD_ADDRESS ...
#define UN_BUILD_BAD_FLAGS ...
#define UN_BUILD_BAD_CSUM_MODE ...
uint32_t un_sum16(const uint8_t *data, size_t len, uint32_t initial);
int32_t un_pseudo_sum_v4(const uint8_t *src, size_t src_len, const uint8_t *dst, size_t dst_len,
                         uint8_t proto, uint16_t length);
int32_t un_pseudo_sum_v6(const uint8_t *src, size_t src_len, const uint8_t *dst, size_t dst_len,
                         uint8_t next_header, uint32_t length);
int32_t un_l4_checksum_v4(const uint8_t *src, size_t src_len, const uint8_t *dst, size_t dst_len,
                          uint8_t proto, const uint8_t *segment, size_t segment_len);
uint32_t un_checksum_update16(uint16_t csum, uint16_t old, uint16_t new_value);
int un_tcp_parse(const uint8_t *buf, size_t len, int64_t *out);
int32_t un_build_ipv4_tcp(uint8_t *buf, size_t buf_len, uint32_t offset,
                          const uint8_t *dst_mac, size_t dst_mac_len, const uint8_t *src_mac, size_t src_mac_len,
                          const uint8_t *src_ip, size_t src_ip_len, const uint8_t *dst_ip, size_t dst_ip_len,
                          uint16_t ident, uint8_t ttl, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                          uint16_t flags, uint16_t window, uint16_t urgent,
                          const uint8_t *options, size_t options_len, const uint8_t *payload, size_t payload_len,
                          uint32_t csum_mode);
int32_t un_build_ipv4_udp(uint8_t *buf, size_t buf_len, uint32_t offset,
                          const uint8_t *dst_mac, size_t dst_mac_len, const uint8_t *src_mac, size_t src_mac_len,
                          const uint8_t *src_ip, size_t src_ip_len, const uint8_t *dst_ip, size_t dst_ip_len,
                          uint16_t ident, uint8_t ttl, uint16_t sport, uint16_t dport,
                          const uint8_t *payload, size_t payload_len, uint32_t csum_mode);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "usernet._native._core",
    '#include "core.h"',
    sources=["usernet/_native/core.c"],
    include_dirs=["usernet/_native"],
    extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra"],
)
