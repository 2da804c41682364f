"""The one place that chooses between the C core and its pure-Python twins.

Everything else imports the functions from here. The compiled module is used when it
imports and USERNET_PURE is not set; otherwise the twins are used and a warning says
so once, so a missing compiler costs speed, never correctness.

Both implementations stay reachable for tests and benchmarks: `pure_impl` is the twin
module, `c_impl` a namespace of the same functions backed by C (None when the C core
is not loaded). The module-level functions are one or the other, chosen once at import.
"""

from __future__ import annotations

import os
import struct
import threading
import types
import warnings
from typing import TYPE_CHECKING, Any

from usernet._native import pure
from usernet._native.pure import (
    BUILD_ERRORS,
    CSUM_FULL,
    CSUM_PARTIAL,
    TCP_ERRORS,
    TCP_OK,
    BytesLike,
    GroRead,
    GsoWritten,
    RxParsed,
    RxUdp,
    TcpParsed,
)

__all__ = [
    "BUILD_ERRORS",
    "CSUM_FULL",
    "CSUM_PARTIAL",
    "TCP_ERRORS",
    "TCP_OK",
    "BytesLike",
    "GroRead",
    "GsoWritten",
    "RxParsed",
    "RxUdp",
    "TcpParsed",
    "available",
    "build_ipv4_tcp",
    "build_ipv4_udp",
    "build_tcp",
    "build_udp",
    "c_impl",
    "checksum_update16",
    "gro_read",
    "gso_write",
    "internet_checksum",
    "l4_checksum_v4",
    "pseudo_sum_v4",
    "pseudo_sum_v6",
    "pure_impl",
    "rx_ipv4_tcp",
    "rx_ipv4_udp",
    "sum16",
    "tcp_parse",
]

pure_impl = pure


def _bind(ffi: Any, lib: Any) -> types.SimpleNamespace:
    """The C functions behind the same signatures as the twins.

    Library functions and `ffi.from_buffer` are bound to closure variables so that a
    call costs one buffer wrap per buffer argument and one C call, nothing more.
    Addresses go to C as `bytes` without a wrap (cffi passes their storage directly);
    their lengths go along so that C refuses a short one instead of reading past it.
    """
    from_buffer = ffi.from_buffer
    c_sum16 = lib.un_sum16
    c_pseudo_v4 = lib.un_pseudo_sum_v4
    c_pseudo_v6 = lib.un_pseudo_sum_v6
    c_l4_v4 = lib.un_l4_checksum_v4
    c_tcp_parse = lib.un_tcp_parse
    c_build_tcp = lib.un_build_ipv4_tcp
    c_build_udp = lib.un_build_ipv4_udp
    c_route_tcp = lib.un_build_tcp
    c_route_udp = lib.un_build_udp
    c_rx = lib.un_rx_ipv4_tcp
    c_rx_udp = lib.un_rx_ipv4_udp
    c_gso_write = lib.un_gso_write
    c_gro_read = lib.un_gro_read
    byte_array = ffi.typeof("uint8_t[]")
    out_ctype = ffi.typeof(f"int64_t[{lib.UN_TCP_OUT_LEN}]")

    rx_ctype = ffi.typeof(f"int64_t[{lib.UN_RX_OUT_LEN}]")

    class Scratch(threading.local):
        """The output arrays, one set per thread: cffi releases the GIL during a call."""

        def __init__(self) -> None:
            self.out = ffi.new(out_ctype)
            self.view = ffi.buffer(self.out)
            self.rx = ffi.new(rx_ctype)
            self.rx_view = ffi.buffer(self.rx)
            self.rx_udp = ffi.new(f"int64_t[{lib.UN_RX_UDP_OUT_LEN}]")
            self.rx_udp_view = ffi.buffer(self.rx_udp)
            self.gso = ffi.new("int64_t[3]")
            self.gro = ffi.new("int64_t[3]")
            self.spans = ffi.new("int32_t[]", 128)
            self.spans_cap = 64

    scratch = Scratch()
    fields = lib.UN_TCP_FIELDS
    unpack_fields = struct.Struct(f"{fields}q").unpack_from
    unpack_edges = [struct.Struct(f"{fields + 2 * n}q").unpack_from for n in range(5)]
    # rx_ipv4_tcp's tail, after tcp_parse's fields: address, flow key (unsigned), payload offset and length.
    unpack_rx_tail = struct.Struct("qQqq").unpack_from
    rx_tail_at = lib.UN_TCP_OUT_LEN * 8
    rx_other = lib.UN_RX_OTHER
    unpack_rx_udp = struct.Struct(f"{lib.UN_RX_UDP_OUT_LEN}q").unpack_from
    no_sack = ((),)

    def sum16(data: BytesLike, initial: int = 0) -> int:
        buf = from_buffer(data)
        return c_sum16(buf, len(buf), initial)

    def internet_checksum(data: BytesLike) -> int:
        buf = from_buffer(data)
        return ~c_sum16(buf, len(buf), 0) & 0xFFFF

    def pseudo_sum_v4(src: bytes, dst: bytes, proto: int, length: int) -> int:
        result: int = c_pseudo_v4(src, len(src), dst, len(dst), proto, length)
        if result < 0:
            raise ValueError("IPv4 addresses must be 4 bytes")
        return result

    def pseudo_sum_v6(src: bytes, dst: bytes, next_header: int, length: int) -> int:
        result: int = c_pseudo_v6(src, len(src), dst, len(dst), next_header, length)
        if result < 0:
            raise ValueError("IPv6 addresses must be 16 bytes")
        return result

    def l4_checksum_v4(src: bytes, dst: bytes, proto: int, segment: BytesLike) -> int:
        buf = from_buffer(segment)
        result: int = c_l4_v4(src, len(src), dst, len(dst), proto, buf, len(buf))
        if result < 0:
            raise ValueError("IPv4 addresses must be 4 bytes")
        return result

    def tcp_parse(buf: BytesLike) -> TcpParsed:
        data = from_buffer(buf)
        blocks = c_tcp_parse(data, len(data), scratch.out)
        if not blocks:
            return (*unpack_fields(scratch.view), ())  # type: ignore[return-value]
        values = unpack_edges[blocks](scratch.view)
        edges = values[fields:]
        return (*values[:fields], tuple(zip(edges[0::2], edges[1::2])))  # type: ignore[return-value]

    def rx_ipv4_tcp(frame: BytesLike, mac: bytes, trusted: bool) -> RxParsed | None:
        data = from_buffer(frame)
        blocks = c_rx(data, len(data), mac, len(mac), trusted, scratch.rx)
        if blocks == rx_other:
            return None
        view = scratch.rx_view
        if not blocks:
            return unpack_fields(view) + no_sack + unpack_rx_tail(view, rx_tail_at)  # type: ignore[return-value]
        values = unpack_edges[blocks](view)
        edges = values[fields:]
        return (
            *values[:fields],
            tuple(zip(edges[0::2], edges[1::2])),  # type: ignore[return-value]
            *unpack_rx_tail(view, rx_tail_at),
        )

    def rx_ipv4_udp(frame: BytesLike, mac: bytes, trusted: bool) -> RxUdp | None:
        data = from_buffer(frame)
        if c_rx_udp(data, len(data), mac, len(mac), trusted, scratch.rx_udp) == rx_other:
            return None
        return unpack_rx_udp(scratch.rx_udp_view)  # type: ignore[return-value]

    def gso_write(fd: int, frame: BytesLike, gso_size: int) -> GsoWritten:
        data = from_buffer(frame)
        out = scratch.gso
        written: int = c_gso_write(fd, data, len(data), gso_size, out)
        if written < 0:
            raise ValueError(BUILD_ERRORS[written])
        return written, out[0], out[1], out[2]

    def gro_read(fd: int, buf: BytesLike, frame_cap: int, max_frames: int) -> GroRead:
        data = from_buffer(byte_array, buf, True)
        if max_frames > scratch.spans_cap:
            scratch.spans = ffi.new("int32_t[]", 2 * max_frames)
            scratch.spans_cap = max_frames
        spans = scratch.spans
        out = scratch.gro
        count: int = c_gro_read(fd, data, len(data), frame_cap, max_frames, spans, out)
        if count < 0:
            raise ValueError(BUILD_ERRORS[count])
        flat = ffi.unpack(spans, 2 * count)
        return list(zip(flat[0::2], flat[1::2])), out[0], out[1], out[2]

    def build_ipv4_tcp(
        buf: BytesLike,
        offset: int,
        dst_mac: bytes,
        src_mac: bytes,
        src_ip: bytes,
        dst_ip: bytes,
        ident: int,
        ttl: int,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        urgent: int,
        options: BytesLike,
        payload: BytesLike,
        csum_mode: int = CSUM_FULL,
    ) -> int:
        out = from_buffer(byte_array, buf, True)
        if type(options) is not bytes:
            options = from_buffer(options)
        if type(payload) is not bytes:
            payload = from_buffer(payload)
        result: int = c_build_tcp(
            out,
            len(out),
            offset,
            dst_mac,
            len(dst_mac),
            src_mac,
            len(src_mac),
            src_ip,
            len(src_ip),
            dst_ip,
            len(dst_ip),
            ident,
            ttl,
            sport,
            dport,
            seq,
            ack,
            flags,
            window,
            urgent,
            options,
            len(options),
            payload,
            len(payload),
            csum_mode,
        )
        return result

    def build_ipv4_udp(
        buf: BytesLike,
        offset: int,
        dst_mac: bytes,
        src_mac: bytes,
        src_ip: bytes,
        dst_ip: bytes,
        ident: int,
        ttl: int,
        sport: int,
        dport: int,
        payload: BytesLike,
        csum_mode: int = CSUM_FULL,
    ) -> int:
        out = from_buffer(byte_array, buf, True)
        if type(payload) is not bytes:
            payload = from_buffer(payload)
        result: int = c_build_udp(
            out,
            len(out),
            offset,
            dst_mac,
            len(dst_mac),
            src_mac,
            len(src_mac),
            src_ip,
            len(src_ip),
            dst_ip,
            len(dst_ip),
            ident,
            ttl,
            sport,
            dport,
            payload,
            len(payload),
            csum_mode,
        )
        return result

    def build_tcp(
        buf: BytesLike,
        link: bytes,
        ip: bytes,
        ident: int,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        urgent: int,
        options: BytesLike,
        payload: BytesLike,
        csum_mode: int = CSUM_FULL,
    ) -> int:
        out = from_buffer(byte_array, buf, True)
        if type(options) is not bytes:
            options = from_buffer(options)
        if type(payload) is not bytes:
            payload = from_buffer(payload)
        result: int = c_route_tcp(
            out,
            len(out),
            link,
            len(link),
            ip,
            len(ip),
            ident,
            sport,
            dport,
            seq,
            ack,
            flags,
            window,
            urgent,
            options,
            len(options),
            payload,
            len(payload),
            csum_mode,
        )
        if result < 0:
            raise ValueError(BUILD_ERRORS[result])
        return result

    def build_udp(
        buf: BytesLike,
        link: bytes,
        ip: bytes,
        ident: int,
        sport: int,
        dport: int,
        payload: BytesLike,
        csum_mode: int = CSUM_FULL,
    ) -> int:
        out = from_buffer(byte_array, buf, True)
        if type(payload) is not bytes:
            payload = from_buffer(payload)
        result: int = c_route_udp(
            out, len(out), link, len(link), ip, len(ip), ident, sport, dport, payload, len(payload), csum_mode
        )
        if result < 0:
            raise ValueError(BUILD_ERRORS[result])
        return result

    return types.SimpleNamespace(
        sum16=sum16,
        internet_checksum=internet_checksum,
        pseudo_sum_v4=pseudo_sum_v4,
        pseudo_sum_v6=pseudo_sum_v6,
        l4_checksum_v4=l4_checksum_v4,
        checksum_update16=lib.un_checksum_update16,
        tcp_parse=tcp_parse,
        build_ipv4_tcp=build_ipv4_tcp,
        build_ipv4_udp=build_ipv4_udp,
        build_tcp=build_tcp,
        build_udp=build_udp,
        rx_ipv4_tcp=rx_ipv4_tcp,
        rx_ipv4_udp=rx_ipv4_udp,
        gso_write=gso_write,
        gro_read=gro_read,
    )


def _load_c() -> types.SimpleNamespace | None:
    if os.environ.get("USERNET_PURE", "") not in ("", "0"):
        return None
    try:
        from usernet._native._core import ffi, lib  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - depends on the install
        warnings.warn(
            f"usernet: using the pure-Python core, slower: the C extension did not import ({exc}); "
            "reinstall with a C compiler present (pip install -e .)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return _bind(ffi, lib)


c_impl: types.SimpleNamespace | None = _load_c()


def available() -> bool:
    """True when the compiled C core is in use (False with USERNET_PURE=1 or no extension)."""
    return c_impl is not None


if TYPE_CHECKING:
    from usernet._native.pure import (
        build_ipv4_tcp,
        build_ipv4_udp,
        build_tcp,
        build_udp,
        checksum_update16,
        gro_read,
        gso_write,
        internet_checksum,
        l4_checksum_v4,
        pseudo_sum_v4,
        pseudo_sum_v6,
        rx_ipv4_tcp,
        rx_ipv4_udp,
        sum16,
        tcp_parse,
    )
else:
    _chosen = c_impl if c_impl is not None else pure
    sum16 = _chosen.sum16
    internet_checksum = _chosen.internet_checksum
    pseudo_sum_v4 = _chosen.pseudo_sum_v4
    pseudo_sum_v6 = _chosen.pseudo_sum_v6
    l4_checksum_v4 = _chosen.l4_checksum_v4
    checksum_update16 = _chosen.checksum_update16
    tcp_parse = _chosen.tcp_parse
    build_ipv4_tcp = _chosen.build_ipv4_tcp
    build_ipv4_udp = _chosen.build_ipv4_udp
    build_tcp = _chosen.build_tcp
    build_udp = _chosen.build_udp
    rx_ipv4_tcp = _chosen.rx_ipv4_tcp
    rx_ipv4_udp = _chosen.rx_ipv4_udp
    gso_write = _chosen.gso_write
    gro_read = _chosen.gro_read
