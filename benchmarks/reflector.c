/*
 * reflector: the cheapest possible "NTP server", used by benchmarks/run.py as a floor.
 *
 * It answers each 48-byte request with a mode-4 packet that echoes the client's transmit
 * timestamp as origin (RFC 5905 section 8) and nothing else: no clock read, no parsing, one
 * recvmmsg/sendmmsg pair per batch. Whatever latency and CPU per response it shows on a
 * machine is what the kernel, the loopback path and the scheduler cost there; a real server
 * cannot do better. It is not an NTP server: the time fields are zero.
 *
 * Bounded: binds loopback only, exits after LIFETIME seconds even if nobody stops it.
 * Build: gcc -O2 -o reflector reflector.c     Usage: reflector PORT LIFETIME_S
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define OFF_ORIGIN 24   /* RFC 5905 figure 8 */
#define OFF_TRANSMIT 40

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT LIFETIME_S\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    int lifetime = atoi(argv[2]);
    if (port <= 0 || port > 65535 || lifetime <= 0 || lifetime > 3600) {
        fprintf(stderr, "reflector: bad port or lifetime\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int sz = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("reflector: bind");
        return 1;
    }
    static unsigned char bufs[BATCH][128];
    static struct sockaddr_in peers[BATCH];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    time_t end = time(NULL) + lifetime;
    while (time(NULL) < end) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 500) <= 0) continue;
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof bufs[i];
            memset(&msgs[i], 0, sizeof msgs[i]);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &peers[i];
            msgs[i].msg_hdr.msg_namelen = sizeof peers[i];
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) continue;
        int out = 0;
        for (int i = 0; i < n; i++) {
            if (msgs[i].msg_len < 48) continue;
            unsigned char *p = bufs[i];
            memcpy(p + OFF_ORIGIN, p + OFF_TRANSMIT, 8);
            memset(p + OFF_TRANSMIT, 0, 8);
            p[0] = (4 << 3) | 4; /* LI 0, VN 4, mode 4 (server) */
            p[1] = 1;            /* stratum 1, so the load generator does not see a KoD */
            iov[i].iov_len = 48;
            if (out != i) msgs[out] = msgs[i];
            out++;
        }
        if (out > 0) sendmmsg(fd, msgs, (unsigned)out, 0);
    }
    close(fd);
    return 0;
}
