/* The C core of usernet: functions with a pure-Python twin in pure.py.
 *
 * One error convention (usernet/native.py's docstring says it for Python): a function that
 * can fail returns a negative UN_* status code, and anything >= 0 is its result.  The codes
 * are one numbering, their reasons written once in pure.py (ERRORS); tests check that the
 * numbers here equal those.  UN_RX_OTHER is not an error: it is the receive predictions'
 * "not mine, take the general path". */
#ifndef USERNET_CORE_H
#define USERNET_CORE_H

#include <stdint.h>
#include <stddef.h>

#define UN_TCP_SHORT (-1)
#define UN_TCP_BAD_OFFSET (-2)
#define UN_TCP_OFFSET_PAST_END (-3)
#define UN_TCP_BAD_OPTION (-4)

/* The parse results' int64_t out[] arrays, by index.  usernet/_native/layout.py names the
 * fields of the tuples the façade makes of them; tests/test_native_layout.py checks that
 * these indices and those names agree. */
/* tcp_parse's out[]: 15 fields, then up to 4 SACK blocks as 8 edges. */
#define UN_TCP_FIELD_STATUS 0
#define UN_TCP_FIELD_SPORT 1
#define UN_TCP_FIELD_DPORT 2
#define UN_TCP_FIELD_SEQ 3
#define UN_TCP_FIELD_ACK 4
#define UN_TCP_FIELD_HEADER_LENGTH 5
#define UN_TCP_FIELD_FLAGS 6
#define UN_TCP_FIELD_WINDOW 7
#define UN_TCP_FIELD_CHECKSUM 8
#define UN_TCP_FIELD_URGENT 9
#define UN_TCP_FIELD_MSS 10
#define UN_TCP_FIELD_WSCALE 11
#define UN_TCP_FIELD_SACK_PERMITTED 12
#define UN_TCP_FIELD_TS_VAL 13
#define UN_TCP_FIELD_TS_ECR 14
#define UN_TCP_FIELDS 15
#define UN_TCP_OUT_LEN 23
/* rx_ipv4_tcp's out[]: tcp_parse's, then these. */
#define UN_RX_FIELD_DST 23
#define UN_RX_FIELD_FLOW_KEY 24
#define UN_RX_FIELD_PAYLOAD_OFFSET 25
#define UN_RX_FIELD_PAYLOAD_LENGTH 26
#define UN_RX_OUT_LEN 27
#define UN_RX_OTHER (-1)
/* rx_ipv4_udp's out[]. */
#define UN_RX_UDP_FIELD_SRC 0
#define UN_RX_UDP_FIELD_SPORT 1
#define UN_RX_UDP_FIELD_DST 2
#define UN_RX_UDP_FIELD_DPORT 3
#define UN_RX_UDP_FIELD_PAYLOAD_OFFSET 4
#define UN_RX_UDP_FIELD_PAYLOAD_LENGTH 5
#define UN_RX_UDP_OUT_LEN 6
/* rx_ipv6_tcp's out[] is tcp_parse's, then these; its 128-bit numbers (the destination
 * address, the flow key) go into a second array, of bytes, as big-endian integers. */
#define UN_RX6_FIELD_PAYLOAD_OFFSET 23
#define UN_RX6_FIELD_PAYLOAD_LENGTH 24
#define UN_RX6_OUT_LEN 25
#define UN_RX6_NUMBERS_DST 0
#define UN_RX6_NUMBERS_FLOW_KEY 16
#define UN_RX6_NUMBERS_LEN 37
/* rx_ipv6_udp's out[], and its numbers[]: source address, then destination address. */
#define UN_RX6_UDP_FIELD_SPORT 0
#define UN_RX6_UDP_FIELD_DPORT 1
#define UN_RX6_UDP_FIELD_PAYLOAD_OFFSET 2
#define UN_RX6_UDP_FIELD_PAYLOAD_LENGTH 3
#define UN_RX6_UDP_OUT_LEN 4
#define UN_RX6_UDP_NUMBERS_LEN 32

#define UN_CSUM_FULL 0
#define UN_CSUM_PARTIAL 1

#define UN_BUILD_NO_ROOM (-10)
#define UN_BUILD_BAD_OPTIONS (-11)
#define UN_BUILD_TOO_LONG (-12)
#define UN_BUILD_BAD_ADDRESS (-13)
#define UN_BUILD_BAD_FLAGS (-14)
#define UN_BUILD_BAD_CSUM_MODE (-15)
#define UN_BUILD_BAD_TEMPLATE (-16)
/* The longest link header a route may put in front of the IP header. */
#define UN_LINK_HEADER_MAX 64
/* The link header the receive and offload functions parse (their `link_len`): Ethernet's;
 * 0 instead means none, a bare IP packet (an IP-only link such as a TUN). */
#define UN_ETHERNET_HEADER 14

#define UN_GSO_NOT_TCP (-20)
#define UN_GRO_NO_ROOM (-21)

#define UN_BAD_IPV4_ADDRESS (-30)
#define UN_BAD_IPV6_ADDRESS (-31)

uint32_t un_sum16(const uint8_t *data, size_t len, uint32_t initial);
int32_t un_pseudo_sum_v4(const uint8_t *src, size_t src_len, const uint8_t *dst, size_t dst_len,
                         uint8_t proto, uint16_t length);
int32_t un_pseudo_sum_v6(const uint8_t *src, size_t src_len, const uint8_t *dst, size_t dst_len,
                         uint8_t next_header, uint32_t length);
int32_t un_l4_checksum_v4(const uint8_t *src, size_t src_len, const uint8_t *dst, size_t dst_len,
                          uint8_t proto, const uint8_t *segment, size_t segment_len);
uint32_t un_checksum_update16(uint16_t csum, uint16_t old, uint16_t new_value);
/* Returns the SACK blocks in out[] (>= 0) or a UN_TCP_* code (out[] all zero). */
int un_tcp_parse(const uint8_t *buf, size_t len, int64_t *out);
/* `link_len`: the link header in front of the IP header, 14 (Ethernet) or 0 (bare IP). */
int un_rx_ipv4_tcp(const uint8_t *frame, size_t len, const uint8_t *mac, size_t mac_len, size_t link_len, int trusted,
                   int64_t *out);
int un_rx_ipv4_udp(const uint8_t *frame, size_t len, const uint8_t *mac, size_t mac_len, size_t link_len, int trusted,
                   int64_t *out);
int un_rx_ipv6_tcp(const uint8_t *frame, size_t len, const uint8_t *mac, size_t mac_len, size_t link_len, int trusted,
                   int64_t *out, uint8_t *numbers);
int un_rx_ipv6_udp(const uint8_t *frame, size_t len, const uint8_t *mac, size_t mac_len, size_t link_len, int trusted,
                   int64_t *out, uint8_t *numbers);
int32_t un_build_ipv4_tcp(uint8_t *buf, size_t buf_len, uint32_t offset,
                          const uint8_t *dst_mac, size_t dst_mac_len, const uint8_t *src_mac, size_t src_mac_len,
                          const uint8_t *src_ip, size_t src_ip_len, const uint8_t *dst_ip, size_t dst_ip_len,
                          uint16_t ident, uint8_t ttl, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                          uint16_t flags, uint16_t window, uint16_t urgent,
                          const uint8_t *options, size_t options_len, const uint8_t *payload, size_t payload_len,
                          uint32_t csum_mode);
int32_t un_build_ipv4_udp(uint8_t *buf, size_t buf_len, uint32_t offset,
                          const uint8_t *dst_mac, size_t dst_mac_len, const uint8_t *src_mac, size_t src_mac_len,
                          const uint8_t *src_ip, size_t src_ip_len, const uint8_t *dst_ip, size_t dst_ip_len,
                          uint16_t ident, uint8_t ttl, uint16_t sport, uint16_t dport,
                          const uint8_t *payload, size_t payload_len, uint32_t csum_mode);
/* A route's frames: link header and IP header template (IPv4 or IPv6), then TCP or UDP. */
int32_t un_build_tcp(uint8_t *buf, size_t buf_len, const uint8_t *link, size_t link_len, const uint8_t *ip,
                     size_t ip_len, uint16_t ident, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                     uint16_t flags, uint16_t window, uint16_t urgent, const uint8_t *options, size_t options_len,
                     const uint8_t *payload, size_t payload_len, uint32_t csum_mode);
int32_t un_build_udp(uint8_t *buf, size_t buf_len, const uint8_t *link, size_t link_len, const uint8_t *ip,
                     size_t ip_len, uint16_t ident, uint16_t sport, uint16_t dport, const uint8_t *payload,
                     size_t payload_len, uint32_t csum_mode);
/* offload.c: software GSO and GRO, on frames with a `link_len` header as above. */
int32_t un_gso_write(int fd, const uint8_t *frame, size_t len, uint32_t gso_size, uint32_t link_len, int64_t *out);
int32_t un_gro_read(int fd, uint8_t *buf, size_t buf_len, uint32_t frame_cap, uint32_t max_frames, uint32_t link_len,
                    uint32_t merge_acks, int32_t *spans, int64_t *out);

#endif
