"""Counters of the engine: plain integer attributes, read as a dict only on request."""

from __future__ import annotations


class Stats:
    """Every frame the interface receives ends up counted: delivered or dropped by reason.

    Slots rather than a dict keep the per-packet increment a single attribute store,
    and a misspelt counter name fails loudly instead of creating a new key. The
    annotations below are the one list of counters: the slots are made from them.
    """

    arp_malformed: int
    arp_not_for_us: int
    arp_queue_full: int
    arp_replies_learned: int
    arp_requests_answered: int
    arp_superseded: int
    arp_unresolved: int
    dad_duplicates: int
    eth_malformed: int
    eth_not_for_us: int
    eth_unknown_type: int
    icmp_bad_checksum: int
    icmp_echo_answered: int
    icmp_errors_rate_limited: int
    icmp_errors_received: int
    icmp_errors_sent: int
    icmp_malformed: int
    icmp_unhandled: int
    icmpv6_bad_checksum: int
    icmpv6_echo_answered: int
    icmpv6_errors_rate_limited: int
    icmpv6_errors_received: int
    icmpv6_errors_sent: int
    icmpv6_malformed: int
    icmpv6_unhandled: int
    ip_unknown_version: int
    ipv4_bad_checksum: int
    ipv4_fragments: int
    ipv4_malformed: int
    ipv4_no_route: int
    ipv4_not_for_us: int
    ipv4_pmtu_ignored: int
    ipv4_pmtu_lowered: int
    ipv4_unknown_protocol: int
    ipv6_bad_source: int
    ipv6_fragments: int
    ipv6_malformed: int
    ipv6_no_next_header: int
    ipv6_no_route: int
    ipv6_not_for_us: int
    ipv6_param_problems: int
    ipv6_pmtu_lowered: int
    ipv6_unknown_protocol: int
    nd_address_conflicts: int
    nd_addresses_full: int
    nd_adverts_learned: int
    nd_cache_full: int
    nd_dns_full: int
    nd_domains_full: int
    nd_ip_only_ignored: int
    nd_malformed: int
    nd_prefixes_full: int
    nd_queue_full: int
    nd_redirects_ignored: int
    nd_router_adverts: int
    nd_routers_full: int
    nd_solicits_answered: int
    nd_unresolved: int
    pmtu_evicted: int
    rx_bytes: int
    rx_frames: int
    tcp_ack_too_old: int
    tcp_ack_unsent: int
    tcp_active_opens: int
    tcp_bad_checksum: int
    tcp_bad_syn_ack: int
    tcp_challenge_acks: int
    tcp_challenge_acks_limited: int
    tcp_conn_limit: int
    tcp_conn_timeouts: int
    tcp_cwnd_restarts: int
    tcp_delayed_acks: int
    tcp_dsack_received: int
    tcp_dsack_sent: int
    tcp_ecn_ce_received: int
    tcp_ecn_cwr_received: int
    tcp_ecn_negotiated: int
    tcp_ecn_reductions: int
    tcp_fast_path: int
    tcp_fast_retransmits: int
    tcp_fastopen_active: int
    tcp_fastopen_active_fail: int
    tcp_fastopen_cookie_invalid: int
    tcp_fastopen_cookie_requests: int
    tcp_fastopen_overflow: int
    tcp_fastopen_passive: int
    tcp_hystart_css: int
    tcp_hystart_exits: int
    tcp_hystart_spurious: int
    tcp_keepalive_probes: int
    tcp_limited_transmits: int
    tcp_listen_overflow: int
    tcp_lost_retransmits: int
    tcp_malformed: int
    tcp_no_socket: int
    tcp_not_unicast: int
    tcp_ofo_segments: int
    tcp_out_of_window: int
    tcp_passive_opens: int
    tcp_paws_rejected: int
    tcp_rack_losses: int
    tcp_rcv_overflow: int
    tcp_rcvbuf_grown: int
    tcp_retransmits: int
    tcp_rst_limited: int
    tcp_rst_received: int
    tcp_rst_sent: int
    tcp_rx_predicted: int
    tcp_rx_segments: int
    tcp_sndbuf_grown: int
    tcp_spurious_rtos: int
    tcp_syn_cookies_invalid: int
    tcp_syn_cookies_sent: int
    tcp_syn_cookies_valid: int
    tcp_syn_draining: int
    tcp_syn_queue_full: int
    tcp_timeouts: int
    tcp_tlp_probes: int
    tcp_tlp_recoveries: int
    tcp_tx_segments: int
    tcp_undos: int
    tcp_window_probes: int
    tx_bytes: int
    tx_frames: int
    udp_bad_checksum: int
    udp_delivered: int
    udp_malformed: int
    udp_no_socket: int
    udp_queue_full: int
    udp_rx_predicted: int
    udp_wrong_peer: int

    __slots__ = tuple(__annotations__)

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}
