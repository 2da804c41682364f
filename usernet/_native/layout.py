"""The declared layout of the C parse results: each tuple's field names, in position order.

The C functions fill an int64_t array whose indices core.h names (UN_TCP_FIELD_*,
UN_RX_FIELD_*, UN_RX_UDP_FIELD_*); the façade turns that array into the flat tuple
described here, the twins build the same tuple. tests/test_native_layout.py checks these
names and positions against core.h, so a field added in C without its name here (or the
other way round) fails a test instead of shifting every reader by one.

The tuples stay plain tuples, read by position: unpacking one into named locals costs
nothing on the hot path, a named tuple or an attribute read per field would.
"""

from __future__ import annotations

#: tcp_parse: core.h's UN_TCP_FIELD_* in index order, then the SACK blocks, a tuple of
#: (left, right) edges built from the array's tail. `status` is always TCP_OK (0) in a
#: returned tuple, since a malformed header raises NativeError; the slot stays so that the
#: positions of the fields after it hold.
TCP_PARSED: tuple[str, ...] = (
    "status",
    "sport",
    "dport",
    "seq",
    "ack",
    "header_length",
    "flags",
    "window",
    "checksum",
    "urgent",
    "mss",
    "wscale",
    "sack_permitted",
    "ts_val",
    "ts_ecr",
    "sack_blocks",
)

#: rx_ipv4_tcp: tcp_parse's fields, then core.h's UN_RX_FIELD_* (destination address as an
#: integer, the flow key, the payload's offset and length in the frame).
RX_TCP: tuple[str, ...] = (*TCP_PARSED, "dst", "flow_key", "payload_offset", "payload_length")

#: rx_ipv4_udp: core.h's UN_RX_UDP_FIELD_* in index order (addresses as integers).
RX_UDP: tuple[str, ...] = ("src", "sport", "dst", "dport", "payload_offset", "payload_length")

#: The types of those tuples, for signatures. TcpFields is tcp_parse's scalar fields alone.
SackBlocks = tuple[tuple[int, int], ...]
TcpFields = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int, int, int]
TcpParsed = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, SackBlocks]
RxParsed = tuple[
    int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, SackBlocks, int, int, int, int
]
RxUdp = tuple[int, int, int, int, int, int]
