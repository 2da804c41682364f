"""Unmodified programs get usernet loops from `python -m usernet` and `usernet run` (no network needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from usernet.aio.runner import BOOT_DIR, _split

PROBE = """
import asyncio, sys, uvloop

async def kind():
    return type(asyncio.get_running_loop()).__name__

loop = asyncio.new_event_loop()
print("new_event_loop", type(loop).__name__); loop.close()
print("asyncio.run", asyncio.run(kind()))
print("uvloop.new_event_loop", type(uvloop.new_event_loop()).__name__)
print("uvloop.run", uvloop.run(kind()))
print("SelectorEventLoop", type(asyncio.SelectorEventLoop()).__name__)
print("argv", sys.argv[1:])
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("USERNET_")}


def _table(output: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in output.splitlines() if " " in line)


@pytest.mark.parametrize(
    ("option", "default_loop"), [([], "UsernetSelectorEventLoop"), (["--loop", "uvloop"], "UsernetUvloop")]
)
def test_python_m_usernet_runs_a_script_on_usernet_loops(tmp_path: Path, option: list[str], default_loop: str) -> None:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    result = subprocess.run(
        [sys.executable, "-m", "usernet", *option, str(script), "--tap", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    table = _table(result.stdout)
    assert table["new_event_loop"] == table["asyncio.run"] == default_loop
    assert table["uvloop.new_event_loop"] == table["uvloop.run"] == "UsernetUvloop"
    assert table["SelectorEventLoop"] == "UsernetSelectorEventLoop"
    assert table["argv"] == "['--tap', 'x']"  # the script's own arguments are left alone


def test_usernet_run_installs_through_sitecustomize_and_keeps_the_shadowed_one(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import builtins\nbuiltins.SHADOWED_RAN = True\n")
    script = tmp_path / "probe.py"
    script.write_text(PROBE + "import builtins\nprint('shadowed', getattr(builtins, 'SHADOWED_RAN', False))\n")
    env = _env() | {"PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "usernet.cli", "run", "--loop", "uvloop", "--", sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    table = _table(result.stdout)
    assert table["asyncio.run"] == table["uvloop.run"] == "UsernetUvloop"
    assert table["shadowed"] == "True"


def test_a_broken_setting_stops_the_program_instead_of_running_it_on_the_kernel(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text("print('ran')\n")
    env = _env() | {"USERNET_LOOP": "trio", "PYTHONPATH": BOOT_DIR}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and "ran" not in result.stdout
    assert "cannot put this program on usernet" in result.stderr and "USERNET_LOOP='trio'" in result.stderr
    refused = subprocess.run(
        [sys.executable, "-m", "usernet.cli", "run", "--", sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert refused.returncode == 2 and "ran" not in refused.stdout and "USERNET_LOOP='trio'" in refused.stderr


def test_python_m_usernet_runs_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "usernet", "--only", "-m", "json.tool", "--compact"],
        input='{"a": 1}',
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '{"a":1}'


def test_options_stop_at_the_program() -> None:
    valued = {"--tap", "--mtu"}
    assert _split(["--tap", "t", "--only", "s.py", "--tap", "x"], valued) == (
        ["--tap", "t", "--only"],
        None,
        ["s.py", "--tap", "x"],
    )
    assert _split(["--mtu", "9000", "-m", "pkg", "--flag"], valued) == (["--mtu", "9000"], "pkg", ["--flag"])
    assert _split(["--", "-weird.py"], valued) == ([], None, ["-weird.py"])


@pytest.mark.parametrize(
    ("program", "status", "message"),
    [
        (["nonexistent.py"], 2, "can't open file '{cwd}/nonexistent.py': [Errno 2] No such file or directory"),
        (["-m", "missing"], 1, "No module named missing"),
        (
            ["-m", "missing.module"],
            1,
            "Error while finding module specification for 'missing.module' "
            "(ModuleNotFoundError: No module named 'missing')",
        ),
        (
            ["-m", "usernet.aio"],
            1,
            "No module named usernet.aio.__main__; 'usernet.aio' is a package and cannot be directly executed",
        ),
    ],
)
def test_a_program_that_is_not_there_gets_one_line_as_python_prints_it(
    tmp_path: Path, program: list[str], status: int, message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "usernet", *program],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        cwd=tmp_path,
    )
    assert (result.returncode, result.stderr) == (status, f"python -m usernet: {message.format(cwd=tmp_path)}\n")


def test_an_import_error_inside_the_module_keeps_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import missing_dependency\n")
    result = subprocess.run(
        [sys.executable, "-m", "usernet", "-m", "broken"], capture_output=True, text=True, timeout=60,
        env=_env() | {"PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "No module named 'missing_dependency'" in result.stderr


def test_usernet_run_with_a_python_that_lacks_usernet_names_the_one_to_use(tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(other)], check=True, timeout=120)
    python = other / "bin" / "python"
    result = subprocess.run(
        [sys.executable, "-m", "usernet.cli", "run", "--", str(python), "-c", "print('ran')"],
        capture_output=True, text=True, timeout=60, env=_env(),
    )  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"usernet run: {python} cannot import usernet, which is installed for {sys.executable}: run the program "
        f"with that interpreter (usernet run -- {sys.executable} script.py, or {sys.executable} -m module), or "
        f"install usernet into {python}'s environment\n"
    )
