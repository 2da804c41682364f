"""The one exception every parser raises (so the stack needs a single `except` per frame),
and the argument checks every emitter shares."""

from __future__ import annotations


class MalformedPacket(ValueError):
    """A frame that cannot be what it claims to be; the stack counts it and drops it.

    `layer` names the header that failed ("ethernet", "arp", "ipv4", "icmp", "udp", "tcp", "dns", "dhcp")
    so counters can be kept per layer without parsing the message.
    """

    def __init__(self, layer: str, reason: str) -> None:
        super().__init__(f"{layer}: {reason}")
        self.layer = layer
        self.reason = reason

    def __reduce__(self) -> tuple[type[MalformedPacket], tuple[object, ...]]:
        """Rebuild from (layer, reason), so the error survives pickling to another process."""
        return (type(self), (self.layer, self.reason))


def not_a_byte_buffer(layer: str, data: object) -> MalformedPacket:
    """The error for input that `memoryview(data).cast("B")` refused (wrong type, strided, released)."""
    return MalformedPacket(layer, f"{type(data).__name__} is not a contiguous bytes-like object")


def ensure_room(buf: bytearray | memoryview, offset: int, length: int, what: str) -> None:
    """Refuse to emit past the end of `buf`: pack_into would fail half-way with struct.error."""
    size = len(buf)
    if offset < 0 or size - offset < length:
        raise ValueError(
            f"{what} needs {length} bytes at offset {offset}, but the buffer holds {size}; pass a larger buffer"
        )


def check_address(value: bytes, size: int, what: str) -> None:
    """Refuse addresses of the wrong size: struct's "4s"/"6s" would silently pad or cut them."""
    if not isinstance(value, (bytes, bytearray)) or len(value) != size:
        raise ValueError(f"{what} must be {size} bytes, got {value!r}")


def field_error(what: str, exc: Exception) -> ValueError:
    """Turn struct's "format requires 0 <= number <= 65535" into the ValueError emitters promise."""
    return ValueError(f"{what}: a field is out of range ({exc})")
