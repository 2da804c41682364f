"""`require` fails a test with one line naming the package; every program the tests require is on the list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.programs import require
from usernet.programs import PROGRAMS


def test_a_missing_program_fails_the_test_with_one_line_naming_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception) as failed:
        require("ping")
    assert str(failed.value) == (
        "`ping` is not installed: install the Debian package iputils-ping "
        "(apt-get install iputils-ping, or run ./setup.sh as root)"
    )
    assert not failed.value.pytrace


def test_every_program_a_test_requires_has_a_package_on_the_list() -> None:
    source = "".join(path.read_text() for path in Path(__file__).parent.rglob("*.py"))
    required = set(re.findall(r"""require\(["']([\w.-]+)["']\)""", source))
    assert {"ping", "tshark", "curl"} <= required
    assert required - set(PROGRAMS) == set()
