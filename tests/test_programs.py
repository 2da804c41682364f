"""`require` fails a test with one line naming the package; every program the tests require is on the list;
usernet/programs.py's command line, which setup.sh reads line by line (`mapfile`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.programs import require
from usernet.programs import PROGRAMS, main, packages


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


def test_nothing_missing_prints_no_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With every program on PATH, `missing` prints nothing: an empty line would make setup.sh run
    apt-get update and install a package named ""."""
    for program in PROGRAMS:
        path = tmp_path / program
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["missing"]) == 0
    assert capsys.readouterr().out == ""


def test_missing_and_packages_print_one_package_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: every program is missing
    assert main(["missing"]) == 0
    assert capsys.readouterr().out.splitlines() == packages()
    assert main(["packages"]) == 0
    assert capsys.readouterr().out.splitlines() == packages()
