"""DHCP messages: emit and parse agree, option lengths are checked, and fuzzed input only ever
raises MalformedPacket."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.wire.test_fuzz import mutated
from usernet.wire import MalformedPacket
from usernet.wire.dhcp import (
    BOOTREPLY,
    BOOTREQUEST,
    OFFER,
    OPT_DNS,
    OPT_LEASE_TIME,
    OPT_MESSAGE_TYPE,
    OPT_MTU,
    OPT_ROUTER,
    OPT_SERVER_ID,
    OPT_SUBNET_MASK,
    DhcpMessage,
    emit_dhcp,
    parse_dhcp,
)

MAC = bytes.fromhex("020000000099")
ADDRESS = st.binary(min_size=4, max_size=4)
OPTIONS = st.dictionaries(st.integers(60, 254) | st.sampled_from([12, 43, 81]), st.binary(max_size=600), max_size=6)


@st.composite
def messages(draw: st.DrawFn) -> DhcpMessage:
    options = draw(OPTIONS)
    options[OPT_MESSAGE_TYPE] = bytes((draw(st.integers(1, 8)),))
    if draw(st.booleans()):
        options[OPT_ROUTER] = b"".join(draw(st.lists(ADDRESS, min_size=1, max_size=70)))
    if draw(st.booleans()):
        options[OPT_LEASE_TIME] = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big")
    return DhcpMessage(
        draw(st.sampled_from([BOOTREQUEST, BOOTREPLY])),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.binary(min_size=6, max_size=6)),
        options,
        secs=draw(st.integers(0, 0xFFFF)),
        flags=draw(st.sampled_from([0, 0x8000])),
        ciaddr=draw(ADDRESS),
        yiaddr=draw(ADDRESS),
        siaddr=draw(ADDRESS),
        giaddr=draw(ADDRESS),
        hops=draw(st.integers(0, 255)),
    )


@settings(max_examples=200, deadline=None)
@given(message=messages())
def test_emit_then_parse_is_the_same_message(message: DhcpMessage) -> None:
    data = emit_dhcp(message)
    assert len(data) >= 300, "at least a BOOTP message's size (RFC 1542)"
    assert parse_dhcp(data) == message
    assert parse_dhcp(memoryview(bytearray(data))) == message


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=400) | mutated(messages().map(emit_dhcp)))
def test_fuzzed_input_only_raises_malformed_packet(data: bytes) -> None:
    try:
        message = parse_dhcp(data)
    except MalformedPacket as exc:
        assert exc.layer == "dhcp" and exc.reason
        return
    assert message.op in (BOOTREQUEST, BOOTREPLY)
    # Every accessor reads what the parser checked: whole addresses, whole numbers.
    assert all(len(address) == 4 for address in message.routers + message.dns_servers)
    assert message.lease_time is None or 0 <= message.lease_time < 2**32
    assert message.mtu is None or 0 <= message.mtu < 2**16


def offer(options: dict[int, bytes]) -> bytes:
    return emit_dhcp(DhcpMessage(BOOTREPLY, 1, MAC, {OPT_MESSAGE_TYPE: bytes((OFFER,)), **options}))


def test_the_accessors_read_the_options_a_client_uses() -> None:
    data = offer({
        OPT_SUBNET_MASK: bytes([255, 255, 255, 0]), OPT_ROUTER: bytes(4) + b"\x01\x02\x03\x04",
        OPT_DNS: b"\x08\x08\x08\x08", OPT_LEASE_TIME: (3600).to_bytes(4, "big"), OPT_MTU: (1400).to_bytes(2, "big"),
        OPT_SERVER_ID: b"\xc0\x00\x02\x01",
    })  # fmt: skip
    message = parse_dhcp(data)
    assert message.message_type == OFFER and message.subnet_mask == bytes([255, 255, 255, 0])
    assert message.routers == (bytes(4), b"\x01\x02\x03\x04") and message.dns_servers == (b"\x08\x08\x08\x08",)
    assert (message.lease_time, message.mtu, message.server_id) == (3600, 1400, b"\xc0\x00\x02\x01")
    assert message.renewal_time is None


@pytest.mark.parametrize(
    ("code", "value"),
    [(OPT_SUBNET_MASK, bytes(3)), (OPT_ROUTER, bytes(6)), (OPT_DNS, b""), (OPT_MTU, bytes(4)),
     (OPT_SERVER_ID, bytes(5)), (OPT_MESSAGE_TYPE, b"")],
)  # fmt: skip
def test_an_option_of_the_wrong_length_is_malformed(code: int, value: bytes) -> None:
    with pytest.raises(MalformedPacket, match=f"DHCP option {code} has {len(value)} bytes"):
        parse_dhcp(emit_dhcp(DhcpMessage(BOOTREPLY, 1, MAC, {OPT_MESSAGE_TYPE: b"\x02", code: value})))


def test_a_long_option_is_split_on_emit_and_joined_on_parse() -> None:
    routers = bytes(range(200)) * 2
    data = emit_dhcp(DhcpMessage(BOOTREPLY, 1, MAC, {OPT_ROUTER: routers}))
    assert data.count(bytes((OPT_ROUTER, 255))) == 1 and parse_dhcp(data).options[OPT_ROUTER] == routers


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda d: d[:239], "shorter than its fixed 240"),
        (lambda d: b"\x03" + d[1:], "BOOTP op 3"),
        (lambda d: d[:1] + b"\x06" + d[2:], "hardware type 6"),
        (lambda d: d[:236] + b"\x00\x00\x00\x00" + d[240:], "no DHCP magic cookie"),
        (lambda d: d[:240] + b"\x35\x01", "option 53 runs past the end"),
        (lambda d: d[:243], "no end option"),
    ],
)
def test_broken_messages_say_why(mutate: object, why: str) -> None:
    data = emit_dhcp(DhcpMessage(BOOTREQUEST, 1, MAC, {OPT_MESSAGE_TYPE: b"\x01"}))
    with pytest.raises(MalformedPacket, match=why):
        parse_dhcp(mutate(data))  # type: ignore[operator]  # the parametrized lambdas


def test_emit_refuses_what_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="chaddr is a 6-byte MAC"):
        emit_dhcp(DhcpMessage(BOOTREQUEST, 1, b"\x01"))
    with pytest.raises(ValueError, match="option code 255"):
        emit_dhcp(DhcpMessage(BOOTREQUEST, 1, MAC, {255: b""}))
