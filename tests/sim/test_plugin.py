"""The pytest plugin, run by pytester: the fixture, the seeds marker, its report, beside pytest-asyncio."""

from __future__ import annotations

import pytest

TESTS = """
import asyncio

import pytest


async def _server():
    async def echo(reader, writer):
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    await (await asyncio.start_server(echo, "0.0.0.0", 7)).serve_forever()


def _client(sim, answers):
    async def main():
        reader, writer = await asyncio.open_connection("server", 7)
        writer.write(b"hi")
        answers.append(await reader.read(100))

    return main


@pytest.mark.sim_seeds(6)
def test_fails_for_some_seeds(sim, sim_seed):
    answers = []
    sim.host("server", _server, address="10.0.0.1/24")
    sim.client("client", _client(sim, answers), address="10.0.0.2/24")
    sim.run(timeout=30)
    assert answers == [b"hi"]
    assert sim_seed not in (2, 4), "this seed finds the bug"


def test_plain_fixture(sim):
    answers = []
    sim.host("server", _server, address="10.0.0.1/24")
    sim.client("client", _client(sim, answers), address="10.0.0.2/24")
    sim.run(timeout=30)
    assert answers == [b"hi"] and sim.seed == 0


@pytest.mark.asyncio
async def test_pytest_asyncio_beside_it():
    await asyncio.sleep(0)
    assert asyncio.get_running_loop().time() > 0
"""


def test_marker_reports_the_failing_seeds_and_how_to_replay_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_seeds=TESTS)
    result = pytester.runpytest(
        "-p", "asyncio", "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"
    )
    result.assert_outcomes(passed=6, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*failed with simulation seed 2; replay it alone with:*",
            "*USERNET_SIM_SEED=2 python -m pytest test_seeds.py::test_fails_for_some_seeds*",
            "*usernet.sim failing seeds*",
            "test_seeds.py::test_fails_for_some_seeds[[]seed=4[]]: seed 4; replay: USERNET_SIM_SEED=4 *",
        ]
    )


def test_the_replay_command_runs_that_seed_alone(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_seeds=TESTS)
    monkeypatch.setenv("USERNET_SIM_SEED", "4")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function",
        "test_seeds.py::test_fails_for_some_seeds", "-v",
    )  # fmt: skip  # the options, then what to run
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_fails_for_some_seeds[[]seed=4[]] FAILED*"])
