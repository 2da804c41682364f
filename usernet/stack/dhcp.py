"""The DHCPv4 client's state machine (RFC 2131 section 4.4), sans-IO: messages and the time in,
messages to send, lease events and a deadline out.

INIT → SELECTING (DISCOVER, broadcast) → REQUESTING (REQUEST for the first OFFER,
broadcast) → BOUND (ACK) → RENEWING at T1 (REQUEST unicast to the server that granted the
lease) → REBINDING at T2 (REQUEST broadcast, to any server) → expiry, which loses the
address and starts over. A NAK while requesting, renewing or rebinding starts over too.
`release` gives the address back (RELEASE to the server) on exit.

Retransmission follows section 4.1: while selecting or requesting, 4 s doubled up to
64 s, each randomised by ±1 s (from a seeded generator, so tests replay); four REQUESTs
unanswered send the client back to INIT. While renewing or rebinding, half the time left
until T2 (or until expiry), but not less than 60 s unless the boundary is nearer.

The machine never reads a clock or a socket: the driver hands it received UDP payloads
(`receive`) and calls `poll` at `next_deadline()`; it sends what `take_output()` returns
(each with its destination and source address: 255.255.255.255 from 0.0.0.0 before a
lease) and reacts to `take_events()` (bound, renewed, expired).
"""

from __future__ import annotations

import enum
import random
import secrets
from dataclasses import dataclass, replace
from typing import NamedTuple

from usernet.wire.dhcp import (
    ACK,
    BOOTREPLY,
    BOOTREQUEST,
    DISCOVER,
    FLAG_BROADCAST,
    NAK,
    OFFER,
    OPT_DNS,
    OPT_HOSTNAME,
    OPT_LEASE_TIME,
    OPT_MESSAGE_TYPE,
    OPT_MTU,
    OPT_PARAMETERS,
    OPT_REBINDING_TIME,
    OPT_RENEWAL_TIME,
    OPT_REQUESTED_IP,
    OPT_ROUTER,
    OPT_SERVER_ID,
    OPT_SUBNET_MASK,
    RELEASE,
    REQUEST,
    DhcpMessage,
    emit_dhcp,
    parse_dhcp,
)
from usernet.wire.errors import MalformedPacket

__all__ = ["ANY", "BROADCAST", "DhcpClient", "DhcpEvent", "DhcpState", "Lease", "Outgoing"]

BROADCAST = b"\xff\xff\xff\xff"
ANY = bytes(4)
#: A lease time of 0xffffffff seconds is a lease without end (RFC 2131 section 3.3).
INFINITE = 0xFFFFFFFF
_PARAMETERS = bytes((OPT_SUBNET_MASK, OPT_ROUTER, OPT_DNS, OPT_MTU, OPT_LEASE_TIME, OPT_RENEWAL_TIME,
                     OPT_REBINDING_TIME))  # fmt: skip
_FIRST_RETRY = 4.0
_MAX_RETRY = 64.0
_REQUESTS_BEFORE_RESTART = 4
_MIN_RENEW_RETRY = 60.0


class DhcpState(enum.Enum):
    INIT = "init"
    SELECTING = "selecting"
    REQUESTING = "requesting"
    BOUND = "bound"
    RENEWING = "renewing"
    REBINDING = "rebinding"
    RELEASED = "released"


@dataclass(frozen=True)
class Lease:
    """An address granted until `expires`, with what the server said about the network.

    Times are on the driver's clock: `renew_at` is T1, `rebind_at` T2 (None for a lease
    without end, as is `expires`).
    """

    address: bytes
    prefix: int
    server: bytes
    routers: tuple[bytes, ...]
    dns_servers: tuple[bytes, ...]
    mtu: int | None
    lease_time: int
    renew_at: float | None
    rebind_at: float | None
    expires: float | None

    @property
    def router(self) -> bytes | None:
        """The first router, the gateway; None when the server named none."""
        return self.routers[0] if self.routers else None


class Outgoing(NamedTuple):
    """One message to send from UDP port 68 to port 67 of `destination`, from address `source`."""

    payload: bytes
    destination: bytes
    source: bytes


class DhcpEvent(NamedTuple):
    """What happened to the lease: "bound" (a new one), "renewed" (extended), "expired" or "lost" (NAK)."""

    kind: str
    lease: Lease


class DhcpCounters:
    """What the client sent and what it received, by kind, and what it ignored."""

    __slots__ = ("acks", "discovers", "ignored", "malformed", "naks", "offers", "releases", "requests")

    def __init__(self) -> None:
        self.discovers = self.requests = self.releases = 0
        self.offers = self.acks = self.naks = 0
        self.malformed = self.ignored = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def prefix_of(mask: bytes | None, address: bytes) -> int:
    """The prefix length of a subnet mask; without one, the address's class (RFC 2131 leaves it to the client)."""
    if mask is None:
        return 8 if address[0] < 128 else 16 if address[0] < 192 else 24
    value = int.from_bytes(mask, "big")
    prefix = bin(value).count("1")
    if value != (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF:
        raise MalformedPacket("dhcp", f"subnet mask {'.'.join(map(str, mask))} is not a prefix")
    return prefix


class DhcpClient:
    """One client on one interface (its MAC); see the module for the protocol it follows."""

    def __init__(self, mac: bytes, *, hostname: str | None = None, seed: int | None = None) -> None:
        if len(mac) != 6:
            raise ValueError(f"a MAC address is 6 bytes, not {len(mac)}")
        self.mac = bytes(mac)
        self.hostname = hostname
        self._rng = random.Random(secrets.randbits(64) if seed is None else seed)
        self.state = DhcpState.INIT
        self.lease: Lease | None = None
        self.counters = DhcpCounters()
        self._xid = 0
        self._started = 0.0
        self._deadline: float | None = None
        self._retry = _FIRST_RETRY
        self._attempts = 0
        self._offer: DhcpMessage | None = None
        self._out: list[Outgoing] = []
        self._events: list[DhcpEvent] = []

    @property
    def xid(self) -> int:
        """The transaction in flight: the id every answer to it carries."""
        return self._xid

    # -- driver side -----------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin acquiring a lease: DISCOVER."""
        self._discover(now)

    def next_deadline(self) -> float | None:
        """When `poll` must run next: a retransmission, T1, T2 or the lease's end."""
        return self._deadline

    def poll(self, now: float) -> None:
        deadline = self._deadline
        if deadline is None or now < deadline:
            return
        state = self.state
        lease = self.lease
        if state is DhcpState.SELECTING:
            self._send_discover(now)
        elif state is DhcpState.REQUESTING:
            if self._attempts >= _REQUESTS_BEFORE_RESTART:
                self._discover(now)
            else:
                self._send_request(now)
        elif lease is not None and lease.expires is not None and now >= lease.expires:
            self._events.append(DhcpEvent("expired", lease))
            self.lease = None
            self._discover(now)
        elif state is DhcpState.BOUND:
            self.state = DhcpState.RENEWING
            self._send_renewal(now)
        elif state is DhcpState.RENEWING and lease is not None and lease.rebind_at is not None:
            if now >= lease.rebind_at:
                self.state = DhcpState.REBINDING
            self._send_renewal(now)
        elif state is DhcpState.REBINDING:
            self._send_renewal(now)

    def receive(self, payload: bytes | bytearray | memoryview, now: float) -> None:
        """A UDP payload that arrived on port 68; what is not an answer to us is counted and ignored."""
        try:
            message = parse_dhcp(payload)
        except MalformedPacket:
            self.counters.malformed += 1
            return
        kind = message.message_type
        if message.op != BOOTREPLY or message.xid != self._xid or message.chaddr != self.mac or kind is None:
            self.counters.ignored += 1
            return
        state = self.state
        if kind == OFFER and state is DhcpState.SELECTING and message.server_id and any(message.yiaddr):
            self.counters.offers += 1
            self._offer = message
            self.state = DhcpState.REQUESTING
            self._attempts = 0
            self._retry = _FIRST_RETRY
            self._send_request(now)
        elif kind == ACK and state in (DhcpState.REQUESTING, DhcpState.RENEWING, DhcpState.REBINDING):
            self._acked(message, now)
        elif kind == NAK and state in (DhcpState.REQUESTING, DhcpState.RENEWING, DhcpState.REBINDING):
            if state is DhcpState.REQUESTING and self._offer is not None and message.server_id != self._offer.server_id:
                self.counters.ignored += 1
                return
            self.counters.naks += 1
            if self.lease is not None:
                self._events.append(DhcpEvent("lost", self.lease))
                self.lease = None
            self._discover(now)
        else:
            self.counters.ignored += 1

    def release(self, now: float) -> None:
        """Give the lease back (RELEASE, unicast to its server) and stop; nothing to do without one."""
        lease = self.lease
        if lease is not None:
            options = {OPT_MESSAGE_TYPE: bytes((RELEASE,)), OPT_SERVER_ID: lease.server}
            self._emit(options, now, ciaddr=lease.address, flags=0, destination=lease.server, source=lease.address)
            self.counters.releases += 1
        self.lease = None
        self.state = DhcpState.RELEASED
        self._deadline = None

    def take_output(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def take_events(self) -> list[DhcpEvent]:
        events, self._events = self._events, []
        return events

    # -- the protocol ----------------------------------------------------------------------

    def _discover(self, now: float) -> None:
        self.state = DhcpState.SELECTING
        self._xid = self._rng.getrandbits(32)
        self._started = now
        self._retry = _FIRST_RETRY
        self._attempts = 0
        self._offer = None
        self._send_discover(now)

    def _backoff(self, now: float) -> None:
        """The next retransmission while selecting or requesting: 4, 8, ... 64 s, each ±1 s."""
        self._deadline = now + self._retry + self._rng.uniform(-1.0, 1.0)
        self._retry = min(self._retry * 2, _MAX_RETRY)
        self._attempts += 1

    def _send_discover(self, now: float) -> None:
        options = {OPT_MESSAGE_TYPE: bytes((DISCOVER,)), OPT_PARAMETERS: _PARAMETERS, **self._name()}
        self._emit(options, now)
        self.counters.discovers += 1
        self._backoff(now)

    def _send_request(self, now: float) -> None:
        offer = self._offer
        assert offer is not None and offer.server_id is not None  # REQUESTING holds the offer it answers
        options = {
            OPT_MESSAGE_TYPE: bytes((REQUEST,)),
            OPT_REQUESTED_IP: offer.yiaddr,
            OPT_SERVER_ID: offer.server_id,
            OPT_PARAMETERS: _PARAMETERS,
            **self._name(),
        }
        self._emit(options, now)
        self.counters.requests += 1
        self._backoff(now)

    def _send_renewal(self, now: float) -> None:
        """REQUEST with our address in ciaddr: to the server while renewing, to everyone while rebinding."""
        lease = self.lease
        assert lease is not None and lease.rebind_at is not None and lease.expires is not None  # a lease with an end
        options = {OPT_MESSAGE_TYPE: bytes((REQUEST,)), OPT_PARAMETERS: _PARAMETERS, **self._name()}
        renewing = self.state is DhcpState.RENEWING
        destination = lease.server if renewing else BROADCAST
        self._emit(options, now, ciaddr=lease.address, flags=0, destination=destination, source=lease.address)
        self.counters.requests += 1
        boundary = lease.rebind_at if renewing else lease.expires
        self._deadline = min(boundary, now + max(_MIN_RENEW_RETRY, (boundary - now) / 2))

    def _acked(self, message: DhcpMessage, now: float) -> None:
        expected = self._offer.server_id if self.state is DhcpState.REQUESTING and self._offer else None
        if expected is not None and message.server_id != expected:
            self.counters.ignored += 1
            return
        if not any(message.yiaddr):
            self.counters.ignored += 1
            return
        try:
            prefix = prefix_of(message.subnet_mask, message.yiaddr)
        except MalformedPacket:
            self.counters.malformed += 1
            return
        self.counters.acks += 1
        previous = self.lease
        server = message.server_id or (previous.server if previous is not None else ANY)
        lease = lease_from(message, prefix, server, now)
        self.lease = lease
        self.state = DhcpState.BOUND
        self._offer = None
        self._deadline = lease.renew_at
        same = previous is not None and previous.address == lease.address
        self._events.append(DhcpEvent("renewed" if same else "bound", lease))

    def _name(self) -> dict[int, bytes]:
        return {OPT_HOSTNAME: self.hostname.encode()} if self.hostname else {}

    def _emit(
        self,
        options: dict[int, bytes],
        now: float,
        *,
        ciaddr: bytes = ANY,
        flags: int = FLAG_BROADCAST,
        destination: bytes = BROADCAST,
        source: bytes = ANY,
    ) -> None:
        """Queue one BOOTREQUEST; without an address yet the server is asked to answer by broadcast."""
        secs = min(int(now - self._started), 0xFFFF)
        message = DhcpMessage(BOOTREQUEST, self._xid, self.mac, options, secs=secs, flags=flags, ciaddr=ciaddr)
        self._out.append(Outgoing(emit_dhcp(message), destination, source))


def lease_from(message: DhcpMessage, prefix: int, server: bytes, now: float) -> Lease:
    """The lease an ACK grants from `now`: T1 and T2 as the server says, else 1/2 and 7/8 of it."""
    length = message.lease_time if message.lease_time is not None else INFINITE
    lease = Lease(
        message.yiaddr,
        prefix,
        server,
        message.routers,
        message.dns_servers,
        message.mtu,
        length,
        None,
        None,
        None,
    )
    if length == INFINITE:
        return lease
    given_t1, given_t2 = message.renewal_time, message.rebinding_time
    t2: float = given_t2 if given_t2 is not None and 0 < given_t2 < length else length * 7 / 8
    t1: float = given_t1 if given_t1 is not None and 0 < given_t1 < t2 else t2 * 4 / 7  # half the lease by default
    return replace(lease, renew_at=now + t1, rebind_at=now + t2, expires=now + length)
