/* Shared by the TAP capacity programs: attach to a TAP by name, a monotonic clock. */
#ifndef TAPCAP_H
#define TAPCAP_H

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Open /dev/net/tun and attach to TAP `name` (created beforehand with `ip tuntap add`), offloads off. */
static int tap_attach(const char *name) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) { perror("open /dev/net/tun"); exit(2); }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) { perror("TUNSETIFF"); exit(2); }
    if (ioctl(fd, TUNSETOFFLOAD, 0) < 0) { perror("TUNSETOFFLOAD"); exit(2); }
    return fd;
}

#endif
