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

/* The IP header length of a TCP frame GRO or ACK merging may take, 0 if it may not: only a
 * 20-byte IPv4 header or an IPv6 one whose next header is TCP, no fragment, no reserved
 * bits, both checksums valid (a merged frame gets fresh ones, so a corrupt segment must
 * never be part of one nor be hidden behind one); and either (`pure_ack`) no payload and
 * only ACK set, or a payload and only ACK (or ACK and PSH) set. */
static size_t tcp_frame(const uint8_t *f, size_t n, size_t l, int pure_ack)
{
    int version = ip_version(f, n, l);
    const uint8_t *ip = f + l;
    size_t iphl;
    size_t least = pure_ack ? 20 : 21;
    if (version == 4) {
        if (n < l + 20 + least || ip[0] != 0x45 || ip[9] != 6 || (be16(ip + 6) & 0x3fff))
            return 0;
        iphl = 20;
    } else if (version == 6) {
        if (n < l + 40 + least || ip[6] != 6)
            return 0;
        iphl = 40;
    } else
        return 0;
    size_t end = ip_end(f, l, iphl);
    const uint8_t *tcp = ip + iphl;
    size_t thl = (size_t)(tcp[12] >> 4) * 4;
    int shape = pure_ack ? l + iphl + thl == end && tcp[13] == TCP_ACK
                         : l + iphl + thl < end && (tcp[13] == TCP_ACK || tcp[13] == (TCP_ACK | TCP_PSH));
    if (end > n || thl < 20 || !shape || (tcp[12] & 0x0f) || (iphl == 20 && un_sum16(ip, 20, 0) != 0xffff)
        || un_sum16(tcp, end - l - iphl, tcp_pseudo(ip, iphl == 40, end - l - iphl)) != 0xffff)
        return 0;
    return iphl;
}

/* The IP header length of a frame GRO may join with its neighbours, its payload bytes in
 * *payload; 0 if it may not (see tcp_frame). */
static size_t gro_header(const uint8_t *f, size_t n, size_t l, size_t *payload)
{
    size_t iphl = tcp_frame(f, n, l, 0);
    if (iphl)
        *payload = ip_end(f, l, iphl) - l - iphl - (size_t)(f[l + iphl + 12] >> 4) * 4;
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

/* ACK merging, with `merge_acks`: a pure ACK that follows one of the same flow in the
 * batch and moves the cumulative ACK forward stands for it, as a stretch ACK would.  A bulk
 * sender reads ~57 pure ACKs per batch at MTU 1500, each of which would cost the stack a
 * Python ACK path; after merging it sees two per run: the first, kept whole because the
 * stack may hold SND.UNA at its ACK already (then it is a duplicate), and the newest.  A
 * frame is only ever replaced by a later one that advanced past it, so what fast
 * retransmit counts is kept: a duplicate ACK (the same ACK again) starts a run of its own,
 * and an ACK with SACK blocks, data, any flag but ACK or any option but NOP and the
 * timestamp is never merged.  The newest carries the newest window and timestamps, and the
 * bytes it acknowledges are the sum of those it stands for (its ACK is cumulative). */

#define TCP_OPT_EOL 0
#define TCP_OPT_NOP 1
#define TCP_OPT_TS 8

/* The IP header length of a pure ACK merging may take (see tcp_frame), the offset of its
 * timestamp option in its TCP header in *ts (0: none); 0 if it is not one or has an option
 * other than NOP, EOL and one timestamp. */
static size_t ack_header(const uint8_t *f, size_t n, size_t l, size_t *ts)
{
    size_t iphl = tcp_frame(f, n, l, 1);
    if (!iphl)
        return 0;
    const uint8_t *tcp = f + l + iphl;
    size_t thl = (size_t)(tcp[12] >> 4) * 4;
    *ts = 0;
    for (size_t i = 20; i < thl && tcp[i] != TCP_OPT_EOL;) {
        if (tcp[i] == TCP_OPT_NOP) {
            i++;
            continue;
        }
        if (tcp[i] != TCP_OPT_TS || *ts || i + 10 > thl || tcp[i + 1] != 10)
            return 0;
        *ts = i;
        i += 10;
    }
    return iphl;
}

/* Whether seq-space a is after b (`strict`) or not before it. */
static int seq_after(uint32_t a, uint32_t b, int strict)
{
    int32_t d = (int32_t)(a - b);
    return strict ? d > 0 : d >= 0;
}

/* May pure ACK f (an ack_header frame, timestamp at `ts`) stand for pure ACK a, as long an IP
 * header, that came just before it?  The same link and IP header but for identification
 * and checksum, the same ports, sequence number, header length, flags, urgent pointer and
 * options but for the timestamp's values; an ACK that advances; a timestamp and an echo no
 * older. */
static int ack_follows(const uint8_t *a, const uint8_t *f, size_t l, size_t iphl, size_t ts)
{
    const uint8_t *ta = a + l + iphl, *tf = f + l + iphl;
    size_t thl = (size_t)(tf[12] >> 4) * 4;
    int same_ip = iphl == 20 ? memcmp(a, f, l + 4) == 0 && memcmp(a + l + 6, f + l + 6, 4) == 0
                                   && memcmp(a + l + 12, f + l + 12, 8) == 0
                             : memcmp(a, f, l + 40) == 0;
    if (!same_ip || memcmp(ta, tf, 8) != 0 || memcmp(ta + 12, tf + 12, 2) != 0 || memcmp(ta + 18, tf + 18, 2) != 0
        || !seq_after(be32(tf + 8), be32(ta + 8), 1))
        return 0;
    if (!ts)
        return memcmp(ta + 20, tf + 20, thl - 20) == 0;
    return memcmp(ta + 20, tf + 20, ts + 2 - 20) == 0 && memcmp(ta + ts + 10, tf + ts + 10, thl - ts - 10) == 0
           && seq_after(be32(tf + ts + 2), be32(ta + ts + 2), 0) && seq_after(be32(tf + ts + 6), be32(ta + ts + 6), 0);
}

/* Returns the frames in buf, their (offset, length) pairs in spans[]; out[]: frames read,
 * frames joined onto another, errno of a read that failed with other than EAGAIN (or 0).
 * The pure ACKs merged away are the frames read that are neither handed out nor joined. */
int32_t un_gro_read(int fd, uint8_t *buf, size_t buf_len, uint32_t frame_cap, uint32_t max_frames, uint32_t link_len,
                    uint32_t merge_acks, int32_t *spans, int64_t *out)
{
    out[0] = out[1] = out[2] = 0;
    if (frame_cap < 60 || buf_len < (size_t)frame_cap * max_frames)
        return UN_GRO_NO_ROOM;
    int32_t count = 0;
    size_t used = 0, lo = 0, length = 0, payload = 0, lo_iphl = 0;
    size_t l = link_len;
    int absorbed = 0;
    /* the last frame as a pure ACK: 0 it is none, 1 one, 2 one that advanced past the one before
     * it (and so may itself be stood for); its IP header's length */
    int last_ack = 0;
    size_t last_ack_iphl = 0;
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
        size_t ts = 0, ack_iphl = merge_acks ? ack_header(f, n, l, &ts) : 0;
        int follows = ack_iphl && last_ack && ack_iphl == last_ack_iphl && ack_follows(buf + lo, f, l, ack_iphl, ts);
        if (absorbed)
            gro_close(buf + lo, length, l, lo_iphl);
        lo = used;
        length = n;
        payload = more;
        lo_iphl = iphl;
        absorbed = 0;
        used += n;
        last_ack_iphl = ack_iphl;
        if (follows && last_ack == 2) {
            spans[2 * count - 2] = (int32_t)lo;
            spans[2 * count - 1] = (int32_t)length;
            continue;
        }
        last_ack = !ack_iphl ? 0 : follows ? 2 : 1;
        spans[2 * count] = (int32_t)lo;
        spans[2 * count + 1] = (int32_t)length;
        count++;
    }
    if (absorbed)
        gro_close(buf + lo, length, l, lo_iphl);
    return count;
}
