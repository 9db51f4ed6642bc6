/* io_uring W5 echo server (rawc framing, one thread): the kernel-cost probe of bench/w5-floor. */
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
#include <unistd.h>

#define MAXC 4096
typedef struct { int fd; char in[65536]; size_t ilen; char out[65536]; size_t olen; int sending, dead; } conn_t;
static conn_t *conns[MAXC];
enum { OP_ACCEPT = 1, OP_RECV = 2, OP_SEND = 3 };
static inline uint64_t ud(int op, int fd) { return ((uint64_t)op << 32) | (uint32_t)fd; }

static struct io_uring ring;
static struct io_uring_sqe *sqe(void) {
  struct io_uring_sqe *s = io_uring_get_sqe(&ring);
  if (!s) { io_uring_submit(&ring); s = io_uring_get_sqe(&ring); }
  return s;
}
/* A send in flight still reads c->out: the conn is freed when it completes. */
static void drop(conn_t *c) {
  if (c->sending) { c->dead = 1; return; }
  conns[c->fd] = NULL; close(c->fd); free(c);
}
static void post_recv(conn_t *c) {
  struct io_uring_sqe *s = sqe();
  io_uring_prep_recv(s, c->fd, c->in + c->ilen, sizeof c->in - c->ilen, 0);
  io_uring_sqe_set_data64(s, ud(OP_RECV, c->fd));
}
static void post_send(conn_t *c) {
  struct io_uring_sqe *s = sqe();
  io_uring_prep_send(s, c->fd, c->out, c->olen, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, ud(OP_SEND, c->fd));
  c->sending = 1;
}

int main(int argc, char **argv) {
  const char *addr = "127.0.0.1:7000"; for (int i = 1; i + 1 < argc; i++) if (!strcmp(argv[i], "--addr")) addr = argv[i + 1];
  char h[64]; const char *colon = strrchr(addr, ':');
  snprintf(h, sizeof h, "%.*s", (int)(colon - addr), addr);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(colon + 1))};
  inet_pton(AF_INET, h, &sa.sin_addr);
  int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (void *)&sa, sizeof sa) || listen(lfd, 1024)) { perror("bind"); return 2; }
  struct io_uring_params p = {0};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  if (io_uring_queue_init_params(1024, &ring, &p)) { perror("uring"); return 2; }
  struct io_uring_sqe *s = sqe();
  io_uring_prep_multishot_accept(s, lfd, NULL, NULL, 0);
  io_uring_sqe_set_data64(s, ud(OP_ACCEPT, lfd));
  alarm(120);
  for (;;) {
    io_uring_submit_and_wait(&ring, 1);
    struct io_uring_cqe *cqe; unsigned head, n = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      n++;
      int op = cqe->user_data >> 32, fd = (int)(uint32_t)cqe->user_data, res = cqe->res;
      if (op == OP_ACCEPT) {
        if (res >= 0) {
          setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conn_t *c = calloc(1, sizeof *c); c->fd = res; conns[res] = c; post_recv(c);
        }
        continue;
      }
      conn_t *c = conns[fd];
      if (!c) continue;
      if (op == OP_RECV) {
        if (res <= 0) { drop(c); continue; }
        c->ilen += res;
        size_t off = 0;
        while (c->ilen - off >= 4) {
          uint32_t len; memcpy(&len, c->in + off, 4); len = ntohl(len);
          if (len == 0 || len > sizeof c->in - 4 || c->olen + 4 + len > sizeof c->out) { res = -1; break; } /* not W5 */
          if (c->ilen - off < 4 + len) break;
          if (c->in[off + 4] == 'P') { memcpy(c->out + c->olen, c->in + off, 4 + len); c->olen += 4 + len; }
          off += 4 + len;
        }
        if (res < 0) { drop(c); continue; }
        memmove(c->in, c->in + off, c->ilen - off); c->ilen -= off;
        if (c->olen && !c->sending) post_send(c);
        post_recv(c);
      } else if (op == OP_SEND) {
        c->sending = 0;
        if (c->dead) { drop(c); continue; }
        if (res < 0) continue;
        memmove(c->out, c->out + res, c->olen - res); c->olen -= res;
        if (c->olen) post_send(c);
      }
    }
    io_uring_cq_advance(&ring, n);
  }
}
