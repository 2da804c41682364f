"""One usernet interface and a hand-driven peer: inject segments, read the answers."""

from __future__ import annotations

from usernet.native import build_ipv4_tcp, internet_checksum
from usernet.stack import Interface, InterfaceConfig, TcpConfig
from usernet.wire import emit_arp, emit_ethernet
from usernet.wire.tcp import ACK, TcpSegment, encode_tcp_options, parse_tcp

US_MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")
US = bytes([192, 0, 2, 2])
PEER = bytes([192, 0, 2, 1])
PORT = 80
PEER_PORT = 40000
PEER_ISN = 1_000_000
SYN_OPTIONS = encode_tcp_options(mss=1460, sack_permitted=True, timestamp=(100, 0), wscale=7)


class FixedIsn:
    """Test hook for `TcpLayer.isn_source`: every connection starts at `isn`."""

    def __init__(self, isn: int) -> None:
        self.value = isn

    def isn(self, now: float, *key: object) -> int:
        return self.value

    def ts_offset(self, *key: object) -> int:
        return 0


class Scripted:
    def __init__(self, tcp: TcpConfig | None = None, isn: int = 5_000_000, **options: object) -> None:
        """`options` are further InterfaceConfig fields (offloads, MTU)."""
        self.iface = Interface(
            InterfaceConfig.from_strings(
                US_MAC, ["192.0.2.2/24"], secret=b"s" * 16, arp_timeout=1e9, tcp=tcp or TcpConfig(), **options
            )
        )
        self.iface.tcp.isn_source = FixedIsn(isn)
        self.now = 0.0
        frame = bytearray(42)
        emit_ethernet(frame, 0, b"\xff" * 6, PEER_MAC, 0x0806)
        emit_arp(frame, 14, 1, PEER_MAC, PEER, bytes(6), US)
        self.iface.receive(frame, 0.0)
        self.iface.take_output()

    def inject(
        self,
        seq: int,
        ack: int,
        flags: int,
        payload: bytes = b"",
        window: int = 65535,
        options: bytes = b"",
        sport: int = PEER_PORT,
        dport: int = PORT,
        src: bytes = PEER,
        tos: int = 0,
    ) -> None:
        """One segment from the peer; `tos` is the IP header's second byte (its ECN field: 3 is CE)."""
        frame = bytearray(54 + len(options) + len(payload))
        build_ipv4_tcp(
            frame,
            0,
            US_MAC,
            PEER_MAC,
            src,
            US,
            1,
            64,
            sport,
            dport,
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            flags,
            window,
            0,
            options,
            payload,
        )
        if tos:
            set_tos(frame, tos)
        self.iface.receive(frame, self.now)

    def ts(self, val: int, ecr: int) -> bytes:
        return encode_tcp_options(timestamp=(val, ecr))

    def flush(self) -> list[TcpSegment]:
        self.iface.flush(self.now)
        return self._segments()

    def advance(self, until: float) -> list[tuple[float, TcpSegment]]:
        """Run timers up to `until`, flushing after each; the segments sent with their times."""
        out: list[tuple[float, TcpSegment]] = []
        out.extend((self.now, s) for s in self.flush())
        while True:
            d = self.iface.next_deadline()
            if d is None or d > until:
                break
            self.now = d
            self.iface.poll(d)
            out.extend((d, s) for s in self.flush())
        self.now = until
        return out

    def _segments(self) -> list[TcpSegment]:
        segs = []
        for frame in self.iface.take_output():
            mv = memoryview(bytes(frame))
            assert mv[0:6] == PEER_MAC
            segs.append(parse_tcp(mv[34:], US, PEER))
        return segs

    def accept_handshake(self, options: bytes = SYN_OPTIONS, window: int = 65535) -> tuple[object, TcpSegment]:
        """Listen on PORT, complete a handshake from the peer; returns (connection, SYN-ACK)."""
        listener = self.iface.tcp.listen((US, PORT))
        self.inject(PEER_ISN, 0, 0x02, options=options, window=window)
        (synack,) = self.flush()
        ts = self.ts(101, synack.timestamp[0]) if synack.timestamp else b""
        self.inject(PEER_ISN + 1, synack.seq + 1, ACK, options=ts, window=window)
        conn = listener.accept()
        assert conn is not None
        self.flush()
        return conn, synack


def set_tos(frame: bytearray, tos: int) -> None:
    """Rewrite an Ethernet+IPv4 frame's TOS byte and its header checksum."""
    frame[15] = tos
    frame[24:26] = b"\0\0"
    frame[24:26] = internet_checksum(frame[14:34]).to_bytes(2, "big")
