/*
 * udp_pingpong: a UDP ping-pong client in plain C, so that not only
 * insane-bench's own Rust client measures insane's UDP echo
 * (examples/echo_udp). insane-bench compiles it at run time with the
 * system C compiler (`cc -O2`).
 *
 *   udp_pingpong HOST PORT SIZE WARMUP TRIPS MAX_SECONDS
 *
 * Sends one SIZE-byte datagram at a time (the first 8 bytes carry a
 * sequence number), waits for its echo, and times each round trip with
 * CLOCK_MONOTONIC: WARMUP untimed trips, then TRIPS timed ones (stopping
 * early after MAX_SECONDS). A lost datagram (no echo within 1 s) is an
 * error. Prints one line:
 *
 *   trips=N seconds=S p50_ns=.. p90_ns=.. p99_ns=.. p999_ns=.. max_ns=..
 *
 * and exits 0, or prints a message on stderr and exits 1. Loopback only
 * in practice; the caller passes 127.0.0.1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t quantile(const uint64_t *sorted, size_t n, double q) {
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/* One round trip with sequence number seq; 0 on success. */
static int trip(int fd, unsigned char *msg, unsigned char *buf, size_t size, uint64_t seq) {
    memcpy(msg, &seq, sizeof seq);
    if (send(fd, msg, size, 0) != (ssize_t)size) {
        fprintf(stderr, "udp_pingpong: send: %s\n", strerror(errno));
        return -1;
    }
    for (;;) {
        ssize_t n = recv(fd, buf, size + 64, 0);
        if (n < 0) {
            fprintf(stderr, "udp_pingpong: recv (datagram %llu): %s\n",
                    (unsigned long long)seq, strerror(errno));
            return -1;
        }
        uint64_t got;
        memcpy(&got, buf, sizeof got);
        if ((size_t)n == size && got == seq) return 0;
        /* A late echo of an earlier datagram: keep waiting for ours. */
        if ((size_t)n == size && got < seq) continue;
        fprintf(stderr, "udp_pingpong: bad echo: %zd bytes, stamp %llu, expected %llu\n", n,
                (unsigned long long)got, (unsigned long long)seq);
        return -1;
    }
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT SIZE WARMUP TRIPS MAX_SECONDS\n", argv[0]);
        return 1;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    size_t size = (size_t)strtoul(argv[3], NULL, 10);
    unsigned long warmup = strtoul(argv[4], NULL, 10);
    unsigned long trips = strtoul(argv[5], NULL, 10);
    double max_seconds = atof(argv[6]);
    if (size < 8 || size > 65507 || trips == 0 || port <= 0 || port > 65535) {
        fprintf(stderr, "udp_pingpong: bad arguments\n");
        return 1;
    }

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("udp_pingpong: socket");
        return 1;
    }
    struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &to.sin_addr) != 1) {
        fprintf(stderr, "udp_pingpong: bad IPv4 address %s\n", host);
        return 1;
    }
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        perror("udp_pingpong: connect");
        return 1;
    }

    unsigned char *msg = calloc(size, 1), *buf = calloc(size + 64, 1);
    uint64_t *rtt = calloc(trips, sizeof *rtt);
    if (!msg || !buf || !rtt) {
        fprintf(stderr, "udp_pingpong: out of memory\n");
        return 1;
    }
    memset(msg, 0x5a, size);
    uint64_t seq = 0;
    for (unsigned long i = 0; i < warmup; i++, seq++)
        if (trip(fd, msg, buf, size, seq) != 0) return 1;

    uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(max_seconds * 1e9);
    size_t done = 0;
    while (done < trips) {
        uint64_t start = now_ns();
        if (trip(fd, msg, buf, size, seq++) != 0) return 1;
        uint64_t end = now_ns();
        rtt[done++] = end - start;
        if ((done & 1023) == 0 && end > deadline) break;
    }
    double seconds = (double)(now_ns() - t0) / 1e9;
    qsort(rtt, done, sizeof *rtt, cmp_u64);
    printf("trips=%zu seconds=%.6f p50_ns=%llu p90_ns=%llu p99_ns=%llu p999_ns=%llu max_ns=%llu\n",
           done, seconds, (unsigned long long)quantile(rtt, done, 0.50),
           (unsigned long long)quantile(rtt, done, 0.90),
           (unsigned long long)quantile(rtt, done, 0.99),
           (unsigned long long)quantile(rtt, done, 0.999), (unsigned long long)rtt[done - 1]);
    free(msg);
    free(buf);
    free(rtt);
    close(fd);
    return 0;
}
