"""Queries over decoded packets, compiled so that many of them are matched without trying each.

A `Packet` is a frame decoded by usernet.wire, one attribute per layer (`eth`, `arp`,
`ip`, `icmp`, `udp`, `tcp`; None when the frame has no such layer). A `Query` names
fields as `layer_field` keywords: `Query(ip_dst="192.0.2.9", icmp_type=8)`. Every field of
every layer's parsed tuple can be named (`tcp_flags`, `ip_ttl`, `udp_payload`, `icmp_sequence`...),
and each takes

- a value: the field must equal it (addresses may be written as text);
- a set, frozenset, list or tuple: the field must be one of them;
- a `range`, or text "a.b.c.d/n" for an IPv4 field: the field must fall inside;
- a callable: a predicate on the field's value;

and a field not named is left open. Naming a field of a layer requires that layer.

`Matcher` compiles a list of queries into a decision tree over the fields that queries fix
to values or sets ("fixed fields"): at each node it looks the packet's value up in a dict,
in a branch holding only the queries that value can satisfy, plus those leaving the field
open. Only at a leaf are the remaining tests (ranges, predicates) run, on just the queries
that survived. So matching against hundreds of queries costs a few dict lookups, not
hundreds of tests; `Matcher.naive` is the reference it must agree with (a property test
checks they do).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from usernet.wire import (
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    ArpPacket,
    EthernetFrame,
    IcmpMessage,
    IPv4Packet,
    MalformedPacket,
    TcpSegment,
    UdpDatagram,
    parse_arp,
    parse_ethernet,
    parse_icmp,
    parse_ipv4,
    parse_tcp,
    parse_udp,
)

__all__ = ["FIELDS", "MISSING", "Constraint", "Matcher", "Packet", "Query"]


class _Missing:
    """The value of a field whose layer the packet does not have; equal to nothing else."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

_LAYER_TYPES: dict[str, type[tuple[Any, ...]]] = {
    "eth": EthernetFrame,
    "arp": ArpPacket,
    "ip": IPv4Packet,
    "icmp": IcmpMessage,
    "udp": UdpDatagram,
    "tcp": TcpSegment,
}
#: Every field a query can name, by layer: the parsed tuples' fields, plus ICMP's echo ident/sequence.
FIELDS: dict[str, tuple[str, ...]] = {
    layer: tuple(kind._fields) + (("ident", "sequence") if layer == "icmp" else ())  # type: ignore[attr-defined]
    for layer, kind in _LAYER_TYPES.items()
}  # NamedTuple classes have _fields; the mapping's value type cannot say so
_MAC_FIELDS = {("eth", "src"), ("eth", "dst"), ("arp", "sha"), ("arp", "tha")}
_IP_FIELDS = {("arp", "spa"), ("arp", "tpa"), ("ip", "src"), ("ip", "dst")}


class Packet:
    """A frame and its decoded layers; a layer that is absent or malformed is None."""

    __slots__ = ("arp", "eth", "frame", "icmp", "ip", "tcp", "udp")

    def __init__(self, frame: bytes) -> None:
        self.frame = frame
        self.eth: EthernetFrame | None = None
        self.arp: ArpPacket | None = None
        self.ip: IPv4Packet | None = None
        self.icmp: IcmpMessage | None = None
        self.udp: UdpDatagram | None = None
        self.tcp: TcpSegment | None = None
        try:
            self.eth = eth = parse_ethernet(frame)
            if eth.ethertype == ETHERTYPE_ARP:
                self.arp = parse_arp(eth.payload)
            elif eth.ethertype == ETHERTYPE_IPV4:
                self.ip = ip = parse_ipv4(eth.payload)
                if ip.is_fragment:
                    return
                if ip.protocol == IPPROTO_TCP:
                    self.tcp = parse_tcp(ip.payload, ip.src, ip.dst)
                elif ip.protocol == IPPROTO_UDP:
                    self.udp = parse_udp(ip.payload, ip.src, ip.dst)
                elif ip.protocol == IPPROTO_ICMP:
                    self.icmp = parse_icmp(ip.payload)
        except MalformedPacket:
            return  # the layers parsed so far stay; a query on the broken one does not match

    def field(self, layer: str, name: str) -> Any:
        """The field's value (payloads as bytes), or MISSING when the packet lacks the layer."""
        value = getattr(self, layer)
        if value is None:
            return MISSING
        value = getattr(value, name)
        return bytes(value) if isinstance(value, memoryview) else value


@dataclass(frozen=True)
class Constraint:
    """What one query asks of one field: `values` when it fixes the field, else a `test`."""

    layer: str
    name: str
    values: frozenset[Any] | None
    test: Callable[[Any], bool] | None

    def accepts(self, value: Any) -> bool:
        if value is MISSING:
            return False
        if self.values is not None:
            return value in self.values
        assert self.test is not None
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False  # a predicate that cannot judge this value (a wrong type) does not match


def _normalise(layer: str, name: str, value: Any) -> Any:
    """Addresses written as text become the bytes the parsers give."""
    if isinstance(value, str):
        if (layer, name) in _MAC_FIELDS:
            mac = bytes.fromhex(value.replace(":", ""))
            if len(mac) != 6:
                raise ValueError(f"{layer}_{name}={value!r} is not a MAC address")
            return mac
        if (layer, name) in _IP_FIELDS:
            return ipaddress.IPv4Address(value).packed
    return value


def _constraint(layer: str, name: str, spec: Any) -> Constraint:
    if isinstance(spec, range):
        return Constraint(layer, name, None, spec.__contains__)
    if isinstance(spec, str) and "/" in spec and (layer, name) in _IP_FIELDS:
        net = ipaddress.IPv4Network(spec, strict=False)
        low, high = net.network_address.packed, net.broadcast_address.packed
        return Constraint(layer, name, None, lambda v: low <= v <= high)
    if isinstance(spec, (set, frozenset, list, tuple)):
        return Constraint(layer, name, frozenset(_normalise(layer, name, v) for v in spec), None)
    if callable(spec):
        return Constraint(layer, name, None, spec)
    return Constraint(layer, name, frozenset((_normalise(layer, name, spec),)), None)


class Query:
    """Fields and what each must be, written `layer_field=spec` (see the module docstring)."""

    __slots__ = ("constraints",)

    def __init__(self, **fields: Any) -> None:
        constraints = []
        for key, spec in fields.items():
            layer, _, name = key.partition("_")
            if layer not in FIELDS or name not in FIELDS[layer]:
                known = ", ".join(f"{lay}_{{{','.join(names)}}}" for lay, names in FIELDS.items())
                raise ValueError(f"{key!r} is not a packet field; fields are {known}")
            constraints.append(_constraint(layer, name, spec))
        self.constraints: tuple[Constraint, ...] = tuple(constraints)

    def extended(self, layer: str, name: str, spec: Any) -> Query:
        """This query and a constraint on a field that is not a packet's (a responder's state):
        the `Matcher`'s lookup is what reads it."""
        query = Query()
        query.constraints = (*self.constraints, _constraint(layer, name, spec))
        return query

    def __repr__(self) -> str:
        return f"Query({', '.join(f'{c.layer}_{c.name}' for c in self.constraints)})"


#: Reads a field: `Packet.field` itself, or a responder's, which adds its state as a pseudo-layer.
Lookup = Callable[[Packet, str, str], Any]


@dataclass
class _Leaf:
    rules: list[tuple[int, tuple[Constraint, ...]]]  # query index, tests not yet done on the way here


@dataclass
class _Node:
    layer: str
    name: str
    branches: dict[Any, _Node | _Leaf]
    default: _Node | _Leaf


_MAX_DEPTH = 8  # fixed fields to dispatch on at most; the rest are tested at the leaves


class Matcher:
    """Queries compiled into a decision tree over their fixed fields (see the module docstring).

    `lookup(packet, layer, name)` reads a field; the default reads the packet's own, a
    responder's passes its state through as a pseudo-layer.
    """

    def __init__(self, queries: Sequence[Query], lookup: Lookup = Packet.field) -> None:
        self.queries = tuple(queries)
        self._lookup = lookup
        self._root = self._build([(i, q.constraints) for i, q in enumerate(self.queries)], 0)

    def _build(self, rules: list[tuple[int, tuple[Constraint, ...]]], depth: int) -> _Node | _Leaf:
        counts: dict[tuple[str, str], int] = {}
        for _, constraints in rules:
            for c in constraints:
                if c.values is not None:
                    counts[c.layer, c.name] = counts.get((c.layer, c.name), 0) + 1
        if not counts or depth >= _MAX_DEPTH:
            return _Leaf(rules)
        layer, name = max(counts, key=lambda k: (counts[k], k))  # the field most queries fix; ties by name
        open_rules: list[tuple[int, tuple[Constraint, ...]]] = []
        by_value: dict[Any, list[tuple[int, tuple[Constraint, ...]]]] = {}
        for index, constraints in rules:
            fixed = [c for c in constraints if c.layer == layer and c.name == name and c.values is not None]
            if not fixed:
                open_rules.append((index, constraints))
                continue
            rest = tuple(c for c in constraints if c not in fixed)
            allowed = frozenset.intersection(*(c.values for c in fixed if c.values is not None))
            for value in allowed:
                by_value.setdefault(value, []).append((index, rest))
        branches: dict[Any, _Node | _Leaf] = {}
        for value, fixed_rules in by_value.items():
            merged = sorted(fixed_rules + open_rules, key=lambda r: r[0])  # keep the queries' order
            branches[value] = self._build(merged, depth + 1)
        return _Node(layer, name, branches, self._build(open_rules, depth + 1))

    def match(self, packet: Packet) -> list[int]:
        """Indexes of every query the packet satisfies, in the queries' order."""
        lookup = self._lookup
        node = self._root
        while isinstance(node, _Node):
            value = lookup(packet, node.layer, node.name)
            default = node.default
            try:
                node = node.branches.get(value, default)
            except TypeError:  # an unhashable value (never from the parsers) fits no fixed branch
                node = default
        return [index for index, tests in node.rules if all(c.accepts(lookup(packet, c.layer, c.name)) for c in tests)]

    def first(self, packet: Packet) -> int | None:
        """The first query the packet satisfies, or None."""
        found = self.match(packet)
        return found[0] if found else None

    def naive(self, packet: Packet) -> list[int]:
        """The reference: every query tried in turn, every constraint tested."""
        lookup = self._lookup
        return [
            index
            for index, query in enumerate(self.queries)
            if all(c.accepts(lookup(packet, c.layer, c.name)) for c in query.constraints)
        ]

    def depth(self) -> int:
        """How many fixed fields the tree dispatches on along its longest path."""

        def walk(node: _Node | _Leaf) -> int:
            if isinstance(node, _Leaf):
                return 0
            return 1 + max([walk(node.default)] + [walk(b) for b in node.branches.values()])

        return walk(self._root)
