"""Hand-built Ethernet frames for link tests, independent of usernet.wire (tested separately)."""

from __future__ import annotations

import socket
import struct

BROADCAST = b"\xff" * 6
ETH_IPV4 = 0x0800
ETH_ARP = 0x0806


def ip(text: str) -> bytes:
    return socket.inet_aton(text)


def checksum(data: bytes) -> int:
    """RFC 1071 checksum by the textbook: 16-bit words, carries folded until none is left."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def arp(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> bytes:
    """An ARP packet for Ethernet/IPv4; op 1 is a request, 2 a reply."""
    return struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, op) + sha + spa + tha + tpa


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, *, ident: int = 1, ttl: int = 64) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, ttl, proto, 0, src, dst)
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP datagram with its checksum over the IPv4 pseudo-header."""
    length = 8 + len(payload)
    header = struct.pack("!HHHH", sport, dport, length, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, length)
    csum = checksum(pseudo + header + payload) or 0xFFFF
    return header[:6] + struct.pack("!H", csum) + payload


def icmp_echo(ident: int, seq: int, payload: bytes, *, reply: bool = False) -> bytes:
    header = struct.pack("!BBHHH", 0 if reply else 8, 0, 0, ident, seq)
    csum = checksum(header + payload)
    return header[:2] + struct.pack("!H", csum) + header[4:] + payload


def udp_frame(dst_mac: bytes, src_mac: bytes, src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    s, d = ip(src), ip(dst)
    return ethernet(dst_mac, src_mac, ETH_IPV4, ipv4(s, d, 17, udp(s, d, sport, dport, payload)))
