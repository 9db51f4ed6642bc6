/* io_uring W5 client (rawc framing, one thread, 100 connections): bench/w5-floor. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static struct io_uring ring;
static struct io_uring_sqe *sqe(void) {
  struct io_uring_sqe *s = io_uring_get_sqe(&ring);
  if (!s) { io_uring_submit(&ring); s = io_uring_get_sqe(&ring); }
  return s;
}
#define SZ 68
int main(int argc, char **argv) {
  const char *addr = "127.0.0.1:7000"; int nc = 100, rts = 2000;
  for (int i = 1; i + 1 < argc; i++) {
    if (!strcmp(argv[i], "--addr")) addr = argv[i + 1];
    if (!strcmp(argv[i], "--count")) rts = atoi(argv[i + 1]);
  }
  char h[64]; const char *colon = strrchr(addr, ':');
  snprintf(h, sizeof h, "%.*s", (int)(colon - addr), addr);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(colon + 1))};
  inet_pton(AF_INET, h, &sa.sin_addr);
  struct io_uring_params p = {0};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  if (io_uring_queue_init_params(1024, &ring, &p)) { perror("uring"); return 2; }
  int *fd = calloc(nc, sizeof *fd), *left = calloc(nc, sizeof *left); size_t *got = calloc(nc, sizeof *got);
  char (*buf)[SZ] = calloc(nc, SZ); double *t0 = calloc(nc, sizeof *t0);
  char f[SZ]; uint32_t l = htonl(SZ - 4); memcpy(f, &l, 4); for (int i = 4; i < SZ; i++) f[i] = 'a' + i % 26; f[4] = 'P';
  int one = 1;
  for (int i = 0; i < nc; i++) {
    fd[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd[i], (void *)&sa, sizeof sa)) { perror("connect"); return 2; }
    setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    left[i] = rts;
  }
  double s0 = now();
  for (int i = 0; i < nc; i++) {
    t0[i] = now();
    struct io_uring_sqe *s = sqe(); io_uring_prep_send(s, fd[i], f, SZ, MSG_NOSIGNAL); io_uring_sqe_set_data64(s, (1ull << 32) | i); s->flags |= IOSQE_CQE_SKIP_SUCCESS;
    s = sqe(); io_uring_prep_recv(s, fd[i], buf[i], SZ, 0); io_uring_sqe_set_data64(s, i);
  }
  int active = nc; long n = 0;
  while (active) {
    io_uring_submit_and_wait(&ring, 1);
    struct io_uring_cqe *cqe; unsigned head, k = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      k++;
      int i = (int)(uint32_t)cqe->user_data;
      if (cqe->user_data >> 32) { if (cqe->res != SZ) { fprintf(stderr, "send %d\n", cqe->res); return 1; } continue; }
      if (cqe->res <= 0) { fprintf(stderr, "recv %d\n", cqe->res); return 1; }
      got[i] += cqe->res;
      if (got[i] < SZ) { struct io_uring_sqe *s = sqe(); io_uring_prep_recv(s, fd[i], buf[i] + got[i], SZ - got[i], 0); io_uring_sqe_set_data64(s, i); continue; }
      if (memcmp(buf[i], f, SZ)) { fprintf(stderr, "mismatch\n"); return 1; }
      got[i] = 0; n++; double t = now(); (void)t0;
      if (--left[i] == 0) { active--; continue; }
      t0[i] = t;
      struct io_uring_sqe *s = sqe(); io_uring_prep_send(s, fd[i], f, SZ, MSG_NOSIGNAL); io_uring_sqe_set_data64(s, (1ull << 32) | i); s->flags |= IOSQE_CQE_SKIP_SUCCESS;
      s = sqe(); io_uring_prep_recv(s, fd[i], buf[i], SZ, 0); io_uring_sqe_set_data64(s, i);
    }
    io_uring_cq_advance(&ring, k);
  }
  double secs = now() - s0;
  printf("{\"impl\":\"uring\",\"workload\":\"W5\",\"msgs\":%ld,\"bytes\":%ld,\"seconds\":%.4f,\"msgs_per_s\":%.0f}\n", n, n * 64, secs, n / secs);
  return 0;
}
