"""`RttEstimator.sample` against RFC 6298's formula as it was first written (before the
one-sample case took its gains as literals): bit for bit, on generated samples."""

from __future__ import annotations

import math
import random

import pytest

from usernet.stack.tcp.rtt import ALPHA, BETA, K, RttEstimator


class Reference:
    """The estimator's arithmetic as first written (rtt.py before the literal gains)."""

    def __init__(self, granularity: float, rto_min: float, rto_max: float, rto_min_variance: bool) -> None:
        self.granularity = granularity
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.rto_min_variance = rto_min_variance
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.min_rtt = math.inf
        self.rto = 0.0

    def sample(self, rtt: float, expected_samples: int = 1) -> None:
        if rtt < 0:
            rtt = 0.0
        if rtt < self.min_rtt:
            self.min_rtt = rtt
        srtt = self.srtt
        if srtt is None:
            srtt = rtt
            self.rttvar = rtt / 2
        else:
            n = expected_samples if expected_samples > 1 else 1
            beta = BETA / n
            alpha = ALPHA / n
            delta = srtt - rtt
            self.rttvar = (1 - beta) * self.rttvar + beta * (delta if delta >= 0 else -delta)
            srtt = (1 - alpha) * srtt + alpha * rtt
        self.srtt = srtt
        var = K * self.rttvar
        floor = self.rto_min if self.rto_min_variance else self.granularity
        rto = srtt + (var if var > floor else floor)
        self.rto = self.rto_min if rto < self.rto_min else self.rto_max if rto > self.rto_max else rto


def _rtts(rng: random.Random) -> float:
    kind = rng.randrange(6)
    if kind == 0:
        return 0.0
    if kind == 1:
        return -rng.random() * 0.01  # a clock step back: read as 0
    if kind == 2:
        return rng.randrange(0, 5) / 1000  # whole ticks of a 1 kHz TSval clock
    if kind == 3:
        return rng.random() * 0.001
    if kind == 4:
        return rng.random() * 300  # past rto_max
    return rng.expovariate(10.0)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("variance", [False, True])
def test_sample_matches_the_formula_bit_for_bit(seed: int, variance: bool) -> None:
    rng = random.Random(seed)
    granularity = rng.choice([0.0, 0.001, 0.01])
    rto_min = rng.choice([0.001, 0.2, 1.0])
    rto_max = rng.choice([rto_min, 60.0, 120.0])
    est = RttEstimator(granularity=granularity, rto_min=rto_min, rto_max=rto_max, rto_min_variance=variance)
    ref = Reference(granularity, rto_min, rto_max, variance)
    for _ in range(3000):
        rtt = _rtts(rng)
        n = rng.choice([-1, 0, 1, 1, 1, 1, 2, 3, 7, 64])
        if n == 1 and rng.random() < 0.5:
            est.sample(rtt)
            ref.sample(rtt)
        else:
            est.sample(rtt, n)
            ref.sample(rtt, n)
        assert est.srtt is not None
        assert ref.srtt is not None
        assert est.srtt.hex() == ref.srtt.hex()
        assert est.rttvar.hex() == ref.rttvar.hex()
        assert est.rto.hex() == ref.rto.hex()
        assert est.min_rtt == ref.min_rtt
        assert est.backoffs == 0
        if rng.random() < 0.05:
            est.backoff()
            est.reset_backoff()
            assert est.rto.hex() == ref.rto.hex()
