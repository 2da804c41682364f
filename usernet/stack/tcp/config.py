"""TCP tunables: one frozen value, reachable as `InterfaceConfig.tcp`.

Defaults follow Linux where Linux and the RFCs differ in ways peers notice (RTO
floor, TIME_WAIT length, delayed-ACK time, retry counts), so that usernet behaves
like the kernel it talks to. Tests shrink the limits to reach the bounded paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from usernet.stack.tcp.rtt import RttEstimator

CONGESTION_CONTROLS = ("newreno", "cubic")


@dataclass(frozen=True)
class TcpConfig:
    """Every TCP knob of an interface; per-connection options start from these."""

    sndbuf: int = 262144
    sndbuf_max: int = 4194304  # a sender's buffer grows to 2 cwnd, up to this (Linux tcp_wmem[2]); <= sndbuf: off
    rcvbuf: int = 262144
    rcvbuf_max: int = 6291456  # receive autotuning grows a buffer up to this (Linux tcp_rmem[2]); <= rcvbuf: off
    window_scale: int = 7  # what we offer; Linux offers 7 with default buffers
    sack: bool = True
    timestamps: bool = True
    mss: int | None = None  # None: the link MTU minus 40 (RFC 6691)
    nodelay: bool = False
    delayed_ack: float = 0.04  # Linux's minimum delayed-ACK time
    # Quick-ACK mode (Linux: on, TCP_MAX_QUICKACKS = 16): at the start and after idle, up to this
    # many ACKs go at once. 0 (off) here keeps RFC 1122's delayed ACK from the first segment.
    quickack: int = 0
    initial_window: int = 10  # segments (RFC 6928)
    congestion: str = "newreno"
    abc_limit: int = 0  # slow start's growth per ACK in segments (RFC 3465 L); 0: every byte, as Linux
    hystart: bool = True  # CUBIC leaves the initial slow start by HyStart++, RFC 9406 (Linux: tcp_cubic hystart)
    slow_start_after_idle: bool = True  # cwnd restarts after an idle RTO (Linux tcp_slow_start_after_idle)
    rto_min: float = 0.2
    # Where rto_min applies: False, to the RTO (RFC 6298 (2.4): max(SRTT + 4*RTTVAR, rto_min)); True, to
    # the variance term as Linux's tcp_set_rto (SRTT + max(4*RTTVAR, rto_min)): the drill linux profile's.
    rto_min_variance: bool = False
    rto_max: float = 120.0
    rto_initial: float = 1.0
    syn_retries: int = 6  # Linux tcp_syn_retries
    synack_retries: int = 5  # Linux tcp_synack_retries
    retries: int = 15  # Linux tcp_retries2: data retransmissions before ETIMEDOUT
    msl: float = 30.0  # TIME_WAIT lasts 2*MSL = 60 s, as on Linux
    fin_timeout: float = 60.0  # FIN_WAIT_2 of a closed connection (Linux tcp_fin_timeout)
    keepalive: bool = False
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_count: int = 9
    user_timeout: float = 0.0  # 0: off (TCP_USER_TIMEOUT)
    max_backlog: int = 4096  # somaxconn: listen(backlog) is clamped to it
    syn_backlog: int = 256  # half-open connections per listener before SYN cookies
    syn_cookies: bool = True
    max_connections: int = 65536
    challenge_ack_limit: int = 1000  # per second, for the whole interface (RFC 5961 §7)
    invalid_ack_interval: float = 0.5  # per connection, ACKs to out-of-window segments and challenge ACKs
    # An ACK of data never sent: False answers it with an ACK (RFC 9293 §3.10.7.4, RFC 5961 §5.2; pure
    # ACKs at most once per invalid_ack_interval); True drops it as Linux's tcp_ack does
    # (TCP_ACK_UNSENT_DATA): silently in ESTABLISHED, with a challenge ACK in the other states.
    ack_unsent_silent: bool = False
    reset_limit: int = 1000  # per second, for the whole interface: RSTs answering segments to closed ports
    persist_max: float = 60.0
    # Loss recovery, each switchable as on Linux (the sysctl each stands for is in docs/tcp.md).
    rack: bool = True  # RACK time-based loss detection, RFC 8985 (tcp_recovery & 1)
    rack_static_reo_wnd: bool = False  # keep reo_wnd at min_RTT/4, no D-SACK adaptation (tcp_recovery & 2)
    tlp: bool = True  # tail loss probes, RFC 8985 §7 (tcp_early_retrans = 3); needs rack and SACK
    prr: bool = True  # proportional rate reduction in SACK recovery, RFC 6937 (Linux: always)
    limited_transmit: bool = True  # a new segment on each of the first two duplicate ACKs, RFC 3042
    dsack: bool = True  # send D-SACK blocks for duplicate segments and use received ones, RFC 2883 (tcp_dsack)
    frto: bool = True  # F-RTO, RFC 5682: the two ACKs after an RTO tell a spurious one, undone (tcp_frto); needs undo
    undo: bool = True  # undo the cwnd cut of spurious retransmissions and RTOs (D-SACK, timestamps)
    ecn: int = 2  # Linux tcp_ecn: 0 off, 1 ask for ECN on outgoing connections and accept it, 2 only accept it
    fastopen: int = 0  # Linux tcp_fastopen bits: 1 client, 2 server (RFC 7413); off by default, as Linux's server
    fastopen_key_period: float = 3600.0  # seconds each TFO cookie key serves; the previous one is still accepted

    def __post_init__(self) -> None:
        if self.sndbuf < 1 or self.rcvbuf < 1:
            raise ValueError("sndbuf and rcvbuf must be at least 1 byte")
        if self.rcvbuf_max < 0 or self.sndbuf_max < 0:
            raise ValueError(
                f"rcvbuf_max and sndbuf_max are sizes in bytes (0: no autotuning), got {self.rcvbuf_max}"
                f" and {self.sndbuf_max}"
            )
        if not 0 <= self.window_scale <= 14:
            raise ValueError(f"window_scale must be 0..14 (RFC 7323), got {self.window_scale}")
        if self.mss is not None and not 64 <= self.mss <= 65495:
            raise ValueError(f"mss must be 64..65495 or None (from the MTU), got {self.mss}")
        if self.congestion not in CONGESTION_CONTROLS:
            raise ValueError(f"congestion must be one of {', '.join(CONGESTION_CONTROLS)}, got {self.congestion!r}")
        if self.delayed_ack < 0 or self.msl < 0 or self.fin_timeout < 0:
            raise ValueError("delayed_ack, msl and fin_timeout are durations >= 0 seconds")
        if self.abc_limit < 0:
            raise ValueError(f"abc_limit is a number of segments >= 0 (0: no limit), got {self.abc_limit}")
        if self.ecn not in (0, 1, 2):
            raise ValueError(f"ecn is 0 (off), 1 (ask and accept) or 2 (accept only), as tcp_ecn; got {self.ecn}")
        if not 0 <= self.fastopen <= 3:
            raise ValueError(f"fastopen is a bitmask, 1 client and 2 server, as tcp_fastopen; got {self.fastopen}")
        if self.fastopen_key_period <= 0:
            raise ValueError(f"fastopen_key_period is a duration > 0 seconds, got {self.fastopen_key_period}")
        if self.syn_retries < 1 or self.synack_retries < 1 or self.retries < 1:
            raise ValueError("syn_retries, synack_retries and retries must be at least 1")

    @cached_property
    def rtt_prototype(self) -> RttEstimator:
        """The RTT estimator every connection copies (`RttEstimator.fresh`), made at the first use.

        Made once per config, where its values come from: the estimator's checks of rto_min and
        rto_max run here, at the first connection as before, and no longer once per connection.
        Not a field: it is derived from the fields, so equality, hashing and `replace` ignore it.
        """
        return RttEstimator(
            rto_min=self.rto_min,
            rto_max=self.rto_max,
            rto_initial=self.rto_initial,
            rto_min_variance=self.rto_min_variance,
        )
