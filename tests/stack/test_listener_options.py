"""Options set on a listener are the ones its connections are born with, as Linux's accepted
sockets copy the listening one: on the SYN-ACK already, through SYN cookies and a migration."""

from __future__ import annotations

import pytest

from tests.stack.simpair import A_IP, make_pair
from usernet.stack import TcpConfig
from usernet.stack.tcp.frozen import decode_blob, encode_blob
from usernet.wire import ETHERTYPE_IPV4, SYN, parse_ethernet, parse_ipv4, parse_tcp

_SET = {"ttl": 7, "nodelay": True, "keepalive": True, "keepidle": 30.0, "rcvbuf": 100_000, "maxseg": 1000}


def _sent_by_a(pair) -> list[tuple[int, int]]:
    """(TTL, TCP flags) of every TCP segment A sent."""
    out = []
    for _, frame in pair.a_link.sent:
        eth = parse_ethernet(frame)
        if eth.ethertype == ETHERTYPE_IPV4 and (ip := parse_ipv4(eth.payload)).protocol == 6:
            out.append((ip.ttl, parse_tcp(ip.payload, ip.src, ip.dst).flags))
    return out


@pytest.mark.parametrize("cookies", [False, True], ids=["SYN queue", "SYN cookie"])
def test_accepted_connections_take_the_listeners_options(cookies: bool) -> None:
    pair = make_pair(tcp=TcpConfig(syn_backlog=0, syn_cookies=True) if cookies else TcpConfig())
    listener = pair.a.iface.tcp.listen((A_IP, 80))
    for name, value in _SET.items():
        listener.set_option(name, value)
    client = pair.b.iface.tcp.connect((A_IP, 80), pair.now())
    pair.sim.run(0.1)
    conn = listener.accept()
    assert conn is not None and client.state.name == "ESTABLISHED"
    options = conn.options
    assert {name: options[name] for name in ("ttl", "nodelay", "keepalive", "keepidle", "rcvbuf")} == {
        name: _SET[name] for name in ("ttl", "nodelay", "keepalive", "keepidle", "rcvbuf")
    }
    assert options["maxseg"] <= 1000
    conn.send(b"answer", pair.now())
    pair.sim.run(0.05)
    sent = _sent_by_a(pair)
    assert sent and all(ttl == 7 for ttl, _ in sent), sent  # the SYN-ACK too
    assert sent[0][1] & SYN
    assert pair.a.iface.stats()["tcp_syn_cookies_valid"] == (1 if cookies else 0)


def test_a_bad_value_is_refused_when_set_not_at_the_next_syn() -> None:
    listener = make_pair().a.iface.tcp.listen((A_IP, 80))
    for name, value in (("ttl", 300), ("keepcnt", 0), ("maxseg", 10), ("color", 1)):
        with pytest.raises(ValueError):
            listener.set_option(name, value)
    assert listener.options == {}


def test_a_listeners_options_move_with_it_and_an_older_blobs_maxseg_is_read() -> None:
    pair = make_pair()
    listener = pair.a.iface.tcp.listen((A_IP, 80))
    listener.set_option("ttl", 9)
    listener.set_option("maxseg", 1200)
    frozen = decode_blob(encode_blob({"listener": listener.freeze(pair.now())}))["listener"]
    listener.close(pair.now())
    moved = pair.a.iface.tcp.thaw_listener(frozen, pair.now())
    assert moved.options == {"ttl": 9, "maxseg": 1200}
    moved.close(pair.now())
    older = {key: value for key, value in frozen.items() if key != "options"} | {"maxseg": 1100}
    assert pair.a.iface.tcp.thaw_listener(older, pair.now()).options == {"maxseg": 1100}
