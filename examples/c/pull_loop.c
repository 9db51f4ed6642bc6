/* pull_loop: pull mode inside your own event loop, with poll().
 *
 * The server does not register callbacks: msgr_messenger_add_pull queues
 * messages and events, msgr_messenger_event_fd gives a descriptor that is
 * readable while something is queued, and the loop polls it next to a
 * timerfd, draining batches with msgr_messenger_recv(..., 0) and replying
 * from the loop's own thread. The client, in the same process, uses the
 * blocking form (a timeout) instead.
 *   pull_loop [COUNT]
 */
#define _GNU_SOURCE
#include <msgr.h>

#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

static long count = 10000;
static char addr[128];
static volatile int client_ok = -1;

static void *client(void *arg) {
    msgr_messenger m;
    msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
    msgr_conn c;
    msgr_event ev[64];
    long i, got = 0;
    (void)arg;
    cfg.name = "client.7";
    cfg.nonce = 7;
    msgr_messenger_create(&m, &cfg);
    msgr_messenger_add_pull(m, MSGR_TAIL);
    msgr_messenger_start(m);
    msgr_messenger_connect(m, MSGR_ENTITY_OSD, addr, &c);
    for (i = 0; i < count; i++) {
        msgr_msg *msg;
        msgr_msg_alloc(&msg, 1);
        msgr_msg_set_tid(msg, (uint64_t)i);
        msgr_msg_set_segment(msg, MSGR_SEG_FRONT, &i, sizeof i);
        if (msgr_conn_send(c, msg) != 0)
            msgr_msg_put(msg);
    }
    while (got < count) {
        int n = msgr_messenger_recv(m, ev, 64, sizeof ev[0], 5000), k;
        if (n < 0) {
            fprintf(stderr, "client: recv: %s\n", msgr_err_name(n));
            break;
        }
        for (k = 0; k < n; k++) {
            if (ev[k].type != MSGR_EVENT_MESSAGE)
                continue;
            got++;
            msgr_msg_put(ev[k].msg); /* the events' messages are ours */
        }
    }
    msgr_conn_put(c);
    msgr_messenger_destroy(m);
    client_ok = got == count;
    return NULL;
}

int main(int argc, char **argv) {
    msgr_messenger srv;
    msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
    struct pollfd pfd[2];
    struct itimerspec tick = {{0, 200 * 1000000L}, {0, 200 * 1000000L}};
    msgr_event ev[128];
    long echoed = 0, batches = 0;
    pthread_t th;
    int tfd;

    if (argc > 1)
        count = atol(argv[1]);
    cfg.name = "osd.3";
    cfg.nonce = 3;
    if (msgr_messenger_create(&srv, &cfg) != 0 || msgr_messenger_add_pull(srv, MSGR_TAIL) != 0 ||
        msgr_messenger_bind(srv, "127.0.0.1:0") != 0 || msgr_messenger_start(srv) != 0)
        return 1;
    msgr_messenger_get_addrs(srv, addr, sizeof addr);
    msgr_messenger_event_fd(srv, &pfd[0].fd);
    pfd[0].events = POLLIN;
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    timerfd_settime(tfd, 0, &tick, NULL);
    pfd[1].fd = tfd;
    pfd[1].events = POLLIN;
    pthread_create(&th, NULL, client, NULL);

    while (client_ok < 0) {
        if (poll(pfd, 2, 1000) <= 0)
            continue;
        if (pfd[1].revents & POLLIN) {
            uint64_t n;
            if (read(tfd, &n, sizeof n) == sizeof n)
                printf("loop: %ld echoed in %ld batches\n", echoed, batches);
        }
        if (pfd[0].revents & POLLIN) {
            /* Drain what is queued without waiting; the fd says when to
             * come back. */
            int n = msgr_messenger_recv(srv, ev, 128, sizeof ev[0], 0), k;
            if (n == MSGR_EAGAIN)
                continue;
            if (n < 0)
                break;
            batches++;
            for (k = 0; k < n; k++) {
                if (ev[k].type == MSGR_EVENT_ACCEPT) {
                    printf("loop: a client connected\n");
                    continue;
                }
                if (ev[k].type != MSGR_EVENT_MESSAGE)
                    continue;
                /* Reply with the same message: it is ours, so it can go. */
                if (msgr_conn_send(ev[k].conn, ev[k].msg) == 0)
                    echoed++;
                else
                    msgr_msg_put(ev[k].msg);
            }
        }
    }
    pthread_join(th, NULL);
    printf("loop: %ld echoed in %ld batches (%.1f per batch), client %s\n", echoed, batches,
           batches ? (double)echoed / (double)batches : 0.0, client_ok ? "ok" : "FAILED");
    close(tfd);
    msgr_messenger_destroy(srv);
    return client_ok ? 0 : 1;
}
