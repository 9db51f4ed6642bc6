/* echo_client: sends COUNT messages to an echo server and checks every
 * echo, measuring round trips.
 *
 *   echo_client ADDR [COUNT]     (e.g. echo_client v2:127.0.0.1:6800/0 1000)
 *
 * Shows: connecting (the handshake runs in the background), sending with
 * ownership passing to the library, receiving on the client's dispatch
 * thread (ordinary dispatch), keeping a borrowed message with
 * msgr_msg_ref, handle_connect/handle_reset, waiting with a condition
 * variable. Build:
 *   cc echo_client.c $(pkg-config --cflags --libs msgr) -lpthread
 */
#define _GNU_SOURCE
#include <msgr.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long echoes, bad, resets;
static msgr_msg *last; /* kept past its callback with msgr_msg_ref */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int on_dispatch(void *user, msgr_conn conn, msgr_msg *m) {
    msgr_msg_header h;
    const void *p;
    size_t n;
    char want[32];
    (void)user;
    (void)conn;
    memset(&h, 0, sizeof h);
    h.size = sizeof h;
    msgr_msg_get_header(m, &h);
    snprintf(want, sizeof want, "ping %llu", (unsigned long long)h.tid);
    msgr_msg_get_segment(m, MSGR_SEG_FRONT, &p, &n);
    pthread_mutex_lock(&mu);
    if (n != strlen(want) || memcmp(p, want, n) != 0)
        bad++;
    echoes++;
    if (last)
        msgr_msg_put(last);
    msgr_msg_ref(m); /* keep it after we return */
    last = m;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    return 1; /* handled */
}

static void on_connect(void *user, msgr_conn conn) {
    char name[64];
    (void)user;
    msgr_conn_peer_name(conn, name, sizeof name);
    fprintf(stderr, "echo_client: session up with %s\n", name);
}

static int on_reset(void *user, msgr_conn conn) {
    (void)user;
    (void)conn;
    pthread_mutex_lock(&mu);
    resets++;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    return 1;
}

int main(int argc, char **argv) {
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:6800";
    long count = argc > 2 ? atol(argv[2]) : 1000, i;
    msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
    msgr_dispatcher_ops ops;
    msgr_messenger m;
    msgr_policy pol;
    msgr_conn c;
    int64_t t0, deadline;
    int rc;

    cfg.name = "client.4242";
    cfg.nonce = 4242;
    if ((rc = msgr_messenger_create(&m, &cfg)) != 0) {
        fprintf(stderr, "create: %s\n", msgr_strerror(rc));
        return 1;
    }
    msgr_policy_init(&pol, MSGR_POLICY_LOSSY_CLIENT, 0);
    msgr_messenger_set_policy(m, MSGR_ENTITY_OSD, &pol);
    memset(&ops, 0, sizeof ops);
    ops.size = sizeof ops;
    ops.dispatch = on_dispatch;
    ops.handle_connect = on_connect;
    ops.handle_reset = on_reset;
    msgr_messenger_add_dispatcher(m, &ops, NULL, MSGR_TAIL);
    msgr_messenger_start(m);
    if ((rc = msgr_messenger_connect(m, MSGR_ENTITY_OSD, addr, &c)) != 0) {
        char buf[256];
        msgr_last_error(buf, sizeof buf);
        fprintf(stderr, "connect %s: %s\n", addr, buf);
        return 1;
    }
    t0 = now_ns();
    for (i = 0; i < count; i++) {
        msgr_msg *msg;
        char text[32];
        snprintf(text, sizeof text, "ping %ld", i);
        msgr_msg_alloc(&msg, 1);
        msgr_msg_set_tid(msg, (uint64_t)i);
        msgr_msg_set_segment(msg, MSGR_SEG_FRONT, text, strlen(text));
        if ((rc = msgr_conn_send(c, msg)) != 0) { /* failed: still ours */
            msgr_msg_put(msg);
            fprintf(stderr, "send: %s\n", msgr_strerror(rc));
            break;
        }
    }
    deadline = now_ns() + 10 * 1000000000LL;
    pthread_mutex_lock(&mu);
    while (echoes < count && resets == 0 && now_ns() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&cv, &mu, &ts);
    }
    pthread_mutex_unlock(&mu);
    printf("echo_client: %ld of %ld echoes (%ld bad) in %.3f s\n", echoes, count, bad,
           (double)(now_ns() - t0) / 1e9);
    if (last)
        msgr_msg_put(last);
    msgr_conn_put(c);
    msgr_messenger_destroy(m);
    return echoes == count && bad == 0 ? 0 : 1;
}
