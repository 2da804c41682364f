"""IP reassembly with bounded memory (RFC 791, RFC 8200 §4.5, RFC 5722), and IPv4 fragmentation on send.

`Reassembler` knows no family: it is fed fragments keyed by (source, destination,
protocol or next header, identification) with their offset, more-fragments flag and
bytes, and gives back the whole payload once every byte from 0 to the last fragment's
end is there. IPv4 (`Ipv4Reassembly` below) and IPv6 (the fragment header) each keep one.

The rules, Linux's where RFCs leave room:
- the timer of a datagram starts with its first fragment and is never pushed back
  (`timeout`, 30 s as Linux's ipfrag_time and RFC 8200's 60 s upper bound allow);
- a fragment that overlaps another one discards the whole datagram and every fragment
  of it still to come (RFC 5722, applied to IPv4 too: overlaps only serve attacks on
  inspection); an exact duplicate (same offset and length) is dropped and changes
  nothing;
- memory is bounded in total and per source (`memory_limit`, `source_limit`): every
  fragment costs its bytes plus `FRAGMENT_COST`, every datagram `DATAGRAM_COST`, and a
  fragment that would pass a bound discards its datagram (which could never complete);
- a last fragment that disagrees with what is known (two different ends, bytes beyond
  the end) discards the datagram too.
A discarded datagram stays as a tombstone of `DATAGRAM_COST` bytes until its timer runs
out, so the rest of its fragments are dropped on sight instead of starting it again.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Hashable

from usernet.native import internet_checksum
from usernet.wire import (
    ICMP_TIME_EXCEEDED,
    IPV4_HLEN,
    IPv4Packet,
    MalformedPacket,
    emit_ipv4_header,
    ipv4_fragment,
    parse_ipv4,
)
from usernet.wire.ipv4 import parse_quoted_ipv4

DATAGRAM_COST = 256  # bytes charged for a datagram's bookkeeping, as a kernel's struct ipq is
FRAGMENT_COST = 128  # bytes charged per fragment besides its payload: an 8-byte flood is bounded too
TIME_EXCEEDED_REASSEMBLY = 1  # ICMP time exceeded code: fragment reassembly time exceeded (RFC 792)


class ReassemblyStats:
    """What became of the fragments one reassembler was given; `as_dict(prefix)` names them."""

    datagrams: int  # reassembled and handed on
    duplicates: int  # a fragment already held (same offset and length), dropped
    inconsistent: int  # a last fragment disagreeing with the others: datagram discarded
    malformed: int  # refused by wire's checks (empty, not a multiple of 8, past 65535)
    memory_limit: int  # would pass the total or per-source bound: datagram discarded
    overlaps: int  # overlapping another fragment (RFC 5722): datagram discarded
    timeouts: int  # incomplete when the timer ran out
    tombstoned: int  # for a datagram already discarded, dropped on sight

    __slots__ = tuple(__annotations__)

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self, prefix: str) -> dict[str, int]:
        return {prefix + name: getattr(self, name) for name in self.__slots__}


class _Datagram:
    """One datagram being put together: its fragments sorted by offset, and what they cost."""

    __slots__ = ("cost", "dead", "deadline", "end", "header", "pieces", "received", "source")

    def __init__(self, source: Hashable, deadline: float) -> None:
        self.source = source
        self.deadline = deadline
        self.pieces: list[tuple[int, int, bytes]] = []  # (offset, end, bytes)
        self.received = 0
        self.end = -1  # the last fragment's end once it came
        self.header: bytes | None = None  # the first fragment's header, from the caller
        self.cost = DATAGRAM_COST
        self.dead = False


class Reassembler:
    """Fragments in, whole payloads out, within a memory bound; expiry driven by `poll(now)`."""

    def __init__(self, timeout: float, memory_limit: int, source_limit: int) -> None:
        if timeout <= 0 or memory_limit < DATAGRAM_COST or source_limit < DATAGRAM_COST:
            raise ValueError(
                f"reassembly needs a positive timeout and limits of at least {DATAGRAM_COST} bytes, "
                f"got {timeout}, {memory_limit}, {source_limit}"
            )
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.source_limit = source_limit
        self.counters = ReassemblyStats()
        self.memory = 0  # bytes charged now, never above memory_limit
        self.deadline: float | None = None  # the oldest datagram's: when `poll` has work
        self._by_source: dict[Hashable, int] = {}
        # Insertion order is deadline order (one timeout for all): expiry pops from the front.
        self._datagrams: dict[Hashable, _Datagram] = {}

    def __len__(self) -> int:
        return len(self._datagrams)

    def source_memory(self, source: Hashable) -> int:
        return self._by_source.get(source, 0)

    def add(
        self,
        key: Hashable,
        source: Hashable,
        offset: int,
        more: bool,
        payload: bytes | memoryview,
        header: bytes | None,
        now: float,
    ) -> tuple[bytes, bytes] | None:
        """Take one checked fragment (`wire.check_fragment`'s rules hold); the datagram when complete.

        `header` is what the caller wants back with the whole payload (its first header),
        kept from the fragment at offset 0. Returns (header, payload) for a completed
        datagram, else None; what went wrong is counted, never raised.
        """
        counters = self.counters
        d = self._datagrams.get(key)
        if d is None:
            if not self._charge(source, DATAGRAM_COST):
                counters.memory_limit += 1
                return None
            d = self._datagrams[key] = _Datagram(source, now + self.timeout)
            if self.deadline is None:
                self.deadline = d.deadline
        elif d.dead:
            counters.tombstoned += 1
            return None
        end = offset + len(payload)
        if (more and d.end >= 0 and end > d.end) or (not more and (d.end >= 0 and end != d.end)):
            counters.inconsistent += 1
            self._kill(d)
            return None
        pieces = d.pieces
        at = bisect_left(pieces, (offset,))
        if at < len(pieces):
            nxt = pieces[at]
            if nxt[0] == offset and nxt[1] == end:
                counters.duplicates += 1
                return None
            if nxt[0] < end:
                counters.overlaps += 1
                self._kill(d)
                return None
        if at and pieces[at - 1][1] > offset:
            counters.overlaps += 1
            self._kill(d)
            return None
        if not more:
            if pieces and pieces[-1][1] > end:
                counters.inconsistent += 1
                self._kill(d)
                return None
            d.end = end
        cost = FRAGMENT_COST + len(payload)
        if not self._charge(d.source, cost):
            counters.memory_limit += 1
            self._kill(d)
            return None
        d.cost += cost
        pieces.insert(at, (offset, end, bytes(payload)))
        d.received += end - offset
        if offset == 0:
            d.header = header
        if d.received != d.end:
            return None
        # No overlaps and as many bytes as 0..end: they cover it exactly, in order.
        datagrams = self._datagrams
        del datagrams[key]
        self._release(d.source, d.cost)
        self.deadline = datagrams[next(iter(datagrams))].deadline if datagrams else None
        counters.datagrams += 1
        whole = b"".join(piece[2] for piece in pieces)
        return (d.header or b"", whole)

    def poll(self, now: float) -> list[tuple[bytes, bytes]]:
        """Drop the datagrams whose time ran out; for each that had its first fragment, the
        (header, first fragment's payload) an ICMP "reassembly time exceeded" quotes."""
        expired: list[tuple[bytes, bytes]] = []
        datagrams = self._datagrams
        while datagrams:
            key = next(iter(datagrams))
            d = datagrams[key]
            if d.deadline > now:
                break
            del datagrams[key]
            self._release(d.source, d.cost)
            if d.dead:
                continue
            self.counters.timeouts += 1
            first = d.pieces[0] if d.pieces else None
            if first is not None and first[0] == 0 and d.header is not None:
                expired.append((d.header, first[2]))
        self.deadline = datagrams[next(iter(datagrams))].deadline if datagrams else None
        return expired

    def next_deadline(self) -> float | None:
        return self.deadline

    def _charge(self, source: Hashable, cost: int) -> bool:
        used = self._by_source.get(source, 0)
        if self.memory + cost > self.memory_limit or used + cost > self.source_limit:
            return False
        self.memory += cost
        self._by_source[source] = used + cost
        return True

    def _release(self, source: Hashable, cost: int) -> None:
        self.memory -= cost
        left = self._by_source[source] - cost
        if left:
            self._by_source[source] = left
        else:
            del self._by_source[source]

    def _kill(self, d: _Datagram) -> None:
        """Discard a datagram's fragments; it stays as a tombstone until its timer runs out."""
        self._release(d.source, d.cost - DATAGRAM_COST)
        d.cost = DATAGRAM_COST
        d.pieces = []
        d.dead = True


# Where an expired datagram's ICMP goes: IcmpLayer.send_error's signature.
SendError = Callable[[int, int, IPv4Packet, memoryview, float], None]


class Ipv4Reassembly:
    """IPv4's use of a Reassembler: key, checks, the rebuilt datagram, the ICMP on expiry."""

    def __init__(self, reassembler: Reassembler, send_error: SendError) -> None:
        self.reassembler = reassembler
        self._send_error = send_error

    def add(self, ip: IPv4Packet, datagram: memoryview, now: float) -> tuple[IPv4Packet, memoryview] | None:
        """Take a fragment (`ip.is_fragment`); the whole datagram, parsed, once it is complete.

        The whole datagram has the first fragment's header (options included) with the
        fragment fields cleared, its total length and a fresh checksum, so everything
        above sees an ordinary datagram.
        """
        try:
            frag = ipv4_fragment(ip)
        except MalformedPacket:
            self.reassembler.counters.malformed += 1
            return None
        hlen = ip.header_length
        done = self.reassembler.add(
            (ip.src, ip.dst, ip.protocol, ip.ident),
            ip.src,
            frag.offset,
            frag.more,
            frag.payload,
            bytes(datagram[:hlen]) if frag.offset == 0 else None,
            now,
        )
        if done is None:
            return None
        header, payload = done
        whole = bytearray(header)
        whole += payload
        total = len(whole)
        whole[2:4] = total.to_bytes(2, "big")
        whole[6:8] = b"\0\0"  # no DF/MF, offset 0
        whole[10:12] = b"\0\0"
        whole[10:12] = internet_checksum(whole[:hlen]).to_bytes(2, "big")
        view = memoryview(whole)
        return parse_ipv4(view, verify_checksum=False), view

    def poll(self, now: float) -> None:
        """Expire what is due; answer each expired datagram whose first fragment came (RFC 792)."""
        for header, first in self.reassembler.poll(now):
            quote = memoryview(header + first[:8])
            try:
                ip = parse_quoted_ipv4(quote)
            except MalformedPacket:  # it parsed when it came: cannot happen, but never crash
                continue
            self._send_error(ICMP_TIME_EXCEEDED, TIME_EXCEEDED_REASSEMBLY, ip, quote, now)


def ipv4_fragments(
    link_header: bytes, l4: memoryview, src: bytes, dst: bytes, protocol: int, ttl: int, ident: int, mtu: int
) -> list[bytearray]:
    """Cut a whole L4 message into IPv4 fragment frames for an IP MTU of `mtu` (RFC 791 §3.2).

    Every fragment but the last carries the largest multiple of 8 bytes that fits; all
    share `ident`, none has DF. The cold path of a datagram larger than the path MTU.
    """
    step = (mtu - IPV4_HLEN) & ~7
    link = len(link_header)
    frames = []
    size = len(l4)
    for offset in range(0, size, step):
        piece = l4[offset : offset + step]
        frame = bytearray(link + IPV4_HLEN + len(piece))
        frame[:link] = link_header
        emit_ipv4_header(
            frame,
            link,
            src,
            dst,
            protocol,
            len(piece),
            ttl=ttl,
            ident=ident,
            dont_fragment=False,
            more_fragments=offset + step < size,
            fragment_offset=offset,
        )
        frame[link + IPV4_HLEN :] = piece
        frames.append(frame)
    return frames
