"""DNS messages (RFC 1035), parsed and built for usernet's stub resolver.

Names are `str`: labels joined by dots, no trailing dot, "" for the root. A label byte
that is not a printable ASCII character other than "." and "\\" is written `\\DDD`
(decimal), "." and "\\" inside a label as `\\.` and `\\\\` (the master-file
convention, RFC 1035 section 5.1), so every wire name has exactly one text form and
back. Names compare without regard to ASCII case (RFC 4343): use `name_key`.

Parsing follows compression pointers only backwards, each to before the one before
it, so a crafted message cannot make the parser loop; names are at most 255 bytes,
labels 63. Record data of the types a stub resolver reads is decoded (A and AAAA to
address text, CNAME/NS/PTR to a name, MX, SOA, TXT); any other type keeps its bytes.
Malformed input raises MalformedPacket("dns", ...) only.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple, TypeAlias

from usernet.wire.errors import MalformedPacket, not_a_byte_buffer

__all__ = [
    "CLASS_IN",
    "DNS_PORT",
    "FLAG_AA",
    "FLAG_QR",
    "FLAG_RA",
    "FLAG_RD",
    "FLAG_TC",
    "MAX_UDP_MESSAGE",
    "RCODE_FORMERR",
    "RCODE_NOERROR",
    "RCODE_NOTIMP",
    "RCODE_NXDOMAIN",
    "RCODE_REFUSED",
    "RCODE_SERVFAIL",
    "TYPE_A",
    "TYPE_AAAA",
    "TYPE_CNAME",
    "TYPE_MX",
    "TYPE_NS",
    "TYPE_PTR",
    "TYPE_SOA",
    "TYPE_TXT",
    "Message",
    "Question",
    "RData",
    "Record",
    "Soa",
    "build_query",
    "emit_message",
    "emit_names",
    "name_key",
    "parse_message",
    "parse_names",
]

DNS_PORT = 53
#: The largest message over UDP without EDNS (RFC 1035 section 4.2.1); more is truncated (TC).
MAX_UDP_MESSAGE = 512

TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_SOA, TYPE_PTR, TYPE_MX, TYPE_TXT, TYPE_AAAA = 1, 2, 5, 6, 12, 15, 16, 28
CLASS_IN = 1
FLAG_QR, FLAG_AA, FLAG_TC, FLAG_RD, FLAG_RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
RCODE_NOERROR, RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_NOTIMP, RCODE_REFUSED = 0, 1, 2, 3, 4, 5

_HEADER = struct.Struct("!HHHHHH")
_QUESTION = struct.Struct("!HH")
_RECORD = struct.Struct("!HHIH")
_SOA_NUMBERS = struct.Struct("!IIIII")
_MAX_NAME = 255
_MAX_LABEL = 63
#: Pointers must fit 14 bits, so only names that start in the first 16 KB can be pointed to.
_MAX_POINTER = 0x3FFF
#: Bytes that stand for themselves in a name's text form.
_PLAIN = frozenset(range(0x21, 0x7F)) - {ord("."), ord("\\")}
#: Record types whose data holds names that may be compressed (RFC 3597 section 4: only these).
_NAME_TYPES = (TYPE_NS, TYPE_CNAME, TYPE_PTR)


class Soa(NamedTuple):
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int  # since RFC 2308, the TTL of negative answers


#: Decoded record data: address text (A, AAAA), a name (CNAME, NS, PTR), (preference, name)
#: for MX, Soa, the strings of a TXT record, or the raw bytes of any other type.
RData: TypeAlias = str | tuple[int, str] | Soa | tuple[bytes, ...] | bytes


class Question(NamedTuple):
    name: str
    qtype: int
    qclass: int = CLASS_IN


class Record(NamedTuple):
    name: str
    rtype: int
    rclass: int
    ttl: int
    data: RData


class Message(NamedTuple):
    ident: int
    flags: int
    questions: tuple[Question, ...] = ()
    answers: tuple[Record, ...] = ()
    authorities: tuple[Record, ...] = ()
    additionals: tuple[Record, ...] = ()

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_QR)

    @property
    def truncated(self) -> bool:
        return bool(self.flags & FLAG_TC)

    @property
    def rcode(self) -> int:
        return self.flags & 0x000F


def name_key(name: str) -> str:
    """The form two names compare equal in when DNS says they are the same (ASCII case folded)."""
    return name.translate(_LOWER)


_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


# -- parsing ---------------------------------------------------------------------------------


def _label_text(label: bytes) -> str:
    return "".join(chr(b) if b in _PLAIN else ("\\" + chr(b) if b in (0x2E, 0x5C) else f"\\{b:03d}") for b in label)


def _parse_name(mv: memoryview, offset: int) -> tuple[str, int]:
    """The name at `offset` and the offset just after it (after its first pointer, if any)."""
    n = len(mv)
    labels: list[str] = []
    size = 1  # the root label's length byte
    pos = offset
    after = -1
    bound = offset  # every pointer must go below this: backwards, and further back each time
    while True:
        if pos >= n:
            raise MalformedPacket("dns", f"a name at offset {offset} runs past the end of the message")
        length = mv[pos]
        if length == 0:
            return ".".join(labels), (pos + 1 if after < 0 else after)
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= n:
                raise MalformedPacket("dns", "a compression pointer is cut off by the end of the message")
            target = ((length & 0x3F) << 8) | mv[pos + 1]
            if target >= bound:
                raise MalformedPacket("dns", f"compression pointer at {pos} to {target} does not point backwards")
            if after < 0:
                after = pos + 2
            bound = pos = target
            continue
        if kind:
            raise MalformedPacket("dns", f"label type 0x{kind:02x} at offset {pos} is not a length or a pointer")
        size += length + 1
        if size > _MAX_NAME:
            raise MalformedPacket("dns", f"the name at offset {offset} is longer than {_MAX_NAME} bytes")
        end = pos + 1 + length
        if end > n:
            raise MalformedPacket("dns", f"a label at offset {pos} runs past the end of the message")
        labels.append(_label_text(bytes(mv[pos + 1 : end])))
        pos = end


def _parse_rdata(mv: memoryview, rtype: int, start: int, end: int) -> RData:
    length = end - start
    if rtype in (TYPE_A, TYPE_AAAA):
        size = 4 if rtype == TYPE_A else 16
        if length != size:
            raise MalformedPacket("dns", f"an {'A' if size == 4 else 'AAAA'} record holds {length} bytes, not {size}")
        return str(ipaddress.ip_address(bytes(mv[start:end])))
    if rtype in _NAME_TYPES or rtype in (TYPE_MX, TYPE_SOA):
        data: RData
        if rtype == TYPE_MX:
            if length < 3:
                raise MalformedPacket("dns", f"an MX record of {length} bytes has no room for its name")
            name, pos = _parse_name(mv[:end], start + 2)
            data = (int.from_bytes(mv[start : start + 2], "big"), name)
        elif rtype == TYPE_SOA:
            mname, pos = _parse_name(mv[:end], start)
            rname, pos = _parse_name(mv[:end], pos)
            if end - pos < _SOA_NUMBERS.size:
                raise MalformedPacket("dns", "an SOA record is cut short")
            data = Soa(mname, rname, *_SOA_NUMBERS.unpack_from(mv, pos))
            pos += _SOA_NUMBERS.size
        else:
            data, pos = _parse_name(mv[:end], start)
        if pos != end:
            raise MalformedPacket("dns", f"record data of type {rtype} has {end - pos} bytes after its fields")
        return data
    if rtype == TYPE_TXT:
        strings = []
        pos = start
        while pos < end:
            stop = pos + 1 + mv[pos]
            if stop > end:
                raise MalformedPacket("dns", "a TXT string runs past the end of its record")
            strings.append(bytes(mv[pos + 1 : stop]))
            pos = stop
        return tuple(strings)
    return bytes(mv[start:end])


def _parse_records(mv: memoryview, pos: int, count: int) -> tuple[tuple[Record, ...], int]:
    records = []
    for _ in range(count):
        name, pos = _parse_name(mv, pos)
        if len(mv) - pos < _RECORD.size:
            raise MalformedPacket("dns", f"a record of {name or '.'} is cut short")
        rtype, rclass, ttl, length = _RECORD.unpack_from(mv, pos)
        start = pos + _RECORD.size
        end = start + length
        if end > len(mv):
            raise MalformedPacket("dns", f"record data of {name or '.'} runs past the end of the message")
        # RFC 2181 section 8: a TTL with the top bit set is read as zero.
        records.append(Record(name, rtype, rclass, 0 if ttl & 0x80000000 else ttl, _parse_rdata(mv, rtype, start, end)))
        pos = end
    return tuple(records), pos


def parse_message(data: object) -> Message:
    """Decode a whole message; bytes after its last record are ignored."""
    try:
        mv = memoryview(data).cast("B")  # type: ignore[arg-type]
    except (TypeError, ValueError, BufferError):
        raise not_a_byte_buffer("dns", data) from None
    if len(mv) < _HEADER.size:
        raise MalformedPacket("dns", f"{len(mv)} bytes is shorter than the 12-byte header")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(mv)
    pos = _HEADER.size
    questions = []
    for _ in range(qdcount):
        name, pos = _parse_name(mv, pos)
        if len(mv) - pos < _QUESTION.size:
            raise MalformedPacket("dns", f"the question for {name or '.'} is cut short")
        questions.append(Question(name, *_QUESTION.unpack_from(mv, pos)))
        pos += _QUESTION.size
    answers, pos = _parse_records(mv, pos, ancount)
    authorities, pos = _parse_records(mv, pos, nscount)
    additionals, pos = _parse_records(mv, pos, arcount)
    return Message(ident, flags, tuple(questions), answers, authorities, additionals)


def parse_names(data: memoryview) -> tuple[str, ...]:
    """Names one after another, uncompressed, then zero padding: a DNSSL option's search list
    (RFC 8106 section 5.2). MalformedPacket for a compressed name or padding that is not zeros."""
    names: list[str] = []
    pos = 0
    while pos < len(data) and data[pos]:
        name, end = _parse_name(data, pos)
        if end - pos != sum(len(label) + 1 for label in _name_labels(name)) + 1:
            raise MalformedPacket("dns", f"the name at offset {pos} of a name list is compressed")
        names.append(name)
        pos = end
    if any(data[pos:]):
        raise MalformedPacket("dns", f"the padding after the names, at offset {pos}, is not zeros")
    return tuple(names)


# -- building --------------------------------------------------------------------------------


def emit_names(names: tuple[str, ...]) -> bytes:
    """Names one after another, uncompressed (what `parse_names` reads; the caller pads)."""
    writer = _Writer(compress=False)
    for name in names:
        writer.name(name)
    return bytes(writer.out)


def _name_labels(name: str) -> list[bytes]:
    """The wire labels of a name in text form; ValueError for what cannot be one."""
    if name in ("", "."):
        return []
    if not name.isascii():
        raise ValueError(f"DNS name {name!r} is not ASCII: encode it first (e.g. with the idna codec)")
    labels: list[bytes] = []
    label = bytearray()
    i = 0
    while i < len(name):
        c = name[i]
        if c == ".":
            labels.append(bytes(label))
            label = bytearray()
            if i == len(name) - 1:
                break  # an unescaped final dot: the name is absolute, the root label follows
        elif c == "\\":
            digits = name[i + 1 : i + 4]
            if len(digits) == 3 and digits.isdigit() and int(digits) < 256:
                label.append(int(digits))
                i += 3
            elif i + 1 < len(name) and not name[i + 1].isdigit():
                label.append(ord(name[i + 1]))
                i += 1
            else:
                raise ValueError(f"DNS name {name!r}: a backslash is followed by \\DDD (0..255) or one character")
        else:
            label.append(ord(c))
        i += 1
    else:
        labels.append(bytes(label))
    if any(not 0 < len(part) <= _MAX_LABEL for part in labels):
        raise ValueError(f"DNS name {name!r}: every label is 1 to {_MAX_LABEL} bytes")
    if sum(len(part) + 1 for part in labels) + 1 > _MAX_NAME:
        raise ValueError(f"DNS name {name!r} is longer than {_MAX_NAME} bytes")
    return labels


class _Writer:
    """A message being built, with the offsets of the names written so far for compression."""

    def __init__(self, compress: bool) -> None:
        self.out = bytearray()
        self.compress = compress
        self.names: dict[tuple[bytes, ...], int] = {}

    def name(self, name: str, compress: bool = True) -> None:
        labels = _name_labels(name)
        for i in range(len(labels)):
            # Exact bytes, not case-folded: a pointer to "f.example" would turn "F.example" into
            # it, and names keep their case through a message (RFC 4343 section 4.1).
            suffix = tuple(labels[i:])
            if compress and self.compress and suffix in self.names:
                self.out += (0xC000 | self.names[suffix]).to_bytes(2, "big")
                return
            if len(self.out) <= _MAX_POINTER:
                self.names.setdefault(suffix, len(self.out))
            self.out.append(len(labels[i]))
            self.out += labels[i]
        self.out.append(0)

    def record(self, record: Record) -> None:
        self.name(record.name)
        self.out += _RECORD.pack(record.rtype, record.rclass, record.ttl, 0)
        length_at = len(self.out) - 2
        self.rdata(record.rtype, record.data)
        length = len(self.out) - length_at - 2
        if length > 0xFFFF:
            raise ValueError(f"record data of {record.name} is {length} bytes, more than 65535")
        self.out[length_at : length_at + 2] = length.to_bytes(2, "big")

    def rdata(self, rtype: int, data: RData) -> None:
        if rtype in (TYPE_A, TYPE_AAAA):
            version = 4 if rtype == TYPE_A else 6
            address = ipaddress.ip_address(data) if isinstance(data, str) else None
            if address is None or address.version != version:
                raise ValueError(
                    f"an {'A' if version == 4 else 'AAAA'} record holds an IPv{version} address, not {data!r}"
                )
            self.out += address.packed
        elif rtype in _NAME_TYPES and isinstance(data, str):
            self.name(data)
        elif rtype == TYPE_MX and isinstance(data, tuple) and len(data) == 2 and isinstance(data[1], str):
            self.out += int(data[0]).to_bytes(2, "big")
            self.name(data[1])
        elif rtype == TYPE_SOA and isinstance(data, Soa):
            self.name(data.mname)
            self.name(data.rname)
            self.out += _SOA_NUMBERS.pack(data.serial, data.refresh, data.retry, data.expire, data.minimum)
        elif rtype == TYPE_TXT and isinstance(data, tuple):
            for string in data:
                if not isinstance(string, bytes) or len(string) > 255:
                    raise ValueError(f"a TXT record holds strings of at most 255 bytes, not {string!r}")
                self.out.append(len(string))
                self.out += string
        elif isinstance(data, bytes) and rtype not in (*_NAME_TYPES, TYPE_MX, TYPE_SOA, TYPE_TXT):
            self.out += data
        else:
            raise ValueError(f"record data {data!r} does not fit a record of type {rtype}")


def emit_message(message: Message, *, compress: bool = True) -> bytes:
    """The wire form of `message`; names are compressed (RFC 1035 section 4.1.4) unless `compress` is False.

    Raises ValueError for fields that do not fit (a name that is not one, record data of
    the wrong shape for its type, a count or number out of range).
    """
    writer = _Writer(compress)
    sections = (message.questions, message.answers, message.authorities, message.additionals)
    try:
        writer.out += _HEADER.pack(message.ident, message.flags, *map(len, sections))
        for question in message.questions:
            writer.name(question.name)
            writer.out += _QUESTION.pack(question.qtype, question.qclass)
        for section in sections[1:]:
            for record in section:
                writer.record(record)
    except (struct.error, OverflowError) as exc:
        raise ValueError(f"DNS message: a field is out of range ({exc})") from None
    return bytes(writer.out)


def build_query(ident: int, name: str, qtype: int, *, recursion: bool = True) -> bytes:
    """A query for one question, asking the server to recurse (RD) unless `recursion` is False."""
    return emit_message(Message(ident, FLAG_RD if recursion else 0, (Question(name, qtype),)))
