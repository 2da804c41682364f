"""TCP segments (RFC 9293) over IPv4: header and options decoded in one native call."""

from __future__ import annotations

import struct
from typing import NamedTuple

from usernet.native import BytesLike, NativeError, l4_checksum_v4, tcp_parse
from usernet.wire.errors import MalformedPacket, check_address, ensure_room, field_error, not_a_byte_buffer

__all__ = [
    "ACK",
    "CWR",
    "ECE",
    "FIN",
    "PSH",
    "RST",
    "SYN",
    "TCP_HLEN",
    "URG",
    "TcpSegment",
    "emit_tcp",
    "encode_tcp_options",
    "fastopen_option",
    "parse_tcp",
]

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80
TCP_HLEN = 20

_IPPROTO_TCP = 6
_MAX_OPTIONS = 40
_HEADER = struct.Struct("!HHIIBBHHH")
_MSS = struct.Struct("!BBH")
_TIMESTAMP = struct.Struct("!BBII")
_EDGES = struct.Struct("!II")
_NOP = 1
_FASTOPEN = 34  # RFC 7413 §4.1.1
_EXPERIMENT = 254  # RFC 6994: the experimental kind pre-RFC Fast Open used, with magic 0xF989
_FASTOPEN_MAGIC = b"\xf9\x89"
_new = tuple.__new__


class TcpSegment(NamedTuple):
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int  # FIN..CWR, plus the NS bit as 0x100
    window: int  # as sent, not yet shifted by the window scale
    checksum: int
    urgent: int
    header_length: int
    mss: int | None
    wscale: int | None
    sack_permitted: bool
    timestamp: tuple[int, int] | None  # (TSval, TSecr)
    sack_blocks: tuple[tuple[int, int], ...]
    payload: memoryview


def parse_tcp(data: BytesLike, src: bytes, dst: bytes, verify_checksum: bool = True) -> TcpSegment:
    """Decode a segment; options with a wrong length are ignored, as Linux does."""
    try:
        mv = memoryview(data).cast("B")
    except (TypeError, ValueError, BufferError):
        raise not_a_byte_buffer("tcp", data) from None
    try:
        parsed = tcp_parse(mv)
    except NativeError as exc:
        raise MalformedPacket("tcp", str(exc)) from None
    _, sport, dport, seq, ack, hlen, flags, window, checksum, urgent = parsed[:10]
    mss, wscale, sack_permitted, ts_val, ts_ecr, sack_blocks = parsed[10:]
    if verify_checksum and l4_checksum_v4(src, dst, _IPPROTO_TCP, mv):
        raise MalformedPacket("tcp", f"bad checksum 0x{checksum:04x}")
    return _new(
        TcpSegment,
        (
            sport,
            dport,
            seq,
            ack,
            flags,
            window,
            checksum,
            urgent,
            hlen,
            None if mss < 0 else mss,
            None if wscale < 0 else wscale,
            sack_permitted == 1,
            None if ts_val < 0 else (ts_val, ts_ecr),
            sack_blocks,
            mv[hlen:],
        ),
    )


def encode_tcp_options(
    *,
    mss: int | None = None,
    wscale: int | None = None,
    sack_permitted: bool = False,
    timestamp: tuple[int, int] | None = None,
    sack_blocks: tuple[tuple[int, int], ...] = (),
    fastopen: bytes | None = None,
) -> bytes:
    """Options in Linux's order and padding, so captures compare byte for byte with the kernel's.

    Linux writes (tcp_options_write): MSS; then SACK-permitted folded into the
    timestamp's padding (or the timestamp after two NOPs); NOP NOP SACK-permitted when
    there is no timestamp; NOP + window scale; NOP NOP + SACK blocks; the Fast Open
    option (kind 34, `fastopen` the cookie, b"" a cookie request), padded with NOPs.
    Every piece is a multiple of 4 bytes.
    """
    out = bytearray()
    try:
        if mss is not None:
            out += _MSS.pack(2, 4, mss)
        if timestamp is not None:
            out += b"\x04\x02" if sack_permitted else b"\x01\x01"
            out += _TIMESTAMP.pack(8, 10, timestamp[0], timestamp[1])
        if sack_permitted and timestamp is None:
            out += b"\x01\x01\x04\x02"
        if wscale is not None:
            if not 0 <= wscale <= 14:
                raise ValueError(f"window scale {wscale} is outside 0..14 (RFC 7323)")
            out += bytes((_NOP, 3, 3, wscale))
        if sack_blocks:
            out += bytes((_NOP, _NOP, 5, 2 + 8 * len(sack_blocks)))
            for left, right in sack_blocks:
                out += _EDGES.pack(left, right)
        if fastopen is not None:
            if len(fastopen) > 16 or len(fastopen) & 1 or 0 < len(fastopen) < 4:
                raise ValueError(f"a Fast Open cookie is 4 to 16 bytes, an even count (RFC 7413), not {len(fastopen)}")
            out += bytes((_FASTOPEN, 2 + len(fastopen))) + fastopen
            if len(fastopen) & 3 == 0:
                out += b"\x01\x01"
    except struct.error as exc:
        raise field_error("tcp options", exc) from None
    if len(out) > _MAX_OPTIONS:
        raise ValueError(
            f"TCP options need {len(out)} bytes but at most 40 fit: send fewer SACK blocks "
            "(3 with timestamps, 4 without)"
        )
    return bytes(out)


def fastopen_option(segment: BytesLike, header_length: int) -> bytes | None:
    """The Fast Open cookie in a segment's options: None without the option (or with a
    malformed one), b"" for a cookie request, else the cookie (RFC 7413 §4.1.1; also the
    experimental kind 254 with magic 0xF989 that older clients send).

    The native parse leaves this option out: it matters on SYNs only, so the handshake
    code reads it here, off the per-segment path.
    """
    mv = memoryview(segment).cast("B")
    i = TCP_HLEN
    end = min(header_length, len(mv))
    while i < end:
        kind = mv[i]
        if kind == 0:
            break
        if kind == _NOP:
            i += 1
            continue
        if i + 1 >= end or mv[i + 1] < 2 or i + mv[i + 1] > end:
            return None
        length = mv[i + 1]
        if kind == _FASTOPEN:
            body = bytes(mv[i + 2 : i + length])
        elif kind == _EXPERIMENT and length >= 4 and mv[i + 2 : i + 4] == _FASTOPEN_MAGIC:
            body = bytes(mv[i + 4 : i + length])
        else:
            i += length
            continue
        return body if not body or (4 <= len(body) <= 16 and not len(body) & 1) else None
    return None


def emit_tcp(
    buf: bytearray | memoryview,
    offset: int,
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    options: bytes = b"",
    payload: BytesLike = b"",
    urgent: int = 0,
) -> int:
    """Write header, options (from encode_tcp_options) and payload, checksum filled in."""
    check_address(src, 4, "source IPv4 address")
    check_address(dst, 4, "destination IPv4 address")
    olen = len(options)
    if olen & 3 or olen > _MAX_OPTIONS:
        raise ValueError(
            f"TCP options must be a multiple of 4 bytes and at most 40, got {olen}: use encode_tcp_options"
        )
    if not 0 <= flags <= 0x1FF:
        raise ValueError(f"TCP flags 0x{flags:x} do not fit in 9 bits")
    hlen = TCP_HLEN + olen
    length = hlen + len(payload)
    ensure_room(buf, offset, length, "a TCP segment")
    try:
        _HEADER.pack_into(
            buf, offset, sport, dport, seq, ack, (hlen << 2) | (flags >> 8), flags & 0xFF, window, 0, urgent
        )
    except struct.error as exc:
        raise field_error("tcp", exc) from None
    buf[offset + TCP_HLEN : offset + hlen] = options
    buf[offset + hlen : offset + length] = payload
    csum = l4_checksum_v4(src, dst, _IPPROTO_TCP, memoryview(buf)[offset : offset + length])
    buf[offset + 16] = csum >> 8
    buf[offset + 17] = csum & 0xFF
    return length
