"""HyStart++ (RFC 9406) and the window after idle (Linux's tcp_cwnd_restart): the rules on
their own, and in simulation on the virtual clock, where a bottleneck's queue makes the RTT
grow as the window does."""

from __future__ import annotations

import pytest

from tests.tcp.net import Net
from usernet.stack import TcpConfig
from usernet.stack.tcp.congestion import (
    CSS_ROUNDS,
    HYSTART_CSS,
    HYSTART_ENTER_CSS,
    HYSTART_EXIT,
    HYSTART_OFF,
    HYSTART_RESUME,
    HYSTART_SS,
    INFINITE_SSTHRESH,
    Cubic,
)

S = 1000  # SMSS


def round_of(cc: Cubic, start: int, rtt: float, acks: int = 8) -> tuple[int, list[int]]:
    """One round: `acks` ACKs of one segment each, all with RTT sample `rtt`, for the data
    [start, end) sent before it; returns `end` and what hystart_sample said."""
    end = start + acks * S
    events = []
    for i in range(1, acks + 1):
        events.append(cc.hystart_sample(rtt, start + i * S, end))
        cc.on_ack(S, 0.0, rtt)
    return end, events


def test_a_constant_rtt_never_leaves_slow_start() -> None:
    cc = Cubic(S, hystart=True)
    seq = 0
    for _ in range(6):
        seq, events = round_of(cc, seq, 0.05)
        assert not any(events)
    assert cc.hystart == HYSTART_SS and cc.ssthresh == INFINITE_SSTHRESH


def test_a_delay_increase_enters_css_then_congestion_avoidance_after_css_rounds() -> None:
    cc = Cubic(S, hystart=True)
    seq, _ = round_of(cc, 0, 0.050)
    seq, _ = round_of(cc, seq, 0.050)
    # RttThresh = clamp(50 ms / 8, 4 ms, 16 ms) = 6.25 ms: 55 ms is not enough, 57 ms is.
    seq, events = round_of(cc, seq, 0.055)
    assert not any(events) and cc.hystart == HYSTART_SS
    seq, events = round_of(cc, seq, 0.062)
    assert events[-1] == HYSTART_ENTER_CSS and cc.hystart == HYSTART_CSS
    before = cc.cwnd
    cc.on_ack(4 * S, 0.0, 0.062)
    assert cc.cwnd == before + S  # CSS: a quarter of what slow start grows
    for _ in range(CSS_ROUNDS - 1):  # the round CSS began in counts as the first
        seq, events = round_of(cc, seq, 0.062)
        assert not any(events) and cc.hystart == HYSTART_CSS
    at_exit = cc.cwnd
    seq, events = round_of(cc, seq, 0.062)
    assert events == [HYSTART_EXIT] + [0] * 7 and cc.hystart == HYSTART_OFF
    assert cc.ssthresh == at_exit and at_exit <= cc.cwnd < at_exit + S  # then CUBIC's slow growth


def test_css_goes_back_to_slow_start_when_the_rtt_falls_below_its_baseline() -> None:
    cc = Cubic(S, hystart=True)
    seq, _ = round_of(cc, 0, 0.050)
    seq, events = round_of(cc, seq, 0.070)
    assert HYSTART_ENTER_CSS in events
    seq, events = round_of(cc, seq, 0.060)  # below the 70 ms that made it exit: jitter
    assert HYSTART_RESUME in events and cc.hystart == HYSTART_SS


def test_slow_start_under_hystart_takes_the_abc_limit_as_linux_does() -> None:
    # Linux's tcp_slow_start counts every byte of a stretch ACK with or without HyStart;
    # RFC 9406's L is `abc_limit` here, unlimited by default, as it is for slow start without it.
    cc = Cubic(S, hystart=True)
    cc.on_ack(20 * S, 0.0, 0.05)
    assert cc.cwnd == 30 * S
    capped = Cubic(S, hystart=True)
    capped.abc_limit = 8
    capped.on_ack(20 * S, 0.0, 0.05)
    assert capped.cwnd == 18 * S


@pytest.mark.parametrize("event", ["loss", "rto", "ecn"])
def test_a_congestion_signal_ends_hystart(event: str) -> None:
    cc = Cubic(S, hystart=True)
    if event == "loss":
        cc.enter_recovery(0.0, cc.cwnd, sack=True)
    elif event == "rto":
        cc.on_rto(0.0, cc.cwnd)
    else:
        cc.on_ecn(0.0, cc.cwnd)
    assert cc.hystart == HYSTART_OFF


@pytest.mark.parametrize(
    ("cwnd", "idle", "expected"),
    [
        (40, 0.15, 40),  # not idle for an RTO: restart_after_idle is not called then; if it were, nothing halves
        (40, 0.35, 20),  # one RTO after the first: one halving
        (40, 0.55, 10),  # two: 40 -> 20 -> 10
        (40, 10.0, 10),  # never below the restart window, the initial 10 segments
        (6, 10.0, 6),  # a window below the initial one is the restart window itself
        (33, 0.35, 16),  # in whole segments, as Linux's cwnd >>= 1
    ],
)
def test_restart_after_idle_halves_per_rto_down_to_the_restart_window(cwnd: int, idle: float, expected: int) -> None:
    cc = Cubic(S)
    cc.cwnd = cwnd * S
    cc.ssthresh = 4 * S
    cc.restart_after_idle(idle, 0.2)
    assert cc.cwnd == expected * S
    assert cc.ssthresh == max(4, (cwnd >> 1) + (cwnd >> 2)) * S  # tcp_current_ssthresh


def test_cubic_keeps_its_place_on_the_curve_across_idle_time() -> None:
    cc = Cubic(S)
    cc.ssthresh = 10 * S
    cc.on_ack(S, 1.0, 0.05)  # congestion avoidance: the stage starts at t = 1
    k, w_max = cc.k, cc.w_max
    cc.restart_after_idle(5.0, 0.2)
    cc.on_ack(S, 6.0, 0.05)
    assert (cc.k, cc.w_max) == (k, w_max)
    assert cc.cwnd < 11 * S  # t counts from 1 + 5 s of idle: still at the curve's start


SIZE = 2_000_000


def test_in_simulation_a_growing_queue_delay_ends_slow_start_before_any_loss() -> None:
    """A 10 Mbit/s bottleneck with room for every frame: the window outgrows the path's
    5-segment BDP at once, the queue and the RTT grow each round, HyStart++ goes to CSS and
    then to congestion avoidance; nothing is ever dropped."""
    net = Net(latency=0.002, tcp=TcpConfig(congestion="cubic"), rate=1.25e6, burst=1514, rate_queue=5000)
    client, server = net.transfer(b"x" * SIZE, b"")
    assert bytes(server.received) == b"x" * SIZE
    a = net.a.iface.counters
    assert (a.tcp_hystart_css, a.tcp_hystart_exits, a.tcp_hystart_spurious) == (1, 1, 0)
    assert a.tcp_retransmits == 0 and a.tcp_timeouts == 0
    assert client.conn.info()["ssthresh"] < INFINITE_SSTHRESH  # congestion avoidance, set by the exit
    print(f"HyStart++ on a bottleneck: exits={a.tcp_hystart_exits}, ssthresh={client.conn.info()['ssthresh']}")


def test_in_simulation_a_constant_rtt_keeps_slow_start() -> None:
    net = Net(latency=0.002, tcp=TcpConfig(congestion="cubic"))
    client, server = net.transfer(b"x" * SIZE, b"")
    assert bytes(server.received) == b"x" * SIZE
    a = net.a.iface.counters
    assert a.tcp_hystart_css == 0 and a.tcp_hystart_exits == 0
    assert client.conn.info()["ssthresh"] == INFINITE_SSTHRESH


def test_in_simulation_a_window_restarts_after_idle_unless_switched_off() -> None:
    for after_idle, restarts in ((True, 1), (False, 0)):
        net = Net(latency=0.01, tcp=TcpConfig(slow_start_after_idle=after_idle))
        net.sim.on_ready = lambda host, sock: None  # this test reads and writes itself
        listener = net.b.iface.tcp.listen((bytes([192, 0, 2, 2]), 5000))
        conn = net.a.iface.tcp.connect((bytes([192, 0, 2, 2]), 5000), net.now())
        net.sim.run(0.1)
        server = listener.accept()
        assert server is not None
        conn.send(b"x" * 200_000, net.now())
        net.sim.run(1.0)
        server.receive()
        grown = conn.info()["cwnd"]
        assert grown > 40 * conn.info()["mss"]
        net.sim.run(5.0)  # idle: many RTOs
        conn.send(b"y" * 1000, net.now())
        net.sim.run(0.0)
        cwnd = conn.info()["cwnd"]
        assert net.a.iface.counters.tcp_cwnd_restarts == restarts
        assert cwnd == (10 * conn.info()["mss"] if after_idle else grown)
