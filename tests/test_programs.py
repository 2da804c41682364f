"""usernet/programs.py's command line, which setup.sh reads line by line (`mapfile`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from usernet.programs import PROGRAMS, main, packages


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
