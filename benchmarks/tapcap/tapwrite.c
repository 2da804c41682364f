/* Write 1,514-byte Ethernet/IPv4/UDP frames into a TAP as fast as one core can, for a bounded time.
 * usage: tapwrite IFNAME SECONDS MAX_FRAMES SRC_IP DST_IP
 * Frames go to the TAP's own MAC and DST_IP:9, so the kernel runs its whole receive path in write().
 * Prints one JSON line: frames written, write errors, seconds. */
#include "tapcap.h"
#include <arpa/inet.h>
#include <net/if_arp.h>
#include <stdint.h>
#include <sys/socket.h>

#define FRAME 1514

static uint16_t ip_checksum(const uint8_t *p, int n) {
    uint32_t sum = 0;
    for (int i = 0; i < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)~sum;
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: %s IFNAME SECONDS MAX_FRAMES SRC_IP DST_IP\n", argv[0]); return 2; }
    double seconds = atof(argv[2]);
    long max_frames = atol(argv[3]);
    int fd = tap_attach(argv[1]);

    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    if (sock < 0 || ioctl(sock, SIOCGIFHWADDR, &ifr) < 0) { perror("SIOCGIFHWADDR"); return 2; }
    close(sock);

    uint8_t frame[FRAME];
    memset(frame, 0xA5, sizeof frame);
    memcpy(frame, ifr.ifr_hwaddr.sa_data, 6);                       /* to the kernel's side of the TAP */
    memcpy(frame + 6, "\x02\x00\x00\x00\x00\x09", 6);               /* from a made-up host */
    frame[12] = 0x08; frame[13] = 0x00;
    uint8_t *ip = frame + 14;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    uint16_t total = FRAME - 14;
    ip[2] = total >> 8; ip[3] = total & 0xFF;
    ip[8] = 64; ip[9] = 17;
    if (inet_pton(AF_INET, argv[4], ip + 12) != 1 || inet_pton(AF_INET, argv[5], ip + 16) != 1) {
        fprintf(stderr, "bad address\n"); return 2;
    }
    uint16_t csum = ip_checksum(ip, 20);
    ip[10] = csum >> 8; ip[11] = csum & 0xFF;
    uint8_t *udp = ip + 20;
    uint16_t ulen = total - 20;
    udp[0] = 0x9c; udp[1] = 0x40; udp[2] = 0; udp[3] = 9;         /* 40000 -> 9 (discard) */
    udp[4] = ulen >> 8; udp[5] = ulen & 0xFF; udp[6] = 0; udp[7] = 0; /* no UDP checksum: allowed over IPv4 */

    long frames = 0, errors = 0;
    double start = now(), elapsed = 0;
    while (frames < max_frames) {
        if (write(fd, frame, FRAME) == FRAME) frames++; else errors++;
        if (((frames + errors) & 1023) == 0 && (elapsed = now() - start) >= seconds) break;
    }
    elapsed = now() - start;
    printf("{\"frames\": %ld, \"errors\": %ld, \"seconds\": %.6f}\n", frames, errors, elapsed);
    return 0;
}
