"""Counters of the engine: plain integer attributes, read as a dict only on request."""

from __future__ import annotations


class Stats:
    """Every frame the interface receives ends up counted: delivered or dropped by reason.

    Slots rather than a dict keep the per-packet increment a single attribute store,
    and a misspelt counter name fails loudly instead of creating a new key.
    """

    __slots__ = (
        "arp_malformed",
        "arp_not_for_us",
        "arp_queue_full",
        "arp_replies_learned",
        "arp_requests_answered",
        "arp_superseded",
        "arp_unresolved",
        "eth_malformed",
        "eth_not_for_us",
        "eth_unknown_type",
        "icmp_bad_checksum",
        "icmp_echo_answered",
        "icmp_errors_rate_limited",
        "icmp_errors_received",
        "icmp_errors_sent",
        "icmp_malformed",
        "icmp_unhandled",
        "ipv4_bad_checksum",
        "ipv4_fragments",
        "ipv4_malformed",
        "ipv4_no_route",
        "ipv4_not_for_us",
        "ipv4_unknown_protocol",
        "rx_bytes",
        "rx_frames",
        "tcp_ack_too_old",
        "tcp_ack_unsent",
        "tcp_active_opens",
        "tcp_bad_checksum",
        "tcp_bad_syn_ack",
        "tcp_challenge_acks",
        "tcp_challenge_acks_limited",
        "tcp_conn_limit",
        "tcp_conn_timeouts",
        "tcp_delayed_acks",
        "tcp_fast_path",
        "tcp_fast_retransmits",
        "tcp_keepalive_probes",
        "tcp_listen_overflow",
        "tcp_malformed",
        "tcp_no_socket",
        "tcp_not_unicast",
        "tcp_ofo_segments",
        "tcp_out_of_window",
        "tcp_passive_opens",
        "tcp_paws_rejected",
        "tcp_rcv_overflow",
        "tcp_retransmits",
        "tcp_rst_received",
        "tcp_rst_sent",
        "tcp_rx_predicted",
        "tcp_rx_segments",
        "tcp_syn_cookies_invalid",
        "tcp_syn_cookies_sent",
        "tcp_syn_cookies_valid",
        "tcp_syn_queue_full",
        "tcp_timeouts",
        "tcp_tx_segments",
        "tcp_window_probes",
        "tx_bytes",
        "tx_frames",
        "udp_bad_checksum",
        "udp_delivered",
        "udp_malformed",
        "udp_no_socket",
        "udp_queue_full",
        "udp_rx_predicted",
        "udp_wrong_peer",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}
