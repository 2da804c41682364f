/* Count the frames the kernel hands to a TAP, for a bounded time from the first frame.
 * usage: tapread IFNAME SECONDS
 * Prints "ready" once attached (the sender may start), then one JSON line: frames, bytes, seconds. */
#include "tapcap.h"
#include <poll.h>

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s IFNAME SECONDS\n", argv[0]); return 2; }
    double seconds = atof(argv[2]);
    int fd = tap_attach(argv[1]);
    printf("ready\n");
    fflush(stdout);

    static unsigned char buf[65536];
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, 10000) <= 0) { fprintf(stderr, "no frame within 10 s\n"); return 1; }
    long frames = 0, bytes = 0;
    double start = now(), elapsed = 0;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (elapsed < seconds) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) { frames++; bytes += n; }
        else if (poll(&pfd, 1, 100) < 0) break;
        if ((frames & 255) == 0 || n <= 0) elapsed = now() - start;
    }
    printf("{\"frames\": %ld, \"bytes\": %ld, \"seconds\": %.6f}\n", frames, bytes, now() - start);
    return 0;
}
