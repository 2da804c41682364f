"""RACK's verdict on retransmissions (RFC 8985 §6.2): lost once a segment sent after one is
delivered and RACK.rtt + reo_wnd has passed since it went."""

from __future__ import annotations

import math

import pytest

from tests.tcp_parts.footprint import NOTHING, bytes_beyond_itself
from usernet.stack.tcp.rack import Rack


def flight() -> Rack:
    """Two originals at 0 s, the first resent at 0.10 s, new data at 0.12 s, which the peer
    SACKs at 0.20 s (RACK.xmit_ts 0.12, RACK.rtt 0.08)."""
    rack = Rack(1000)
    rack.sent(1000, 2000, 0.0, 1000)
    rack.sent(2000, 3000, 0.0, 1000)
    rack.sent(1000, 2000, 0.10, 1000)
    rack.sent(3000, 4000, 0.12, 1000)
    rack.delivered(4000, 0.20, min_rtt=0.05)
    return rack


def test_a_retransmission_sent_before_a_delivered_segment_is_lost_and_leaves_the_log() -> None:
    rack = flight()
    assert rack.lost_retransmissions(1000, 0.0, 0.20) == ([(1000, 2000)], None)
    assert rack.lost_retransmissions(1000, 0.0, 0.20) == ([], None), "reported once"
    assert rack.sent_at(rack.pos(2000)) == (0.0, False), "its bytes' last send is the original again"


def test_the_reordering_window_delays_the_verdict_and_names_the_deadline() -> None:
    rack = flight()
    lost, at = rack.lost_retransmissions(1000, 0.05, 0.20)
    assert lost == [] and at == pytest.approx(0.23)
    assert rack.lost_retransmissions(1000, 0.05, 0.23) == ([(1000, 2000)], None)


def test_a_retransmission_sent_after_the_delivered_segment_or_acknowledged_is_not_lost() -> None:
    rack = flight()
    rack.sent(2000, 3000, 0.15, 1000)  # after RACK.xmit_ts
    lost, _ = rack.lost_retransmissions(2000, 0.0, 0.30)  # SND.UNA passed the first one
    assert lost == []


def test_an_unused_rack_allocates_nothing_beyond_itself() -> None:
    assert bytes_beyond_itself(lambda: Rack(0)) < NOTHING  # an idle connection sends nothing to log


def test_a_rack_first_used_or_restarted_behaves_as_always() -> None:
    rack = Rack(1000)
    assert rack.sent_at(rack.pos(1500)) == (-math.inf, False), "nothing sent yet"
    assert rack.detect(1000, 0.0, 1.0) == (0, None) and rack.lost_retransmissions(1000, 0.0, 1.0) == ([], None)
    rack.restart(1000)  # an RTO before anything was logged
    rack.sent(1000, 2000, 0.0, 1000)
    rack.sent(1000, 1500, 0.1, 1000)  # the first retransmission starts its own list
    assert rack.sent_at(rack.pos(1500)) == (0.1, True) and rack.sent_at(rack.pos(2000)) == (0.0, False)
    rack.restart(1000)
    assert rack.sent_at(rack.pos(2000)) == (-math.inf, False), "the log begins again"
    rack.sent(1000, 3000, 0.5, 1000)
    assert rack.sent_at(rack.pos(3000)) == (0.5, False)
