/*
 * loadgen: NTP client load generator for the simple-ntpd benchmark (benchmarks/run.py).
 *
 * Sends 48-byte NTPv4 client requests (mode 3, RFC 5905 section 7.3) at a fixed rate to one
 * loopback HOST:PORT for a fixed duration, and prints one JSON object on stdout: achieved send
 * rate, loss, and client-side latency percentiles.
 *
 * Why C: the servers under test answer tens of thousands of requests per second on a 2-core
 * machine; a Python client would saturate a core before the server does and would measure itself.
 *
 * How it works
 *   - T threads, each owning S connected UDP sockets (distinct source ports, so a server's
 *     SO_REUSEPORT group spreads the load over its workers).
 *   - Pacing: each thread wakes on an absolute CLOCK_MONOTONIC tick (default every 200 us),
 *     sends with sendmmsg exactly the requests that are due at rate R since the start (so the
 *     rate stays smooth and a late tick catches up), then drains responses with recvmmsg.
 *   - Latency is computed statelessly: the request's transmit timestamp field carries the send
 *     time (CLOCK_REALTIME ns, XOR a per-run key so stray packets are recognised); the server
 *     echoes it as the origin timestamp (RFC 5905 section 8). The receive time is the kernel's
 *     SO_TIMESTAMPNS stamp (also CLOCK_REALTIME), so time the load generator spends asleep
 *     between ticks is not counted as server latency.
 *   - Safety: only 127.0.0.0/8 and ::1 are accepted as targets; the run stops after the duration
 *     (at most 600 s) or the packet cap, whichever comes first; late responses are drained for
 *     a short grace period.
 *
 * Build: gcc -O2 -pthread -o loadgen loadgen.c
 * Usage: loadgen -a 127.0.0.1 -p 11123 -r 50000 -d 10 [-t threads] [-s sockets/thread]
 *                [-i tick_us] [-g grace_ms] [-m max_packets]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NTP_PACKET_LEN 48
#define NTP_VERSION 4      /* RFC 5905 section 7.3: VN */
#define NTP_MODE_CLIENT 3  /* RFC 5905 section 7.3: mode 3 = client */
#define NTP_MODE_SERVER 4  /* mode 4 = server */
#define OFF_STRATUM 1      /* RFC 5905 figure 8 field offsets */
#define OFF_ORIGIN 24
#define OFF_TRANSMIT 40

#define MAX_BATCH 64
#define RECV_BATCH 64
#define MAX_THREADS 16
#define MAX_SOCKETS 64
#define MAX_DURATION_S 600.0
#define HARD_PACKET_CAP 100000000ULL

/* Latency histogram: 100 ns buckets up to 10 ms, then 10 us buckets up to 1 s. */
#define FINE_NS 100ULL
#define FINE_LIMIT_NS 10000000ULL
#define COARSE_NS 10000ULL
#define COARSE_LIMIT_NS 1000000000ULL
#define FINE_BUCKETS (FINE_LIMIT_NS / FINE_NS)
#define COARSE_BUCKETS ((COARSE_LIMIT_NS - FINE_LIMIT_NS) / COARSE_NS)
#define N_BUCKETS (FINE_BUCKETS + COARSE_BUCKETS + 1) /* last bucket: >= 1 s */

struct config {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[INET6_ADDRSTRLEN];
    int port;
    double rate;
    double duration_s;
    int threads;
    int sockets;
    long tick_ns;
    long grace_ms;
    uint64_t max_packets;
    uint64_t key;
};

struct worker {
    const struct config *cfg;
    int fds[MAX_SOCKETS];
    int nfds;
    double rate;       /* this thread's share */
    uint64_t cap;      /* this thread's share of the packet cap */
    uint64_t sent;
    uint64_t received; /* valid mode-4 responses carrying one of our timestamps */
    uint64_t kod;      /* kiss-o'-death responses (stratum 0), not counted as received */
    uint64_t invalid;  /* anything else that arrived */
    uint64_t send_errors;
    uint64_t late;     /* received during the grace period */
    uint64_t max_ns;
    uint64_t *hist;
    int64_t send_start_ns;
    int64_t send_end_ns;
    int error;
};

static int64_t now_ns(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void put_u64be(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t get_u64be(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

static size_t bucket_of(uint64_t ns) {
    if (ns < FINE_LIMIT_NS) return (size_t)(ns / FINE_NS);
    if (ns < COARSE_LIMIT_NS) return (size_t)(FINE_BUCKETS + (ns - FINE_LIMIT_NS) / COARSE_NS);
    return N_BUCKETS - 1;
}

static uint64_t bucket_upper_ns(size_t b) {
    if (b < FINE_BUCKETS) return (b + 1) * FINE_NS;
    if (b < FINE_BUCKETS + COARSE_BUCKETS) return FINE_LIMIT_NS + (b - FINE_BUCKETS + 1) * COARSE_NS;
    return COARSE_LIMIT_NS;
}

static int is_loopback(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
    }
    return 0;
}

static int open_socket(const struct config *cfg) {
    int fd = socket(cfg->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    /* Kernel receive timestamps: the latency excludes our own sleep between ticks. */
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    /* Large buffers so that drops, if any, happen at the server and not here. FORCE needs
       CAP_NET_ADMIN; the plain option is capped by net.core.rmem_max. */
    int sz = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    if (connect(fd, (const struct sockaddr *)&cfg->addr, cfg->addrlen) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Receive everything queued on one socket; returns the number of datagrams read. */
static int drain_socket(struct worker *w, int fd, int in_grace) {
    static __thread uint8_t bufs[RECV_BATCH][128];
    static __thread char ctrl[RECV_BATCH][CMSG_SPACE(sizeof(struct timespec)) + 64];
    struct mmsghdr msgs[RECV_BATCH];
    struct iovec iov[RECV_BATCH];
    int total = 0;

    for (int round = 0; round < 1024; round++) { /* bounded: 64k datagrams per call at most */
        for (int i = 0; i < RECV_BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof bufs[i];
            memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = ctrl[i];
            msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i];
        }
        int n = recvmmsg(fd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) break; /* EAGAIN, or ECONNREFUSED when nothing listens: counted as loss */
        int64_t user_rx = now_ns(CLOCK_REALTIME);
        for (int i = 0; i < n; i++) {
            const uint8_t *p = bufs[i];
            if (msgs[i].msg_len < NTP_PACKET_LEN || (p[0] & 7) != NTP_MODE_SERVER) {
                w->invalid++;
                continue;
            }
            uint64_t sent_at = get_u64be(p + OFF_ORIGIN) ^ w->cfg->key;
            int64_t rx = user_rx;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != NULL;
                 c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    rx = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
                }
            }
            /* Our own timestamp comes back within [run start, now]; anything else is not ours. */
            if ((int64_t)sent_at < w->send_start_ns - 1000000000LL || (int64_t)sent_at > rx) {
                w->invalid++;
                continue;
            }
            if (p[OFF_STRATUM] == 0) { /* RFC 5905 section 7.4: kiss-o'-death */
                w->kod++;
                continue;
            }
            uint64_t lat = (uint64_t)(rx - (int64_t)sent_at);
            w->hist[bucket_of(lat)]++;
            if (lat > w->max_ns) w->max_ns = lat;
            w->received++;
            if (in_grace) w->late++;
        }
        total += n;
        if (n < RECV_BATCH) break;
    }
    return total;
}

/* One poll() over all sockets, then recvmmsg only where something waits: keeps our own CPU
   use (which competes with the server on a small machine) low. */
static void drain_ready(struct worker *w, int in_grace) {
    struct pollfd pfds[MAX_SOCKETS];
    for (int i = 0; i < w->nfds; i++) {
        pfds[i].fd = w->fds[i];
        pfds[i].events = POLLIN;
        pfds[i].revents = 0;
    }
    if (poll(pfds, (nfds_t)w->nfds, 0) <= 0) return;
    for (int i = 0; i < w->nfds; i++)
        if (pfds[i].revents) drain_socket(w, w->fds[i], in_grace);
}

static void sleep_until(int64_t mono_ns) {
    struct timespec ts = {.tv_sec = mono_ns / 1000000000LL, .tv_nsec = mono_ns % 1000000000LL};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void *run_worker(void *arg) {
    struct worker *w = arg;
    const struct config *cfg = w->cfg;
    uint8_t pkts[MAX_BATCH][NTP_PACKET_LEN];
    struct mmsghdr msgs[MAX_BATCH];
    struct iovec iov[MAX_BATCH];

    memset(pkts, 0, sizeof pkts);
    for (int i = 0; i < MAX_BATCH; i++) {
        pkts[i][0] = (0 << 6) | (NTP_VERSION << 3) | NTP_MODE_CLIENT; /* LI 0, VN 4, mode 3 */
        iov[i].iov_base = pkts[i];
        iov[i].iov_len = NTP_PACKET_LEN;
        memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    int64_t start = now_ns(CLOCK_MONOTONIC);
    int64_t end = start + (int64_t)(cfg->duration_s * 1e9);
    w->send_start_ns = now_ns(CLOCK_REALTIME);
    int next_fd = 0;
    int64_t tick = start;

    while (tick < end && w->sent < w->cap) {
        int64_t now = now_ns(CLOCK_MONOTONIC);
        if (now >= end) break;
        uint64_t due = (uint64_t)((double)(now - start) * w->rate / 1e9);
        if (due > w->cap) due = w->cap;
        /* Bounded per tick: a long stall sends at most 64 batches before receiving again. */
        for (int b = 0; b < 64 && w->sent < due; b++) {
            uint64_t n = due - w->sent;
            if (n > MAX_BATCH) n = MAX_BATCH;
            uint64_t stamp = (uint64_t)now_ns(CLOCK_REALTIME) ^ cfg->key;
            for (uint64_t i = 0; i < n; i++) put_u64be(pkts[i] + OFF_TRANSMIT, stamp);
            int fd = w->fds[next_fd];
            next_fd = (next_fd + 1) % w->nfds;
            int r = sendmmsg(fd, msgs, (unsigned)n, MSG_DONTWAIT);
            if (r <= 0) {
                /* Full socket buffer or ICMP error: retried from the next tick on. */
                w->send_errors++;
                break;
            }
            w->sent += (uint64_t)r;
        }
        drain_ready(w, 0);
        tick += cfg->tick_ns;
        if (tick > now) sleep_until(tick);
    }
    w->send_end_ns = now_ns(CLOCK_MONOTONIC);

    /* Grace period: collect responses still in flight, stop early once all are back. */
    int64_t grace_end = w->send_end_ns + cfg->grace_ms * 1000000LL;
    while (now_ns(CLOCK_MONOTONIC) < grace_end &&
           w->received + w->kod + w->invalid < w->sent) {
        drain_ready(w, 1);
        struct timespec ts = {0, 1000000}; /* 1 ms */
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < w->nfds; i++) drain_socket(w, w->fds[i], 1);
    w->send_end_ns -= start; /* now: send phase length in ns */
    return NULL;
}

static uint64_t percentile_ns(const uint64_t *hist, uint64_t total, double q, uint64_t max_ns) {
    if (total == 0) return 0;
    uint64_t want = (uint64_t)(q * (double)total);
    if ((double)want < q * (double)total) want++; /* ceil */
    if (want == 0) want = 1;
    uint64_t acc = 0;
    for (size_t b = 0; b < N_BUCKETS; b++) {
        acc += hist[b];
        if (acc >= want) {
            uint64_t up = bucket_upper_ns(b);
            return up < max_ns ? up : max_ns;
        }
    }
    return max_ns;
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s -a ADDR -p PORT -r RATE -d SECONDS [-t THREADS] [-s SOCKETS_PER_THREAD]\n"
            "          [-i TICK_US] [-g GRACE_MS] [-m MAX_PACKETS]\n"
            "ADDR must be a loopback address (127.0.0.0/8 or ::1).\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv) {
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.port = 0;
    cfg.rate = 0;
    cfg.duration_s = 0;
    cfg.threads = 1;
    cfg.sockets = 8;
    cfg.tick_ns = 200000;
    cfg.grace_ms = 250;
    cfg.max_packets = 0;
    const char *host = NULL;

    int opt;
    while ((opt = getopt(argc, argv, "a:p:r:d:t:s:i:g:m:")) != -1) {
        switch (opt) {
        case 'a': host = optarg; break;
        case 'p': cfg.port = atoi(optarg); break;
        case 'r': cfg.rate = atof(optarg); break;
        case 'd': cfg.duration_s = atof(optarg); break;
        case 't': cfg.threads = atoi(optarg); break;
        case 's': cfg.sockets = atoi(optarg); break;
        case 'i': cfg.tick_ns = atol(optarg) * 1000L; break;
        case 'g': cfg.grace_ms = atol(optarg); break;
        case 'm': cfg.max_packets = strtoull(optarg, NULL, 10); break;
        default: usage(argv[0]);
        }
    }
    if (host == NULL || cfg.port <= 0 || cfg.port > 65535 || cfg.rate <= 0 ||
        cfg.duration_s <= 0 || cfg.duration_s > MAX_DURATION_S || cfg.threads < 1 ||
        cfg.threads > MAX_THREADS || cfg.sockets < 1 || cfg.sockets > MAX_SOCKETS ||
        cfg.tick_ns < 10000 || cfg.tick_ns > 100000000L || cfg.grace_ms < 0 ||
        cfg.grace_ms > 10000)
        usage(argv[0]);

    struct sockaddr_in *a4 = (struct sockaddr_in *)&cfg.addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&cfg.addr;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)cfg.port);
        cfg.addrlen = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)cfg.port);
        cfg.addrlen = sizeof *a6;
    } else {
        fprintf(stderr, "loadgen: not a numeric address: %s\n", host);
        return 2;
    }
    if (!is_loopback(&cfg.addr)) {
        fprintf(stderr, "loadgen: refusing non-loopback target %s (only 127.0.0.0/8 and ::1)\n",
                host);
        return 2;
    }
    snprintf(cfg.host, sizeof cfg.host, "%s", host);

    uint64_t planned = (uint64_t)(cfg.rate * cfg.duration_s) + 1;
    if (cfg.max_packets == 0 || cfg.max_packets > planned) cfg.max_packets = planned;
    if (cfg.max_packets > HARD_PACKET_CAP) cfg.max_packets = HARD_PACKET_CAP;

    /* Key for recognising our own timestamps; not security relevant. */
    cfg.key = ((uint64_t)getpid() << 32) ^ (uint64_t)now_ns(CLOCK_MONOTONIC) ^
              0x9e3779b97f4a7c15ULL;
    /* Precise wake-ups for the pacing tick (the default timer slack is 50 us). */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

    struct worker workers[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    memset(workers, 0, sizeof workers);
    for (int t = 0; t < cfg.threads; t++) {
        struct worker *w = &workers[t];
        w->cfg = &cfg;
        w->rate = cfg.rate / cfg.threads;
        w->cap = cfg.max_packets / (uint64_t)cfg.threads;
        w->hist = calloc(N_BUCKETS, sizeof(uint64_t));
        if (w->hist == NULL) {
            fprintf(stderr, "loadgen: out of memory\n");
            return 1;
        }
        for (int s = 0; s < cfg.sockets; s++) {
            int fd = open_socket(&cfg);
            if (fd < 0) {
                fprintf(stderr, "loadgen: socket/connect: %s\n", strerror(errno));
                return 1;
            }
            w->fds[w->nfds++] = fd;
        }
    }
    for (int t = 0; t < cfg.threads; t++) {
        if (pthread_create(&tids[t], NULL, run_worker, &workers[t]) != 0) {
            fprintf(stderr, "loadgen: pthread_create failed\n");
            return 1;
        }
    }
    uint64_t sent = 0, received = 0, kod = 0, invalid = 0, send_errors = 0, late = 0, max_ns = 0;
    int64_t send_ns = 0;
    uint64_t *hist = calloc(N_BUCKETS, sizeof(uint64_t));
    if (hist == NULL) return 1;
    for (int t = 0; t < cfg.threads; t++) {
        pthread_join(tids[t], NULL);
        struct worker *w = &workers[t];
        sent += w->sent;
        received += w->received;
        kod += w->kod;
        invalid += w->invalid;
        send_errors += w->send_errors;
        late += w->late;
        if (w->max_ns > max_ns) max_ns = w->max_ns;
        if (w->send_end_ns > send_ns) send_ns = w->send_end_ns;
        for (size_t b = 0; b < N_BUCKETS; b++) hist[b] += w->hist[b];
        for (int s = 0; s < w->nfds; s++) close(w->fds[s]);
        free(w->hist);
    }
    double send_s = (double)send_ns / 1e9;
    double loss = sent ? (double)(sent - (received + kod < sent ? received + kod : sent)) / sent : 0;
    static const double qs[] = {0.50, 0.95, 0.99, 0.999};
    static const char *names[] = {"p50", "p95", "p99", "p99.9"};
    printf("{\"target\": \"%s\", \"port\": %d, \"rate_target\": %.1f, \"duration_s\": %.3f, ",
           cfg.host, cfg.port, cfg.rate, send_s);
    printf("\"threads\": %d, \"sockets_per_thread\": %d, \"tick_us\": %ld, ", cfg.threads,
           cfg.sockets, cfg.tick_ns / 1000);
    printf("\"sent\": %" PRIu64 ", \"received\": %" PRIu64 ", \"kod\": %" PRIu64
           ", \"invalid\": %" PRIu64 ", \"late\": %" PRIu64 ", \"send_errors\": %" PRIu64 ", ",
           sent, received, kod, invalid, late, send_errors);
    printf("\"achieved_rate\": %.1f, \"loss\": %.6f, \"latency_us\": {",
           send_s > 0 ? (double)sent / send_s : 0.0, loss);
    for (int i = 0; i < 4; i++)
        printf("\"%s\": %.1f, ", names[i], percentile_ns(hist, received, qs[i], max_ns) / 1e3);
    printf("\"max\": %.1f}}\n", (double)max_ns / 1e3);
    free(hist);
    return 0;
}
