"""One definition of every option: keyword, flag and USERNET_* variable agree."""

from __future__ import annotations

import argparse

import pytest

from usernet.drivers.config import UsernetConfig, add_arguments, open_host, parse_fault
from usernet.link.fault import FaultInjector
from usernet.link.tap import TapLink


def test_environment_round_trip() -> None:
    config = UsernetConfig(
        tap="t1",
        address="198.51.100.2/24",
        gateway="198.51.100.1",
        mtu=9000,
        loop="uvloop",
        pcap="/tmp/x.pcap",
        fault="loss=0.1,seed=3",
        only=True,
        sandbox=True,
    )
    assert UsernetConfig.from_env(config.to_env()) == config
    assert UsernetConfig.from_env({}) == UsernetConfig()


def test_flags_override_the_environment() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser, {"USERNET_TAP": "fromenv", "USERNET_ONLY": "1", "USERNET_MTU": "9000"})
    args = parser.parse_args(["--tap", "fromflag", "--loop", "uvloop"])
    config = UsernetConfig.from_args(args)
    assert (config.tap, config.only, config.mtu, config.loop) == ("fromflag", True, 9000, "uvloop")


def test_keyword_overrides_win_over_the_environment() -> None:
    assert UsernetConfig.from_env({"USERNET_LOOP": "uvloop"}, loop="asyncio").loop == "asyncio"


def test_fault_spec_becomes_fault_injector_arguments() -> None:
    assert parse_fault("loss=0.01, seed=7,delay=0.005,direction=tx") == {
        "seed": 7,
        "loss": 0.01,
        "delay": 0.005,
        "direction": "tx",
    }
    assert parse_fault("") == {"seed": 0}


@pytest.mark.network
@pytest.mark.parametrize(
    ("fault", "no_gro", "gro"), [(None, False, True), (None, True, False), ("loss=0.01", False, False)]
)
def test_faults_hit_wire_frames_so_they_turn_software_gro_off(fault: str | None, no_gro: bool, gro: bool) -> None:
    with open_host(UsernetConfig(sandbox=True, fault=fault, no_gro=no_gro), announce=lambda line: None) as host:
        link = host.link
        if fault is not None:
            assert isinstance(link, FaultInjector)
            link = link.inner
        assert isinstance(link, TapLink) and link.gro is gro


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fault": "lose=0.1"}, "name=value"),
        ({"fault": "loss=lots"}, "not a valid float"),
        ({"loop": "trio"}, "asyncio' or 'uvloop"),
        ({"address": "192.0.2.300/24"}, "bad usernet address"),
        ({"gateway": "198.51.100.1"}, "not on usernet's network"),
        ({"mtu": 100}, "between 576"),
    ],
)
def test_bad_settings_say_what_is_wrong(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UsernetConfig(**changes)  # type: ignore[arg-type]  # keywords from a dict


def test_bad_environment_values_name_the_variable() -> None:
    with pytest.raises(ValueError, match="USERNET_ONLY"):
        UsernetConfig.from_env({"USERNET_ONLY": "maybe"})
    with pytest.raises(ValueError, match="USERNET_MTU"):
        UsernetConfig.from_env({"USERNET_MTU": "big"})
