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

static int32_t gso_layout(const uint8_t *f, size_t len, uint32_t gso_size, struct gso_frame *g)
{
    if (len < 54 || f[12] != 0x08 || f[13] != 0x00 || (f[14] >> 4) != 4 || f[23] != 6)
        return UN_GSO_NOT_TCP;
    size_t ihl = (size_t)(f[14] & 0x0f) * 4;
    if (ihl < 20 || be16(f + 16) != len - 14 || 14 + ihl + 20 > len)
        return UN_GSO_NOT_TCP;
    size_t thl = (size_t)(f[14 + ihl + 12] >> 4) * 4;
    if (thl < 20 || 14 + ihl + thl > len)
        return UN_GSO_NOT_TCP;
    g->ip = 14;
    g->tcp = 14 + ihl;
    g->headers = 14 + ihl + thl;
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
int32_t un_gso_write(int fd, const uint8_t *frame, size_t len, uint32_t gso_size, int64_t *out)
{
    struct gso_frame g;
    int32_t status = gso_layout(frame, len, gso_size, &g);
    out[0] = out[1] = out[2] = 0;
    if (status)
        return status;
    size_t count = gso_count(&g);
    out[0] = (int64_t)count;
    uint8_t header[14 + 60 + 60];
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

/* Payload bytes of a frame GRO may join with its neighbours, else 0. */
static size_t gro_payload(const uint8_t *f, size_t n)
{
    if (n < 55 || f[12] != 0x08 || f[13] != 0x00 || f[14] != 0x45 || f[23] != 6)
        return 0;
    size_t total = be16(f + 16);
    size_t thl = (size_t)(f[46] >> 4) * 4;
    if (14 + total > n || (be16(f + 20) & 0x3fff) || thl < 20 || 20 + thl >= total || (f[46] & 0x0f)
        || (f[47] != TCP_ACK && f[47] != (TCP_ACK | TCP_PSH)) || un_sum16(f + 14, 20, 0) != 0xffff
        || un_l4_checksum_v4(f + 26, 4, f + 30, 4, 6, f + 34, total - 20) != 0)
        return 0;
    return total - 20 - thl;
}

/* May segment f (a gro_payload frame) extend frame a of `length` bytes and `payload` payload? */
static int gro_joins(const uint8_t *a, size_t length, size_t payload, const uint8_t *f)
{
    size_t thl = (size_t)(f[46] >> 4) * 4;
    size_t more = be16(f + 16) - 20 - thl;
    return a[47] == TCP_ACK && memcmp(a, f, 16) == 0 && memcmp(a + 20, f + 20, 4) == 0
           && memcmp(a + 26, f + 26, 12) == 0 && be32(f + 38) == (uint32_t)(be32(a + 38) + payload)
           && memcmp(a + 42, f + 42, 5) == 0 && memcmp(a + 48, f + 48, 2) == 0
           && memcmp(a + 52, f + 52, thl - 18) == 0 && length + more <= 14 + 65535;
}

static void gro_close(uint8_t *a, size_t length)
{
    put16(a + 16, (uint32_t)(length - 14));
    put16(a + 24, 0);
    put16(a + 24, ~un_sum16(a + 14, 20, 0) & 0xffff);
    put16(a + 50, 0);
    put16(a + 50, (uint32_t)un_l4_checksum_v4(a + 26, 4, a + 30, 4, 6, a + 34, length - 34));
}

/* Returns the frames in buf, their (offset, length) pairs in spans[]; out[]: frames read,
 * frames joined onto another, errno of a read that failed with other than EAGAIN (or 0). */
int32_t un_gro_read(int fd, uint8_t *buf, size_t buf_len, uint32_t frame_cap, uint32_t max_frames,
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
        size_t more = gro_payload(f, n);
        if (payload && more && gro_joins(buf + lo, length, payload, f)) {
            size_t start = used + 34 + (size_t)(f[46] >> 4) * 4;
            uint8_t flags = f[47];
            if (!absorbed)
                length = 14 + (size_t)be16(buf + lo + 16);
            memmove(buf + lo + length, buf + start, more);
            length += more;
            payload += more;
            buf[lo + 47] = flags;
            absorbed = 1;
            out[1]++;
            spans[2 * count - 1] = (int32_t)length;
            used = lo + length;
            continue;
        }
        if (absorbed)
            gro_close(buf + lo, length);
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
        gro_close(buf + lo, length);
    return count;
}
