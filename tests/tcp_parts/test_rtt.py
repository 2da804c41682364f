"""RFC 6298 RTO computation and the RFC 7323 timestamp clock."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usernet.stack.tcp.config import TcpConfig
from usernet.stack.tcp.rtt import RttEstimator, TimestampClock


def test_initial_rto_is_one_second() -> None:
    est = RttEstimator()
    assert est.srtt is None and est.rto == 1.0


def test_first_sample_then_smoothing() -> None:
    est = RttEstimator(rto_min=0.001)
    est.sample(0.1)  # (2.2): SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4*RTTVAR)
    assert est.srtt == pytest.approx(0.1) and est.rttvar == pytest.approx(0.05)
    assert est.rto == pytest.approx(0.3)
    est.sample(0.3)  # (2.3): RTTVAR from the old SRTT, then SRTT
    assert est.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 0.2)
    assert est.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.3)
    assert est.rto == pytest.approx(est.srtt + 4 * est.rttvar)


def test_steady_rtt_converges_to_srtt_plus_granularity() -> None:
    est = RttEstimator(rto_min=0.001, granularity=0.01)
    for _ in range(200):
        est.sample(0.05)
    assert est.srtt == pytest.approx(0.05)
    assert est.rto == pytest.approx(0.06)  # 4*RTTVAR has decayed below G


def test_rto_min_default_is_linux_like_and_configurable() -> None:
    est = RttEstimator()
    est.sample(0.001)
    assert est.rto == 0.2
    rfc = RttEstimator(rto_min=1.0)
    rfc.sample(0.001)
    assert rfc.rto == 1.0


def test_linux_floor_bounds_the_variance_term_not_the_rto() -> None:
    """tcp_set_rto: SRTT + max(4*RTTVAR, rto_min), where RFC 6298 (2.4) takes max(SRTT + 4*RTTVAR, rto_min)."""
    rfc, linux = RttEstimator(), RttEstimator(rto_min_variance=True)
    for est in (rfc, linux):
        for _ in range(50):
            est.sample(0.010)
    assert rfc.rto == pytest.approx(0.2)
    assert linux.srtt is not None and linux.rto == pytest.approx(linux.srtt + 0.2)
    first = RttEstimator(rto_min_variance=True)
    first.sample(0.1)  # RTTVAR 50 ms: the variance term 200 ms is the floor itself
    assert first.rto == pytest.approx(0.3)
    wide = RttEstimator(rto_min_variance=True)
    wide.sample(0.2)  # 4*RTTVAR = 400 ms is above the floor: as RFC 6298
    assert wide.rto == pytest.approx(0.6)


def test_backoff_doubles_up_to_the_maximum_and_a_sample_clears_it() -> None:
    est = RttEstimator(rto_max=10.0)
    est.backoff()
    est.backoff()
    assert est.rto == 4.0 and est.backoffs == 2
    for _ in range(5):
        est.backoff()
    assert est.rto == 10.0
    est.reset_backoff()
    assert est.rto == 1.0 and est.backoffs == 0
    est.backoff()
    est.sample(0.5)  # Karn: a valid sample ends the backoff
    assert est.backoffs == 0 and est.rto == pytest.approx(0.5 + 4 * 0.25)


def test_many_samples_per_rtt_use_smaller_gains() -> None:
    one = RttEstimator()
    many = RttEstimator()
    for est in (one, many):
        est.sample(0.1)
    one.sample(0.5)
    many.sample(0.5, expected_samples=8)
    assert many.srtt == pytest.approx(0.1 + (0.5 - 0.1) / 64)
    assert one.srtt > many.srtt


def test_bad_configuration() -> None:
    with pytest.raises(ValueError):
        RttEstimator(rto_min=2.0, rto_max=1.0)
    with pytest.raises(ValueError):
        RttEstimator(granularity=-1)
    with pytest.raises(ValueError):
        TimestampClock(hz=10_000)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 300), st.just("backoff"), st.just("reset")), max_size=60))
def test_rto_always_within_bounds(events: list[float | str]) -> None:
    est = RttEstimator(rto_min=0.2, rto_max=60.0)
    for e in events:
        if e == "backoff":
            est.backoff()
        elif e == "reset":
            est.reset_backoff()
        else:
            est.sample(e)  # type: ignore[arg-type]  # e is a float on this branch
        assert 0.2 <= est.rto <= 60.0


def test_timestamp_clock_ticks_and_measures_rtt() -> None:
    clock = TimestampClock(hz=1000, offset=5)
    assert clock.tsval(1.0) == 1005
    sent = clock.tsval(2.0)
    assert clock.rtt(2.25, sent) == pytest.approx(0.25)
    assert clock.rtt(2.0, sent + 10) is None  # an echo from the future is bogus


@settings(max_examples=200, deadline=None)
@given(st.integers(0, (1 << 32) - 1), st.floats(0, 1e6), st.integers(0, 100_000))
def test_timestamp_rtt_across_the_wrap(offset: int, t: float, ms: int) -> None:
    clock = TimestampClock(hz=1000, offset=offset)
    sent = clock.tsval(t)
    later = t + ms / 1000
    measured = clock.rtt(later, sent)
    assert measured is not None and abs(measured - ms / 1000) <= 0.0011


_SETTINGS = st.fixed_dictionaries(
    {
        "rto_min": st.floats(0.001, 5.0),
        "rto_max": st.floats(5.0, 200.0),
        "rto_initial": st.floats(0.0, 300.0),
        "rto_min_variance": st.booleans(),
    }
)


@settings(max_examples=100, deadline=None)
@given(_SETTINGS, st.lists(st.floats(0, 10), max_size=5))
def test_fresh_is_the_estimator_built_from_the_same_settings(kw: dict[str, Any], samples: list[float]) -> None:
    """What a connection gets from its config's prototype is what the keywords would build."""
    built = RttEstimator(**kw)
    proto = TcpConfig(**kw).rtt_prototype
    fresh = proto.fresh()
    assert fresh is not proto and _slots(fresh) == _slots(built)
    for rtt in samples:  # the copy is its own: samples change it alone
        fresh.sample(rtt)
        built.sample(rtt)
    assert _slots(fresh) == _slots(built) and _slots(proto) == _slots(RttEstimator(**kw))


def test_a_config_checks_its_rto_bounds_at_the_first_use_of_its_prototype() -> None:
    cfg = TcpConfig(rto_min=2.0, rto_max=1.0)  # accepted, as before: the check is the estimator's
    with pytest.raises(ValueError):
        _ = cfg.rtt_prototype
    cfg = TcpConfig()
    assert cfg.rtt_prototype is cfg.rtt_prototype
    assert cfg == TcpConfig() and hash(cfg) == hash(TcpConfig())  # not a field: equality ignores it


def _slots(est: RttEstimator) -> dict[str, Any]:
    return {name: getattr(est, name) for name in RttEstimator.__slots__}
