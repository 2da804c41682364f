"""The window curves of NewReno and CUBIC under a simulated ACK clock."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usernet.stack.tcp.congestion import INFINITE_SSTHRESH, CongestionControl, Cubic, NewReno, initial_window

S = 1000  # SMSS


def one_rtt(cc: CongestionControl, now: float, rtt: float, segments_per_ack: int = 1) -> float:
    """Acknowledge one window's worth of data, spread over one RTT; return the new time."""
    left = cc.cwnd
    step = S * segments_per_ack
    acks = -(-left // step)
    for i in range(acks):
        cc.on_ack(min(step, left), now + rtt * i / acks, rtt)
        left -= step
    return now + rtt


def test_initial_window_per_rfc_6928() -> None:
    assert initial_window(1460) == 14600
    assert initial_window(536) == 5360
    assert initial_window(9000) == 18000  # max(2*MSS, 14600)
    assert initial_window(1460, segments=4) == 4 * 1460
    assert NewReno(1460).cwnd == 14600 and NewReno(1460).ssthresh == INFINITE_SSTHRESH


@given(st.integers(1, 70000), st.integers(1, 1000))
def test_initial_window_is_the_rfc_formula(smss: int, segments: int) -> None:
    """The spelled-out min and max are RFC 6928's min(segments*MSS, max(2*MSS, segments*1460))."""
    assert initial_window(smss, segments) == min(segments * smss, max(2 * smss, segments * 1460))


@pytest.mark.parametrize("kind", [NewReno, Cubic])
def test_slow_start_doubles_each_rtt(kind: type[CongestionControl]) -> None:
    for per_ack in (1, 2, 4):  # every segment ACKed, delayed ACKs, stretch ACKs: all count
        cc = kind(S)
        now = 0.0
        for expected in (20, 40, 80, 160):
            now = one_rtt(cc, now, 0.05, per_ack)
            assert cc.cwnd == expected * S


def test_a_stretch_ack_grows_slow_start_by_every_byte_it_acknowledges() -> None:
    cc = NewReno(S)
    cc.on_ack(8 * S, 0.0, None)
    assert cc.cwnd == 18 * S  # as the eight ACKs it replaces would have (Linux's tcp_slow_start)


def test_growth_counts_what_the_ack_newly_delivered_not_what_it_passed() -> None:
    cc = NewReno(S)
    cc.on_ack(3 * S, 0.0, None, delivered=S)  # two of the three segments were SACKed before
    assert cc.cwnd == 11 * S
    cc.on_ack(4 * S, 0.0, None, delivered=6 * S)  # four new, and two SACKed for the first time
    assert cc.cwnd == 17 * S
    cc.on_ack(2 * S, 0.0, None, delivered=0)  # only bytes SACKed already: nothing new delivered
    assert cc.cwnd == 17 * S
    cc.on_ack(2 * S, 0.0, None)  # no count given: every byte acknowledged
    assert cc.cwnd == 19 * S


def test_delivered_past_ssthresh_counts_in_avoidance() -> None:
    cc = NewReno(S)
    cc.ssthresh = 11 * S
    cc.on_ack(S, 0.0, None, delivered=11 * S)  # 1 segment to ssthresh, 10 towards the next +1
    assert cc.cwnd == 11 * S
    cc.on_ack(S, 0.0, None)
    assert cc.cwnd == 12 * S


def test_an_ack_that_delivers_nothing_new_still_ends_the_timeout_state() -> None:
    cc = NewReno(S)
    cc.on_rto(0.0, 10 * S)
    cc.on_ack(S, 0.1, None, delivered=0)
    assert cc.cwnd == S and cc.ssthresh == 5 * S
    cc.on_rto(0.2, 6 * S)  # new data was acknowledged: a new timeout, ssthresh cut again
    assert cc.ssthresh == 3 * S


def test_abc_limit_two_caps_a_stretch_ack_at_two_segments() -> None:
    cc = NewReno(S)
    cc.abc_limit = 2  # RFC 3465's L
    cc.on_ack(8 * S, 0.0, None)
    assert cc.cwnd == 12 * S


def test_slow_start_stops_at_ssthresh_and_the_rest_counts_in_avoidance() -> None:
    cc = NewReno(S)
    cc.ssthresh = 12 * S
    cc.on_ack(8 * S, 0.0, None)  # 2 segments to ssthresh, 6 segments' bytes towards the next +1
    assert cc.cwnd == 12 * S
    cc.on_ack(6 * S, 0.0, None)  # 12 segments acknowledged in avoidance: one more
    assert cc.cwnd == 13 * S


def loss_then_avoidance(cc: CongestionControl, at_segments: int, now: float = 0.0) -> None:
    cc.cwnd = at_segments * S
    cc.enter_recovery(now, at_segments * S, sack=True)
    cc.on_recovery_exit(now, at_segments * S)


def test_congestion_avoidance_adds_one_segment_per_rtt() -> None:
    cc = NewReno(S)
    loss_then_avoidance(cc, 40)
    assert cc.cwnd == cc.ssthresh == 20 * S
    now = 0.0
    for expected in range(21, 40):
        now = one_rtt(cc, now, 0.05)
        assert cc.cwnd == expected * S
    for per_ack in (2, 4):  # however the ACKs are spaced
        before = cc.cwnd
        now = one_rtt(cc, now, 0.05, per_ack)
        assert cc.cwnd == before + S


def test_loss_halves_and_newreno_recovery_without_sack() -> None:
    cc = NewReno(S)
    cc.cwnd = 20 * S
    cc.enter_recovery(0.0, 20 * S, sack=False)
    assert cc.ssthresh == 10 * S and cc.cwnd == 13 * S and cc.in_recovery  # + 3 SMSS
    cc.on_dupack()
    cc.on_dupack()
    assert cc.cwnd == 15 * S  # inflation
    cc.on_ack(3 * S, 0.1, 0.1)  # partial ACK: deflate by 3 SMSS, add back 1
    assert cc.cwnd == 13 * S and cc.in_recovery
    cc.on_ack(S // 2, 0.1, 0.1)  # less than SMSS acknowledged: no add-back
    assert cc.cwnd == 13 * S - S // 2
    cc.on_recovery_exit(0.2, 4 * S)  # little in flight: min(ssthresh, flight + SMSS)
    assert cc.cwnd == 5 * S and not cc.in_recovery
    cc.on_recovery_exit(0.2, 30 * S)
    assert cc.cwnd == 10 * S


def test_recovery_with_sack_holds_the_window_at_ssthresh() -> None:
    cc = NewReno(S)
    cc.cwnd = 20 * S
    cc.enter_recovery(0.0, 18 * S, sack=True)  # FlightSize, not cwnd, is halved
    assert cc.ssthresh == cc.cwnd == 9 * S
    cc.on_dupack()
    cc.on_ack(3 * S, 0.1, 0.1)
    assert cc.cwnd == 9 * S


def test_timeout_falls_to_one_segment_and_cuts_ssthresh_once() -> None:
    cc = NewReno(S)
    cc.cwnd = 40 * S
    cc.on_rto(0.0, 40 * S)
    assert cc.cwnd == S and cc.ssthresh == 20 * S and not cc.in_recovery
    cc.on_rto(1.0, S)  # the same data timed out again: ssthresh stays
    assert cc.ssthresh == 20 * S
    cc.on_ack(S, 2.0, 0.1)
    cc.on_rto(3.0, 2 * S)  # a new timeout after progress: cut again, floor 2 SMSS
    assert cc.ssthresh == 2 * S


def test_cubic_reduces_by_beta_0_7_and_sets_w_max() -> None:
    cc = Cubic(S)
    cc.cwnd = 100 * S
    cc.enter_recovery(0.0, 100 * S, sack=True)
    assert cc.ssthresh == cc.cwnd == 70 * S
    assert cc.w_max == pytest.approx(100.0)


def test_cubic_window_follows_w_cubic() -> None:
    cc = Cubic(S)
    loss_then_avoidance(cc, 100)
    now = 0.0
    now = one_rtt(cc, now, 0.1)
    k = (30 / 0.4) ** (1 / 3)  # K = cbrt((W_max - cwnd_epoch) / C)
    assert cc.k == pytest.approx(k)
    assert cc.w_cubic(k) == pytest.approx(100.0)
    assert cc.w_cubic(0) == pytest.approx(70.0)
    trace = [(0.0, 70.0)]
    while now < 12:
        now = one_rtt(cc, now, 0.1)
        trace.append((now, cc.cwnd / S))
    for t, w in trace:
        if t < 5.5 or t > 8.5:  # in between, the Reno-friendly region is ahead (below)
            assert w == pytest.approx(cc.w_cubic(t), rel=0.03)
    at_k = min(trace, key=lambda p: abs(p[0] - k))
    assert at_k[1] == pytest.approx(100.0, rel=0.01)  # the plateau at W_max
    growth = [b[1] - a[1] for a, b in itertools.pairwise(trace)]
    assert all(x >= 0 for x in growth)
    early = [g for (t, _), g in zip(trace, growth, strict=False) if t < k - 0.5]
    late = [g for (t, _), g in zip(trace, growth, strict=False) if t > 8.5]
    assert early == sorted(early, reverse=True)  # concave: slowing towards W_max
    assert late == sorted(late)  # convex: accelerating away from it


def test_cubic_is_reno_friendly_on_short_rtts() -> None:
    cubic = Cubic(S)
    loss_then_avoidance(cubic, 10)
    now = 0.0
    for _ in range(100):
        now = one_rtt(cubic, now, 0.01)
    # W_cubic barely moves in 1 s near a small W_max; the AIMD estimate grew by about
    # alpha = 3*0.3/1.7 per RTT until it passed cwnd_prior (10), then by 1 per RTT.
    assert cubic.w_cubic(now) < 11
    assert 95 < cubic.cwnd / S < 110


def test_cubic_target_is_capped_at_one_and_a_half_windows() -> None:
    cc = Cubic(S)
    loss_then_avoidance(cc, 100)
    cc.on_ack(S, 0.0, 0.1)  # the stage starts at 70 segments
    before = cc.cwnd
    cc.on_ack(S, 10.0, 0.1)  # W_cubic(10.1) is about 178, far above 1.5 * cwnd
    # cwnd grows by (target - cwnd)/cwnd per segment with target = 1.5 * cwnd: half a segment.
    assert cc.cwnd - before == pytest.approx(S / 2, abs=2)


def test_cubic_fast_convergence() -> None:
    cc = Cubic(S)
    loss_then_avoidance(cc, 100)
    cc.on_ack(S, 0.0, 0.1)  # start the stage
    cc.cwnd = 80 * S  # a second loss before regaining W_max = 100
    cc.enter_recovery(1.0, 80 * S, sack=True)
    assert cc.w_max == pytest.approx(80 * 1.7 / 2)
    slow = Cubic(S, fast_convergence=False)
    loss_then_avoidance(slow, 100)
    slow.cwnd = 80 * S
    slow.enter_recovery(1.0, 80 * S, sack=True)
    assert slow.w_max == pytest.approx(80.0)


def test_cubic_after_timeout_starts_with_k_zero() -> None:
    cc = Cubic(S)
    loss_then_avoidance(cc, 100)
    cc.on_ack(S, 0.0, 0.1)
    cc.cwnd = 60 * S
    cc.on_rto(1.0, 60 * S)
    assert cc.cwnd == S and cc.ssthresh == 42 * S
    while cc.cwnd < cc.ssthresh:
        cc.on_ack(S, 2.0, 0.1)
    start = cc.cwnd
    cc.on_ack(S, 2.0, 0.1)
    assert cc.k == 0.0 and cc.w_max == pytest.approx(start / S)


def test_the_interface_is_abstract_and_pluggable() -> None:
    with pytest.raises(TypeError):
        CongestionControl(S)  # type: ignore[abstract]  # instantiating the ABC is what is tested

    class Fixed(CongestionControl):
        __slots__ = ()

        def _avoid(self, acked: int, now: float, rtt: float | None) -> None:
            pass

        def _decrease(self, now: float, flight_size: int, timeout: bool) -> int:
            return 5 * self.smss

    cc = Fixed(S)
    cc.enter_recovery(0.0, 100 * S, sack=True)
    assert cc.cwnd == 5 * S


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        NewReno(0)
    with pytest.raises(ValueError):
        Cubic(S, beta=1.0)


events = st.lists(
    st.one_of(
        st.tuples(st.just("ack"), st.integers(0, 50 * S)),
        st.tuples(st.just("delivered"), st.integers(1, 50 * S), st.integers(0, 80 * S)),
        st.tuples(st.just("dupack"), st.just(0)),
        st.tuples(st.just("loss"), st.integers(0, 200 * S), st.booleans()),
        st.tuples(st.just("exit"), st.integers(0, 200 * S)),
        st.tuples(st.just("rto"), st.integers(0, 200 * S)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([NewReno, Cubic]), events)
def test_windows_stay_sane_under_any_events(kind: type[CongestionControl], seq: list[tuple]) -> None:
    cc = kind(S)
    now = 0.0
    for ev in seq:
        now += 0.01
        if ev[0] == "ack":
            cc.on_ack(ev[1], now, 0.05)
        elif ev[0] == "delivered":  # what the ACK passed, and what it newly delivered
            cc.on_ack(ev[1], now, 0.05, ev[2])
        elif ev[0] == "dupack":
            cc.on_dupack()
        elif ev[0] == "loss":
            if not cc.in_recovery:
                cc.enter_recovery(now, ev[1], sack=ev[2])
        elif ev[0] == "exit":
            if cc.in_recovery:
                cc.on_recovery_exit(now, ev[1])
        else:
            cc.on_rto(now, ev[1])
        assert isinstance(cc.cwnd, int) and cc.cwnd >= S
        assert cc.ssthresh >= 2 * S
