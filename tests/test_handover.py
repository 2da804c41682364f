"""The handover socket (usernet.drivers.handover) without a TAP: what a successor is handed,
and what it refuses, with the old owner told why."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from usernet.drivers.config import UsernetConfig
from usernet.drivers.handover import HandoverPoint, request_handover
from usernet.stack.tcp.frozen import MigrationError, encode_blob


def _offer(point: HandoverPoint, blob: bytes, answers: list[str | None]) -> None:
    conn = point.accept()
    assert conn is not None
    read, write = os.pipe()
    try:
        answers.append(point.offer(conn, read, blob))
    finally:
        os.close(read)
        os.close(write)


def _serve(path: Path, blob: bytes) -> tuple[HandoverPoint, threading.Thread, list[str | None]]:
    point = HandoverPoint(str(path))
    answers: list[str | None] = []
    thread = threading.Thread(target=_offer, args=(point, blob, answers))
    thread.start()
    return point, thread, answers


def test_a_successor_gets_the_descriptor_and_the_payload_and_says_ok(tmp_path: Path) -> None:
    path = tmp_path / "h.sock"
    point, thread, answers = _serve(path, encode_blob({"hello": b"state"}))
    takeover = request_handover(str(path))
    assert takeover is not None
    assert takeover.payload == {"hello": b"state"}
    assert os.fstat(takeover.tap_fd)  # a descriptor of this process now
    os.close(takeover.tap_fd)
    takeover.accept()
    thread.join(10)
    point.close()
    assert answers == [None]
    assert not path.exists()


@pytest.mark.parametrize("damage", ["truncate", "flip", "version"])
def test_a_damaged_blob_is_refused_and_the_old_owner_hears_why(tmp_path: Path, damage: str) -> None:
    blob = bytearray(encode_blob({"hello": b"state" * 100}))
    if damage == "truncate":
        blob = blob[: len(blob) // 2] + bytes(len(blob) - len(blob) // 2)  # the right length, half of it lost
    elif damage == "flip":
        blob[30] ^= 0x10
    else:
        blob[9] += 1
    point, thread, answers = _serve(tmp_path / "h.sock", bytes(blob))
    with pytest.raises(MigrationError) as refused:
        request_handover(str(tmp_path / "h.sock"))
    thread.join(10)
    point.close()
    assert answers == [str(refused.value)]  # the old owner carries on, and knows why


def test_nobody_to_take_over_from(tmp_path: Path) -> None:
    assert request_handover(str(tmp_path / "none.sock")) is None
    stale = HandoverPoint(str(tmp_path / "stale.sock"))
    stale.close()
    assert request_handover(str(tmp_path / "stale.sock")) is None


def test_a_new_point_replaces_the_socket_of_a_predecessor_and_leaves_it_alone_at_close(tmp_path: Path) -> None:
    path = str(tmp_path / "h.sock")
    old = HandoverPoint(path)
    new = HandoverPoint(path)  # the successor serves the same path for the next restart
    old.close()  # the predecessor exits: the successor's socket stays
    assert os.path.exists(path)
    new.close()
    assert not os.path.exists(path)


def test_an_owner_with_nothing_to_hand_over_says_why(tmp_path: Path) -> None:
    point = HandoverPoint(str(tmp_path / "h.sock"))

    def refuse() -> None:
        conn = point.accept()
        assert conn is not None
        point.refuse(conn, "no event loop drives the stack at this moment: try again")

    thread = threading.Thread(target=refuse)
    thread.start()
    with pytest.raises(MigrationError, match="nothing to hand over now: no event loop drives the stack"):
        request_handover(str(tmp_path / "h.sock"))
    thread.join(10)
    point.close()


def test_handover_is_an_option_of_every_entry_point_and_refuses_a_sandbox_or_another_link() -> None:
    config = UsernetConfig.from_env({"USERNET_HANDOVER": "/run/me/echo.sock"})
    assert config.handover == "/run/me/echo.sock"
    assert config.to_env()["USERNET_HANDOVER"] == "/run/me/echo.sock"  # what `usernet run` hands its child
    with pytest.raises(ValueError, match="handover does not go with sandbox"):
        UsernetConfig(handover="/x", sandbox=True)
    with pytest.raises(ValueError, match="handover is about a TAP"):
        UsernetConfig(handover="/x", link="udp://127.0.0.1:5000?peer=127.0.0.1:5001")
    with pytest.raises(ValueError, match="handover does not go with dhcp"):
        UsernetConfig(handover="/x", dhcp=True)
