"""The DHCP client's state machine on a virtual clock, against a small server written here."""

from __future__ import annotations

import pytest

from usernet.stack.dhcp import ANY, BROADCAST, DhcpClient, DhcpState, Outgoing, lease_from
from usernet.wire.dhcp import (
    ACK,
    BOOTREPLY,
    DISCOVER,
    NAK,
    OFFER,
    OPT_DNS,
    OPT_LEASE_TIME,
    OPT_MESSAGE_TYPE,
    OPT_MTU,
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

MAC = bytes.fromhex("020000000099")
SERVER = bytes([192, 0, 2, 1])
OFFERED = bytes([192, 0, 2, 50])
DNS = bytes([192, 0, 2, 53])


def reply(request: DhcpMessage, kind: int, *, lease: int = 600, t1: int | None = None, t2: int | None = None,
          server: bytes = SERVER, yiaddr: bytes = OFFERED) -> bytes:  # fmt: skip
    options = {OPT_MESSAGE_TYPE: bytes((kind,)), OPT_SERVER_ID: server}
    if kind != NAK:
        options |= {
            OPT_SUBNET_MASK: bytes([255, 255, 255, 0]),
            OPT_ROUTER: SERVER,
            OPT_DNS: DNS + SERVER,
            OPT_LEASE_TIME: lease.to_bytes(4, "big"),
            OPT_MTU: (1400).to_bytes(2, "big"),
        }
        if t1 is not None:
            options[OPT_RENEWAL_TIME] = t1.to_bytes(4, "big")
        if t2 is not None:
            options[OPT_REBINDING_TIME] = t2.to_bytes(4, "big")
    return emit_dhcp(DhcpMessage(BOOTREPLY, request.xid, request.chaddr, options, yiaddr=yiaddr, siaddr=SERVER))


def sent(client: DhcpClient) -> list[tuple[Outgoing, DhcpMessage]]:
    return [(out, parse_dhcp(out.payload)) for out in client.take_output()]


def one(client: DhcpClient) -> tuple[Outgoing, DhcpMessage]:
    out = sent(client)
    assert len(out) == 1, out
    return out[0]


def bound(now: float = 0.0, **lease: int) -> DhcpClient:
    client = DhcpClient(MAC, seed=1)
    client.start(now)
    _, discover = one(client)
    client.receive(reply(discover, OFFER, **lease), now)
    _, request = one(client)
    client.receive(reply(request, ACK, **lease), now)
    assert client.state is DhcpState.BOUND and [e.kind for e in client.take_events()] == ["bound"]
    return client


def test_discover_offer_request_ack_binds_with_what_the_server_said() -> None:
    client = DhcpClient(MAC, hostname="usernet", seed=1)
    client.start(10.0)
    out, discover = one(client)
    assert (out.destination, out.source) == (BROADCAST, ANY)
    assert discover.message_type == DISCOVER and discover.chaddr == MAC and discover.flags & 0x8000
    client.receive(reply(discover, OFFER), 10.1)
    out, request = one(client)
    assert request.message_type == REQUEST and request.xid == discover.xid
    assert request.options[OPT_REQUESTED_IP] == OFFERED and request.server_id == SERVER
    assert (out.destination, out.source) == (BROADCAST, ANY), "a REQUEST for an offer is broadcast (RFC 2131 4.4.1)"
    client.receive(reply(request, ACK), 10.2)
    lease = client.lease
    assert client.state is DhcpState.BOUND and lease is not None
    assert (lease.address, lease.prefix, lease.router, lease.dns_servers, lease.mtu) == (
        OFFERED, 24, SERVER, (DNS, SERVER), 1400
    )  # fmt: skip
    assert (lease.renew_at, lease.rebind_at, lease.expires) == pytest.approx((310.2, 535.2, 610.2))
    assert [e.kind for e in client.take_events()] == ["bound"]
    assert client.next_deadline() == lease.renew_at


def test_renew_at_t1_goes_to_the_server_and_an_ack_extends_the_lease() -> None:
    client = bound(lease=120, t1=10, t2=100)
    assert client.next_deadline() == 10
    client.poll(9.9)
    assert client.take_output() == []
    client.poll(10)
    out, renewal = one(client)
    assert client.state is DhcpState.RENEWING
    assert (out.destination, out.source) == (SERVER, OFFERED) and renewal.ciaddr == OFFERED
    assert OPT_REQUESTED_IP not in renewal.options and OPT_SERVER_ID not in renewal.options
    client.receive(reply(renewal, ACK, lease=120, t1=10, t2=100), 10.5)
    assert client.state is DhcpState.BOUND and client.lease is not None and client.lease.expires == 130.5
    assert [e.kind for e in client.take_events()] == ["renewed"]


def test_silence_rebinds_at_t2_by_broadcast_then_the_lease_expires() -> None:
    client = bound(lease=1000, t1=500, t2=875)
    times = []
    while True:
        deadline = client.next_deadline()
        assert deadline is not None
        client.poll(deadline)
        if client.state is DhcpState.SELECTING:
            break
        for out, message in sent(client):
            times.append((deadline, client.state, out.destination))
            assert message.message_type == REQUEST and message.ciaddr == OFFERED
    assert deadline == 1000
    assert times == [
        (500, DhcpState.RENEWING, SERVER),
        (687.5, DhcpState.RENEWING, SERVER),
        (781.25, DhcpState.RENEWING, SERVER),
        (841.25, DhcpState.RENEWING, SERVER),
        (875, DhcpState.REBINDING, BROADCAST),
        (937.5, DhcpState.REBINDING, BROADCAST),
        (997.5, DhcpState.REBINDING, BROADCAST),
    ]  # half the time left each time, at least 60 s unless the boundary is nearer
    events = client.take_events()
    assert [e.kind for e in events] == ["expired"] and events[0].lease.address == OFFERED
    assert client.lease is None
    _, discover = one(client)
    assert discover.message_type == DISCOVER, "an expired lease starts over"


def test_a_nak_while_requesting_starts_over_with_a_new_transaction() -> None:
    client = DhcpClient(MAC, seed=2)
    client.start(0)
    _, discover = one(client)
    client.receive(reply(discover, OFFER), 0)
    _, request = one(client)
    client.receive(reply(request, NAK), 0.5)
    assert client.state is DhcpState.SELECTING and client.counters.naks == 1
    _, again = one(client)
    assert again.message_type == DISCOVER and again.xid != discover.xid


def test_a_nak_while_renewing_loses_the_address() -> None:
    client = bound(lease=100, t1=10, t2=80)
    client.poll(10)
    _, renewal = one(client)
    client.receive(reply(renewal, NAK), 11)
    assert [e.kind for e in client.take_events()] == ["lost"] and client.lease is None
    assert client.state is DhcpState.SELECTING


def test_with_no_server_discover_backs_off_to_64_seconds_and_keeps_trying() -> None:
    client = DhcpClient(MAC, seed=3)
    client.start(0)
    now, gaps = 0.0, []
    for _ in range(8):
        assert len(sent(client)) == 1
        deadline = client.next_deadline()
        assert deadline is not None
        gaps.append(deadline - now)
        now = deadline
        client.poll(now)
    for gap, base in zip(gaps, [4, 8, 16, 32, 64, 64, 64, 64], strict=True):
        assert base - 1 <= gap <= base + 1
    assert client.counters.discovers == 9 and client.state is DhcpState.SELECTING


def test_four_unanswered_requests_go_back_to_discover() -> None:
    client = DhcpClient(MAC, seed=4)
    client.start(0)
    _, discover = one(client)
    client.receive(reply(discover, OFFER), 0)
    kinds = [one(client)[1].message_type]
    for _ in range(4):
        deadline = client.next_deadline()
        assert deadline is not None
        client.poll(deadline)
        kinds.append(one(client)[1].message_type)
    assert kinds == [REQUEST, REQUEST, REQUEST, REQUEST, DISCOVER]


def test_answers_not_for_us_are_ignored_and_garbage_is_counted() -> None:
    client = DhcpClient(MAC, seed=5)
    client.start(0)
    _, discover = one(client)
    other = DhcpMessage(discover.op, discover.xid + 1, MAC, discover.options)
    client.receive(reply(other, OFFER), 0)
    stranger = DhcpMessage(discover.op, discover.xid, bytes(6), discover.options)
    client.receive(reply(stranger, OFFER), 0)
    client.receive(b"not dhcp", 0)
    client.receive(reply(discover, ACK), 0)  # an ACK while selecting answers nothing we asked
    assert (client.counters.ignored, client.counters.malformed) == (3, 1)
    assert client.state is DhcpState.SELECTING and client.take_output() == []


def test_release_gives_the_address_back_to_its_server() -> None:
    client = bound()
    client.release(5)
    out, release = one(client)
    assert release.message_type == RELEASE and release.ciaddr == OFFERED and release.server_id == SERVER
    assert (out.destination, out.source) == (SERVER, OFFERED)
    assert client.state is DhcpState.RELEASED and client.next_deadline() is None


def test_t1_and_t2_default_to_half_and_seven_eighths_and_bad_ones_are_replaced() -> None:
    message = parse_dhcp(reply(DhcpMessage(1, 7, MAC), ACK, lease=800))
    lease = lease_from(message, 24, SERVER, 100)
    assert (lease.renew_at, lease.rebind_at, lease.expires) == (500, 800, 900)
    message = parse_dhcp(reply(DhcpMessage(1, 7, MAC), ACK, lease=800, t1=900, t2=50))
    lease = lease_from(message, 24, SERVER, 0)
    assert 0 < lease.renew_at < lease.rebind_at < lease.expires == 800  # type: ignore[operator]  # set for a lease with an end
    infinite = lease_from(parse_dhcp(reply(DhcpMessage(1, 7, MAC), ACK, lease=0xFFFFFFFF)), 24, SERVER, 0)
    assert infinite.renew_at is infinite.rebind_at is infinite.expires is None
