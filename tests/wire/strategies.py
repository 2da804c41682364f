"""Hypothesis strategies for header fields and whole valid packets, shared by the wire tests."""

from __future__ import annotations

from hypothesis import strategies as st

from usernet.wire import emit_arp, emit_ethernet, emit_icmp, emit_ipv4_header, emit_tcp, emit_udp, encode_tcp_options
from usernet.wire.icmpv6 import emit_icmpv6
from usernet.wire.ipv6 import emit_ipv6_header
from usernet.wire.ndp import (
    PrefixInfo,
    emit_neighbor_advert,
    emit_neighbor_solicit,
    emit_router_advert,
    emit_router_solicit,
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
mac = st.binary(min_size=6, max_size=6)
ipv4_address = st.binary(min_size=4, max_size=4)
payload = st.binary(max_size=300)
offset = st.integers(0, 9)


@st.composite
def tcp_options(draw: st.DrawFn) -> dict[str, object]:
    """Keyword arguments for encode_tcp_options that fit in 40 bytes."""
    timestamp = draw(st.none() | st.tuples(u32, u32))
    options: dict[str, object] = {
        "mss": draw(st.none() | u16),
        "wscale": draw(st.none() | st.integers(0, 14)),
        "sack_permitted": draw(st.booleans()),
        "timestamp": timestamp,
    }
    used = len(encode_tcp_options(**options))  # type: ignore[arg-type]  # keywords from a dict
    max_blocks = max(0, min(4, (40 - used - 4) // 8))
    options["sack_blocks"] = tuple(draw(st.lists(st.tuples(u32, u32), max_size=max_blocks)))
    return options


@st.composite
def tcp_segments(draw: st.DrawFn, src: bytes | None = None, dst: bytes | None = None) -> tuple[bytes, bytes, bytes]:
    """(src, dst, segment) with a correct checksum; addresses drawn unless given."""
    src = draw(ipv4_address) if src is None else src
    dst = draw(ipv4_address) if dst is None else dst
    options = encode_tcp_options(**draw(tcp_options()))  # type: ignore[arg-type]  # keywords from a dict
    data = draw(payload)
    out = bytearray(20 + len(options) + len(data))
    emit_tcp(
        out, 0, src, dst, draw(u16), draw(u16), draw(u32), draw(u32), draw(st.integers(0, 0x1FF)), draw(u16),
        options, data, draw(u16),
    )  # fmt: skip  # arguments grouped a line, compact
    return src, dst, bytes(out)


@st.composite
def udp_datagrams(draw: st.DrawFn, src: bytes | None = None, dst: bytes | None = None) -> tuple[bytes, bytes, bytes]:
    """(src, dst, datagram) with a correct checksum; addresses drawn unless given."""
    src = draw(ipv4_address) if src is None else src
    dst = draw(ipv4_address) if dst is None else dst
    data = draw(payload)
    out = bytearray(8 + len(data))
    emit_udp(out, 0, src, dst, draw(u16), draw(u16), data)
    return src, dst, bytes(out)


@st.composite
def icmp_messages(draw: st.DrawFn) -> bytes:
    data = draw(payload)
    out = bytearray(8 + len(data))
    emit_icmp(out, 0, draw(u8), draw(u8), draw(u32), data)
    return bytes(out)


@st.composite
def ipv4_packets(draw: st.DrawFn) -> bytes:
    """A datagram carrying a valid TCP, UDP or ICMP message (or random bytes under another protocol)."""
    src, dst = draw(ipv4_address), draw(ipv4_address)
    kind = draw(st.sampled_from((1, 6, 17, 47)))
    if kind == 6:
        body = draw(tcp_segments(src, dst))[2]
    elif kind == 17:
        body = draw(udp_datagrams(src, dst))[2]
    elif kind == 1:
        body = draw(icmp_messages())
    else:
        body = draw(payload)
    out = bytearray(20 + len(body))
    emit_ipv4_header(out, 0, src, dst, kind, len(body), ttl=draw(u8), ident=draw(u16), tos=draw(u8))
    out[20:] = body
    return bytes(out)


@st.composite
def ipv4_fragments(draw: st.DrawFn) -> bytes:
    """One fragment of a datagram: any 8-byte-aligned offset, more-fragments or not, a body of any size."""
    body = draw(st.binary(max_size=64))
    out = bytearray(20 + len(body))
    offset = draw(st.integers(0, 0x1FFF)) * 8
    emit_ipv4_header(
        out,
        0,
        draw(ipv4_address),
        draw(ipv4_address),
        17,
        len(body),
        ident=draw(u16),
        dont_fragment=False,
        more_fragments=draw(st.booleans()),
        fragment_offset=offset,
    )
    out[20:] = body
    return bytes(out)


@st.composite
def arp_messages(draw: st.DrawFn) -> bytes:
    out = bytearray(28)
    emit_arp(out, 0, draw(st.sampled_from((1, 2)) | u16), draw(mac), draw(ipv4_address), draw(mac), draw(ipv4_address))
    return bytes(out)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """An Ethernet frame, sometimes VLAN-tagged, holding a valid IPv4 packet, ARP message or random bytes."""
    ethertype, body = draw(
        st.tuples(st.just(0x0800), ipv4_packets())
        | st.tuples(st.just(0x0806), arp_messages())
        | st.tuples(u16.filter(lambda t: t != 0x8100), payload)
    )
    out = bytearray(14)
    emit_ethernet(out, 0, draw(mac), draw(mac), ethertype)
    if draw(st.booleans()):
        out[12:12] = b"\x81\x00" + draw(u16).to_bytes(2, "big")
    return bytes(out + body)


ipv6_address = st.binary(min_size=16, max_size=16)


@st.composite
def icmpv6_messages(draw: st.DrawFn, src: bytes, dst: bytes) -> bytes:
    data = draw(payload)
    out = bytearray(8 + len(data))
    emit_icmpv6(out, 0, src, dst, draw(u8), draw(u8), draw(u32), data)
    return bytes(out)


@st.composite
def ndp_messages(draw: st.DrawFn, src: bytes, dst: bytes) -> bytes:
    """A router advertisement, neighbour solicitation or advertisement with its options."""
    out = bytearray(300)
    kind = draw(st.sampled_from(("ra", "ns", "na", "rs")))
    lladdr = draw(st.none() | mac)
    if kind == "ra":
        prefixes = tuple(
            PrefixInfo(p, length, on_link, auto, valid, preferred)
            for p, length, on_link, auto, valid, preferred in draw(
                st.lists(
                    st.tuples(ipv6_address, st.integers(0, 128), st.booleans(), st.booleans(), u32, u32), max_size=3
                )
            )
        )
        dns = tuple(draw(st.lists(ipv6_address, max_size=2)))
        domains = tuple(
            draw(st.lists(st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,2}", fullmatch=True), max_size=2))
        )
        n = emit_router_advert(
            out, 0, src, dst, draw(u16), lladdr, prefixes, draw(st.none() | u32), draw(u8), dns=dns,
            dns_lifetime=draw(u32), domains=domains,
        )  # fmt: skip
    elif kind == "ns":
        n = emit_neighbor_solicit(out, 0, src, dst, draw(ipv6_address), lladdr)
    elif kind == "na":
        n = emit_neighbor_advert(
            out, 0, src, dst, draw(ipv6_address), draw(st.sampled_from((0, 0x20000000, 0xE0000000))), draw(mac)
        )
    else:
        n = emit_router_solicit(out, 0, src, dst, lladdr)
    return bytes(out[:n])


@st.composite
def extension_headers(draw: st.DrawFn, first: int) -> tuple[int, bytes]:
    """A chain of destination options (pads and skippable options), routing headers with no segments
    left and atomic fragment headers, ending in protocol `first`; returns (next header, chain)."""
    chain = b""
    protocol = first
    for kind in reversed(draw(st.lists(st.sampled_from((60, 43, 44)), max_size=3))):
        if kind == 60:
            options = draw(
                st.lists(st.sampled_from((b"\x00", b"\x01\x00", b"\x01\x02\x00\x00", b"\x05\x02\x00\x00")), max_size=4)
            )
            body = b"".join(options)
            pad = (-(len(body) + 2)) % 8
            body += b"\x00" * pad if pad == 1 else (b"\x01" + bytes([pad - 2]) + b"\x00" * (pad - 2) if pad else b"")
            header = bytes([protocol, (len(body) + 2) // 8 - 1]) + body
        elif kind == 43:
            header = bytes([protocol, 0, draw(u8), 0]) + bytes(4)
        else:
            header = bytes([protocol, 0, 0, 0]) + draw(u32).to_bytes(4, "big")
        chain = header + chain
        protocol = kind
    return protocol, chain


@st.composite
def ipv6_packets(draw: st.DrawFn) -> bytes:
    """A packet carrying extension headers, then a valid ICMPv6 or NDP message (or random bytes)."""
    src, dst = draw(ipv6_address), draw(ipv6_address)
    upper = draw(st.sampled_from((58, 17, 59)))
    body = draw(icmpv6_messages(src, dst) | ndp_messages(src, dst)) if upper == 58 else draw(payload)
    protocol, chain = draw(extension_headers(upper))
    out = bytearray(40 + len(chain) + len(body))
    emit_ipv6_header(out, 0, src, dst, protocol, len(out) - 40, draw(u8), draw(u8), draw(st.integers(0, 0xFFFFF)))
    out[40:] = chain + body
    return bytes(out)
