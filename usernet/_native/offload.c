#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include "core.h"
#include "bytes.h"

/* Software GSO: what a NIC does with a TSO frame, done just before the frames reach a
 * link that has no such offload.  The stack builds one big TCP frame, over IPv4 or over
 * IPv6 without extension headers, whose checksum field holds the pseudo-header sum
 * (CSUM_PARTIAL); it is cut into segments of at most gso_size payload bytes as Linux's
 * tcp_gso_segment cuts them: the headers are copied, the IPv4 identification counts up
 * (IPv6 has none), the sequence number advances, FIN and PSH stay on the last segment
 * only, and every checksum is completed.  The payload is never copied on the write path:
 * each segment leaves as a writev of its header and its slice. */

#define TCP_FIN 0x01
#define TCP_PSH 0x08

struct gso_frame {
    size_t ip;      /* offset of the IP header */
    int v6;         /* whether it is IPv6's (40 bytes, no checksum, no identification) */
    size_t tcp;     /* offset of the TCP header */
    size_t headers; /* bytes of headers in front of the payload */
    size_t payload; /* bytes of payload */
    size_t step;    /* payload bytes per segment */
};

/* The IP version behind `link_len` bytes of link header these functions know, as that
 * header and the packet's version nibble agree on it: an Ethernet header (14) whose
 * EtherType is IPv4's or IPv6's, or none (0: a bare IP packet); 0 for anything else. */
static int ip_version(const uint8_t *f, size_t len, size_t link_len)
{
    if (len <= link_len)
        return 0;
    int version = f[link_len] >> 4;
    if (link_len == UN_ETHERNET_HEADER) {
        uint32_t type = be16(f + 12);
        if (!((type == 0x0800 && version == 4) || (type == 0x86dd && version == 6)))
            return 0;
    } else if (link_len != 0)
        return 0;
    return version == 4 || version == 6 ? version : 0;
}

/* The TCP pseudo-header sum of the packet whose IP header is at ip, for `tcp_len` bytes. */
static uint32_t tcp_pseudo(const uint8_t *ip, int v6, size_t tcp_len)
{
    if (v6)
        return (uint32_t)un_pseudo_sum_v6(ip + 8, 16, ip + 24, 16, 6, (uint32_t)tcp_len);
    return (uint32_t)un_pseudo_sum_v4(ip + 12, 4, ip + 16, 4, 6, (uint16_t)tcp_len);
}

static int32_t gso_layout(const uint8_t *f, size_t len, uint32_t gso_size, size_t link, struct gso_frame *g)
{
    int version = ip_version(f, len, link);
    size_t ihl;
    if (version == 4) {
        ihl = (size_t)(f[link] & 0x0f) * 4;
        if (len < link + 40 || f[link + 9] != 6 || ihl < 20 || be16(f + link + 2) != len - link)
            return UN_GSO_NOT_TCP;
    } else if (version == 6) {
        ihl = 40;
        if (len < link + 60 || f[link + 6] != 6 || be16(f + link + 4) != len - link - 40)
            return UN_GSO_NOT_TCP;
    } else
        return UN_GSO_NOT_TCP;
    if (link + ihl + 20 > len)
        return UN_GSO_NOT_TCP;
    size_t thl = (size_t)(f[link + ihl + 12] >> 4) * 4;
    if (thl < 20 || link + ihl + thl > len)
        return UN_GSO_NOT_TCP;
    g->ip = link;
    g->v6 = version == 6;
    g->tcp = link + ihl;
    g->headers = link + ihl + thl;
    g->payload = len - g->headers;
    g->step = (gso_size && gso_size < g->payload) ? gso_size : g->payload;
    return 0;
}

static size_t gso_count(const struct gso_frame *g)
{
    return g->payload ? (g->payload + g->step - 1) / g->step : 1;
}

/* The headers of segment `i` (payload bytes [off, off + n)) into h, checksums complete. */
static void gso_header(uint8_t *h, const uint8_t *f, const struct gso_frame *g, size_t i, size_t off, size_t n)
{
    memcpy(h, f, g->headers);
    uint8_t *ip = h + g->ip;
    uint8_t *tcp = h + g->tcp;
    size_t tcp_len = g->headers - g->tcp + n;
    if (g->v6)
        put16(ip + 4, (uint32_t)tcp_len);
    else {
        put16(ip + 2, (uint32_t)(g->headers - g->ip + n));
        put16(ip + 4, be16(f + g->ip + 4) + (uint32_t)i);
        put16(ip + 10, 0);
        put16(ip + 10, ~un_sum16(ip, g->tcp - g->ip, 0) & 0xffff);
    }
    put32(tcp + 4, be32(f + g->tcp + 4) + (uint32_t)off);
    if (off + n < g->payload)
        tcp[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
    put16(tcp + 16, 0);
    uint32_t sum = tcp_pseudo(ip, g->v6, tcp_len);
    sum = un_sum16(tcp, g->headers - g->tcp, sum);
    sum = un_sum16(f + g->headers + off, n, sum);
    put16(tcp + 16, ~sum & 0xffff);
}

/* Returns the segments written (or UN_GSO_NOT_TCP); out[]: the segments the frame makes,
 * the bytes written, and the errno of the write that failed (0 if none did). */
int32_t un_gso_write(int fd, const uint8_t *frame, size_t len, uint32_t gso_size, uint32_t link_len, int64_t *out)
{
    struct gso_frame g;
    int32_t status = gso_layout(frame, len, gso_size, link_len, &g);
    out[0] = out[1] = out[2] = 0;
    if (status)
        return status;
    size_t count = gso_count(&g);
    out[0] = (int64_t)count;
    uint8_t header[14 + 60 + 60]; /* the longest link header gso_layout takes, IPv4 (or IPv6) and TCP */
    size_t off = 0;
    for (size_t i = 0; i < count; i++, off += g.step) {
        size_t n = g.payload - off < g.step ? g.payload - off : g.step;
        gso_header(header, frame, &g, i, off, n);
        struct iovec iov[2] = {{header, g.headers}, {(void *)(frame + g.headers + off), n}};
        if (writev(fd, iov, n ? 2 : 1) < 0) {
            out[2] = errno;
            return (int32_t)i;
        }
        out[1] += (int64_t)(g.headers + n);
    }
    return (int32_t)count;
}

/* Software GRO: the receive-side twin of the above, what a NIC's GRO does before Linux
 * sees the frames.  Frames are read back to back into one buffer; a TCP segment that
 * continues the frame before it (the next sequence number, everything else in its
 * headers equal, no PSH on the frame being extended, as tcp_gro_receive requires) has
 * its payload moved onto that frame, which ends as one segment of up to a 64 KB IP packet
 * (IPv4, or IPv6 without extension headers) with fresh checksums.  Only segments whose
 * own checksums are valid are ever joined, so a corrupt one cannot hide inside a merged
 * frame with a good checksum. */

#define TCP_ACK 0x10

/* Where a frame's IP packet ends (the frame may carry Ethernet padding after it), for a
 * frame with `l` bytes of link header and an `iphl`-byte IP header (20: IPv4, 40: IPv6). */
static size_t ip_end(const uint8_t *f, size_t l, size_t iphl)
{
    return iphl == 20 ? l + be16(f + l + 2) : l + 40 + be16(f + l + 4);
}

/* The IP header length of a frame GRO may join with its neighbours, its payload bytes in
 * *payload; 0 if it may not: only a 20-byte IPv4 header or an IPv6 one whose next header
 * is TCP, no fragment, a TCP data segment with only ACK (or ACK and PSH) set. */
static size_t gro_header(const uint8_t *f, size_t n, size_t l, size_t *payload)
{
    int version = ip_version(f, n, l);
    const uint8_t *ip = f + l;
    size_t iphl;
    if (version == 4) {
        if (n < l + 41 || ip[0] != 0x45 || ip[9] != 6 || (be16(ip + 6) & 0x3fff))
            return 0;
        iphl = 20;
    } else if (version == 6) {
        if (n < l + 61 || ip[6] != 6)
            return 0;
        iphl = 40;
    } else
        return 0;
    size_t end = ip_end(f, l, iphl);
    const uint8_t *tcp = ip + iphl;
    size_t thl = (size_t)(tcp[12] >> 4) * 4;
    if (end > n || thl < 20 || l + iphl + thl >= end || (tcp[12] & 0x0f)
        || (tcp[13] != TCP_ACK && tcp[13] != (TCP_ACK | TCP_PSH)) || (iphl == 20 && un_sum16(ip, 20, 0) != 0xffff)
        || un_sum16(tcp, end - l - iphl, tcp_pseudo(ip, iphl == 40, end - l - iphl)) != 0xffff)
        return 0;
    *payload = end - l - iphl - thl;
    return iphl;
}

/* May segment f (a gro_header frame with an `iphl`-byte IP header) extend frame a of
 * `length` bytes and `payload` payload, whose IP header is as long?  Equal: the link header
 * and, of IPv4, version to TOS, flags to protocol and the addresses; of IPv6 version,
 * traffic class and flow label, next header, hop limit and the addresses; the ports, the
 * ACK, header length, window, urgent pointer and options. */
static int gro_joins(const uint8_t *a, size_t length, size_t payload, const uint8_t *f, size_t l, size_t iphl)
{
    const uint8_t *ta = a + l + iphl, *tf = f + l + iphl;
    size_t thl = (size_t)(tf[12] >> 4) * 4;
    size_t more = ip_end(f, l, iphl) - l - iphl - thl;
    int same_ip = iphl == 20 ? memcmp(a, f, l + 2) == 0 && memcmp(a + l + 6, f + l + 6, 4) == 0
                                   && memcmp(a + l + 12, f + l + 12, 8) == 0
                             : memcmp(a, f, l + 4) == 0 && memcmp(a + l + 6, f + l + 6, 34) == 0;
    return ta[13] == TCP_ACK && same_ip && memcmp(ta, tf, 4) == 0 && be32(tf + 4) == (uint32_t)(be32(ta + 4) + payload)
           && memcmp(ta + 8, tf + 8, 5) == 0 && memcmp(ta + 14, tf + 14, 2) == 0
           && memcmp(ta + 18, tf + 18, thl - 18) == 0 && length + more <= l + 65535;
}

static void gro_close(uint8_t *a, size_t length, size_t l, size_t iphl)
{
    uint8_t *ip = a + l, *tcp = a + l + iphl;
    size_t tcp_len = length - l - iphl;
    if (iphl == 40)
        put16(ip + 4, (uint32_t)tcp_len);
    else {
        put16(ip + 2, (uint32_t)(length - l));
        put16(ip + 10, 0);
        put16(ip + 10, ~un_sum16(ip, 20, 0) & 0xffff);
    }
    put16(tcp + 16, 0);
    put16(tcp + 16, ~un_sum16(tcp, tcp_len, tcp_pseudo(ip, iphl == 40, tcp_len)) & 0xffff);
}

/* Returns the frames in buf, their (offset, length) pairs in spans[]; out[]: frames read,
 * frames joined onto another, errno of a read that failed with other than EAGAIN (or 0). */
int32_t un_gro_read(int fd, uint8_t *buf, size_t buf_len, uint32_t frame_cap, uint32_t max_frames, uint32_t link_len,
                    int32_t *spans, int64_t *out)
{
    out[0] = out[1] = out[2] = 0;
    if (frame_cap < 60 || buf_len < (size_t)frame_cap * max_frames)
        return UN_GRO_NO_ROOM;
    int32_t count = 0;
    size_t used = 0, lo = 0, length = 0, payload = 0, lo_iphl = 0;
    size_t l = link_len;
    int absorbed = 0;
    for (uint32_t i = 0; i < max_frames; i++) {
        ssize_t got;
        do
            got = read(fd, buf + used, frame_cap);
        while (got < 0 && errno == EINTR);
        if (got < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                out[2] = errno;
            break;
        }
        if (got == 0)
            break;
        out[0]++;
        size_t n = (size_t)got;
        uint8_t *f = buf + used;
        size_t more = 0;
        size_t iphl = gro_header(f, n, l, &more);
        if (payload && iphl == lo_iphl && gro_joins(buf + lo, length, payload, f, l, iphl)) {
            size_t tcp = l + iphl;
            size_t start = used + tcp + (size_t)(f[tcp + 12] >> 4) * 4;
            uint8_t flags = f[tcp + 13];
            if (!absorbed)
                length = ip_end(buf + lo, l, iphl);
            memmove(buf + lo + length, buf + start, more);
            length += more;
            payload += more;
            buf[lo + tcp + 13] = flags;
            absorbed = 1;
            out[1]++;
            spans[2 * count - 1] = (int32_t)length;
            used = lo + length;
            continue;
        }
        if (absorbed)
            gro_close(buf + lo, length, l, lo_iphl);
        lo = used;
        length = n;
        payload = more;
        lo_iphl = iphl;
        absorbed = 0;
        spans[2 * count] = (int32_t)lo;
        spans[2 * count + 1] = (int32_t)length;
        count++;
        used += n;
    }
    if (absorbed)
        gro_close(buf + lo, length, l, lo_iphl);
    return count;
}
