"""The fixed malloc thresholds (usernet/drivers/allocator.py): big buffers made and freed stay in the heap."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from usernet.drivers.allocator import fix_thresholds, is_glibc

#: A process that (with "fix") fixes the thresholds, then does what a bulk receiver does at every
#: wake-up 1,000 times: a receive buffer grows by four 65 KB frames, the program is handed
#: all of it as bytes, the buffer empties; and counts its page faults.
CHURN = """
import json, resource, sys
from usernet.drivers.allocator import fix_thresholds, is_glibc
fixed = fix_thresholds() if sys.argv[1] == "fix" else False
def faults(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
chunk = bytes(65_000)
buf = bytearray()
before = faults()
for n in range(1000):
    for _ in range(4):
        buf += chunk
    data = bytes(buf)
    buf.clear()
    del data
print(json.dumps({"fixed": fixed, "faults": faults() - before}))
"""


@pytest.mark.skipif(not is_glibc(), reason="the thresholds are glibc's")
def test_buffers_made_and_freed_at_every_wake_up_cost_no_page_faults() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    runs = {}
    for mode in ("fix", "leave"):
        done = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, env=env, check=True)
        runs[mode] = json.loads(done.stdout)
    assert runs["fix"]["fixed"]
    # With glibc's own thresholds this process mapped each 260 KB buffer fresh (~60 faults a
    # round, ~63,000 in all, when this was written); whether it does depends on its history.
    assert runs["fix"]["faults"] < 2000, runs


def test_a_chosen_environment_is_left_alone() -> None:
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "131072"}
    code = "from usernet.drivers.allocator import fix_thresholds; print(fix_thresholds())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "False"
    assert isinstance(fix_thresholds(), bool)
