"""Pure-Python twins of the C functions in core.c and offload.c, with identical results.

They are the reference the C code is tested against, and the path taken when the
extension is missing or USERNET_PURE=1. "Identical" includes the edges: the errors (a
NativeError with the code C returns, see usernet/native.py for the convention), and the
exception types cffi raises for arguments that do not fit the C parameter (OverflowError
for an out-of-range integer, TypeError for a non-integer or an address that is not
`bytes`, BufferError for a read-only output buffer).
"""

from __future__ import annotations

import os
import struct

from usernet._native.layout import RxParsed, RxUdp, TcpParsed

BytesLike = bytes | bytearray | memoryview

#: The native interface, what usernet.native re-exports: every function here has a C
#: binding there (tests/test_native_contract.py checks both ways).
__all__ = [
    "BAD_IPV4_ADDRESS",
    "BAD_IPV6_ADDRESS",
    "BUILD_BAD_ADDRESS",
    "BUILD_BAD_CSUM_MODE",
    "BUILD_BAD_FLAGS",
    "BUILD_BAD_OPTIONS",
    "BUILD_BAD_TEMPLATE",
    "BUILD_ERRORS",
    "BUILD_NO_ROOM",
    "BUILD_TOO_LONG",
    "CSUM_FULL",
    "CSUM_PARTIAL",
    "ERRORS",
    "ETHERNET_HEADER",
    "GRO_NO_ROOM",
    "GSO_NOT_TCP",
    "IPV6_FLOW",
    "LINK_HEADER_MAX",
    "TCP_BAD_OFFSET",
    "TCP_BAD_OPTION",
    "TCP_ERRORS",
    "TCP_OFFSET_PAST_END",
    "TCP_OK",
    "TCP_SHORT",
    "BytesLike",
    "GroRead",
    "GsoWritten",
    "NativeError",
    "build_ipv4_tcp",
    "build_ipv4_udp",
    "build_tcp",
    "build_udp",
    "checksum_update16",
    "gro_read",
    "gso_write",
    "internet_checksum",
    "l4_checksum_v4",
    "pseudo_sum_v4",
    "pseudo_sum_v6",
    "rx_ipv4_tcp",
    "rx_ipv4_udp",
    "rx_ipv6_tcp",
    "rx_ipv6_udp",
    "sum16",
    "tcp_parse",
]

TCP_OK = 0
TCP_SHORT = -1
TCP_BAD_OFFSET = -2
TCP_OFFSET_PAST_END = -3
TCP_BAD_OPTION = -4
TCP_ERRORS: dict[int, str] = {
    TCP_SHORT: "header shorter than 20 bytes",
    TCP_BAD_OFFSET: "data offset below 5 words",
    TCP_OFFSET_PAST_END: "data offset beyond the segment",
    TCP_BAD_OPTION: "option length below 2 or running past the header",
}

CSUM_FULL = 0
CSUM_PARTIAL = 1

BUILD_NO_ROOM = -10
BUILD_BAD_OPTIONS = -11
BUILD_TOO_LONG = -12
BUILD_BAD_ADDRESS = -13
BUILD_BAD_FLAGS = -14
BUILD_BAD_CSUM_MODE = -15
BUILD_BAD_TEMPLATE = -16
LINK_HEADER_MAX = 64
#: The link header rx_ipv4_tcp/udp, gso_write and gro_read parse (their `link_len`); 0: none.
ETHERNET_HEADER = 14
#: The bit rx_ipv6_tcp sets in an IPv6 flow key, above any IPv4 key (< 2**64): see TcpLayer.
IPV6_FLOW = 1 << 160
GSO_NOT_TCP = -20
GRO_NO_ROOM = -21

BUILD_ERRORS: dict[int, str] = {
    BUILD_NO_ROOM: "the buffer is too small for the frame at this offset",
    BUILD_BAD_OPTIONS: "TCP options must be a multiple of 4 bytes and at most 40",
    BUILD_TOO_LONG: "the IPv4 total length would exceed 65535: send less payload",
    BUILD_BAD_ADDRESS: "MAC addresses must be 6 bytes and IPv4 addresses 4 bytes",
    BUILD_BAD_FLAGS: "TCP flags must fit in 9 bits (0..0x1FF)",
    BUILD_BAD_CSUM_MODE: "csum_mode must be CSUM_FULL or CSUM_PARTIAL",
    BUILD_BAD_TEMPLATE: "a route's link header is at most 64 bytes, its IP header 20 bytes of IPv4 or 40 of IPv6",
    GSO_NOT_TCP: "GSO takes one TCP frame over IPv4 or IPv6 (no extension headers) whose IP length matches its size",
    GRO_NO_ROOM: "GRO needs a writable buffer of at least frame_cap * max_frames bytes, frame_cap >= 60",
}

BAD_IPV4_ADDRESS = -30
BAD_IPV6_ADDRESS = -31

#: Every status code core.h defines, with its reason: what a NativeError says.
ERRORS: dict[int, str] = {
    **TCP_ERRORS,
    **BUILD_ERRORS,
    BAD_IPV4_ADDRESS: "IPv4 addresses must be 4 bytes",
    BAD_IPV6_ADDRESS: "IPv6 addresses must be 16 bytes",
}


class NativeError(ValueError):
    """A native function refused its input: `code` is core.h's UN_* status, the message its reason.

    A ValueError, because every such refusal is about the value of an argument (a buffer too
    small, an address of the wrong length, a header that is not TCP's).
    """

    def __init__(self, code: int) -> None:
        super().__init__(ERRORS[code])
        self.code = code


_TCP_HEADER = struct.Struct("!HHIIBBHHH")
_UDP_HEADER = struct.Struct("!HHHH")
_TWO_WORDS = struct.Struct("!II")
_CSUM_FIELD = struct.Struct("!H")
_U32 = struct.Struct("!I")
_FIN_PSH = 0x09


def _uint(value: int, bits: int) -> int:
    """Refuse what cffi refuses for a `uintN_t` parameter, with the same exception type."""
    if not isinstance(value, int):
        raise TypeError(f"an integer is required, not {type(value).__name__}")
    if value < 0 or value >> bits:
        raise OverflowError(f"integer {value} does not fit {bits}-bit unsigned int")
    return value


def _address(value: bytes) -> int:
    """Length of an address, refusing non-`bytes` the way cffi does for `const uint8_t *`."""
    if not isinstance(value, bytes):
        raise TypeError(f"an address must be bytes, not {type(value).__name__}")
    return len(value)


def _view(data: BytesLike) -> memoryview:
    """A byte-format view of any C-contiguous buffer (cffi's from_buffer takes the same)."""
    mv = memoryview(data)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


def _writable(buf: BytesLike) -> memoryview:
    mv = memoryview(buf)
    if mv.readonly:
        raise BufferError("the output buffer is read-only: pass a bytearray or a writable memoryview")
    if not mv.c_contiguous:
        raise BufferError("the output buffer is not C-contiguous")
    return _view(mv)


def _fold(total: int) -> int:
    """Ones' complement reduction of a non-negative integer to 16 bits, 0 only for 0."""
    if total == 0:
        return 0
    r = total % 0xFFFF
    return 0xFFFF if r == 0 else r


def sum16(data: BytesLike, initial: int = 0) -> int:
    """Ones' complement 16-bit sum of `data` plus `initial`, folded until no carry is left.

    The buffer is read as one big integer: 2**16 is 1 modulo 0xFFFF, so the integer
    modulo 0xFFFF is the sum of its 16-bit words modulo 0xFFFF. That is one C-speed
    operation instead of a Python loop over words.
    """
    _uint(initial, 32)
    mv = _view(data)
    value = int.from_bytes(mv, "big")
    if len(mv) & 1:
        value <<= 8  # pad the odd trailing byte with zero
    return _fold(initial + value)


def internet_checksum(data: BytesLike) -> int:
    """RFC 1071 Internet checksum of `data`."""
    return ~sum16(data) & 0xFFFF


def pseudo_sum_v4(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Folded sum of the IPv4 pseudo-header, the seed of every TCP/UDP checksum."""
    _uint(proto, 8)
    _uint(length, 16)
    if _address(src) != 4 or _address(dst) != 4:
        raise NativeError(BAD_IPV4_ADDRESS)
    return _fold(int.from_bytes(src, "big") + int.from_bytes(dst, "big") + proto + length)


def pseudo_sum_v6(src: bytes, dst: bytes, next_header: int, length: int) -> int:
    """Folded sum of the IPv6 pseudo-header (RFC 8200 section 8.1), 32-bit length."""
    _uint(next_header, 8)
    _uint(length, 32)
    if _address(src) != 16 or _address(dst) != 16:
        raise NativeError(BAD_IPV6_ADDRESS)
    return _fold(int.from_bytes(src, "big") + int.from_bytes(dst, "big") + next_header + length)


def l4_checksum_v4(src: bytes, dst: bytes, proto: int, segment: BytesLike) -> int:
    """TCP/UDP checksum of `segment` over IPv4; 0 when `segment` carries a correct one.

    The pseudo-header length is the segment's length, folded like any other word if it
    exceeds 16 bits, so an oversized segment gets a (useless) checksum, never an error.
    """
    _uint(proto, 8)
    if _address(src) != 4 or _address(dst) != 4:
        raise NativeError(BAD_IPV4_ADDRESS)
    mv = _view(segment)
    n = len(mv)
    value = int.from_bytes(mv, "big")
    if n & 1:
        value <<= 8
    pseudo = int.from_bytes(src, "big") + int.from_bytes(dst, "big") + proto + n
    return ~_fold(pseudo + value) & 0xFFFF


def checksum_update16(csum: int, old: int, new: int) -> int:
    """RFC 1624 equation 3, HC' = ~(~HC + ~m + m'): the checksum after one word changes.

    Equal to a full recompute unless every covered word is now zero (this gives 0x0000
    where a recompute gives 0xFFFF); no IPv4 header or TCP/UDP segment is all zeros.
    """
    _uint(csum, 16)
    _uint(old, 16)
    _uint(new, 16)
    total = (csum ^ 0xFFFF) + (old ^ 0xFFFF) + new
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_parse(buf: BytesLike) -> TcpParsed:
    """Header fields and options of a TCP segment; NativeError with a TCP_* code if malformed.

    Returns the fields layout.TCP_PARSED names. Absent options are -1 (sack_permitted 0,
    sack_blocks ()); a known option with the wrong length is ignored, as Linux does; a
    repeated option's last copy wins.
    """
    mv = _view(buf)
    n = len(mv)
    if n < 20:
        raise NativeError(TCP_SHORT)
    sport, dport, seq, ack, offset_byte, flag_byte, window, checksum, urgent = _TCP_HEADER.unpack_from(mv)
    hlen = (offset_byte >> 4) * 4
    if hlen < 20:
        raise NativeError(TCP_BAD_OFFSET)
    if hlen > n:
        raise NativeError(TCP_OFFSET_PAST_END)
    flags = flag_byte | ((offset_byte & 1) << 8)
    mss = wscale = ts_val = ts_ecr = -1
    sack_permitted = 0
    sack_blocks: tuple[tuple[int, int], ...] = ()
    if hlen > 20:
        opts = bytes(mv[20:hlen])
        end = hlen - 20
        i = 0
        while i < end:
            kind = opts[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            if i + 1 >= end:
                raise NativeError(TCP_BAD_OPTION)
            olen = opts[i + 1]
            if olen < 2 or i + olen > end:
                raise NativeError(TCP_BAD_OPTION)
            # A known kind with the wrong length is skipped, hence the length in each test.
            if kind == 2 and olen == 4:
                mss = (opts[i + 2] << 8) | opts[i + 3]
            elif kind == 3 and olen == 3:
                wscale = opts[i + 2]
            elif kind == 4 and olen == 2:
                sack_permitted = 1
            elif kind == 5 and olen >= 10 and (olen - 2) % 8 == 0:
                edges = struct.unpack_from(f"!{(olen - 2) // 4}I", opts, i + 2)
                sack_blocks = tuple(zip(edges[0::2], edges[1::2], strict=True))
            elif kind == 8 and olen == 10:
                ts_val, ts_ecr = _TWO_WORDS.unpack_from(opts, i + 2)
            i += olen
    return (
        TCP_OK,
        sport,
        dport,
        seq,
        ack,
        hlen,
        flags,
        window,
        checksum,
        urgent,
        mss,
        wscale,
        sack_permitted,
        ts_val,
        ts_ecr,
        sack_blocks,
    )


def _ip_version(mv: memoryview, link_len: int) -> int:
    """The IP version (4 or 6) behind `link_len` bytes of a link header the offload functions
    know, as that header and the version nibble agree on it: Ethernet (14) whose EtherType
    is IPv4's or IPv6's, or none (0: a bare IP packet); 0 for anything else."""
    if len(mv) <= link_len:
        return 0
    version = mv[link_len] >> 4
    if link_len == ETHERNET_HEADER:
        kind = (mv[12] << 8) | mv[13]
        if not ((kind == 0x0800 and version == 4) or (kind == 0x86DD and version == 6)):
            return 0
    elif link_len != 0:
        return 0
    return version if version in (4, 6) else 0


def _tcp_pseudo(f: memoryview, ip: int, v6: bool, tcp_len: int) -> int:
    """The TCP pseudo-header sum of the packet whose IP header is at f[ip:]."""
    if v6:
        return pseudo_sum_v6(bytes(f[ip + 8 : ip + 24]), bytes(f[ip + 24 : ip + 40]), 6, tcp_len)
    return pseudo_sum_v4(bytes(f[ip + 12 : ip + 16]), bytes(f[ip + 16 : ip + 20]), 6, tcp_len)


def _rx_ipv4_header(mv: memoryview, mac: bytes, link: int, proto: int, l4_min: int) -> tuple[int, int] | None:
    """(header length, total length) of an unfragmented IPv4 packet of `proto` to `mac` with
    a good header checksum and at least `l4_min` bytes beyond the header; else None.
    `link`: the link header's length, 14 (Ethernet to `mac`) or 0 (bare IP, no `mac` check)."""
    if link == ETHERNET_HEADER:
        if _address(mac) != 6 or len(mv) < 14 or mv[:6] != mac or mv[12] != 0x08 or mv[13] != 0x00:
            return None
    elif link != 0:
        return None
    if len(mv) < link + 20 + l4_min:
        return None
    ihl = (mv[link] & 0x0F) * 4
    total = (mv[link + 2] << 8) | mv[link + 3]
    if (
        mv[link] >> 4 != 4
        or ihl < 20
        or total < ihl + l4_min
        or link + total > len(mv)
        or mv[link + 9] != proto
        or ((mv[link + 6] << 8) | mv[link + 7]) & 0x3FFF
        or sum16(mv[link : link + ihl]) != 0xFFFF
    ):
        return None
    return ihl, total


def rx_ipv4_tcp(frame: BytesLike, mac: bytes, trusted: bool, link_len: int = ETHERNET_HEADER) -> RxParsed | None:
    """Header prediction's first half: a well-formed TCP/IPv4 segment to `mac` with valid checksums?

    Then the fields layout.RX_TCP names: tcp_parse's, followed by the destination address
    as an integer, the flow key `(source address << 32) | (source port << 16) | destination
    port`, and the payload's offset and length within the frame. None for anything else (ARP, UDP, IPv4
    fragments, broadcasts, malformed frames, bad checksums, a CE mark, which TCP must see): the
    general receive path classifies and counts those. `trusted` skips the TCP checksum (the link vouched).
    `link_len` is the link header in front of the IP header: 14, Ethernet, or 0 on an
    IP-only link, where `mac` is not consulted.
    """
    mv = _view(frame)
    link = _uint(link_len, 64)
    header = _rx_ipv4_header(mv, mac, link, 6, 20)
    if header is None or mv[link + 1] & 3 == 3:
        return None
    ihl, total = header
    segment = mv[link + ihl : link + total]
    try:
        p = tcp_parse(segment)
    except NativeError:
        return None
    src = bytes(mv[link + 12 : link + 16])
    dst = bytes(mv[link + 16 : link + 20])
    if not trusted and l4_checksum_v4(src, dst, 6, segment):
        return None
    sport, dport, hlen = p[1], p[2], p[5]
    key = (int.from_bytes(src, "big") << 32) | (sport << 16) | dport
    return (*p, int.from_bytes(dst, "big"), key, link + ihl + hlen, total - ihl - hlen)


def _rx_udp_fields(mv: memoryview, src: bytes, dst: bytes, udp: int, length: int) -> RxUdp:
    """The layout.RX_UDP tuple of a datagram the UDP predictions took, its header at mv[udp:]."""
    return (
        int.from_bytes(src, "big"),
        (mv[udp] << 8) | mv[udp + 1],
        int.from_bytes(dst, "big"),
        (mv[udp + 2] << 8) | mv[udp + 3],
        udp + 8,
        length - 8,
    )


def rx_ipv4_udp(frame: BytesLike, mac: bytes, trusted: bool, link_len: int = ETHERNET_HEADER) -> RxUdp | None:
    """The UDP twin of rx_ipv4_tcp: a valid UDP/IPv4 datagram to `mac`?

    Then the fields layout.RX_UDP names (source address, source port, destination address,
    destination port, payload offset, payload length), addresses as integers. None for anything else — a fragment,
    a bad IPv4 or UDP checksum (unless the UDP field is zero, "none", or `trusted`), a
    UDP length that does not fit the packet — which the general path counts. `link_len`
    as for rx_ipv4_tcp.
    """
    mv = _view(frame)
    link = _uint(link_len, 64)
    header = _rx_ipv4_header(mv, mac, link, 17, 8)
    if header is None:
        return None
    ihl, total = header
    udp = link + ihl
    length = (mv[udp + 4] << 8) | mv[udp + 5]
    if length < 8 or length > total - ihl:
        return None
    src = bytes(mv[link + 12 : link + 16])
    dst = bytes(mv[link + 16 : link + 20])
    if not trusted and (mv[udp + 6] or mv[udp + 7]) and l4_checksum_v4(src, dst, 17, mv[udp : udp + length]):
        return None
    return _rx_udp_fields(mv, src, dst, udp, length)


def _rx_ipv6_header(mv: memoryview, mac: bytes, link: int, proto: int, l4_min: int) -> int:
    """The payload length of an IPv6 packet to `mac` whose next header is `proto` itself (no
    extension header), between unicast addresses, with at least `l4_min` payload bytes in
    the frame; 0 for anything else, a jumbogram's zero length included. `link` as for IPv4."""
    if link == ETHERNET_HEADER:
        if _address(mac) != 6 or len(mv) < 14 or mv[:6] != mac or mv[12] != 0x86 or mv[13] != 0xDD:
            return 0
    elif link != 0:
        return 0
    if len(mv) < link + 40 + l4_min:
        return 0
    plen = (mv[link + 4] << 8) | mv[link + 5]
    if (
        mv[link] >> 4 != 6
        or mv[link + 6] != proto
        or plen < l4_min
        or link + 40 + plen > len(mv)
        or mv[link + 8] == 0xFF
        or mv[link + 24] == 0xFF
    ):
        return 0
    return plen


def rx_ipv6_tcp(frame: BytesLike, mac: bytes, trusted: bool, link_len: int = ETHERNET_HEADER) -> RxParsed | None:
    """rx_ipv4_tcp for IPv6: a well-formed TCP/IPv6 segment to `mac` with a valid checksum?

    Then the same fields (layout.RX_TCP): the destination address as an integer, and the
    flow key TcpLayer files IPv6 connections under, `IPV6_FLOW | (source address << 32) |
    (source port << 16) | destination port`. None for what the general path must see:
    extension headers, multicast, a CE mark, a bad checksum (unless `trusted`), anything broken.
    """
    mv = _view(frame)
    link = _uint(link_len, 64)
    plen = _rx_ipv6_header(mv, mac, link, 6, 20)
    if not plen or (mv[link + 1] >> 4) & 3 == 3:
        return None
    tcp = link + 40
    segment = mv[tcp : tcp + plen]
    try:
        p = tcp_parse(segment)
    except NativeError:
        return None
    src = bytes(mv[link + 8 : link + 24])
    dst = bytes(mv[link + 24 : link + 40])
    if not trusted and sum16(segment, pseudo_sum_v6(src, dst, 6, plen)) != 0xFFFF:
        return None
    sport, dport, hlen = p[1], p[2], p[5]
    key = IPV6_FLOW | (int.from_bytes(src, "big") << 32) | (sport << 16) | dport
    return (*p, int.from_bytes(dst, "big"), key, tcp + hlen, plen - hlen)


def rx_ipv6_udp(frame: BytesLike, mac: bytes, trusted: bool, link_len: int = ETHERNET_HEADER) -> RxUdp | None:
    """rx_ipv4_udp for IPv6: the same fields (layout.RX_UDP), addresses as integers.

    The checksum is mandatory over IPv6 (RFC 8200 section 8.1): a zero one is None, for
    the general path to count, as is every other datagram rx_ipv6_tcp's rules turn away.
    """
    mv = _view(frame)
    link = _uint(link_len, 64)
    plen = _rx_ipv6_header(mv, mac, link, 17, 8)
    if not plen:
        return None
    udp = link + 40
    length = (mv[udp + 4] << 8) | mv[udp + 5]
    if length < 8 or length > plen or not (mv[udp + 6] or mv[udp + 7]):
        return None
    src = bytes(mv[link + 8 : link + 24])
    dst = bytes(mv[link + 24 : link + 40])
    if not trusted and sum16(mv[udp : udp + length], pseudo_sum_v6(src, dst, 17, length)) != 0xFFFF:
        return None
    return _rx_udp_fields(mv, src, dst, udp, length)


def _gso_layout(f: memoryview, gso_size: int, link: int) -> tuple[int, int, int]:
    """(TCP header offset, header bytes, payload bytes per segment) of a frame for gso_write."""
    n = len(f)
    version = _ip_version(f, link)
    if version == 4:
        ihl = (f[link] & 0x0F) * 4
        if n < link + 40 or f[link + 9] != 6 or ihl < 20 or ((f[link + 2] << 8) | f[link + 3]) != n - link:
            raise NativeError(GSO_NOT_TCP)
    elif version == 6:
        ihl = 40
        if n < link + 60 or f[link + 6] != 6 or ((f[link + 4] << 8) | f[link + 5]) != n - link - 40:
            raise NativeError(GSO_NOT_TCP)
    else:
        raise NativeError(GSO_NOT_TCP)
    if link + ihl + 20 > n:
        raise NativeError(GSO_NOT_TCP)
    tcp = link + ihl
    thl = (f[tcp + 12] >> 4) * 4
    if thl < 20 or tcp + thl > n:
        raise NativeError(GSO_NOT_TCP)
    headers = tcp + thl
    payload = n - headers
    return tcp, headers, gso_size if 0 < gso_size < payload else payload


def gso_segments(frame: BytesLike, gso_size: int, link_len: int = ETHERNET_HEADER) -> list[bytes]:
    """Software GSO: cut a CSUM_PARTIAL TCP frame as a NIC doing TSO would (see offload.c).

    Segments carry at most `gso_size` payload bytes (0: the frame stays whole); headers are
    copied, the IPv4 identification counts up (IPv6 has none), the sequence number
    advances, FIN and PSH stay on the last segment, and every checksum is completed.
    `link_len`: the link header in front of the IP header, 14 (Ethernet) or 0 (bare IP).
    """
    _uint(gso_size, 32)
    link = _uint(link_len, 32)
    f = _view(frame)
    tcp, headers, step = _gso_layout(f, gso_size, link)
    v6 = f[link] >> 4 == 6
    payload = len(f) - headers
    ident = (f[link + 4] << 8) | f[link + 5]
    seq = int.from_bytes(f[tcp + 4 : tcp + 8], "big")
    out = []
    for i, off in enumerate(range(0, payload, step) if payload else (0,)):
        n = min(step, payload - off)
        seg = bytearray(f[:headers])
        seg += f[headers + off : headers + off + n]
        tcp_len = headers - tcp + n
        if v6:
            struct.pack_into("!H", seg, link + 4, tcp_len)
        else:
            struct.pack_into("!HH", seg, link + 2, headers - link + n, (ident + i) & 0xFFFF)
            seg[link + 10 : link + 12] = b"\0\0"
            _CSUM_FIELD.pack_into(seg, link + 10, internet_checksum(seg[link:tcp]))
        struct.pack_into("!I", seg, tcp + 4, (seq + off) & 0xFFFFFFFF)
        if off + n < payload:
            seg[tcp + 13] &= ~_FIN_PSH & 0xFF
        seg[tcp + 16 : tcp + 18] = b"\0\0"
        view = memoryview(seg)
        _CSUM_FIELD.pack_into(seg, tcp + 16, ~sum16(view[tcp:], _tcp_pseudo(view, link, v6, tcp_len)) & 0xFFFF)
        out.append(bytes(seg))
    return out


GsoWritten = tuple[int, int, int, int]


def gso_write(fd: int, frame: BytesLike, gso_size: int, link_len: int = ETHERNET_HEADER) -> GsoWritten:
    """Write `frame` to `fd` as gso_segments cuts it, one write per segment.

    Returns (segments written, segments the frame makes, bytes written, errno of the
    write that failed or 0): a failed write stops the rest, and the caller counts them
    as dropped.
    """
    segments = gso_segments(frame, gso_size, link_len)
    written = sent = 0
    for segment in segments:
        try:
            os.write(fd, segment)
        except OSError as exc:
            return written, len(segments), sent, exc.errno or 0
        written += 1
        sent += len(segment)
    return written, len(segments), sent, 0


_TCP_ACK = 0x10
_TCP_ACK_PSH = 0x18


def _ip_end(f: memoryview, link: int, iphl: int) -> int:
    """Where the IP packet of a frame ends (Ethernet padding may follow), its IP header `iphl` bytes."""
    if iphl == 20:
        return link + ((f[link + 2] << 8) | f[link + 3])
    return link + 40 + ((f[link + 4] << 8) | f[link + 5])


def _tcp_frame(f: memoryview, link: int, pure_ack: bool) -> int:
    """The IP header length of a TCP frame GRO or ACK merging may take, 0 if it may not.

    That is a TCP segment over a 20-byte IPv4 header or an IPv6 one whose next header is
    TCP, not a fragment, no reserved bits, whose checksums are valid (a merged frame gets
    fresh checksums, so a corrupt segment must never be part of one nor hidden behind
    one); and either (`pure_ack`) without payload and with only ACK set, or with a payload
    and only ACK (or ACK and PSH) set. `link`: the link header's length.
    """
    n = len(f)
    version = _ip_version(f, link)
    ip = link
    least = 20 if pure_ack else 21
    if version == 4:
        if n < link + 20 + least or f[ip] != 0x45 or f[ip + 9] != 6 or ((f[ip + 6] << 8) | f[ip + 7]) & 0x3FFF:
            return 0
        iphl = 20
    elif version == 6:
        if n < link + 40 + least or f[ip + 6] != 6:
            return 0
        iphl = 40
    else:
        return 0
    end = _ip_end(f, link, iphl)
    tcp = ip + iphl
    thl = (f[tcp + 12] >> 4) * 4
    if pure_ack:
        shape = tcp + thl == end and f[tcp + 13] == _TCP_ACK
    else:
        shape = tcp + thl < end and f[tcp + 13] in (_TCP_ACK, _TCP_ACK_PSH)
    if (
        end > n
        or thl < 20
        or not shape
        or f[tcp + 12] & 0x0F
        or (iphl == 20 and sum16(f[ip:tcp]) != 0xFFFF)
        or sum16(f[tcp:end], _tcp_pseudo(f, ip, iphl == 40, end - tcp)) != 0xFFFF
    ):
        return 0
    return iphl


def _gro_header(f: memoryview, link: int) -> tuple[int, int]:
    """(IP header length, payload bytes) of a frame software GRO may join with its neighbours, else (0, 0).

    See _tcp_frame: anything it refuses passes through untouched for the stack to
    classify and count.
    """
    iphl = _tcp_frame(f, link, False)
    if not iphl:
        return 0, 0
    return iphl, _ip_end(f, link, iphl) - link - iphl - (f[link + iphl + 12] >> 4) * 4


def _gro_joins(buf: memoryview, lo: int, length: int, payload: int, f: memoryview, link: int, iphl: int) -> bool:
    """May segment `f` (a _gro_header frame) extend the frame buf[lo:lo + length] (one too, as long an IP header)?

    As Linux's tcp_gro_receive: the next sequence number, and everything else equal —
    the link header; of IPv4 the header but for length, identification and checksum; of
    IPv6 all but the payload length; ports, ACK, window, header length and options — with
    no PSH on the frame being extended.
    """
    a = buf[lo : lo + length]
    tcp = link + iphl
    thl = (f[tcp + 12] >> 4) * 4
    more = _ip_end(f, link, iphl) - tcp - thl
    if iphl == 20:
        same_ip = (
            a[0 : link + 2] == f[0 : link + 2]
            and a[link + 6 : link + 10] == f[link + 6 : link + 10]
            and a[link + 12 : link + 20] == f[link + 12 : link + 20]
        )
    else:
        same_ip = a[0 : link + 4] == f[0 : link + 4] and a[link + 6 : link + 40] == f[link + 6 : link + 40]
    return (
        a[tcp + 13] == _TCP_ACK
        and same_ip
        and a[tcp : tcp + 4] == f[tcp : tcp + 4]
        and int.from_bytes(f[tcp + 4 : tcp + 8], "big")
        == (int.from_bytes(a[tcp + 4 : tcp + 8], "big") + payload) & 0xFFFFFFFF
        and a[tcp + 8 : tcp + 13] == f[tcp + 8 : tcp + 13]
        and a[tcp + 14 : tcp + 16] == f[tcp + 14 : tcp + 16]
        and a[tcp + 18 : tcp + thl] == f[tcp + 18 : tcp + thl]
        and length + more <= link + 65535
    )


def _gro_close(buf: memoryview, lo: int, length: int, link: int, iphl: int) -> None:
    """Give a frame that absorbed others its length and fresh checksums (IPv4's header one too)."""
    ip, tcp = lo + link, lo + link + iphl
    tcp_len = length - link - iphl
    if iphl == 40:
        struct.pack_into("!H", buf, ip + 4, tcp_len)
    else:
        struct.pack_into("!H", buf, ip + 2, length - link)
        buf[ip + 10 : ip + 12] = b"\0\0"
        _CSUM_FIELD.pack_into(buf, ip + 10, internet_checksum(buf[ip:tcp]))
    buf[tcp + 16 : tcp + 18] = b"\0\0"
    pseudo = _tcp_pseudo(buf, ip, iphl == 40, tcp_len)
    _CSUM_FIELD.pack_into(buf, tcp + 16, ~sum16(buf[tcp : lo + length], pseudo) & 0xFFFF)


_TCP_OPT_EOL = 0
_TCP_OPT_NOP = 1
_TCP_OPT_TS = 8


def _ack_header(f: memoryview, link: int) -> tuple[int, int]:
    """(IP header length, offset of the timestamp option in the TCP header or 0) of a pure
    ACK that ACK merging may take, else (0, 0).

    See _tcp_frame; its options must be only NOP, EOL and one timestamp. An ACK with SACK
    blocks, ECE or CWR, a window probe's byte: none of them is ever merged (see gro_read).
    """
    iphl = _tcp_frame(f, link, True)
    if not iphl:
        return 0, 0
    tcp = link + iphl
    thl = (f[tcp + 12] >> 4) * 4
    ts = 0
    i = 20
    while i < thl and f[tcp + i] != _TCP_OPT_EOL:
        if f[tcp + i] == _TCP_OPT_NOP:
            i += 1
            continue
        if f[tcp + i] != _TCP_OPT_TS or ts or i + 10 > thl or f[tcp + i + 1] != 10:
            return 0, 0
        ts = i
        i += 10
    return iphl, ts


def _seq_after(a: int, b: int, strict: bool) -> bool:
    """Whether 32-bit sequence-space `a` is after `b` (`strict`) or not before it."""
    d = (a - b) & 0xFFFFFFFF
    return (d > 0 or not strict) and d < 0x80000000


def _ack_follows(a: memoryview, f: memoryview, link: int, iphl: int, ts: int) -> bool:
    """May pure ACK `f` (an _ack_header frame, timestamp at `ts`) stand for pure ACK `a` just before it?

    The same link and IP header but for identification and checksum; the same ports,
    sequence number, header length, flags, urgent pointer and options but for the
    timestamp's values; an ACK that advances; a timestamp and an echo no older.
    """
    tcp = link + iphl
    thl = (f[tcp + 12] >> 4) * 4
    if iphl == 20:
        same_ip = (
            a[0 : link + 4] == f[0 : link + 4]
            and a[link + 6 : link + 10] == f[link + 6 : link + 10]
            and a[link + 12 : link + 20] == f[link + 12 : link + 20]
        )
    else:
        same_ip = a[0 : link + 40] == f[0 : link + 40]
    word = _U32.unpack_from
    if not (
        same_ip
        and a[tcp : tcp + 8] == f[tcp : tcp + 8]
        and a[tcp + 12 : tcp + 14] == f[tcp + 12 : tcp + 14]
        and a[tcp + 18 : tcp + 20] == f[tcp + 18 : tcp + 20]
        and _seq_after(word(f, tcp + 8)[0], word(a, tcp + 8)[0], True)
    ):
        return False
    if not ts:
        return a[tcp + 20 : tcp + thl] == f[tcp + 20 : tcp + thl]
    t = tcp + ts
    return (
        a[tcp + 20 : t + 2] == f[tcp + 20 : t + 2]
        and a[t + 10 : tcp + thl] == f[t + 10 : tcp + thl]
        and _seq_after(word(f, t + 2)[0], word(a, t + 2)[0], False)
        and _seq_after(word(f, t + 6)[0], word(a, t + 6)[0], False)
    )


GroRead = tuple[list[tuple[int, int]], int, int, int]


def gro_read(
    fd: int,
    buf: BytesLike,
    frame_cap: int,
    max_frames: int,
    link_len: int = ETHERNET_HEADER,
    merge_acks: bool = False,
) -> GroRead:
    """Software GRO: read up to `max_frames` frames from `fd` into `buf`, joining in-order segments.

    Each frame is read right behind the previous one. A TCP segment that continues the
    frame before it (see _gro_joins) has its payload moved onto that frame, which ends
    up as one segment with fresh checksums, up to a 64 KB IP packet — what a NIC's GRO
    hands Linux. Returns ([(offset, length) of each frame in buf], frames read, frames
    joined onto another, errno of a read that failed with other than EAGAIN or 0).
    `link_len`: the link header in front of each IP header, 14 (Ethernet) or 0 (bare IP).

    With `merge_acks`, a pure ACK that follows one of the same flow and advances the
    cumulative ACK (see _ack_follows) stands for it, as a stretch ACK would: of a run of
    such ACKs the stack gets the first, kept whole because SND.UNA may already be at its
    ACK (it may be a duplicate), and the newest. A frame is only ever replaced by a later
    one that advanced past it, so every duplicate ACK (the same ACK again) starts a run of
    its own and fast retransmit counts what it would have counted. The ACKs merged away
    are the frames read that are neither in the spans nor joined.
    """
    _uint(frame_cap, 32)
    _uint(max_frames, 32)
    link = _uint(link_len, 32)
    out = _writable(buf)
    if frame_cap < 60 or len(out) < frame_cap * max_frames:
        raise NativeError(GRO_NO_ROOM)
    spans: list[tuple[int, int]] = []
    used = read = joined = error = 0
    # the last frame: where, how long, its payload if it may be extended, its IP header's length
    lo = length = payload = lo_iphl = 0
    absorbed = False
    # the last frame as a pure ACK: 0 none, 1 one, 2 one that advanced past the one before it; its IP header's length
    last_ack = last_ack_iphl = 0
    for _ in range(max_frames):
        try:
            n = os.readv(fd, [out[used : used + frame_cap]])
        except BlockingIOError:
            break
        except OSError as exc:
            error = exc.errno or 0
            break
        if n <= 0:
            break
        read += 1
        f = out[used : used + n]
        iphl, more = _gro_header(f, link)
        if payload and iphl == lo_iphl and _gro_joins(out, lo, length, payload, f, link, iphl):
            tcp = link + iphl
            start = used + tcp + (f[tcp + 12] >> 4) * 4
            flags = f[tcp + 13]  # f's bytes are about to be overwritten by its own payload
            if not absorbed:
                length = _ip_end(out[lo:], link, iphl)  # drop any Ethernet padding
            out[lo + length : lo + length + more] = out[start : start + more]
            length += more
            payload += more
            out[lo + tcp + 13] = flags
            absorbed = True
            joined += 1
            spans[-1] = (lo, length)
            used = lo + length
            continue
        ack_iphl, ts = _ack_header(f, link) if merge_acks else (0, 0)
        follows = bool(ack_iphl and last_ack and ack_iphl == last_ack_iphl) and _ack_follows(
            out[lo : lo + length], f, link, ack_iphl, ts
        )
        if absorbed:
            _gro_close(out, lo, length, link, lo_iphl)
        lo, length, payload, lo_iphl, absorbed = used, n, more, iphl, False
        used += n
        last_ack_iphl = ack_iphl
        if follows and last_ack == 2:
            spans[-1] = (lo, length)
            continue
        last_ack = 0 if not ack_iphl else 2 if follows else 1
        spans.append((lo, length))
    if absorbed:
        _gro_close(out, lo, length, link, lo_iphl)
    return spans, read, joined, error


def _frame_checks(dst_mac: bytes, src_mac: bytes, src_ip: bytes, dst_ip: bytes, csum_mode: int) -> None:
    """The checks both builders make first, in the order core.c makes them."""
    if _address(dst_mac) != 6 or _address(src_mac) != 6 or _address(src_ip) != 4 or _address(dst_ip) != 4:
        raise NativeError(BUILD_BAD_ADDRESS)
    if csum_mode > CSUM_PARTIAL:
        raise NativeError(BUILD_BAD_CSUM_MODE)


def _eth_ipv4_templates(dst_mac: bytes, src_mac: bytes, src_ip: bytes, dst_ip: bytes, ttl: int) -> tuple[bytes, bytes]:
    """The Ethernet header and IPv4 template (DF set, as route.py's) that build_ipv4_tcp/udp hand the route builders."""
    return dst_mac + src_mac + b"\x08\x00", bytes((0x45, 0, 0, 0, 0, 0, 0x40, 0, ttl, 0, 0, 0)) + src_ip + dst_ip


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
    """Write Ethernet + IPv4 + TCP + payload into buf at offset; the frame length (NativeError: BUILD_*).

    `build_tcp` with the headers a route to `dst_ip` over Ethernet would template.
    """
    _uint(offset, 32)
    _uint(ident, 16)
    _uint(ttl, 8)
    _uint(sport, 16)
    _uint(dport, 16)
    _uint(seq, 32)
    _uint(ack, 32)
    _uint(flags, 16)
    _uint(window, 16)
    _uint(urgent, 16)
    _uint(csum_mode, 32)
    out = _writable(buf)
    _view(options)
    _view(payload)
    _frame_checks(dst_mac, src_mac, src_ip, dst_ip, csum_mode)
    link, ip = _eth_ipv4_templates(dst_mac, src_mac, src_ip, dst_ip, ttl)
    at = min(offset, len(out))
    return build_tcp(
        out[at:], link, ip, ident, sport, dport, seq, ack, flags, window, urgent, options, payload, csum_mode
    )


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
    """Write Ethernet + IPv4 + UDP + payload into buf at offset; the frame length (NativeError: BUILD_*).

    `build_udp` with the headers a route to `dst_ip` over Ethernet would template.
    """
    _uint(offset, 32)
    _uint(ident, 16)
    _uint(ttl, 8)
    _uint(sport, 16)
    _uint(dport, 16)
    _uint(csum_mode, 32)
    out = _writable(buf)
    _view(payload)
    _frame_checks(dst_mac, src_mac, src_ip, dst_ip, csum_mode)
    link, ip = _eth_ipv4_templates(dst_mac, src_mac, src_ip, dst_ip, ttl)
    at = min(offset, len(out))
    return build_udp(out[at:], link, ip, ident, sport, dport, payload, csum_mode)


def _template_checks(link: memoryview, ip: memoryview, l4_len: int, csum_mode: int) -> int:
    """The checks of core.c's template_checks, in its order."""
    ip_len = len(ip)
    if len(link) > LINK_HEADER_MAX or not ((ip_len == 20 and ip[0] == 0x45) or (ip_len == 40 and ip[0] >> 4 == 6)):
        return BUILD_BAD_TEMPLATE
    if csum_mode > CSUM_PARTIAL:
        return BUILD_BAD_CSUM_MODE
    if l4_len > (0xFFFF - 20 if ip_len == 20 else 0xFFFF):
        return BUILD_TOO_LONG
    return 0


def _headers_from_template(
    out: memoryview, link: memoryview, tmpl: memoryview, ident: int, proto: int, l4_len: int
) -> int:
    """Link header and IP header from a route's templates; returns the L4 pseudo-header sum."""
    ip = len(link)
    head = ip + len(tmpl)
    out[:ip] = link
    out[ip:head] = tmpl
    if len(tmpl) == 20:
        struct.pack_into("!H", out, ip + 2, 20 + l4_len)
        struct.pack_into("!H", out, ip + 4, ident)
        out[ip + 9] = proto
        _CSUM_FIELD.pack_into(out, ip + 10, 0)
        _CSUM_FIELD.pack_into(out, ip + 10, internet_checksum(out[ip:head]))
    else:
        struct.pack_into("!H", out, ip + 4, l4_len)
        out[ip + 6] = proto
    # Source and destination as one integer: 2**16 is 1 modulo 0xFFFF, so it sums their words.
    addresses = out[ip + 12 : head] if len(tmpl) == 20 else out[ip + 8 : head]
    return _fold(int.from_bytes(addresses, "big") + proto + l4_len)


def _l4_csum(segment: memoryview, pseudo: int, csum_mode: int) -> int:
    if csum_mode == CSUM_PARTIAL:
        return pseudo
    value = int.from_bytes(segment, "big")
    if len(segment) & 1:
        value <<= 8
    return ~_fold(pseudo + value) & 0xFFFF


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
    """A route's TCP frame at buf[0:]: link header, IP header from its template, TCP; its length.

    Raises NativeError when the frame cannot be built.
    """
    for value, bits in ((ident, 16), (sport, 16), (dport, 16), (seq, 32), (ack, 32), (flags, 16), (window, 16)):
        _uint(value, bits)
    _uint(urgent, 16)
    _uint(csum_mode, 32)
    _address(link)
    _address(ip)
    out = _writable(buf)
    link_v, ip_v, opts, data = _view(link), _view(ip), _view(options), _view(payload)
    olen = len(opts)
    if olen & 3 or olen > 40:
        raise NativeError(BUILD_BAD_OPTIONS)
    if flags > 0x1FF:
        raise NativeError(BUILD_BAD_FLAGS)
    tcp_len = 20 + olen + len(data)
    status = _template_checks(link_v, ip_v, tcp_len, csum_mode)
    if status:
        raise NativeError(status)
    l4 = len(link_v) + len(ip_v)
    end = l4 + tcp_len
    if end > len(out):
        raise NativeError(BUILD_NO_ROOM)
    pseudo = _headers_from_template(out, link_v, ip_v, ident, 6, tcp_len)
    _TCP_HEADER.pack_into(
        out, l4, sport, dport, seq, ack, ((5 + olen // 4) << 4) | (flags >> 8), flags & 0xFF, window, 0, urgent
    )
    out[l4 + 20 : l4 + 20 + olen] = opts
    out[l4 + 20 + olen : end] = data
    _CSUM_FIELD.pack_into(out, l4 + 16, _l4_csum(out[l4:end], pseudo, csum_mode))
    return end


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
    """A route's UDP frame at buf[0:]: link header, IP header from its template, UDP; its length.

    Raises NativeError when the frame cannot be built.
    """
    _uint(ident, 16)
    _uint(sport, 16)
    _uint(dport, 16)
    _uint(csum_mode, 32)
    _address(link)
    _address(ip)
    out = _writable(buf)
    link_v, ip_v, data = _view(link), _view(ip), _view(payload)
    udp_len = 8 + len(data)
    status = _template_checks(link_v, ip_v, udp_len, csum_mode)
    if status:
        raise NativeError(status)
    l4 = len(link_v) + len(ip_v)
    end = l4 + udp_len
    if end > len(out):
        raise NativeError(BUILD_NO_ROOM)
    pseudo = _headers_from_template(out, link_v, ip_v, ident, 17, udp_len)
    _UDP_HEADER.pack_into(out, l4, sport, dport, udp_len, 0)
    out[l4 + 8 : end] = data
    csum = _l4_csum(out[l4:end], pseudo, csum_mode)
    _CSUM_FIELD.pack_into(out, l4 + 6, 0xFFFF if csum == 0 else csum)
    return end
