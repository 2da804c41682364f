/* The kernel side of the TAP read test: send UDP datagrams toward the TAP as fast as sendmmsg allows.
 * usage: udpblast DST_IP PORT PAYLOAD_BYTES SECONDS MAX_DATAGRAMS
 * DST_IP is a static neighbour behind the TAP, so every datagram leaves as one frame.
 * Prints one JSON line: datagrams sent, send errors, seconds. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: %s DST_IP PORT PAYLOAD_BYTES SECONDS MAX_DATAGRAMS\n", argv[0]); return 2; }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) { fprintf(stderr, "bad address\n"); return 2; }
    size_t size = (size_t)atol(argv[3]);
    double seconds = atof(argv[4]);
    long max = atol(argv[5]);
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&dst, sizeof dst) < 0) { perror("socket/connect"); return 2; }

    char *payload = calloc(1, size);
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = payload;
        iov[i].iov_len = size;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    long sent = 0, errors = 0;
    double start = now();
    while (sent < max && now() - start < seconds) {
        int n = sendmmsg(sock, msgs, BATCH, 0);
        if (n > 0) sent += n;
        else if (errno == EINTR) continue;
        else errors++;
    }
    printf("{\"sent\": %ld, \"errors\": %ld, \"seconds\": %.6f}\n", sent, errors, now() - start);
    return 0;
}
