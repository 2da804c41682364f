"""The tutorial of docs/simulation.md runs as written: its code blocks are executed, its tests called."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from usernet import sim

DOC = Path(__file__).resolve().parents[2] / "docs" / "simulation.md"


def _tutorial() -> dict[str, Any]:
    text = DOC.read_text()
    section = text.split("## Tutorial", 1)[1].split("\n## ", 1)[0]
    namespace: dict[str, Any] = {"pytest": pytest}
    for block in re.findall(r"```python\n(.*?)```", section, re.S):
        exec(compile(block, str(DOC), "exec"), namespace)
    return namespace


TUTORIAL = _tutorial()
TESTS = sorted(name for name in TUTORIAL if name.startswith("test_"))


def test_the_tutorial_has_its_three_tests() -> None:
    assert TESTS == ["test_kv_partition", "test_kv_server_crash", "test_kv_under_loss"]


@pytest.mark.parametrize("name", TESTS)
def test_tutorial(name: str) -> None:
    TUTORIAL[name](sim.Network(seed=0))
