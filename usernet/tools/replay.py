"""Replay a capture through a fresh usernet, offline and deterministic, and compare its answers.

The frames a capture holds toward one host (its MAC, or broadcast) are handed to a new
usernet interface that takes that host's MAC and address, on a virtual clock: at their
recorded offsets (`speed=1`), scaled (`speed=N` runs N times faster), or one microsecond
apart (`speed=None`, as fast as the stack can take them). What usernet sends is kept with
its virtual time, to write to a pcap and to compare (`diff`) with what the recorded host
sent. Because the clock is virtual, a replay is a pure function of the capture: the same
capture gives the same frames every time, so a bug report's capture is a regression test.

The recorded host's TCP initial sequence numbers and first TSvals are pinned: usernet's
ISN generator is swapped for one that returns, for each connection the recorded host
took part in, the ISN its SYN (or SYN-ACK) carried. Then sequence and acknowledgment
numbers compare as they are. What still legitimately differs is left out of the
comparison: IP identification, checksums, and TSvals after the first (they follow the
recording's wall clock, which jitters by fractions of a millisecond).

`live_replay` is the other direction: it sends the frames one side of a capture sent onto
a real link, paced as recorded, and collects what the real peer answers.
"""

from __future__ import annotations

import difflib
import ipaddress
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from usernet.apps.services import Services
from usernet.drivers.host import Host
from usernet.drivers.virtual import Simulation
from usernet.link.base import BytesLike, Link, LinkCounters
from usernet.link.clock import VirtualClock
from usernet.link.pcap import PcapReader, PcapWriter
from usernet.stack import Interface, InterfaceConfig
from usernet.stack.interface import Socket
from usernet.stack.tcp.isn import IsnGenerator
from usernet.stack.tcp.rtt import TimestampClock
from usernet.wire import (
    ACK,
    ARP_REPLY,
    ETH_HLEN,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ICMP_ECHO_REPLY,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    SYN,
    MalformedPacket,
    describe,
    parse_arp,
    parse_ethernet,
    parse_icmp,
    parse_ipv4,
    parse_tcp,
)

__all__ = [
    "IGNORED_FIELDS",
    "OPTIONAL_FIELDS",
    "CaptureLink",
    "Difference",
    "Endpoint",
    "PinnedIsn",
    "ReplayResult",
    "diff_frames",
    "live_replay",
    "load_capture",
    "normalise",
    "peer_of",
    "replay",
    "save_capture",
]

Frame = tuple[float, bytes]
ConnKey = tuple[bytes, int, bytes, int]
#: A user program: called with each socket that has news and the virtual time; True if it took it.
Handler = Callable[[Socket, float], bool]
#: Makes the user program once the interface exists.
Attach = Callable[[Interface], Handler]

_FASTEST_GAP = 1e-6  # speed=None: frames this far apart, so each is handled on its own


def save_capture(path: str, frames: Iterable[Frame]) -> None:
    """Write (timestamp, frame) pairs to a classic pcap; negative times (never from a capture) become 0."""
    with PcapWriter(path) as writer:
        for t, frame in frames:
            writer.write(frame, max(t, 0.0))


def load_capture(path: str) -> list[Frame]:
    """Every (timestamp, frame) of a classic Ethernet pcap; ValueError for anything else."""
    with PcapReader(path) as reader:
        if reader.linktype != 1:
            raise ValueError(f"{path} has link type {reader.linktype}; replay reads Ethernet captures (type 1)")
        return list(reader)


@dataclass(frozen=True)
class Endpoint:
    """The recorded host usernet plays: its MAC, its IPv4 address and its network's prefix."""

    mac: bytes
    ip: bytes
    prefix: int = 24

    def __str__(self) -> str:
        return f"{self.mac.hex(':')}/{ipaddress.IPv4Address(self.ip)}/{self.prefix}"

    @classmethod
    def parse(cls, text: str, frames: Sequence[Frame] = ()) -> Endpoint:
        """`MAC/IP[/PREFIX]`, or `IP[/PREFIX]` with the MAC taken from the frames that IP sent."""
        parts = text.split("/")
        mac: bytes | None = None
        if ":" in parts[0]:
            try:
                mac = bytes.fromhex(parts.pop(0).replace(":", ""))
            except ValueError:
                mac = b""
            if len(mac) != 6:
                raise ValueError(f"--as {text!r}: the MAC must be six hex bytes such as 02:00:00:00:00:01")
        if not 1 <= len(parts) <= 2:
            raise ValueError(f"--as {text!r}: write MAC/IP[/PREFIX] or IP[/PREFIX]")
        try:
            iface = ipaddress.IPv4Interface("/".join(parts) if len(parts) == 2 else f"{parts[0]}/24")
        except ValueError as exc:
            raise ValueError(f"--as {text!r}: {exc}") from None
        ip = iface.ip.packed
        if mac is None:
            mac = _mac_of(ip, frames)
            if mac is None:
                raise ValueError(f"--as {text!r}: no frame in the capture comes from {iface.ip}; give MAC/IP")
        return cls(mac, ip, iface.network.prefixlen)

    @classmethod
    def infer(cls, frames: Sequence[Frame]) -> Endpoint:
        """The answering host of a capture: the sender of a SYN-ACK, else of an echo reply, else of an ARP reply."""
        found: dict[str, tuple[bytes, bytes]] = {}
        for _, frame in frames:
            answer = _answer_kind(frame)
            if answer is not None:
                found.setdefault(answer[0], answer[1:])
        for kind in ("syn-ack", "echo-reply", "arp-reply"):
            if kind in found:
                return cls(*found[kind])
        raise ValueError("cannot tell which host to play: no SYN-ACK, echo reply or ARP reply; use --as MAC/IP")


def peer_of(frames: Sequence[Frame], sender: Endpoint) -> Endpoint:
    """The host `sender` sent its first unicast IPv4 frame to, with the sender's prefix."""
    for _, frame in frames:
        if not _from(sender, frame) or frame[0] & 1:
            continue
        try:
            eth = parse_ethernet(frame)
            if eth.ethertype == ETHERTYPE_IPV4:
                return Endpoint(eth.dst, parse_ipv4(eth.payload, False).dst, sender.prefix)
        except MalformedPacket:
            continue
    raise ValueError(f"{sender} sent no unicast IPv4 frame in the capture: no peer to replay toward")


def _mac_of(ip: bytes, frames: Iterable[Frame]) -> bytes | None:
    for _, frame in frames:
        try:
            eth = parse_ethernet(frame)
            if eth.ethertype == ETHERTYPE_IPV4 and parse_ipv4(eth.payload, False).src == ip:
                return eth.src
            if eth.ethertype == ETHERTYPE_ARP and parse_arp(eth.payload).spa == ip:
                return eth.src
        except MalformedPacket:
            continue
    return None


def _answer_kind(frame: bytes) -> tuple[str, bytes, bytes] | None:
    """("syn-ack" | "echo-reply" | "arp-reply", sender MAC, sender IP) if the frame is such an answer."""
    try:
        eth = parse_ethernet(frame)
        if eth.ethertype == ETHERTYPE_ARP:
            arp = parse_arp(eth.payload)
            return ("arp-reply", eth.src, arp.spa) if arp.op == ARP_REPLY else None
        if eth.ethertype != ETHERTYPE_IPV4:
            return None
        ip = parse_ipv4(eth.payload, False)
        if ip.protocol == IPPROTO_TCP:
            seg = parse_tcp(ip.payload, ip.src, ip.dst, False)
            return ("syn-ack", eth.src, ip.src) if seg.flags & (SYN | ACK) == SYN | ACK else None
        if ip.protocol == IPPROTO_ICMP and parse_icmp(ip.payload, False).type == ICMP_ECHO_REPLY:
            return ("echo-reply", eth.src, ip.src)
    except MalformedPacket:
        return None
    return None


def _toward(endpoint: Endpoint, frame: bytes) -> bool:
    """Addressed to the host (its MAC, broadcast or multicast) and not sent by it."""
    return len(frame) >= ETH_HLEN and frame[6:12] != endpoint.mac and (frame[:6] == endpoint.mac or frame[0] & 1 == 1)


def _from(endpoint: Endpoint, frame: bytes) -> bool:
    return frame[6:12] == endpoint.mac


class CaptureLink(LinkCounters):
    """A link whose receive side is a list of recorded frames, each due at its virtual time.

    Whatever the interface sends is kept in `sent` with the time it was sent, read from
    `clock` (the simulation's), so a replay can be written out and compared.
    """

    def __init__(self, inbound: Sequence[Frame], mac: bytes, clock: Callable[[], float], mtu: int = 1500) -> None:
        super().__init__()
        self._inbound = inbound
        self._next = 0
        self._now = float("-inf")
        self._mac = mac
        self._mtu = mtu
        self._clock = clock
        self.sent: list[Frame] = []

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def mac(self) -> bytes:
        return self._mac

    def fileno(self) -> int | None:
        return None

    def poll(self, now: float) -> None:
        self._now = now

    def receive(self, max_frames: int = 64) -> list[memoryview | bytes]:
        out: list[memoryview | bytes] = []
        inbound = self._inbound
        while self._next < len(inbound) and len(out) < max_frames and inbound[self._next][0] <= self._now:
            frame = inbound[self._next][1]
            out.append(frame)
            self.rx_frames += 1
            self.rx_bytes += len(frame)
            self._next += 1
        return out

    def send(self, frame: BytesLike) -> None:
        data = bytes(frame)
        self.sent.append((self._clock(), data))
        self.tx_frames += 1
        self.tx_bytes += len(data)

    def next_deadline(self) -> float | None:
        return self._inbound[self._next][0] if self._next < len(self._inbound) else None

    @property
    def pending(self) -> int:
        """Recorded frames not yet handed to the interface."""
        return len(self._inbound) - self._next

    def close(self) -> None:
        self._next = len(self._inbound)


class PinnedIsn(IsnGenerator):
    """An IsnGenerator that gives each recorded connection the ISN and first TSval the capture shows.

    `recorded` maps a connection (local address, local port, remote address, remote port,
    as the stack keys it) to the sequence number of the host's SYN or SYN-ACK and the
    TSval it carried (None without timestamps). Other connections get the ISNs and TSval
    offsets of a plain generator keyed with `secret`.
    """

    __slots__ = ("_opened_at", "_recorded", "pinned")

    def __init__(self, recorded: Mapping[ConnKey, tuple[int, int | None]], secret: bytes) -> None:
        super().__init__(secret)
        self._recorded = recorded
        self._opened_at: dict[ConnKey, float] = {}
        self.pinned = 0

    def isn(self, now: float, local_ip: bytes, local_port: int, remote_ip: bytes, remote_port: int) -> int:
        key = (local_ip, local_port, remote_ip, remote_port)
        pinned = self._recorded.get(key)
        if pinned is None:
            return super().isn(now, *key)
        self._opened_at[key] = now  # the connection reads its TSval offset right after, at this time
        self.pinned += 1
        return pinned[0]

    def ts_offset(self, local_ip: bytes, local_port: int, remote_ip: bytes, remote_port: int) -> int:
        key = (local_ip, local_port, remote_ip, remote_port)
        pinned = self._recorded.get(key)
        opened = self._opened_at.get(key)
        if pinned is None or pinned[1] is None or opened is None:
            return super().ts_offset(*key)
        return (pinned[1] - TimestampClock().tsval(opened)) & 0xFFFFFFFF

    @classmethod
    def from_frames(cls, frames: Iterable[bytes], secret: bytes) -> PinnedIsn:
        """Pins taken from the SYNs and SYN-ACKs among `frames` (the recorded host's own)."""
        recorded: dict[ConnKey, tuple[int, int | None]] = {}
        for frame in frames:
            try:
                eth = parse_ethernet(frame)
                if eth.ethertype != ETHERTYPE_IPV4:
                    continue
                ip = parse_ipv4(eth.payload, False)
                if ip.protocol != IPPROTO_TCP:
                    continue
                seg = parse_tcp(ip.payload, ip.src, ip.dst, False)
            except MalformedPacket:
                continue
            if seg.flags & SYN:
                tsval = None if seg.timestamp is None else seg.timestamp[0]
                recorded.setdefault((ip.src, seg.sport, ip.dst, seg.dport), (seg.seq, tsval))
        return cls(recorded, secret)


@dataclass(frozen=True)
class Difference:
    """One place where the replay and the recording part: frames only one side sent, or sent differently."""

    kind: str  # "changed", "missing" (recorded, not replayed), "extra" (replayed, not recorded)
    recorded: tuple[Frame, ...]
    replayed: tuple[Frame, ...]

    def __str__(self) -> str:
        lines = [f"{self.kind}:"]
        lines += [f"  - {t:.6f} {describe(f)}" for t, f in self.recorded]
        lines += [f"  + {t:.6f} {describe(f)}" for t, f in self.replayed]
        return "\n".join(lines)


IGNORED_FIELDS = "IP identification, IP/TCP/UDP/ICMP checksums, TSvals"


#: IPv4 header fields a comparison may also be told to ignore, where two stacks legitimately
#: differ (Linux sends echo replies without DF, usernet sets DF on everything): offset, mask.
OPTIONAL_FIELDS: dict[str, tuple[int, int]] = {"tos": (1, 0xFF), "df": (6, 0x40), "ttl": (8, 0xFF)}


def normalise(frame: BytesLike, ignore: Iterable[str] = ()) -> bytes:
    """The frame with what legitimately differs between two runs zeroed: IP ident, checksums, TSval,
    and the IPv4 fields named in `ignore` (keys of OPTIONAL_FIELDS).

    Ethernet padding after the IP datagram is cut off. Frames that are not IPv4 (ARP) are
    compared whole.
    """
    data = bytearray(frame)
    try:
        eth = parse_ethernet(data)
        if eth.ethertype != ETHERTYPE_IPV4:
            return bytes(data)
        ip = parse_ipv4(eth.payload, False)
    except MalformedPacket:
        return bytes(data)
    start = len(data) - len(eth.payload)
    del data[start + ip.total_length :]
    data[start + 4 : start + 6] = b"\0\0"  # identification
    data[start + 10 : start + 12] = b"\0\0"  # header checksum
    for name in ignore:
        offset, mask = OPTIONAL_FIELDS[name]
        data[start + offset] &= ~mask & 0xFF
    l4 = start + ip.header_length
    if ip.is_fragment and ip.fragment_offset:
        return bytes(data)
    if ip.protocol == IPPROTO_TCP and len(data) >= l4 + 20:
        data[l4 + 16 : l4 + 18] = b"\0\0"
        _zero_tsval(data, l4)
    elif ip.protocol == IPPROTO_UDP and len(data) >= l4 + 8:
        data[l4 + 6 : l4 + 8] = b"\0\0"
    elif ip.protocol == IPPROTO_ICMP and len(data) >= l4 + 4:
        data[l4 + 2 : l4 + 4] = b"\0\0"
    return bytes(data)


def _zero_tsval(data: bytearray, l4: int) -> None:
    """Zero the TSval of a TCP timestamp option (kind 8), in place, unless the segment is a SYN."""
    if data[l4 + 13] & SYN:
        return  # a SYN's TSval is pinned with the ISN: compare it
    end = l4 + (data[l4 + 12] >> 4) * 4
    at = l4 + 20
    while at < end:
        kind = data[at]
        if kind == 0:
            return
        if kind == 1:
            at += 1
            continue
        if at + 1 >= end or data[at + 1] < 2:
            return
        if kind == 8 and data[at + 1] == 10 and at + 10 <= end:
            data[at + 2 : at + 6] = b"\0\0\0\0"
            return
        at += data[at + 1]


def diff_frames(recorded: Sequence[Frame], replayed: Sequence[Frame], ignore: Iterable[str] = ()) -> list[Difference]:
    """Where the two frame sequences differ once normalised; timing is not compared, order is."""
    ignore = tuple(ignore)
    unknown = set(ignore) - OPTIONAL_FIELDS.keys()
    if unknown:
        raise ValueError(f"cannot ignore {', '.join(sorted(unknown))}: choose among {', '.join(OPTIONAL_FIELDS)}")
    a = [normalise(f, ignore) for _, f in recorded]
    b = [normalise(f, ignore) for _, f in replayed]
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        kind = {"replace": "changed", "delete": "missing", "insert": "extra"}[tag]
        out.append(Difference(kind, tuple(recorded[i1:i2]), tuple(replayed[j1:j2])))
    return out


def _speaks(frame: bytes) -> bool:
    """Frames of the protocols usernet sends (ARP, IPv4); others (IPv6, LLDP) it cannot be asked to match."""
    return len(frame) >= ETH_HLEN and struct.unpack_from("!H", frame, 12)[0] in (ETHERTYPE_ARP, ETHERTYPE_IPV4)


@dataclass
class ReplayResult:
    """What a replay fed, what usernet sent and what the recorded host had sent, in capture time."""

    endpoint: Endpoint
    fed: list[Frame]
    sent: list[Frame]
    recorded: list[Frame]
    not_compared: int  # frames the recorded host sent in protocols usernet does not speak
    pinned_isns: int
    #: Frames usernet sent when it started (its gratuitous ARP) that the capture cannot show,
    #: because it began after the recorded host had started: left out of `diff`.
    unrecorded_startup: int = 0
    stats: dict[str, int] = field(default_factory=dict)

    def diff(self, ignore: Iterable[str] = ()) -> list[Difference]:
        """How usernet's answers differ from the recorded host's, ignoring IGNORED_FIELDS and
        the OPTIONAL_FIELDS named in `ignore`."""
        return diff_frames(self.recorded, self.sent[self.unrecorded_startup :], ignore)

    def write_pcap(self, path: str) -> None:
        """The frames usernet sent, timestamped on the capture's clock."""
        save_capture(path, self.sent)

    def summary(self) -> list[str]:
        """One tcpdump-style line per frame usernet sent."""
        return [f"{t:.6f} {describe(frame)}" for t, frame in self.sent]


def replay(
    frames: Sequence[Frame],
    endpoint: Endpoint | None = None,
    *,
    speed: float | None = 1.0,
    services: bool = True,
    attach: Attach | None = None,
    pin_isn: bool = True,
    tail: float = 1.0,
    mtu: int = 1500,
    secret: bytes = bytes(16),
) -> ReplayResult:
    """Feed the frames toward `endpoint` (default: `Endpoint.infer`) into a fresh usernet playing it.

    `services` attaches what `usernet up` serves (echo, discard, chargen, UDP echo);
    `attach(iface)` returns a user program's handler, consulted first. After the last
    frame the simulation runs `tail` more (virtual) seconds for timers to fire. The
    interface's secret is fixed, so unpinned ISNs and ports are repeatable too.
    """
    if speed is not None and speed <= 0:
        raise ValueError(f"speed must be > 0 (or None for as fast as possible), not {speed}")
    if not frames:
        raise ValueError("the capture holds no frames")
    host_id = endpoint if endpoint is not None else Endpoint.infer(frames)
    t0 = frames[0][0]
    inbound: list[Frame] = []
    for index, (ts, frame) in enumerate(f for f in frames if _toward(host_id, f[1])):
        inbound.append((index * _FASTEST_GAP if speed is None else (ts - t0) / speed, frame))
    own = [f for f in frames if _from(host_id, f[1])]
    recorded = [f for f in own if _speaks(f[1])]

    clock = VirtualClock()
    link = CaptureLink(inbound, host_id.mac, clock, mtu)
    address = f"{ipaddress.IPv4Address(host_id.ip)}/{host_id.prefix}"
    iface = Interface(InterfaceConfig.from_strings(host_id.mac, [address], mtu=mtu, secret=secret))
    pins: PinnedIsn | None = None
    if pin_isn:
        pins = PinnedIsn.from_frames((f for _, f in own), secret)
        if not isinstance(getattr(iface.tcp, "isn_source", None), IsnGenerator):
            raise RuntimeError("this stack's TCP layer has no isn_source to pin: replay with pin_isn=False (--no-pin)")
        iface.tcp.isn_source = pins
    handlers: list[Handler] = []
    if attach is not None:
        handlers.append(attach(iface))
    if services:
        handlers.append(Services(iface).handle)

    sim = Simulation(clock)

    def on_ready(host: Host, sock: Socket) -> None:
        now = clock()
        for handler in handlers:
            if handler(sock, now):
                return

    sim.on_ready = on_ready
    sim.add(Host(link, iface))
    startup = 0 if _from(host_id, frames[0][1]) else len(link.sent)  # did the capture see it start?
    end = inbound[-1][0] + tail if inbound else tail
    sim.run(end)
    scale = 1.0 if speed is None else speed
    sent = [(t0 + t * scale, f) for t, f in link.sent]
    return ReplayResult(
        endpoint=host_id,
        fed=[(t0 + t * scale, f) for t, f in inbound],
        sent=sent,
        recorded=recorded,
        not_compared=len(own) - len(recorded),
        pinned_isns=0 if pins is None else pins.pinned,
        unrecorded_startup=startup,
        stats=iface.stats(),
    )


def live_replay(
    frames: Sequence[Frame],
    sender_mac: bytes,
    link: Link,
    *,
    speed: float = 1.0,
    settle: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Frame]:
    """Send the frames `sender_mac` sent onto `link`, paced as recorded (`speed` times faster).

    Returns what arrives on the link meanwhile and for `settle` seconds after, as
    (seconds since the first frame went, frame). The peer answers as itself: frames
    addressed to a host that is not on the link go nowhere.
    """
    if speed <= 0:
        raise ValueError(f"speed must be > 0, not {speed}")
    outbound = [(ts, frame) for ts, frame in frames if frame[6:12] == sender_mac]
    if not outbound:
        raise ValueError(f"no frame in the capture comes from {sender_mac.hex(':')}")
    received: list[Frame] = []
    t0 = outbound[0][0]
    start = clock()

    def collect_until(deadline: float) -> None:
        while True:
            now = clock()
            for frame in link.receive():
                received.append((now - start, bytes(frame)))
            if now >= deadline:
                return
            sleep(min(0.001, deadline - now))

    for ts, frame in outbound:
        collect_until(start + (ts - t0) / speed)
        link.send(frame)
    collect_until(clock() + settle)
    return received
