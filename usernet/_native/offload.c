#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include "core.h"
#include "bytes.h"

/* Software GSO: what a NIC does with a TSO frame, done just before the frames reach a
 * link that has no such offload.  The stack builds one big TCP/IPv4 frame whose checksum
 * field holds the pseudo-header sum (CSUM_PARTIAL); it is cut into segments of at most
 * gso_size payload bytes as Linux's tcp_gso_segment cuts them: the headers are copied,
 * the IPv4 identification counts up, the sequence number advances, FIN and PSH stay on
 * the last segment only, and every checksum is completed.  The payload is never copied
 * on the write path: each segment leaves as a writev of its header and its slice. */

#define TCP_FIN 0x01
#define TCP_PSH 0x08

struct gso_frame {
    size_t ip;      /* offset of the IPv4 header */
    size_t tcp;     /* offset of the TCP header */
    size_t headers; /* bytes of headers in front of the payload */
    size_t payload; /* bytes of payload */
    size_t step;    /* payload bytes per segment */
};

/* Whether `link_len` bytes in front of the IP header are a link header these functions know:
 * an Ethernet header carrying IPv4 (14), or none (0: a bare IP packet). */
static int known_link(const uint8_t *f, size_t len, size_t link_len)
{
    if (link_len == 0)
        return 1;
    return link_len == UN_ETHERNET_HEADER && len >= UN_ETHERNET_HEADER && f[12] == 0x08 && f[13] == 0x00;
}

static int32_t gso_layout(const uint8_t *f, size_t len, uint32_t gso_size, size_t link, struct gso_frame *g)
{
    if (!known_link(f, len, link) || len < link + 40 || (f[link] >> 4) != 4 || f[link + 9] != 6)
        return UN_GSO_NOT_TCP;
    size_t ihl = (size_t)(f[link] & 0x0f) * 4;
    if (ihl < 20 || be16(f + link + 2) != len - link || link + ihl + 20 > len)
        return UN_GSO_NOT_TCP;
    size_t thl = (size_t)(f[link + ihl + 12] >> 4) * 4;
    if (thl < 20 || link + ihl + thl > len)
        return UN_GSO_NOT_TCP;
    g->ip = link;
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
    put16(ip + 2, (uint32_t)(g->headers - g->ip + n));
    put16(ip + 4, be16(f + g->ip + 4) + (uint32_t)i);
    put16(ip + 10, 0);
    put16(ip + 10, ~un_sum16(ip, g->tcp - g->ip, 0) & 0xffff);
    put32(tcp + 4, be32(f + g->tcp + 4) + (uint32_t)off);
    if (off + n < g->payload)
        tcp[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
    put16(tcp + 16, 0);
    uint32_t sum = (uint32_t)un_pseudo_sum_v4(ip + 12, 4, ip + 16, 4, 6, (uint16_t)tcp_len);
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
    uint8_t header[14 + 60 + 60]; /* the longest link header gso_layout takes, IPv4 and TCP */
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
 * its payload moved onto that frame, which ends as one segment of up to a 64 KB IPv4
 * packet with fresh checksums.  Only segments whose own checksums are valid are ever
 * joined, so a corrupt one cannot hide inside a merged frame with a good checksum. */

#define TCP_ACK 0x10

/* Offsets from the frame's start, for a frame with `l` bytes of link header and a 20-byte
 * IPv4 header (the only kind GRO joins): the IPv4 header, then the TCP header. */
#define IP_AT(l) (l)
#define TCP_AT(l) ((l) + 20)

/* Payload bytes of a frame GRO may join with its neighbours, else 0. */
static size_t gro_payload(const uint8_t *f, size_t n, size_t l)
{
    const uint8_t *ip = f + IP_AT(l), *tcp = f + TCP_AT(l);
    if (!known_link(f, n, l) || n < l + 41 || ip[0] != 0x45 || ip[9] != 6)
        return 0;
    size_t total = be16(ip + 2);
    size_t thl = (size_t)(tcp[12] >> 4) * 4;
    if (l + total > n || (be16(ip + 6) & 0x3fff) || thl < 20 || 20 + thl >= total || (tcp[12] & 0x0f)
        || (tcp[13] != TCP_ACK && tcp[13] != (TCP_ACK | TCP_PSH)) || un_sum16(ip, 20, 0) != 0xffff
        || un_l4_checksum_v4(ip + 12, 4, ip + 16, 4, 6, tcp, total - 20) != 0)
        return 0;
    return total - 20 - thl;
}

/* May segment f (a gro_payload frame) extend frame a of `length` bytes and `payload` payload?
 * Equal: the link header and IPv4 version to TOS, flags to protocol, the addresses and
 * ports; the ACK, header length, window, urgent pointer and options. */
static int gro_joins(const uint8_t *a, size_t length, size_t payload, const uint8_t *f, size_t l)
{
    const uint8_t *ta = a + TCP_AT(l), *tf = f + TCP_AT(l);
    size_t thl = (size_t)(tf[12] >> 4) * 4;
    size_t more = be16(f + l + 2) - 20 - thl;
    return ta[13] == TCP_ACK && memcmp(a, f, l + 2) == 0 && memcmp(a + l + 6, f + l + 6, 4) == 0
           && memcmp(a + l + 12, f + l + 12, 12) == 0 && be32(tf + 4) == (uint32_t)(be32(ta + 4) + payload)
           && memcmp(ta + 8, tf + 8, 5) == 0 && memcmp(ta + 14, tf + 14, 2) == 0
           && memcmp(ta + 18, tf + 18, thl - 18) == 0 && length + more <= l + 65535;
}

static void gro_close(uint8_t *a, size_t length, size_t l)
{
    uint8_t *ip = a + IP_AT(l), *tcp = a + TCP_AT(l);
    put16(ip + 2, (uint32_t)(length - l));
    put16(ip + 10, 0);
    put16(ip + 10, ~un_sum16(ip, 20, 0) & 0xffff);
    put16(tcp + 16, 0);
    put16(tcp + 16, (uint32_t)un_l4_checksum_v4(ip + 12, 4, ip + 16, 4, 6, tcp, length - l - 20));
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
    size_t used = 0, lo = 0, length = 0, payload = 0;
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
        size_t l = link_len;
        size_t more = gro_payload(f, n, l);
        if (payload && more && gro_joins(buf + lo, length, payload, f, l)) {
            size_t start = used + TCP_AT(l) + (size_t)(f[TCP_AT(l) + 12] >> 4) * 4;
            uint8_t flags = f[TCP_AT(l) + 13];
            if (!absorbed)
                length = l + (size_t)be16(buf + lo + l + 2);
            memmove(buf + lo + length, buf + start, more);
            length += more;
            payload += more;
            buf[lo + TCP_AT(l) + 13] = flags;
            absorbed = 1;
            out[1]++;
            spans[2 * count - 1] = (int32_t)length;
            used = lo + length;
            continue;
        }
        if (absorbed)
            gro_close(buf + lo, length, l);
        lo = used;
        length = n;
        payload = more;
        absorbed = 0;
        spans[2 * count] = (int32_t)lo;
        spans[2 * count + 1] = (int32_t)length;
        count++;
        used += n;
    }
    if (absorbed)
        gro_close(buf + lo, length, link_len);
    return count;
}
