"""The one place that chooses between the C core and its pure-Python twins.

Everything else imports the functions from here. The compiled module is used when it
imports and USERNET_PURE is not set; otherwise the twins are used and a warning says
so once, so a missing compiler costs speed, never correctness.

Both implementations stay reachable for tests and benchmarks: `pure_impl` is the twin
module, `c_impl` a namespace of the same functions backed by C (None when the C core
is not loaded). The module-level functions are one or the other, chosen once at import.

One error convention, C and twins alike: a native function returns its result or raises
NativeError, a ValueError whose `code` is core.h's UN_* status and whose message is the
reason (pure.ERRORS, the one table of reasons). In C a function that can fail returns
that code, negative, and anything >= 0 is its result; the bindings below raise on a
negative return, the twins raise themselves. So nothing a native function refuses can go
unnoticed: a build_* that fails never returns a length for a frame it did not write. An
argument that does not fit its C parameter raises what cffi raises (OverflowError,
TypeError, BufferError), and the twins raise the same. Not an error, and so not raised:
rx_ipv4_tcp and rx_ipv4_udp answer "a frame header prediction takes?", and their None is
the "no" that sends the frame down the general path, which classifies and counts it.

The parse results are plain tuples; usernet._native.layout names their fields.

Adding a function: write it in core.c (or offload.c) with its prototype in core.h (the
cffi cdef is derived from it), its twin in pure.py listed in pure.__all__, and its one
binding here in `_bind` (a function of the same name marked @binding, or a `direct` entry
when cffi's own conversion of the arguments is enough). tests/test_native_contract.py
fails if a twin has no binding or a binding no twin.
"""

from __future__ import annotations

import os
import struct
import threading
import types
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from usernet._native import pure
from usernet._native.layout import RX_TCP, RX_UDP, TCP_PARSED, RxParsed, RxUdp, TcpFields, TcpParsed
from usernet._native.pure import *  # noqa: F403 - the interface is pure.__all__: the twins, rebound to C below
from usernet._native.pure import CSUM_FULL, ETHERNET_HEADER, BytesLike, GroRead, GsoWritten, NativeError

__all__ = [  # pure's interface, plus what only the façade has
    *pure.__all__,
    "RX_TCP",
    "RX_UDP",
    "TCP_PARSED",
    "RxParsed",
    "RxUdp",
    "TcpParsed",
    "available",
    "c_impl",
    "pure_impl",
]

pure_impl = pure

_F = TypeVar("_F", bound=Callable[..., Any])


def _bind(ffi: Any, lib: Any) -> dict[str, Callable[..., Any]]:
    """The C functions behind the same signatures as the twins, by name.

    Library functions and `ffi.from_buffer` are bound to closure variables so that a
    call costs one buffer wrap per buffer argument and one C call, nothing more.
    Addresses go to C as `bytes` without a wrap (cffi passes their storage directly);
    their lengths go along so that C refuses a short one instead of reading past it.
    """
    #: Functions whose parameters cffi converts as the twin's are: the library's own.
    bound: dict[str, Callable[..., Any]] = {"checksum_update16": lib.un_checksum_update16}

    def binding(function: _F) -> _F:
        bound[function.__name__] = function
        return function

    from_buffer = ffi.from_buffer
    c_sum16 = lib.un_sum16
    c_pseudo_v4 = lib.un_pseudo_sum_v4
    c_pseudo_v6 = lib.un_pseudo_sum_v6
    c_l4_v4 = lib.un_l4_checksum_v4
    c_tcp_parse = lib.un_tcp_parse
    c_build_tcp = lib.un_build_ipv4_tcp
    c_build_udp = lib.un_build_ipv4_udp
    c_rx = lib.un_rx_ipv4_tcp
    c_rx_udp = lib.un_rx_ipv4_udp
    c_rx6 = lib.un_rx_ipv6_tcp
    c_rx6_udp = lib.un_rx_ipv6_udp
    c_gso_write = lib.un_gso_write
    c_gro_read = lib.un_gro_read
    byte_array = ffi.typeof("uint8_t[]")

    class Scratch(threading.local):
        """The output arrays, one set per thread: cffi releases the GIL during a call."""

        def __init__(self) -> None:
            self.out = ffi.new(f"int64_t[{lib.UN_TCP_OUT_LEN}]")
            self.view = ffi.buffer(self.out)
            self.rx = ffi.new(f"int64_t[{lib.UN_RX_OUT_LEN}]")
            self.rx_view = ffi.buffer(self.rx)
            self.rx_udp = ffi.new(f"int64_t[{lib.UN_RX_UDP_OUT_LEN}]")
            self.rx_udp_view = ffi.buffer(self.rx_udp)
            self.rx6 = ffi.new(f"int64_t[{lib.UN_RX6_OUT_LEN}]")
            self.rx6_view = ffi.buffer(self.rx6)
            self.rx6_numbers = ffi.new(f"uint8_t[{lib.UN_RX6_NUMBERS_LEN}]")
            self.rx6_numbers_view = ffi.buffer(self.rx6_numbers)
            self.rx6_udp = ffi.new(f"int64_t[{lib.UN_RX6_UDP_OUT_LEN}]")
            self.rx6_udp_numbers = ffi.new(f"uint8_t[{lib.UN_RX6_UDP_NUMBERS_LEN}]")
            self.rx6_udp_numbers_view = ffi.buffer(self.rx6_udp_numbers)
            self.gso = ffi.new("int64_t[3]")
            self.gro = ffi.new("int64_t[3]")
            self.spans = ffi.new("int32_t[]", 128)
            self.spans_cap = 64

    scratch = Scratch()
    fields = lib.UN_TCP_FIELDS
    # The unpackers' declared results are the layout's: struct's own say only tuple[Any, ...].
    unpack_fields: Callable[[Any], TcpFields] = struct.Struct(f"{fields}q").unpack_from
    unpack_edges = [struct.Struct(f"{fields + 2 * n}q").unpack_from for n in range(5)]
    # rx_ipv4_tcp's tail, after tcp_parse's fields: address, flow key (unsigned), payload offset and length.
    unpack_rx_tail: Callable[[Any, int], tuple[int, int, int, int]] = struct.Struct("qQqq").unpack_from
    rx_tail_at = lib.UN_RX_FIELD_DST * 8
    rx_other = lib.UN_RX_OTHER
    unpack_rx_udp: Callable[[Any], RxUdp] = struct.Struct(f"{lib.UN_RX_UDP_OUT_LEN}q").unpack_from
    no_sack = ((),)
    # rx_ipv6_tcp's tail (payload offset and length) and its big-endian numbers: address, flow key.
    unpack_rx6_tail: Callable[[Any, int], tuple[int, int]] = struct.Struct("qq").unpack_from
    rx6_tail_at = lib.UN_RX6_FIELD_PAYLOAD_OFFSET * 8
    rx6_dst = slice(lib.UN_RX6_NUMBERS_DST, lib.UN_RX6_NUMBERS_DST + 16)
    rx6_key = slice(lib.UN_RX6_NUMBERS_FLOW_KEY, lib.UN_RX6_NUMBERS_LEN)
    from_bytes = int.from_bytes

    def sack_blocks(edges: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        return tuple(zip(edges[0::2], edges[1::2], strict=True))

    @binding
    def sum16(data: BytesLike, initial: int = 0) -> int:
        buf = from_buffer(data)
        result: int = c_sum16(buf, len(buf), initial)
        return result

    @binding
    def internet_checksum(data: BytesLike) -> int:
        buf = from_buffer(data)
        return ~c_sum16(buf, len(buf), 0) & 0xFFFF

    @binding
    def pseudo_sum_v4(src: bytes, dst: bytes, proto: int, length: int) -> int:
        result: int = c_pseudo_v4(src, len(src), dst, len(dst), proto, length)
        if result < 0:
            raise NativeError(result)
        return result

    @binding
    def pseudo_sum_v6(src: bytes, dst: bytes, next_header: int, length: int) -> int:
        result: int = c_pseudo_v6(src, len(src), dst, len(dst), next_header, length)
        if result < 0:
            raise NativeError(result)
        return result

    @binding
    def l4_checksum_v4(src: bytes, dst: bytes, proto: int, segment: BytesLike) -> int:
        buf = from_buffer(segment)
        result: int = c_l4_v4(src, len(src), dst, len(dst), proto, buf, len(buf))
        if result < 0:
            raise NativeError(result)
        return result

    @binding
    def tcp_parse(buf: BytesLike) -> TcpParsed:
        data = from_buffer(buf)
        blocks: int = c_tcp_parse(data, len(data), scratch.out)
        if not blocks:
            return (*unpack_fields(scratch.view), ())
        if blocks < 0:
            raise NativeError(blocks)
        values = unpack_edges[blocks](scratch.view)
        return (*values[:fields], sack_blocks(values[fields:]))

    @binding
    def rx_ipv4_tcp(frame: BytesLike, mac: bytes, trusted: bool, link_len: int = ETHERNET_HEADER) -> RxParsed | None:
        data = from_buffer(frame)
        blocks = c_rx(data, len(data), mac, len(mac), link_len, trusted, scratch.rx)
        if blocks == rx_other:
            return None
        view = scratch.rx_view
        if not blocks:
            return unpack_fields(view) + no_sack + unpack_rx_tail(view, rx_tail_at)
        values = unpack_edges[blocks](view)
        return (*values[:fields], sack_blocks(values[fields:]), *unpack_rx_tail(view, rx_tail_at))

    @binding
    def rx_ipv4_udp(frame: BytesLike, mac: bytes, trusted: bool, link_len: int = ETHERNET_HEADER) -> RxUdp | None:
        data = from_buffer(frame)
        if c_rx_udp(data, len(data), mac, len(mac), link_len, trusted, scratch.rx_udp) == rx_other:
            return None
        return unpack_rx_udp(scratch.rx_udp_view)

    @binding
    def rx_ipv6_tcp(frame: BytesLike, mac: bytes, trusted: bool, link_len: int = ETHERNET_HEADER) -> RxParsed | None:
        data = from_buffer(frame)
        blocks = c_rx6(data, len(data), mac, len(mac), link_len, trusted, scratch.rx6, scratch.rx6_numbers)
        if blocks == rx_other:
            return None
        view = scratch.rx6_view
        numbers = scratch.rx6_numbers_view
        tail = (from_bytes(numbers[rx6_dst], "big"), from_bytes(numbers[rx6_key], "big"))
        if not blocks:
            return unpack_fields(view) + no_sack + tail + unpack_rx6_tail(view, rx6_tail_at)
        values = unpack_edges[blocks](view)
        return (*values[:fields], sack_blocks(values[fields:]), *tail, *unpack_rx6_tail(view, rx6_tail_at))

    @binding
    def rx_ipv6_udp(frame: BytesLike, mac: bytes, trusted: bool, link_len: int = ETHERNET_HEADER) -> RxUdp | None:
        data = from_buffer(frame)
        out = scratch.rx6_udp
        if c_rx6_udp(data, len(data), mac, len(mac), link_len, trusted, out, scratch.rx6_udp_numbers) == rx_other:
            return None
        numbers = scratch.rx6_udp_numbers_view
        return from_bytes(numbers[0:16], "big"), out[0], from_bytes(numbers[16:32], "big"), out[1], out[2], out[3]

    @binding
    def gso_write(fd: int, frame: BytesLike, gso_size: int, link_len: int = ETHERNET_HEADER) -> GsoWritten:
        data = from_buffer(frame)
        out = scratch.gso
        written: int = c_gso_write(fd, data, len(data), gso_size, link_len, out)
        if written < 0:
            raise NativeError(written)
        return written, out[0], out[1], out[2]

    @binding
    def gro_read(
        fd: int,
        buf: BytesLike,
        frame_cap: int,
        max_frames: int,
        link_len: int = ETHERNET_HEADER,
        merge_acks: bool = False,
    ) -> GroRead:
        data = from_buffer(byte_array, buf, True)
        if max_frames > scratch.spans_cap:
            scratch.spans = ffi.new("int32_t[]", 2 * max_frames)
            scratch.spans_cap = max_frames
        spans = scratch.spans
        out = scratch.gro
        count: int = c_gro_read(fd, data, len(data), frame_cap, max_frames, link_len, merge_acks, spans, out)
        if count < 0:
            raise NativeError(count)
        flat = ffi.unpack(spans, 2 * count)
        return list(zip(flat[0::2], flat[1::2], strict=True)), out[0], out[1], out[2]

    @binding
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
        length: int = c_build_tcp(
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
        if length < 0:
            raise NativeError(length)
        return length

    @binding
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
        length: int = c_build_udp(
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
        if length < 0:
            raise NativeError(length)
        return length

    c_route_tcp = lib.un_build_tcp
    c_route_udp = lib.un_build_udp

    @binding
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
        length: int = c_route_tcp(
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
        if length < 0:
            raise NativeError(length)
        return length

    @binding
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
        length: int = c_route_udp(
            out, len(out), link, len(link), ip, len(ip), ident, sport, dport, payload, len(payload), csum_mode
        )
        if length < 0:
            raise NativeError(length)
        return length

    return bound


def _load_c() -> types.SimpleNamespace | None:
    if os.environ.get("USERNET_PURE", "") not in ("", "0"):
        return None
    try:
        from usernet._native._core import ffi, lib  # type: ignore[import-not-found]  # built by pip install
    except ImportError as exc:  # pragma: no cover - depends on the install
        warnings.warn(
            f"usernet: using the pure-Python core, slower: the C extension did not import ({exc}); "
            "reinstall with a C compiler present (pip install -e .)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return types.SimpleNamespace(**_bind(ffi, lib))


c_impl: types.SimpleNamespace | None = _load_c()

if c_impl is not None:
    # The module-level functions were the twins (the star import above); C takes their names.
    globals().update(vars(c_impl))


def available() -> bool:
    """True when the compiled C core is in use (False with USERNET_PURE=1 or no extension)."""
    return c_impl is not None
