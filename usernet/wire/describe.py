"""One-line summaries of frames in tcpdump's style, for logs, pcap tools and failing tests.

Numbers are absolute (like `tcpdump -S`), checksums are not checked (like tcpdump without
-v), and TCP options are listed from their decoded values, so NOP padding is not shown.
"""

from __future__ import annotations

from socket import inet_ntoa

from usernet.native import BytesLike
from usernet.wire.arp import ARP_REPLY, ARP_REQUEST, parse_arp
from usernet.wire.errors import MalformedPacket
from usernet.wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IPV4, parse_ethernet
from usernet.wire.icmp import (
    ICMP_DEST_UNREACH,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    ICMP_TIME_EXCEEDED,
    UNREACH_FRAG_NEEDED,
    UNREACH_HOST,
    UNREACH_NET,
    UNREACH_PORT,
    UNREACH_PROTOCOL,
    IcmpMessage,
    parse_icmp,
    parse_quoted,
)
from usernet.wire.ipv4 import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, parse_ipv4
from usernet.wire.tcp import ACK, URG, TcpSegment, parse_tcp
from usernet.wire.udp import parse_udp

__all__ = ["describe"]

# tcpdump's letters, in tcpdump's order (ACK is ".")
_FLAG_LETTERS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "."), (0x20, "U"), (0x40, "E"), (0x80, "W"))
_PROTOCOL_NAMES = {IPPROTO_ICMP: "icmp", IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp"}


def describe(frame: BytesLike) -> str:
    """Summarise an Ethernet frame in one line; malformed input is described, never raised."""
    try:
        eth = parse_ethernet(frame)
    except MalformedPacket as exc:
        return f"malformed ({exc})"
    prefix = "" if eth.vlan is None else f"vlan {eth.vlan}, "
    if eth.ethertype == ETHERTYPE_IPV4:
        return prefix + _ipv4(eth.payload)
    if eth.ethertype == ETHERTYPE_ARP:
        return prefix + _arp(eth.payload)
    length = memoryview(frame).nbytes
    return f"{prefix}{eth.src.hex(':')} > {eth.dst.hex(':')}, ethertype 0x{eth.ethertype:04x}, length {length}"


def _arp(data: memoryview) -> str:
    try:
        arp = parse_arp(data)
    except MalformedPacket as exc:
        return f"malformed ({exc})"
    if arp.op == ARP_REQUEST:
        return f"ARP, Request who-has {inet_ntoa(arp.tpa)} tell {inet_ntoa(arp.spa)}"
    if arp.op == ARP_REPLY:
        return f"ARP, Reply {inet_ntoa(arp.spa)} is-at {arp.sha.hex(':')}"
    return f"ARP, opcode {arp.op}, {inet_ntoa(arp.spa)} > {inet_ntoa(arp.tpa)}"


def _ipv4(data: memoryview) -> str:
    try:
        ip = parse_ipv4(data, verify_checksum=False)
    except MalformedPacket as exc:
        return f"malformed ({exc})"
    src = inet_ntoa(ip.src)
    dst = inet_ntoa(ip.dst)
    if ip.is_fragment:
        more = "+" if ip.more_fragments else ""
        return (
            f"{src} > {dst}: ip-proto-{ip.protocol}, fragment id {ip.ident}, "
            f"offset {ip.fragment_offset}{more}, length {len(ip.payload)}"
        )
    try:
        if ip.protocol == IPPROTO_TCP:
            return _tcp(src, dst, parse_tcp(ip.payload, ip.src, ip.dst, verify_checksum=False))
        if ip.protocol == IPPROTO_UDP:
            udp = parse_udp(ip.payload, ip.src, ip.dst, verify_checksum=False)
            return f"{src}.{udp.sport} > {dst}.{udp.dport}: UDP, length {len(udp.payload)}"
        if ip.protocol == IPPROTO_ICMP:
            icmp = parse_icmp(ip.payload, verify_checksum=False)
            return f"{src} > {dst}: ICMP {_icmp(icmp)}, length {len(ip.payload)}"
    except MalformedPacket as exc:
        return f"{src} > {dst}: malformed ({exc})"
    return f"{src} > {dst}: ip-proto-{ip.protocol}, length {len(ip.payload)}"


def _tcp(src: str, dst: str, seg: TcpSegment) -> str:
    flags = "".join(letter for bit, letter in _FLAG_LETTERS if seg.flags & bit) or "none"
    n = len(seg.payload)
    parts = [f"{src}.{seg.sport} > {dst}.{seg.dport}: Flags [{flags}]"]
    if n:
        parts.append(f"seq {seg.seq}:{(seg.seq + n) & 0xFFFFFFFF}")
    elif seg.flags & 0x07:  # FIN, SYN or RST
        parts.append(f"seq {seg.seq}")
    if seg.flags & ACK:
        parts.append(f"ack {seg.ack}")
    parts.append(f"win {seg.window}")
    if seg.flags & URG:
        parts.append(f"urg {seg.urgent}")
    options = _tcp_options(seg)
    if options:
        parts.append(f"options [{options}]")
    parts.append(f"length {n}")
    return ", ".join(parts)


def _tcp_options(seg: TcpSegment) -> str:
    items = []
    if seg.mss is not None:
        items.append(f"mss {seg.mss}")
    if seg.sack_permitted:
        items.append("sackOK")
    if seg.timestamp is not None:
        items.append(f"TS val {seg.timestamp[0]} ecr {seg.timestamp[1]}")
    if seg.wscale is not None:
        items.append(f"wscale {seg.wscale}")
    if seg.sack_blocks:
        edges = "".join(f"{{{left}:{right}}}" for left, right in seg.sack_blocks)
        items.append(f"sack {len(seg.sack_blocks)} {edges}")
    return ",".join(items)


def _icmp(msg: IcmpMessage) -> str:
    if msg.type == ICMP_ECHO_REQUEST or msg.type == ICMP_ECHO_REPLY:
        kind = "request" if msg.type == ICMP_ECHO_REQUEST else "reply"
        return f"echo {kind}, id {msg.ident}, seq {msg.sequence}"
    if msg.type == ICMP_TIME_EXCEEDED:
        return "time exceeded in-transit" if msg.code == 0 else "ip reassembly time exceeded"
    if msg.type == ICMP_DEST_UNREACH:
        return _unreachable(msg)
    return f"type {msg.type}, code {msg.code}"


def _unreachable(msg: IcmpMessage) -> str:
    try:
        quoted, _sport, dport = parse_quoted(msg)
    except MalformedPacket as exc:
        return f"unreachable, code {msg.code} ({exc.reason})"
    target = inet_ntoa(quoted.dst)
    if msg.code == UNREACH_PORT:
        return (
            f"{target} {_PROTOCOL_NAMES.get(quoted.protocol, f'ip-proto-{quoted.protocol}')} port {dport} unreachable"
        )
    if msg.code == UNREACH_PROTOCOL:
        return f"{target} protocol {quoted.protocol} unreachable"
    if msg.code == UNREACH_HOST:
        return f"host {target} unreachable"
    if msg.code == UNREACH_NET:
        return f"net {target} unreachable"
    if msg.code == UNREACH_FRAG_NEEDED:
        return f"{target} unreachable - need to frag (mtu {msg.next_hop_mtu})"
    return f"{target} unreachable, code {msg.code}"
