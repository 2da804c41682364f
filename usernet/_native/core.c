#include <string.h>
#include "core.h"
#include "bytes.h"

/* Ones' complement arithmetic is byte-order independent (RFC 1071, 2(B)): the bulk of
 * a buffer is summed as host-order words, folded, and swapped into network order once
 * at the end.  On x86-64 an AVX2 loop is picked at run time when the CPU has it (the
 * build stays generic: no -march flag), otherwise a portable 64-bit loop. */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define UN_HAVE_AVX2 1
/* Lanes grow by at most 2**32 per 64 bytes: 1 GiB chunks keep them far from overflow. */
#define UN_AVX2_CHUNK ((size_t)1 << 30)
#endif

static uint32_t fold16(uint64_t acc)
{
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint32_t)acc;
}

/* Host-order sum of len bytes (a multiple of 8): 64-bit words, carries counted aside. */
static uint32_t host_sum_portable(const uint8_t *data, size_t len)
{
    uint64_t s0 = 0, s1 = 0, c0 = 0, c1 = 0;
    while (len >= 16) {
        uint64_t w[2];
        memcpy(w, data, 16);
        s0 += w[0];
        c0 += s0 < w[0];
        s1 += w[1];
        c1 += s1 < w[1];
        data += 16;
        len -= 16;
    }
    if (len >= 8) {
        uint64_t w;
        memcpy(&w, data, 8);
        s0 += w;
        c0 += s0 < w;
    }
    uint64_t s = s0 + s1;
    uint64_t carries = c0 + c1 + (s < s0);
    /* A carry out of bit 63 is worth 2**64, which is 1 in ones' complement. */
    return fold16((s & 0xffffffffu) + (s >> 32) + carries);
}

#ifdef UN_HAVE_AVX2
/* Host-order sum of len bytes (a multiple of 64, at most UN_AVX2_CHUNK): 32-bit words
 * zero-extended into 64-bit lanes, so no carry can be lost. */
__attribute__((target("avx2"))) static uint64_t host_sum_avx2(const uint8_t *data, size_t len)
{
    const __m256i zero = _mm256_setzero_si256();
    __m256i acc0 = zero, acc1 = zero;
    for (; len >= 64; data += 64, len -= 64) {
        __m256i v0 = _mm256_loadu_si256((const __m256i *)data);
        __m256i v1 = _mm256_loadu_si256((const __m256i *)(data + 32));
        acc0 = _mm256_add_epi64(acc0, _mm256_unpacklo_epi32(v0, zero));
        acc1 = _mm256_add_epi64(acc1, _mm256_unpackhi_epi32(v0, zero));
        acc0 = _mm256_add_epi64(acc0, _mm256_unpacklo_epi32(v1, zero));
        acc1 = _mm256_add_epi64(acc1, _mm256_unpackhi_epi32(v1, zero));
    }
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, _mm256_add_epi64(acc0, acc1));
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}
#endif

/* Ones' complement sum of len bytes (a multiple of 8) in network order, folded. */
static uint32_t bulk_sum_network_order(const uint8_t *data, size_t len)
{
    uint64_t folded = 0;
#ifdef UN_HAVE_AVX2
    if (len >= 256 && __builtin_cpu_supports("avx2")) {
        while (len >= 64) {
            size_t chunk = len < UN_AVX2_CHUNK ? len & ~(size_t)63 : UN_AVX2_CHUNK;
            folded += fold16(host_sum_avx2(data, chunk));
            data += chunk;
            len -= chunk;
        }
    }
#endif
    uint32_t host = fold16(folded + host_sum_portable(data, len));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    host = ((host & 0xff) << 8) | (host >> 8);
#endif
    return host;
}

/* RFC 1071 ones' complement sum of `data` added to `initial`, folded to 16 bits
 * until no carry is left.  An odd trailing byte is padded with zero. */
uint32_t un_sum16(const uint8_t *data, size_t len, uint32_t initial)
{
    size_t bulk = len & ~(size_t)7;
    uint64_t acc = (uint64_t)initial + bulk_sum_network_order(data, bulk);
    data += bulk;
    len -= bulk;
    while (len >= 2) {
        acc += ((uint32_t)data[0] << 8) | data[1];
        data += 2;
        len -= 2;
    }
    if (len)
        acc += (uint32_t)data[0] << 8;
    return fold16(acc);
}

static uint64_t two_words_sum(const uint8_t *p)
{
    return be16(p) + be16(p + 2);
}

/* Unfolded sum of the IPv4 pseudo-header; `length` may exceed 16 bits (it folds). */
static uint64_t pseudo_v4(const uint8_t *src, const uint8_t *dst, uint8_t proto, uint64_t length)
{
    return two_words_sum(src) + two_words_sum(dst) + proto + length;
}

int32_t un_pseudo_sum_v4(const uint8_t *src, size_t src_len, const uint8_t *dst, size_t dst_len,
                         uint8_t proto, uint16_t length)
{
    if (src_len != 4 || dst_len != 4)
        return UN_BAD_IPV4_ADDRESS;
    return (int32_t)fold16(pseudo_v4(src, dst, proto, length));
}

/* Unfolded sum of the IPv6 pseudo-header (RFC 8200 section 8.1). */
static uint64_t pseudo_v6(const uint8_t *src, const uint8_t *dst, uint8_t next_header, uint64_t length)
{
    uint64_t acc = (uint64_t)next_header + length;
    for (int i = 0; i < 16; i += 4)
        acc += two_words_sum(src + i) + two_words_sum(dst + i);
    return acc;
}

int32_t un_pseudo_sum_v6(const uint8_t *src, size_t src_len, const uint8_t *dst, size_t dst_len,
                         uint8_t next_header, uint32_t length)
{
    if (src_len != 16 || dst_len != 16)
        return UN_BAD_IPV6_ADDRESS;
    return (int32_t)fold16(pseudo_v6(src, dst, next_header, length));
}

int32_t un_l4_checksum_v4(const uint8_t *src, size_t src_len, const uint8_t *dst, size_t dst_len,
                          uint8_t proto, const uint8_t *segment, size_t segment_len)
{
    if (src_len != 4 || dst_len != 4)
        return UN_BAD_IPV4_ADDRESS;
    uint32_t pseudo = fold16(pseudo_v4(src, dst, proto, segment_len));
    return (int32_t)(~un_sum16(segment, segment_len, pseudo) & 0xffff);
}

/* RFC 1624 equation 3: HC' = ~(~HC + ~m + m'). */
uint32_t un_checksum_update16(uint16_t csum, uint16_t old, uint16_t new_value)
{
    uint32_t acc = (uint32_t)(csum ^ 0xffff) + (old ^ 0xffff) + new_value;
    return ~fold16(acc) & 0xffff;
}

/* out[UN_TCP_FIELD_*] (core.h), then out[UN_TCP_FIELDS..] the SACK edges.  Returns the
 * number of SACK blocks, or a UN_TCP_* code with out[] zeroed.  The header is at most 60
 * bytes, so a SACK option is at most 38 bytes long and carries at most 4 blocks: out[]
 * cannot overflow. */
int un_tcp_parse(const uint8_t *p, size_t n, int64_t *out)
{
    memset(out, 0, UN_TCP_FIELDS * sizeof *out);
    if (n < 20)
        return UN_TCP_SHORT;
    size_t hlen = (size_t)(p[12] >> 4) * 4;
    if (hlen < 20)
        return UN_TCP_BAD_OFFSET;
    if (hlen > n)
        return UN_TCP_OFFSET_PAST_END;
    int64_t mss = -1, wscale = -1, ts_val = -1, ts_ecr = -1, sack_permitted = 0;
    int blocks = 0;
    size_t i = 20;
    while (i < hlen) {
        uint8_t kind = p[i];
        if (kind == 0)
            break;
        if (kind == 1) {
            i++;
            continue;
        }
        if (i + 1 >= hlen)
            return UN_TCP_BAD_OPTION;
        size_t olen = p[i + 1];
        if (olen < 2 || i + olen > hlen)
            return UN_TCP_BAD_OPTION;
        const uint8_t *v = p + i + 2;
        switch (kind) {
        case 2:
            if (olen == 4)
                mss = be16(v);
            break;
        case 3:
            if (olen == 3)
                wscale = v[0];
            break;
        case 4:
            if (olen == 2)
                sack_permitted = 1;
            break;
        case 5:
            if (olen >= 10 && (olen - 2) % 8 == 0) {
                blocks = (int)((olen - 2) / 8);
                for (int e = 0; e < 2 * blocks; e++)
                    out[UN_TCP_FIELDS + e] = be32(v + 4 * e);
            }
            break;
        case 8:
            if (olen == 10) {
                ts_val = be32(v);
                ts_ecr = be32(v + 4);
            }
            break;
        default:
            break;
        }
        i += olen;
    }
    out[UN_TCP_FIELD_SPORT] = be16(p);
    out[UN_TCP_FIELD_DPORT] = be16(p + 2);
    out[UN_TCP_FIELD_SEQ] = be32(p + 4);
    out[UN_TCP_FIELD_ACK] = be32(p + 8);
    out[UN_TCP_FIELD_HEADER_LENGTH] = (int64_t)hlen;
    out[UN_TCP_FIELD_FLAGS] = p[13] | ((p[12] & 1) << 8);
    out[UN_TCP_FIELD_WINDOW] = be16(p + 14);
    out[UN_TCP_FIELD_CHECKSUM] = be16(p + 16);
    out[UN_TCP_FIELD_URGENT] = be16(p + 18);
    out[UN_TCP_FIELD_MSS] = mss;
    out[UN_TCP_FIELD_WSCALE] = wscale;
    out[UN_TCP_FIELD_SACK_PERMITTED] = sack_permitted;
    out[UN_TCP_FIELD_TS_VAL] = ts_val;
    out[UN_TCP_FIELD_TS_ECR] = ts_ecr;
    return blocks;
}

/* What both receive predictions ask first: an unfragmented IPv4 packet of `proto` to
 * `mac` with a good header checksum and at least `l4_min` bytes beyond the header.
 * `link_len` is the link header in front of the IP header: 14 (Ethernet: the destination
 * MAC must be `mac` and the EtherType IPv4) or 0 (a bare IP packet, `mac` not consulted);
 * any other length is not a frame these functions know.
 * Sets the header and total lengths; 0 if the frame is anything else. */
static int rx_ipv4_header(const uint8_t *f, size_t n, const uint8_t *mac, size_t mac_len, size_t link_len,
                          uint8_t proto, size_t l4_min, size_t *ihl_out, size_t *total_out)
{
    if (link_len == UN_ETHERNET_HEADER) {
        if (mac_len != 6 || n < 14 || memcmp(f, mac, 6) != 0 || f[12] != 0x08 || f[13] != 0x00)
            return 0;
    } else if (link_len != 0)
        return 0;
    if (n < link_len + 20 + l4_min)
        return 0;
    const uint8_t *ip = f + link_len;
    size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
    size_t total = be16(ip + 2);
    if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl + l4_min || link_len + total > n || ip[9] != proto ||
        (be16(ip + 6) & 0x3fff) != 0 || un_sum16(ip, ihl, 0) != 0xffff)
        return 0;
    *ihl_out = ihl;
    *total_out = total;
    return 1;
}

/* Header prediction's first half: is `f` a well-formed TCP/IPv4 segment to `mac` whose
 * checksums hold (the TCP one is skipped when `trusted`)?  Then out[] is tcp_parse's, and
 * out[UN_RX_FIELD_*] the destination address, the flow key (source address, source
 * port, destination port) and the payload's offset and length in the frame; the return
 * is the number of SACK blocks.  Anything else (ARP, UDP, fragments, options it would
 * have to judge, broken frames, a CE mark in the ECN field, which TCP must see and the
 * parse result does not carry) returns UN_RX_OTHER, for the general path to classify
 * and count: this function never drops anything itself. */
int un_rx_ipv4_tcp(const uint8_t *f, size_t n, const uint8_t *mac, size_t mac_len, size_t link_len, int trusted,
                   int64_t *out)
{
    size_t ihl, total;
    if (!rx_ipv4_header(f, n, mac, mac_len, link_len, 6, 20, &ihl, &total))
        return UN_RX_OTHER;
    const uint8_t *ip = f + link_len;
    if ((ip[1] & 3) == 3) /* CE (RFC 3168) */
        return UN_RX_OTHER;
    const uint8_t *tcp = ip + ihl;
    size_t tcp_len = total - ihl;
    int blocks = un_tcp_parse(tcp, tcp_len, out);
    if (blocks < 0)
        return UN_RX_OTHER;
    if (!trusted && un_sum16(tcp, tcp_len, fold16(pseudo_v4(ip + 12, ip + 16, 6, tcp_len))) != 0xffff)
        return UN_RX_OTHER;
    size_t hlen = (size_t)out[UN_TCP_FIELD_HEADER_LENGTH];
    out[UN_RX_FIELD_DST] = be32(ip + 16);
    out[UN_RX_FIELD_FLOW_KEY] =
        (int64_t)(((uint64_t)be32(ip + 12) << 32) | ((uint64_t)be16(tcp) << 16) | be16(tcp + 2));
    out[UN_RX_FIELD_PAYLOAD_OFFSET] = (int64_t)(link_len + ihl + hlen);
    out[UN_RX_FIELD_PAYLOAD_LENGTH] = (int64_t)(tcp_len - hlen);
    return blocks;
}

/* The UDP twin of the above: a valid UDP/IPv4 datagram to `mac` (IPv4 header checksum,
 * no fragment, a UDP length that fits the packet, the UDP checksum unless zero or the link
 * vouched)?  out[]: source address, source port, destination address, destination port,
 * payload offset and length.  Anything else is UN_RX_OTHER, for the general path. */
int un_rx_ipv4_udp(const uint8_t *f, size_t n, const uint8_t *mac, size_t mac_len, size_t link_len, int trusted,
                   int64_t *out)
{
    size_t ihl, total;
    if (!rx_ipv4_header(f, n, mac, mac_len, link_len, 17, 8, &ihl, &total))
        return UN_RX_OTHER;
    const uint8_t *ip = f + link_len;
    const uint8_t *udp = ip + ihl;
    size_t length = be16(udp + 4);
    if (length < 8 || length > total - ihl)
        return UN_RX_OTHER;
    if (!trusted && be16(udp + 6) != 0
        && un_sum16(udp, length, fold16(pseudo_v4(ip + 12, ip + 16, 17, length))) != 0xffff)
        return UN_RX_OTHER;
    out[UN_RX_UDP_FIELD_SRC] = be32(ip + 12);
    out[UN_RX_UDP_FIELD_SPORT] = be16(udp);
    out[UN_RX_UDP_FIELD_DST] = be32(ip + 16);
    out[UN_RX_UDP_FIELD_DPORT] = be16(udp + 2);
    out[UN_RX_UDP_FIELD_PAYLOAD_OFFSET] = (int64_t)(link_len + ihl + 8);
    out[UN_RX_UDP_FIELD_PAYLOAD_LENGTH] = (int64_t)(length - 8);
    return 0;
}

/* What both IPv6 predictions ask first: an IPv6 packet to `mac` (`link_len` as for IPv4)
 * whose next header is `proto` itself (an extension header is the general path's to walk),
 * between unicast addresses, with at least `l4_min` bytes of payload inside the frame.
 * Returns the payload length (bytes after it, Ethernet padding, are not the packet's);
 * 0 if the frame is anything else, a jumbogram's zero length included. */
static size_t rx_ipv6_header(const uint8_t *f, size_t n, const uint8_t *mac, size_t mac_len, size_t link_len,
                             uint8_t proto, size_t l4_min)
{
    if (link_len == UN_ETHERNET_HEADER) {
        if (mac_len != 6 || n < 14 || memcmp(f, mac, 6) != 0 || f[12] != 0x86 || f[13] != 0xdd)
            return 0;
    } else if (link_len != 0)
        return 0;
    if (n < link_len + 40 + l4_min)
        return 0;
    const uint8_t *ip = f + link_len;
    size_t plen = be16(ip + 4);
    if ((ip[0] >> 4) != 6 || ip[6] != proto || plen < l4_min || link_len + 40 + plen > n || ip[8] == 0xff
        || ip[24] == 0xff)
        return 0;
    return plen;
}

/* rx_ipv4_tcp for IPv6: out[] is tcp_parse's, then out[UN_RX6_FIELD_*] the payload's
 * offset and length in the frame; numbers[] gets the destination address and the flow key
 * TcpLayer files IPv6 connections under, (1 << 160) | (source << 32) | (source port << 16)
 * | destination port, both as big-endian integers (too wide for out[]).  Returns the
 * number of SACK blocks, or UN_RX_OTHER for anything else (extension headers, a CE mark,
 * a bad checksum unless `trusted`, multicast, a broken packet): never a drop of its own. */
int un_rx_ipv6_tcp(const uint8_t *f, size_t n, const uint8_t *mac, size_t mac_len, size_t link_len, int trusted,
                   int64_t *out, uint8_t *numbers)
{
    size_t plen = rx_ipv6_header(f, n, mac, mac_len, link_len, 6, 20);
    if (!plen)
        return UN_RX_OTHER;
    const uint8_t *ip = f + link_len;
    if (((ip[1] >> 4) & 3) == 3) /* CE, the low bits of the traffic class (RFC 3168) */
        return UN_RX_OTHER;
    const uint8_t *tcp = ip + 40;
    int blocks = un_tcp_parse(tcp, plen, out);
    if (blocks < 0)
        return UN_RX_OTHER;
    if (!trusted && un_sum16(tcp, plen, fold16(pseudo_v6(ip + 8, ip + 24, 6, plen))) != 0xffff)
        return UN_RX_OTHER;
    size_t hlen = (size_t)out[UN_TCP_FIELD_HEADER_LENGTH];
    memcpy(numbers + UN_RX6_NUMBERS_DST, ip + 24, 16);
    uint8_t *key = numbers + UN_RX6_NUMBERS_FLOW_KEY;
    key[0] = 1;
    memcpy(key + 1, ip + 8, 16);
    memcpy(key + 17, tcp, 4);
    out[UN_RX6_FIELD_PAYLOAD_OFFSET] = (int64_t)(link_len + 40 + hlen);
    out[UN_RX6_FIELD_PAYLOAD_LENGTH] = (int64_t)(plen - hlen);
    return blocks;
}

/* rx_ipv4_udp for IPv6: out[] the ports and the payload's offset and length, numbers[] the
 * source and destination addresses.  The checksum is mandatory over IPv6 (RFC 8200 8.1): a
 * zero one is the general path's to count, as is anything else this does not take. */
int un_rx_ipv6_udp(const uint8_t *f, size_t n, const uint8_t *mac, size_t mac_len, size_t link_len, int trusted,
                   int64_t *out, uint8_t *numbers)
{
    size_t plen = rx_ipv6_header(f, n, mac, mac_len, link_len, 17, 8);
    if (!plen)
        return UN_RX_OTHER;
    const uint8_t *ip = f + link_len;
    const uint8_t *udp = ip + 40;
    size_t length = be16(udp + 4);
    if (length < 8 || length > plen || be16(udp + 6) == 0)
        return UN_RX_OTHER;
    if (!trusted && un_sum16(udp, length, fold16(pseudo_v6(ip + 8, ip + 24, 17, length))) != 0xffff)
        return UN_RX_OTHER;
    memcpy(numbers, ip + 8, 32);
    out[UN_RX6_UDP_FIELD_SPORT] = be16(udp);
    out[UN_RX6_UDP_FIELD_DPORT] = be16(udp + 2);
    out[UN_RX6_UDP_FIELD_PAYLOAD_OFFSET] = (int64_t)(link_len + 48);
    out[UN_RX6_UDP_FIELD_PAYLOAD_LENGTH] = (int64_t)(length - 8);
    return 0;
}

/* The TCP header (checksum zero), options and payload at t. */
static void tcp_segment(uint8_t *t, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint16_t flags,
                        uint16_t window, uint16_t urgent, const uint8_t *options, size_t options_len,
                        const uint8_t *payload, size_t payload_len)
{
    put16(t, sport);
    put16(t + 2, dport);
    put32(t + 4, seq);
    put32(t + 8, ack);
    t[12] = (uint8_t)(((5 + options_len / 4) << 4) | (flags >> 8));
    t[13] = (uint8_t)flags;
    put16(t + 14, window);
    put16(t + 16, 0);
    put16(t + 18, urgent);
    memmove(t + 20, options, options_len);
    memmove(t + 20 + options_len, payload, payload_len);
}

/* The frame builders of a route (usernet/stack/route.py): `link` is copied as it is (an
 * Ethernet header whose destination ARP fills later, or nothing on an IP-only link), then
 * the IP header template: IPv4 (20 bytes, version 4) gets its total length, ident, protocol
 * and checksum filled in, IPv6 (40 bytes, version 6) its payload length and next header.
 * The L4 checksum covers the matching pseudo-header.  Returns the frame length or a
 * UN_BUILD_* code; nothing is written on failure. */
static int32_t template_checks(size_t link_len, const uint8_t *ip, size_t ip_len, size_t l4_len, uint32_t csum_mode)
{
    if (link_len > UN_LINK_HEADER_MAX || !((ip_len == 20 && ip[0] == 0x45) || (ip_len == 40 && (ip[0] >> 4) == 6)))
        return UN_BUILD_BAD_TEMPLATE;
    if (csum_mode > UN_CSUM_PARTIAL)
        return UN_BUILD_BAD_CSUM_MODE;
    if (l4_len > (ip_len == 20 ? 0xffff - 20 : 0xffff))
        return UN_BUILD_TOO_LONG;
    return 0;
}

/* Link header and IP header from the templates at f; returns the L4 pseudo-header sum. */
static uint32_t headers_from_template(uint8_t *f, const uint8_t *link, size_t link_len, const uint8_t *tmpl,
                                      size_t ip_len, uint16_t ident, uint8_t proto, size_t l4_len)
{
    memmove(f, link, link_len);
    uint8_t *ip = f + link_len;
    memmove(ip, tmpl, ip_len);
    if (ip_len == 20) {
        put16(ip + 2, (uint32_t)(20 + l4_len));
        put16(ip + 4, ident);
        ip[9] = proto;
        put16(ip + 10, 0);
        put16(ip + 10, ~un_sum16(ip, 20, 0) & 0xffff);
        return fold16(pseudo_v4(ip + 12, ip + 16, proto, l4_len));
    }
    put16(ip + 4, (uint32_t)l4_len);
    ip[6] = proto;
    uint64_t acc = (uint64_t)proto + l4_len;
    for (int i = 8; i < 40; i += 4)
        acc += two_words_sum(ip + i);
    return fold16(acc);
}

static uint32_t l4_csum(const uint8_t *l4, size_t len, uint32_t pseudo, uint32_t csum_mode)
{
    return csum_mode == UN_CSUM_PARTIAL ? pseudo : (~un_sum16(l4, len, pseudo) & 0xffff);
}

int32_t un_build_tcp(uint8_t *buf, size_t buf_len, const uint8_t *link, size_t link_len, const uint8_t *ip,
                     size_t ip_len, uint16_t ident, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                     uint16_t flags, uint16_t window, uint16_t urgent, const uint8_t *options, size_t options_len,
                     const uint8_t *payload, size_t payload_len, uint32_t csum_mode)
{
    if ((options_len & 3) || options_len > 40)
        return UN_BUILD_BAD_OPTIONS;
    if (flags > 0x1ff)
        return UN_BUILD_BAD_FLAGS;
    size_t tcp_len = 20 + options_len + (payload_len > 0x20000 ? 0x20000 : payload_len);
    int32_t status = template_checks(link_len, ip, ip_len, tcp_len, csum_mode);
    if (status)
        return status;
    size_t head = link_len + ip_len;
    if (head + tcp_len > buf_len)
        return UN_BUILD_NO_ROOM;
    uint32_t pseudo = headers_from_template(buf, link, link_len, ip, ip_len, ident, 6, tcp_len);
    uint8_t *t = buf + head;
    tcp_segment(t, sport, dport, seq, ack, flags, window, urgent, options, options_len, payload, payload_len);
    put16(t + 16, l4_csum(t, tcp_len, pseudo, csum_mode));
    return (int32_t)(head + tcp_len);
}

int32_t un_build_udp(uint8_t *buf, size_t buf_len, const uint8_t *link, size_t link_len, const uint8_t *ip,
                     size_t ip_len, uint16_t ident, uint16_t sport, uint16_t dport, const uint8_t *payload,
                     size_t payload_len, uint32_t csum_mode)
{
    size_t udp_len = 8 + (payload_len > 0x20000 ? 0x20000 : payload_len);
    int32_t status = template_checks(link_len, ip, ip_len, udp_len, csum_mode);
    if (status)
        return status;
    size_t head = link_len + ip_len;
    if (head + udp_len > buf_len)
        return UN_BUILD_NO_ROOM;
    uint32_t pseudo = headers_from_template(buf, link, link_len, ip, ip_len, ident, 17, udp_len);
    uint8_t *u = buf + head;
    put16(u, sport);
    put16(u + 2, dport);
    put16(u + 4, (uint32_t)udp_len);
    put16(u + 6, 0);
    memmove(u + 8, payload, payload_len);
    uint32_t csum = l4_csum(u, udp_len, pseudo, csum_mode);
    /* A computed 0 would mean "no checksum" (RFC 768, RFC 8200 8.1): send its other form. */
    put16(u + 6, csum == 0 ? 0xffff : csum);
    return (int32_t)(head + udp_len);
}

/* un_build_ipv4_tcp/udp are the route builders above with an Ethernet header and an IPv4
 * template made from the addresses (a peer's frame in tests and tools, usernet/testing/drill):
 * one way to build a frame. `offset` past the buffer's end leaves no room, which the route
 * builder reports after its other checks (the order these always checked in). */
static int32_t eth_ipv4_templates(uint8_t *link, uint8_t *ip, size_t *at, size_t buf_len, uint32_t offset,
                                  const uint8_t *dst_mac, size_t dst_mac_len, const uint8_t *src_mac,
                                  size_t src_mac_len, const uint8_t *src_ip, size_t src_ip_len, const uint8_t *dst_ip,
                                  size_t dst_ip_len, uint8_t ttl, uint32_t csum_mode)
{
    if (dst_mac_len != 6 || src_mac_len != 6 || src_ip_len != 4 || dst_ip_len != 4)
        return UN_BUILD_BAD_ADDRESS;
    if (csum_mode > UN_CSUM_PARTIAL)
        return UN_BUILD_BAD_CSUM_MODE;
    memcpy(link, dst_mac, 6);
    memcpy(link + 6, src_mac, 6);
    put16(link + 12, 0x0800);
    memset(ip, 0, 20);
    ip[0] = 0x45; /* as route.py's ipv4_template: DF set, length, ident, protocol, checksum the builder's */
    put16(ip + 6, 0x4000);
    ip[8] = ttl;
    memcpy(ip + 12, src_ip, 4);
    memcpy(ip + 16, dst_ip, 4);
    *at = offset <= buf_len ? offset : buf_len;
    return 0;
}

int32_t un_build_ipv4_tcp(uint8_t *buf, size_t buf_len, uint32_t offset,
                          const uint8_t *dst_mac, size_t dst_mac_len, const uint8_t *src_mac, size_t src_mac_len,
                          const uint8_t *src_ip, size_t src_ip_len, const uint8_t *dst_ip, size_t dst_ip_len,
                          uint16_t ident, uint8_t ttl, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                          uint16_t flags, uint16_t window, uint16_t urgent,
                          const uint8_t *options, size_t options_len, const uint8_t *payload, size_t payload_len,
                          uint32_t csum_mode)
{
    uint8_t link[14], ip[20];
    size_t at;
    int32_t status = eth_ipv4_templates(link, ip, &at, buf_len, offset, dst_mac, dst_mac_len, src_mac, src_mac_len,
                                        src_ip, src_ip_len, dst_ip, dst_ip_len, ttl, csum_mode);
    if (status)
        return status;
    return un_build_tcp(buf + at, buf_len - at, link, sizeof link, ip, sizeof ip, ident, sport, dport, seq, ack,
                        flags, window, urgent, options, options_len, payload, payload_len, csum_mode);
}

int32_t un_build_ipv4_udp(uint8_t *buf, size_t buf_len, uint32_t offset,
                          const uint8_t *dst_mac, size_t dst_mac_len, const uint8_t *src_mac, size_t src_mac_len,
                          const uint8_t *src_ip, size_t src_ip_len, const uint8_t *dst_ip, size_t dst_ip_len,
                          uint16_t ident, uint8_t ttl, uint16_t sport, uint16_t dport,
                          const uint8_t *payload, size_t payload_len, uint32_t csum_mode)
{
    uint8_t link[14], ip[20];
    size_t at;
    int32_t status = eth_ipv4_templates(link, ip, &at, buf_len, offset, dst_mac, dst_mac_len, src_mac, src_mac_len,
                                        src_ip, src_ip_len, dst_ip, dst_ip_len, ttl, csum_mode);
    if (status)
        return status;
    return un_build_udp(buf + at, buf_len - at, link, sizeof link, ip, sizeof ip, ident, sport, dport, payload,
                        payload_len, csum_mode);
}
