"""Counters of the engine: plain integer attributes, read as a dict only on request."""

from __future__ import annotations


class Stats:
    """Every frame the interface receives ends up counted: delivered or dropped by reason.

    Slots rather than a dict keep the per-packet increment a single attribute store,
    and a misspelt counter name fails loudly instead of creating a new key.
    """

    __slots__ = (
        "rx_frames",
        "rx_bytes",
        "tx_frames",
        "tx_bytes",
        "eth_malformed",
        "eth_not_for_us",
        "eth_unknown_type",
        "arp_malformed",
        "arp_not_for_us",
        "arp_requests_answered",
        "arp_replies_learned",
        "arp_queue_full",
        "arp_unresolved",
        "ipv4_malformed",
        "ipv4_bad_checksum",
        "ipv4_not_for_us",
        "ipv4_fragments",
        "ipv4_unknown_protocol",
        "ipv4_no_route",
        "icmp_malformed",
        "icmp_bad_checksum",
        "icmp_echo_answered",
        "icmp_errors_sent",
        "icmp_errors_rate_limited",
        "icmp_errors_received",
        "icmp_unhandled",
        "udp_malformed",
        "udp_bad_checksum",
        "udp_delivered",
        "udp_no_socket",
        "udp_queue_full",
        "udp_wrong_peer",
        "udp_rx_predicted",
        "tcp_rx_segments",
        "tcp_rx_predicted",
        "tcp_tx_segments",
        "tcp_malformed",
        "tcp_bad_checksum",
        "tcp_not_unicast",
        "tcp_no_socket",
        "tcp_rst_sent",
        "tcp_rst_received",
        "tcp_retransmits",
        "tcp_fast_retransmits",
        "tcp_timeouts",
        "tcp_conn_timeouts",
        "tcp_challenge_acks",
        "tcp_challenge_acks_limited",
        "tcp_paws_rejected",
        "tcp_out_of_window",
        "tcp_ack_unsent",
        "tcp_ack_too_old",
        "tcp_bad_syn_ack",
        "tcp_ofo_segments",
        "tcp_rcv_overflow",
        "tcp_fast_path",
        "tcp_window_probes",
        "tcp_keepalive_probes",
        "tcp_delayed_acks",
        "tcp_syn_cookies_sent",
        "tcp_syn_cookies_valid",
        "tcp_syn_cookies_invalid",
        "tcp_listen_overflow",
        "tcp_syn_queue_full",
        "tcp_conn_limit",
        "tcp_active_opens",
        "tcp_passive_opens",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}
