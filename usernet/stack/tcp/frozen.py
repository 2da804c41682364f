"""The migration blob: frozen TCP state as bytes that another process can check and thaw.

A blob is `MAGIC | version (u16) | payload length (u32) | payload | SHA-256 of all before`.
The payload is one value in a small self-describing encoding (None, bools, integers of any
size, floats, text, bytes, lists, and maps with text keys), so frozen state is a table of
named fields, never a positional record: a field added later is a new key that an older
reader can ignore and a newer reader can default. `BLOB_VERSION` changes only when a
field changes meaning. Nothing is evaluated while decoding (no pickle): a blob is data.

`Freezable` gives a `__slots__` class `freeze`/`thaw` from two tables of slot names:
`FROZEN` (copied as they are) and `FROZEN_TIMES` (times on the stack's clock, stored
relative to the freeze instant so they mean the same on another process's clock). A class
whose state needs more than that overrides the two methods.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any, ClassVar, TypeVar

__all__ = [
    "BLOB_VERSION",
    "MAGIC",
    "Freezable",
    "MigrationError",
    "decode_blob",
    "encode_blob",
    "field",
]

MAGIC = b"usernetM"
#: 2: a SACK connection's scoreboard, RACK and PRR are made at first use, so "none" in
#: `_sb`, `_rack`, `_prr` no longer means "off" (`_sack_ok`, `_rack_ok`, `_prr_ok` say that);
#: a version-1 reader would run such a connection without them, so version 1 is refused.
BLOB_VERSION = 2
_HEADER = struct.Struct("!8sHI")
_DIGEST = 32
_LEN = struct.Struct("!I")
_FLOAT = struct.Struct("!d")
_MAX_DEPTH = 32

F = TypeVar("F", bound="Freezable")


class MigrationError(ValueError):
    """A blob that cannot be thawed, or state that cannot be frozen; the message says what to do."""


# -- values <-> bytes --------------------------------------------------------------------


def _encode(value: Any, out: bytearray, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise MigrationError("frozen state nests too deeply to encode")
    if value is None:
        out += b"N"
    elif value is True:
        out += b"T"
    elif value is False:
        out += b"F"
    elif isinstance(value, int):
        raw = value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)
        out += b"i"
        out += _LEN.pack(len(raw))
        out += raw
    elif isinstance(value, float):
        out += b"f"
        out += _FLOAT.pack(value)
    elif isinstance(value, str):
        raw = value.encode()
        out += b"s"
        out += _LEN.pack(len(raw))
        out += raw
    elif isinstance(value, (bytes, bytearray, memoryview)):
        out += b"b"
        out += _LEN.pack(len(value))
        out += value
    elif isinstance(value, (list, tuple)):
        out += b"l"
        out += _LEN.pack(len(value))
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        out += b"d"
        out += _LEN.pack(len(value))
        for key, item in value.items():
            if not isinstance(key, str):
                raise MigrationError(f"frozen state keys are text, not {type(key).__name__}")
            _encode(key, out, depth + 1)
            _encode(item, out, depth + 1)
    else:
        raise MigrationError(f"cannot freeze a {type(value).__name__}: add it as plain values")


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if end > len(self.data):
            raise MigrationError("the frozen state ends in the middle of a value: the blob is damaged")
        view = self.data[self.pos : end]
        self.pos = end
        return view

    def length(self) -> int:
        n: int = _LEN.unpack(self.take(4))[0]
        return n

    def value(self, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise MigrationError("the frozen state nests too deeply: the blob is damaged")
        tag = bytes(self.take(1))
        if tag == b"N":
            return None
        if tag == b"T":
            return True
        if tag == b"F":
            return False
        if tag == b"i":
            return int.from_bytes(self.take(self.length()), "big", signed=True)
        if tag == b"f":
            return _FLOAT.unpack(self.take(8))[0]
        if tag == b"s":
            try:
                return str(self.take(self.length()), "utf-8")
            except UnicodeDecodeError:
                raise MigrationError("a text field of the frozen state is not UTF-8: the blob is damaged") from None
        if tag == b"b":
            return bytes(self.take(self.length()))
        if tag == b"l":
            return [self.value(depth + 1) for _ in range(self.length())]
        if tag == b"d":
            result: dict[str, Any] = {}
            for _ in range(self.length()):
                key = self.value(depth + 1)
                if not isinstance(key, str):
                    raise MigrationError("a key of the frozen state is not text: the blob is damaged")
                result[key] = self.value(depth + 1)
            return result
        raise MigrationError(f"unknown value tag {tag!r} in the frozen state: the blob is damaged")


def encode_blob(payload: dict[str, Any]) -> bytes:
    """The blob for `payload` (a map of plain values), with magic, version and SHA-256 trailer."""
    body = bytearray()
    _encode(payload, body, 0)
    out = bytearray(_HEADER.pack(MAGIC, BLOB_VERSION, len(body)))
    out += body
    out += hashlib.sha256(out).digest()
    return bytes(out)


def decode_blob(blob: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The payload of a blob, after checking all of it; MigrationError names what is wrong.

    Checked in order: long enough for a header, the magic, the version, the length
    (truncated or trailing bytes), the SHA-256, then the encoding itself. Nothing is
    returned until every check passed, so a bad blob thaws nothing.
    """
    data = memoryview(blob).cast("B")
    if len(data) < _HEADER.size:
        raise MigrationError(
            f"the migration blob is truncated: {len(data)} bytes, not even the {_HEADER.size}-byte header; "
            "the handover was cut short: start it again"
        )
    magic, version, length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise MigrationError(f"not a usernet migration blob (magic {bytes(magic)!r}, expected {MAGIC!r})")
    if version != BLOB_VERSION:
        raise MigrationError(
            f"the migration blob has format version {version}, this usernet reads version {BLOB_VERSION}: "
            "hand over between processes running the same usernet version"
        )
    expected = _HEADER.size + length + _DIGEST
    if len(data) < expected:
        raise MigrationError(
            f"the migration blob is truncated: {len(data)} of {expected} bytes; the handover was cut short: "
            "start it again"
        )
    if len(data) > expected:
        raise MigrationError(f"the migration blob has {len(data) - expected} bytes after its end: it is damaged")
    end = _HEADER.size + length
    if hashlib.sha256(data[:end]).digest() != bytes(data[end:]):
        raise MigrationError("the migration blob is corrupted (its SHA-256 does not match): nothing was thawed")
    reader = _Reader(data[_HEADER.size : end])
    payload = reader.value()
    if reader.pos != length or not isinstance(payload, dict):
        raise MigrationError("the migration blob's payload is not one map of fields: it is damaged")
    return payload


def field(state: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    """`state[name]`, checked to be a `kind`; MigrationError if missing or of another type."""
    if name not in state:
        raise MigrationError(f"the frozen {where} lacks the field {name!r}: it comes from an incompatible usernet")
    value = state[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise MigrationError(f"the frozen {where} field {name!r} is a {type(value).__name__}: the blob is damaged")
    return value


# -- slotted objects <-> maps ----------------------------------------------------------------


class Freezable:
    """`freeze(now)` and `thaw(state, now)` for a `__slots__` class, from its field tables.

    Every slot is either in `FROZEN`, in `FROZEN_TIMES`, or in `NOT_FROZEN` (state made
    again on thaw, said why there): tests/tcp/test_migration.py fails on a slot in none,
    so a field added to a connection part cannot be forgotten by the migration.
    """

    __slots__ = ()

    FROZEN: ClassVar[tuple[str, ...]] = ()
    FROZEN_TIMES: ClassVar[tuple[str, ...]] = ()
    NOT_FROZEN: ClassVar[tuple[str, ...]] = ()
    #: Values for fields of FROZEN that a blob of the same version but an older usernet lacks:
    #: a field added later lists its default here, and older blobs still thaw.
    FROZEN_DEFAULTS: ClassVar[dict[str, Any]] = {}

    def freeze(self, now: float) -> dict[str, Any]:
        state = {name: getattr(self, name) for name in self.FROZEN}
        for name in self.FROZEN_TIMES:
            t = getattr(self, name)
            state[name] = None if t is None else t - now
        return state

    @classmethod
    def thaw(cls: type[F], state: dict[str, Any], now: float) -> F:
        obj = cls.__new__(cls)
        obj.restore(state, now)
        return obj

    def restore(self, state: dict[str, Any], now: float) -> None:
        where = type(self).__name__
        defaults = self.FROZEN_DEFAULTS
        for name in self.FROZEN:
            if name in state:
                setattr(self, name, _mutable(state[name]))
            elif name in defaults:
                setattr(self, name, defaults[name])
            else:
                raise MigrationError(f"the frozen {where} lacks {name!r}: it comes from an incompatible usernet")
        for name in self.FROZEN_TIMES:
            offset = field(state, name, (float, int, type(None)), where)
            if offset is not None and math.isnan(offset):
                raise MigrationError(f"the frozen {where} time {name!r} is not a number: the blob is damaged")
            setattr(self, name, None if offset is None else now + offset)


def _mutable(value: Any) -> Any:
    """Lists come back as lists (the parts append to them), everything else as decoded."""
    return list(value) if isinstance(value, tuple) else value
