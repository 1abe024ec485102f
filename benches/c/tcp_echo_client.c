/* A TCP echo load client: N connections each send a SIZE-byte request
 * and wait for its whole echo, back to back, for SECS seconds; one
 * thread, epoll. Prints "requests N" and "rate R" (requests/s).
 *
 *   cc -O2 -o tcp_echo_client tcp_echo_client.c
 *   ./tcp_echo_client 127.0.0.1 7000 64 100 3
 *
 * Written for insane's tokio-compatible TCP path (issue 17): the same
 * client for every server, outside the servers' runtimes.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    size_t got;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int send_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT CONNECTIONS SIZE SECONDS\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    int nconn = atoi(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    double secs = atof(argv[5]);
    if (nconn < 1 || size < 1 || secs <= 0) {
        fprintf(stderr, "connections, size and seconds must be positive\n");
        return 2;
    }
    char *req = malloc(size);
    char *rsp = malloc(size);
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    if (!req || !rsp || !conns) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    memset(req, 'x', size);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "bad IPv4 address %s\n", host);
        return 2;
    }
    int ep = epoll_create1(0);
    for (int i = 0; i < nconn; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
            perror("connect");
            return 1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    for (int i = 0; i < nconn; i++)
        if (send_all(conns[i].fd, req, size) != 0) {
            perror("send");
            return 1;
        }
    long long requests = 0;
    double start = now(), end = start + secs;
    struct epoll_event evs[256];
    while (now() < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            struct conn *c = &conns[evs[k].data.u32];
            ssize_t r = recv(c->fd, rsp, size - c->got, 0);
            if (r == 0) {
                fprintf(stderr, "server closed a connection\n");
                return 1;
            }
            if (r < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    continue;
                perror("recv");
                return 1;
            }
            c->got += (size_t)r;
            if (c->got == size) {
                c->got = 0;
                requests++;
                if (send_all(c->fd, req, size) != 0) {
                    perror("send");
                    return 1;
                }
            }
        }
    }
    double took = now() - start;
    printf("requests %lld\nrate %.0f\n", requests, requests / took);
    return 0;
}
