"""The contract between core.h and the Python side: codes, result layouts, one binding per twin.

Each check reads core.h itself, so it holds with or without the compiled core; where the
core is loaded, its constants are compared too.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from usernet import native
from usernet._native import layout, pure

HEADER = (Path(pure.__file__).parent / "core.h").read_text()
DEFINES = {name: int(value) for name, value in re.findall(r"^#define (UN_\w+) \(?(-?\d+)\)?$", HEADER, re.M)}
#: Negative defines that are not errors: the receive predictions' "take the general path".
NOT_ERRORS = {"UN_RX_OTHER"}


def fields(prefix: str) -> list[str]:
    """Names of core.h's `#define <prefix><NAME> <index>`, lower-cased, in index order."""
    found = sorted((value, name[len(prefix) :].lower()) for name, value in DEFINES.items() if name.startswith(prefix))
    return [name for _, name in found]


def indices(prefix: str) -> list[int]:
    return sorted(value for name, value in DEFINES.items() if name.startswith(prefix))


def test_every_status_code_has_its_twin_constant_and_one_reason() -> None:
    codes = {name: value for name, value in DEFINES.items() if value < 0 and name not in NOT_ERRORS}
    assert len(codes) >= 14, "the header parse found too few codes: has core.h's #define style changed?"
    for name, value in codes.items():
        assert getattr(pure, name.removeprefix("UN_")) == value, name
    assert set(pure.ERRORS) == set(codes.values())
    assert len(set(codes.values())) == len(codes), "two codes share a number"


def test_native_error_carries_the_code_and_the_reason() -> None:
    error = pure.NativeError(pure.BUILD_NO_ROOM)
    assert isinstance(error, ValueError)
    assert error.code == pure.BUILD_NO_ROOM
    assert str(error) == pure.ERRORS[pure.BUILD_NO_ROOM]


def test_tcp_parse_layout_matches_core_h() -> None:
    assert fields("UN_TCP_FIELD_") == list(layout.TCP_PARSED[:-1])
    assert indices("UN_TCP_FIELD_") == list(range(DEFINES["UN_TCP_FIELDS"]))
    assert layout.TCP_PARSED[-1] == "sack_blocks"
    # The SACK edges follow the fields: at most 4 blocks fit a 60-byte header.
    assert DEFINES["UN_TCP_OUT_LEN"] == DEFINES["UN_TCP_FIELDS"] + 2 * 4


def test_rx_tcp_layout_matches_core_h() -> None:
    assert layout.RX_TCP[: len(layout.TCP_PARSED)] == layout.TCP_PARSED
    tail = layout.RX_TCP[len(layout.TCP_PARSED) :]
    assert fields("UN_RX_FIELD_") == list(tail)
    start = DEFINES["UN_TCP_OUT_LEN"]
    assert indices("UN_RX_FIELD_") == list(range(start, start + len(tail)))
    assert DEFINES["UN_RX_OUT_LEN"] == start + len(tail)


def test_rx_udp_layout_matches_core_h() -> None:
    assert fields("UN_RX_UDP_FIELD_") == list(layout.RX_UDP)
    assert indices("UN_RX_UDP_FIELD_") == list(range(DEFINES["UN_RX_UDP_OUT_LEN"]))


def test_layout_types_have_the_declared_lengths() -> None:
    for names, alias in ((layout.TCP_PARSED, layout.TcpParsed), (layout.RX_TCP, layout.RxParsed)):
        assert len(alias.__args__) == len(names)
    assert len(layout.RxUdp.__args__) == len(layout.RX_UDP)
    assert len(layout.TcpFields.__args__) == len(layout.TCP_PARSED) - 1


def test_parse_results_have_the_declared_layout(impl: Any) -> None:
    sack = b"\x01\x01\x05\x0a" + (7).to_bytes(4, "big") + (9).to_bytes(4, "big")
    segment = bytes.fromhex("04d2 0050 00000064 000000c8") + bytes([(5 + len(sack) // 4) << 4, 0x12]) + bytes(6) + sack
    parsed = dict(zip(layout.TCP_PARSED, impl.tcp_parse(segment), strict=True))
    assert (parsed["sport"], parsed["dport"], parsed["seq"], parsed["ack"]) == (1234, 80, 100, 200)
    assert (parsed["status"], parsed["flags"], parsed["header_length"]) == (pure.TCP_OK, 0x12, 20 + len(sack))
    assert parsed["sack_blocks"] == ((7, 9),)


def native_functions() -> set[str]:
    return {name for name in pure.__all__ if inspect.isfunction(getattr(pure, name))}


def test_every_twin_has_one_c_binding_and_no_binding_lacks_a_twin() -> None:
    if native.c_impl is None:
        pytest.skip("the C core is not loaded (USERNET_PURE=1?)")
    assert set(vars(native.c_impl)) == native_functions()


def test_the_facade_exports_each_function_from_the_chosen_core() -> None:
    chosen = native.c_impl if native.c_impl is not None else pure
    for name in native_functions():
        assert getattr(native, name) is getattr(chosen, name), name
    assert set(pure.__all__) <= set(native.__all__)


@pytest.mark.skipif(native.c_impl is None, reason="the C core is not loaded (USERNET_PURE=1?)")
def test_loaded_core_constants_equal_the_header() -> None:
    from usernet._native._core import lib  # type: ignore[import-not-found]  # built by pip install

    for name, value in DEFINES.items():
        assert getattr(lib, name) == value, name
