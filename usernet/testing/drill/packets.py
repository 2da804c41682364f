"""Script packets to frames and back: building inbound segments, reading outbound ones.

Sequence numbers in a script are relative (packetdrill's rules): inbound `seq` is in the
script's own space (its ISN is what its SYN says, normally 0), inbound `ack` and SACK
blocks are in the stack's space counted from the stack's ISN, and outbound segments are
read back into the same relative spaces before they are compared. `SeqMap` holds the
offsets between the two spaces for the connection under test.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from usernet.native import NativeError, build_ipv4_tcp, internet_checksum
from usernet.testing.drill.model import (
    Eol,
    FastOpen,
    IpInfo,
    Md5,
    Mss,
    Nop,
    RawOption,
    Sack,
    SackPermitted,
    TcpOption,
    TcpPacket,
    Timestamp,
    WindowScale,
)
from usernet.wire import MalformedPacket, parse_ipv4
from usernet.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, parse_tcp

AE = 0x100  # the AccECN / ECN-nonce bit, `A` in a script
FLAG_BITS = {"S": SYN, "F": FIN, "R": RST, "P": PSH, ".": ACK, "U": URG, "E": ECE, "W": CWR, "A": AE}
_FLAG_ORDER = (("S", SYN), ("F", FIN), ("R", RST), ("P", PSH), ("U", URG), ("E", ECE), ("W", CWR), ("A", AE))
ECN_BITS = {"noecn": 0, "ect1": 1, "ect0": 2, "ce": 3}
_ETHERTYPE_IPV4 = 0x0800
_IPPROTO_TCP = 6
_FO_EXP_MAGIC = b"\xf9\x89"
_U32 = 0xFFFFFFFF


class DrillError(Exception):
    """A script that cannot run as written (not a failed expectation): says what to change."""


def flag_bits(flags: str) -> int:
    bits = 0
    for letter in flags:
        bits |= FLAG_BITS[letter]
    return bits


def flag_text(bits: int) -> str:
    """Flags as a script writes them: letters, then '.' for ACK, '-' for none."""
    text = "".join(letter for letter, bit in _FLAG_ORDER if bits & bit)
    if bits & ACK:
        text += "."
    return text


@dataclass
class SeqMap:
    """Offsets between script and wire numbers for the connection under test.

    `local_live`/`local_script` are the stack's ISN on the wire and in the script (learnt
    from its SYN or SYN-ACK); `remote_offset` is added to the script's own sequence
    numbers (0 as in packetdrill; a runner option moves it, e.g. to test wrap-around).
    TS values: `ts_map` remembers each outbound TS val the script named and what was
    really sent, so an inbound ecr echoing it can be rewritten to the real value.
    """

    remote_offset: int = 0
    local_live: int = 0
    local_script: int = 0
    local_known: bool = False
    ts_map: dict[int, int] = field(default_factory=dict)
    first_ts: tuple[int, int] | None = None  # (script val, actual val) of the first TS compared

    def local_to_live(self, seq: int) -> int:
        return (seq + self.local_live - self.local_script) & _U32

    def local_to_script(self, seq: int) -> int:
        return (seq - self.local_live + self.local_script) & _U32

    def remote_to_live(self, seq: int) -> int:
        return (seq + self.remote_offset) & _U32

    def remote_to_script(self, seq: int) -> int:
        return (seq - self.remote_offset) & _U32

    def ecr_to_live(self, ecr: int) -> int:
        """packetdrill's rule: an echo of a TS val the script named is that value's real
        counterpart; any other is shifted like the first one (as --tcp_ts_ecr_scaled)."""
        if ecr in self.ts_map:
            return self.ts_map[ecr]
        if self.first_ts is not None:
            return (ecr - self.first_ts[0] + self.first_ts[1]) & _U32
        return ecr

    def ts_to_script(self, val: int) -> int:
        if self.first_ts is None:
            return val
        return (self.first_ts[0] + val - self.first_ts[1]) & _U32


def encode_options(options: tuple[TcpOption, ...], seqmap: SeqMap) -> bytes:
    """Inbound options byte for byte in the script's order (NOPs included), padded to 4."""
    out = bytearray()
    for option in options:
        match option:
            case Nop():
                out.append(1)
            case Eol():
                out.append(0)
            case Mss(value):
                out += struct.pack("!BBH", 2, 4, value)
            case WindowScale(shift):
                out += bytes((3, 3, shift))
            case SackPermitted():
                out += b"\x04\x02"
            case Sack(blocks):
                out += bytes((5, 2 + 8 * len(blocks)))
                for left, right in blocks:
                    out += struct.pack("!II", seqmap.local_to_live(left), seqmap.local_to_live(right))
            case Timestamp(val, ecr):
                out += struct.pack("!BBII", 8, 10, val, seqmap.ecr_to_live(ecr))
            case FastOpen(cookie, experimental):
                try:
                    body = bytes.fromhex(cookie) if cookie else b""
                except ValueError:
                    raise DrillError(
                        f"the Fast Open cookie '{cookie}' is not hex: define it (-D {cookie}=0123456789abcdef)"
                    ) from None
                if experimental:
                    out += bytes((254, 4 + len(body))) + _FO_EXP_MAGIC + body
                else:
                    out += bytes((34, 2 + len(body))) + body
            case Md5(digest):
                out += bytes((19, 18)) + bytes.fromhex(digest.ljust(32, "0"))[:16]
            case RawOption(text):
                raise DrillError(f"the runner cannot build the TCP option '{text}': remove it or use a known one")
    out += bytes(-len(out) % 4)
    if len(out) > 40:
        raise DrillError(f"the TCP options take {len(out)} bytes; at most 40 fit in a header")
    return bytes(out)


@dataclass(frozen=True)
class Endpoints:
    """Where an inbound frame comes from and goes to."""

    our_mac: bytes
    peer_mac: bytes
    remote_ip: bytes
    local_ip: bytes
    remote_port: int
    local_port: int


def build_inbound(packet: TcpPacket, ends: Endpoints, seqmap: SeqMap, ident: int, ecn: int = 0) -> bytearray:
    """The Ethernet frame the script's `<` line means, with real checksums."""
    if packet.window is None and "R" not in packet.flags:
        raise DrillError("an inbound packet needs its window: add 'win N' (e.g. win 65535)")
    if packet.options is Ellipsis:
        raise DrillError("<...> means 'any options' and only fits outbound packets")
    options = encode_options(packet.options, seqmap)
    payload = bytes(packet.length)
    ack = seqmap.local_to_live(packet.ack) if packet.ack is not None else 0
    frame = bytearray(54 + len(options) + len(payload))
    try:
        build_ipv4_tcp(
            frame,
            0,
            ends.our_mac,
            ends.peer_mac,
            ends.remote_ip,
            ends.local_ip,
            ident,
            64,
            ends.remote_port,
            ends.local_port,
            seqmap.remote_to_live(packet.seq),
            ack,
            flag_bits(packet.flags),
            packet.window or 0,
            packet.urgent or 0,
            options,
            payload,
        )
    except NativeError as exc:
        raise DrillError(f"cannot build the inbound segment {packet}: {exc}") from None
    if ecn:
        frame[15] = (frame[15] & 0xFC) | ecn
        frame[24:26] = b"\x00\x00"
        frame[24:26] = internet_checksum(memoryview(frame)[14:34]).to_bytes(2, "big")
    return frame


@dataclass(frozen=True)
class Segment:
    """One TCP segment the stack sent, with its raw options in wire order."""

    time: float
    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int
    urgent: int
    payload_len: int
    options: tuple[tuple[int, bytes], ...]  # (kind, data after kind and length)
    tos: int
    ttl: int


def read_segment(frame: bytes, time: float) -> Segment | str:
    """Parse an outbound frame; a description string when it is not a TCP/IPv4 segment."""
    if len(frame) < 14 or int.from_bytes(frame[12:14], "big") != _ETHERTYPE_IPV4:
        return f"a non-IPv4 frame (EtherType 0x{int.from_bytes(frame[12:14], 'big'):04x})"
    try:
        ip = parse_ipv4(memoryview(frame)[14:])
        if ip.protocol != _IPPROTO_TCP:
            return f"an IPv4 packet of protocol {ip.protocol}, not TCP"
        seg = parse_tcp(ip.payload, ip.src, ip.dst)
    except MalformedPacket as exc:
        return f"a malformed packet ({exc})"
    raw = bytes(ip.payload[20 : seg.header_length])
    return Segment(
        time,
        seg.sport,
        seg.dport,
        seg.seq,
        seg.ack,
        seg.flags,
        seg.window,
        seg.urgent,
        len(seg.payload),
        _split_options(raw),
        frame[15],
        frame[22],
    )


def _split_options(raw: bytes) -> tuple[tuple[int, bytes], ...]:
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind in (0, 1):
            out.append((kind, b""))
            i += 1
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2:
            break
        length = raw[i + 1]
        out.append((kind, raw[i + 2 : i + length]))
        i += length
    return tuple(out)


def script_options(options: tuple[tuple[int, bytes], ...], seqmap: SeqMap) -> tuple[TcpOption, ...]:
    """Actual options as script objects, numbers mapped back into script space."""
    out: list[TcpOption] = []
    for kind, data in options:
        if kind == 0:
            out.append(Eol())
        elif kind == 1:
            out.append(Nop())
        elif kind == 2 and len(data) == 2:
            out.append(Mss(int.from_bytes(data, "big")))
        elif kind == 3 and len(data) == 1:
            out.append(WindowScale(data[0]))
        elif kind == 4:
            out.append(SackPermitted())
        elif kind == 5:
            edges = struct.unpack(f"!{len(data) // 4}I", data[: len(data) // 8 * 8])
            out.append(
                Sack(
                    tuple(
                        (seqmap.remote_to_script(edges[i]), seqmap.remote_to_script(edges[i + 1]))
                        for i in range(0, len(edges), 2)
                    )
                )
            )
        elif kind == 8 and len(data) == 8:
            val, ecr = struct.unpack("!II", data)
            out.append(Timestamp(seqmap.ts_to_script(val), ecr))
        else:
            out.append(RawOption(f"kind {kind} len {len(data) + 2}"))
    return tuple(out)


def script_packet(seg: Segment, seqmap: SeqMap) -> TcpPacket:
    """How the script would write what the stack sent (for messages and comparison)."""
    return TcpPacket(
        flags=flag_text(seg.flags),
        seq=seqmap.local_to_script(seg.seq),
        length=seg.payload_len,
        ack=seqmap.remote_to_script(seg.ack) if seg.flags & ACK else None,
        window=seg.window,
        urgent=seg.urgent or None,
        options=script_options(seg.options, seqmap),
    )


__all__ = [
    "AE",
    "FLAG_BITS",
    "DrillError",
    "Endpoints",
    "Segment",
    "SeqMap",
    "build_inbound",
    "compare",
    "encode_options",
    "flag_bits",
    "flag_text",
    "learn_timestamps",
    "read_segment",
    "script_options",
    "script_packet",
]


def _field(name: str, expected: int, actual: int) -> str:
    return f"live packet field {name}: expected: {expected} (0x{expected:x}) vs actual: {actual} (0x{actual:x})"


_OPTION_KIND = {Nop: 1, Eol: 0, Mss: 2, WindowScale: 3, SackPermitted: 4, Sack: 5, Timestamp: 8, Md5: 19}


def compare(
    expected: TcpPacket, ip: IpInfo | None, seg: Segment, seqmap: SeqMap, ts_tick_usecs: int, tolerance_usecs: float
) -> str | None:
    """The first difference between what the script expects and what was sent, or None.

    The fields packetdrill checks: every flag, seq, payload length, ack (when written),
    window (when written), urgent pointer, options in order when written (`<...>`:
    unchecked), TS val only with --tcp_ts_tick_usecs, TS ecr never; ECN/TOS/TTL when
    the script writes them. Payload bytes are not compared.
    """
    want = flag_bits(expected.flags)
    if want != seg.flags & 0x1FF:
        return f"live packet flags: expected: {flag_text(want) or '-'} vs actual: {flag_text(seg.flags) or '-'}"
    seq = seqmap.local_to_script(seg.seq)
    if seq != expected.seq:
        return _field("tcp_seq", expected.seq, seq)
    if seg.payload_len != expected.length:
        return f"live packet payload: expected {expected.length} bytes vs actual {seg.payload_len} bytes"
    if expected.ack is not None:
        ack = seqmap.remote_to_script(seg.ack)
        if ack != expected.ack:
            return _field("tcp_ack_seq", expected.ack, ack)
    if expected.window is not None and expected.window != seg.window:
        return _field("tcp_window", expected.window, seg.window)
    if (expected.urgent or 0) != seg.urgent:
        return _field("tcp_urg_ptr", expected.urgent or 0, seg.urgent)
    if ip is not None:
        if ip.ecn is not None and ip.ecn != "ect01" and ECN_BITS[ip.ecn] != seg.tos & 3:
            return _field("ip_ecn", ECN_BITS[ip.ecn], seg.tos & 3)
        if ip.ecn == "ect01" and seg.tos & 3 not in (1, 2):
            return f"live packet field ip_ecn: expected: 0x1 or 0x2 vs actual: 0x{seg.tos & 3:x}"
        if ip.tos is not None and ip.tos != seg.tos:
            return _field("tos", ip.tos, seg.tos)
        if ip.ttl is not None and ip.ttl != seg.ttl:
            return _field("ttl", ip.ttl, seg.ttl)
    if expected.options is Ellipsis:
        return None
    return _compare_options(expected.options, seg, seqmap, ts_tick_usecs, tolerance_usecs)


def _compare_options(
    options: tuple[TcpOption, ...], seg: Segment, seqmap: SeqMap, ts_tick_usecs: int, tolerance_usecs: float
) -> str | None:
    actual = script_options(seg.options, seqmap)
    kinds = [kind for kind, _ in seg.options]
    if len(options) != len(kinds) or any(
        _OPTION_KIND.get(type(o), -1) not in (k, -1) for o, k in zip(options, kinds, strict=True)
    ):
        return "bad outbound TCP options"
    for want, (kind, _), got in zip(options, seg.options, actual, strict=True):
        if isinstance(want, Timestamp) and isinstance(got, Timestamp):
            if (
                ts_tick_usecs
                and abs(((got.val - want.val + 0x80000000) & _U32) - 0x80000000) * ts_tick_usecs > tolerance_usecs
            ):
                return f"bad outbound TCP timestamp value, tolerance {int(tolerance_usecs)}"
        elif isinstance(want, (FastOpen, RawOption, Md5)):
            continue
        elif want != got:
            return f"bad value outbound TCP option {kind}"
    return None


def learn_timestamps(expected: TcpPacket, seg: Segment, seqmap: SeqMap) -> None:
    """Remember which real TS val stands for the script's, for later inbound echoes."""
    if expected.options is Ellipsis:
        return
    want = next((o for o in expected.options if isinstance(o, Timestamp)), None)
    got = next((data for kind, data in seg.options if kind == 8 and len(data) == 8), None)
    if want is None or got is None:
        return
    val = int.from_bytes(got[:4], "big")
    seqmap.ts_map[want.val] = val
    if seqmap.first_ts is None:
        seqmap.first_ts = (want.val, val)
