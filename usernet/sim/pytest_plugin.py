"""pytest plugin (entry point `pytest11`): the `sim` fixture and the `sim_seeds(n)` marker.

    def test_retry(sim):                      # a fresh usernet.sim.Network
        sim.host("server", ..., address="10.0.0.1/24")
        ...
        sim.run(timeout=60)

    @pytest.mark.sim_seeds(50)                # the same test under seeds 0..49
    def test_survives_loss(sim): ...

A failing seed is named in the failure report with the command that replays it alone
(`USERNET_SIM_SEED=<seed> pytest <test>`); with USERNET_SIM_SEED set, a marked test
runs under that seed only. The fixture is synchronous, so it sits beside pytest-asyncio
in one session: an `async def` test runs on pytest-asyncio's loop, a `sim` test runs
the simulation's own loop inside `sim.run()`.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Generator

import pytest

from usernet.sim.network import SEED_VARIABLE, Network, default_seed

MARKER = "sim_seeds"
_SEED_KEY = pytest.StashKey[int]()
_FAILED_KEY = pytest.StashKey[list[tuple[str, int, str]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(n): run the test under simulation seeds 0..n-1 (the `sim` fixture; {SEED_VARIABLE} picks one)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim_seed" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None:
        return
    count = marker.args[0] if marker.args else marker.kwargs.get("n")
    if not isinstance(count, int) or count < 1:
        raise pytest.UsageError(f"@pytest.mark.{MARKER}(n) needs a number of seeds n >= 1, got {count!r}")
    seeds = [default_seed()] if os.environ.get(SEED_VARIABLE, "").strip() else list(range(count))
    metafunc.parametrize("sim_seed", seeds, indirect=True, ids=[f"seed={s}" for s in seeds])


@pytest.fixture
def sim_seed(request: pytest.FixtureRequest) -> int:
    """The seed of this test's simulation: the marker's parameter, else USERNET_SIM_SEED, else 0."""
    seed = int(getattr(request, "param", default_seed()))
    request.node.stash[_SEED_KEY] = seed
    return seed


@pytest.fixture
def sim(sim_seed: int) -> Network:
    """A fresh simulated network seeded with `sim_seed`; build hosts on it, then call `sim.run()`."""
    return Network(seed=sim_seed)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    report = yield
    if not isinstance(report, pytest.TestReport) or not report.failed or _SEED_KEY not in item.stash:
        return report
    seed = item.stash[_SEED_KEY]
    base = item.nodeid.split("[", 1)[0]
    command = f"{SEED_VARIABLE}={seed} {shlex.join(['python', '-m', 'pytest', base])}"
    report.sections.append(("usernet.sim", f"failed with simulation seed {seed}; replay it alone with:\n  {command}"))
    item.config.stash.setdefault(_FAILED_KEY, []).append((item.nodeid, seed, command))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    failed = config.stash.get(_FAILED_KEY, [])
    if not failed:
        return
    terminalreporter.section("usernet.sim failing seeds")
    for nodeid, seed, command in failed:
        terminalreporter.write_line(f"{nodeid}: seed {seed}; replay: {command}")
