"""A run is a pure function of its seed and its code: the trace hash says so, across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _trace_hash(seed: int, hash_seed: str) -> str:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    env.pop("USERNET_SIM_SEED", None)
    done = subprocess.run(
        [sys.executable, "-m", "tests.sim.replay", str(seed)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_same_seed_same_trace_in_two_processes() -> None:
    first, second = _trace_hash(7, "1"), _trace_hash(7, "2")
    assert len(first) == 64
    assert first == second


def test_different_seeds_differ() -> None:
    assert _trace_hash(7, "3") != _trace_hash(8, "3")
