/* Single-thread epoll W5 server and client (rawc framing): the control for
 * the io_uring prototype (same topology: one thread per side). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SZ 68
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
typedef struct { int fd; char in[65536]; size_t ilen; } conn_t;

int main(int argc, char **argv) {
  const char *addr = "127.0.0.1:7000"; int rts = 2000, nc = 100, one = 1;
  for (int i = 1; i + 1 < argc; i++) {
    if (!strcmp(argv[i], "--addr")) addr = argv[i + 1];
    if (!strcmp(argv[i], "--count")) rts = atoi(argv[i + 1]);
  }
  char h[64]; const char *colon = strrchr(addr, ':');
  snprintf(h, sizeof h, "%.*s", (int)(colon - addr), addr);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(colon + 1))};
  inet_pton(AF_INET, h, &sa.sin_addr);
  int ep = epoll_create1(0); struct epoll_event evs[256];
  if (!strcmp(argv[1], "server")) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (void *)&sa, sizeof sa) || listen(lfd, 1024)) { perror("bind"); return 2; }
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL}; epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
    alarm(120);
    for (;;) {
      int n = epoll_wait(ep, evs, 256, -1);
      for (int k = 0; k < n; k++) {
        conn_t *c = evs[k].data.ptr;
        if (!c) {
          int fd; while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            c = calloc(1, sizeof *c); c->fd = fd;
            struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = c}; epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e2);
          }
          continue;
        }
        ssize_t r = read(c->fd, c->in + c->ilen, sizeof c->in - c->ilen);
        if (r <= 0) { epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); free(c); continue; }
        c->ilen += r;
        size_t off = 0;
        while (c->ilen - off >= 4) {
          uint32_t len; memcpy(&len, c->in + off, 4); len = ntohl(len);
          if (len == 0 || len > sizeof c->in - 4) { off = 0; c->ilen = 0; break; } /* not W5: drop the bytes */
          if (c->ilen - off < 4 + len) break;
          off += 4 + len;
        }
        /* W5 echo: one frame in flight, the socket buffer always has room */
        if (off && write(c->fd, c->in, off) != (ssize_t)off) { perror("write"); return 1; }
        memmove(c->in, c->in + off, c->ilen - off); c->ilen -= off;
      }
    }
  }
  int *fd = calloc(nc, sizeof *fd), *left = calloc(nc, sizeof *left); size_t *got = calloc(nc, sizeof *got);
  char (*buf)[SZ] = calloc(nc, SZ);
  char f[SZ]; uint32_t l = htonl(SZ - 4); memcpy(f, &l, 4); for (int i = 4; i < SZ; i++) f[i] = 'a' + i % 26; f[4] = 'P';
  for (int i = 0; i < nc; i++) {
    fd[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd[i], (void *)&sa, sizeof sa)) { perror("connect"); return 2; }
    setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = i}; epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &e);
    left[i] = rts;
  }
  double s0 = now(); long n = 0; int active = nc;
  for (int i = 0; i < nc; i++) if (write(fd[i], f, SZ) != SZ) { perror("write"); return 1; }
  while (active) {
    int k = epoll_wait(ep, evs, 256, 10000); if (k <= 0) { fprintf(stderr, "stall\n"); return 1; }
    for (int j = 0; j < k; j++) {
      int i = evs[j].data.u32;
      ssize_t r = read(fd[i], buf[i] + got[i], SZ - got[i]); if (r <= 0) { perror("read"); return 1; }
      got[i] += r; if (got[i] < SZ) continue;
      if (memcmp(buf[i], f, SZ)) { fprintf(stderr, "mismatch\n"); return 1; }
      got[i] = 0; n++; (void)now();
      if (--left[i] == 0) { active--; close(fd[i]); continue; }
      if (write(fd[i], f, SZ) != SZ) { perror("write"); return 1; }
    }
  }
  double secs = now() - s0;
  printf("{\"impl\":\"epoll1\",\"workload\":\"W5\",\"msgs\":%ld,\"bytes\":%ld,\"seconds\":%.4f,\"msgs_per_s\":%.0f}\n", n, n * 64, secs, n / secs);
  return 0;
}
