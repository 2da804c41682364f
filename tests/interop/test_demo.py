"""The README's main command: `usernet demo` talks to the kernel and leaves nothing behind."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.network


def test_demo_runs_and_cleans_up():
    result = subprocess.run([sys.executable, "-m", "usernet.cli", "demo"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 packets transmitted, 3 received" in result.stdout
    assert "sent b'hello from the kernel side', got b'hello from the kernel side'" in result.stdout
    name = re.search(r"namespace (usernet-demo-[0-9a-f]+) deleted", result.stdout)
    assert name, result.stdout
    assert name.group(1) not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
