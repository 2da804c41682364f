"""The version is written once (usernet.__version__): the installed metadata, the CLI and the changelog agree."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import usernet

REPO = Path(__file__).resolve().parent.parent


def test_usernet_version_prints_the_package_version() -> None:
    command = Path(sys.executable).with_name("usernet")
    out = subprocess.run([str(command), "--version"], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == f"usernet {usernet.__version__}"


def test_installed_metadata_reads_the_same_version() -> None:
    assert importlib.metadata.version("usernet") == usernet.__version__


def test_changelog_names_the_current_version_as_its_latest_release() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, re.M)
    assert releases, "CHANGELOG.md has no '## [x.y.z] - YYYY-MM-DD' release heading"
    assert releases[0] == usernet.__version__
    assert text.index("## [Unreleased]") < text.index(f"## [{releases[0]}]")
