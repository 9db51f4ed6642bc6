/* A dispatcher that blocks the dispatch thread does not stall fast dispatch:
 * while the server's `dispatch` callback is stuck on one connection's
 * message, other connections (and the same one) still get fast-dispatched
 * replies. */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>

enum { T_SLOW = 1, T_FAST = 2, R_SLOW = 11, R_FAST = 12 };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int blocked, release_slow;
static atomic_int fast_replies[2], slow_replies;

static int srv_can_fast(void *u, const msgr_msg *m) {
    (void)u;
    return msgr_msg_type(m) == T_FAST;
}

static void srv_fast(void *u, msgr_conn c, msgr_msg *m) {
    (void)u;
    (void)m;
    OK(msgr_conn_send(c, make_msg(R_FAST, "f", 1)));
}

static int srv_dispatch(void *u, msgr_conn c, msgr_msg *m) {
    int64_t deadline = now_ns() + 20 * 1000000000LL;
    (void)u;
    if (msgr_msg_type(m) != T_SLOW)
        return 0;
    pthread_mutex_lock(&mu);
    blocked = 1;
    pthread_cond_broadcast(&cv);
    while (!release_slow && now_ns() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&cv, &mu, &ts);
    }
    pthread_mutex_unlock(&mu);
    OK(msgr_conn_send(c, make_msg(R_SLOW, "s", 1)));
    return 1;
}

static void cli_fast(void *u, msgr_conn c, msgr_msg *m) {
    int idx = *(int *)u;
    (void)c;
    if (msgr_msg_type(m) == R_FAST)
        atomic_fetch_add(&fast_replies[idx], 1);
    else
        atomic_fetch_add(&slow_replies, 1);
}

int main(void) {
    msgr_messenger srv, cli[2];
    msgr_conn c[2];
    msgr_dispatcher_ops ops;
    char addr[128];
    int i, k, idx[2] = {0, 1};
    int64_t deadline;

    srv = make_messenger("osd.1", 1, NULL);
    memset(&ops, 0, sizeof ops);
    ops.size = sizeof ops;
    ops.can_fast_dispatch = srv_can_fast;
    ops.fast_dispatch = srv_fast;
    ops.dispatch = srv_dispatch;
    OK(msgr_messenger_add_dispatcher(srv, &ops, NULL, MSGR_TAIL));
    OK(msgr_messenger_bind(srv, "127.0.0.1:0"));
    OK(msgr_messenger_get_addrs(srv, addr, sizeof addr));
    OK(msgr_messenger_start(srv));
    for (i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "client.%d", 10 + i);
        cli[i] = make_messenger(name, (uint32_t)(10 + i), NULL);
        memset(&ops, 0, sizeof ops);
        ops.size = sizeof ops;
        ops.flags = MSGR_DISPATCH_F_FAST_ALL; /* every reply on the worker */
        ops.fast_dispatch = cli_fast;
        OK(msgr_messenger_add_dispatcher(cli[i], &ops, &idx[i], MSGR_TAIL));
        OK(msgr_messenger_start(cli[i]));
        OK(msgr_messenger_connect(cli[i], MSGR_ENTITY_OSD, addr, &c[i]));
    }
    /* Client 0 blocks the server's dispatch thread. */
    OK(msgr_conn_send(c[0], make_msg(T_SLOW, "block", 5)));
    pthread_mutex_lock(&mu);
    while (!blocked)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    /* Both connections still get fast replies meanwhile. */
    for (k = 0; k < 100; k++)
        for (i = 0; i < 2; i++)
            OK(msgr_conn_send(c[i], make_msg(T_FAST, "x", 1)));
    deadline = now_ns() + 20 * 1000000000LL;
    while ((atomic_load(&fast_replies[0]) < 100 || atomic_load(&fast_replies[1]) < 100) &&
           now_ns() < deadline)
        sleep_ms(1);
    CHECK(atomic_load(&fast_replies[0]) == 100 && atomic_load(&fast_replies[1]) == 100);
    CHECK(atomic_load(&slow_replies) == 0); /* still blocked */
    pthread_mutex_lock(&mu);
    release_slow = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    while (atomic_load(&slow_replies) < 1 && now_ns() < deadline)
        sleep_ms(1);
    CHECK(atomic_load(&slow_replies) == 1);
    for (i = 0; i < 2; i++) {
        OK(msgr_conn_put(c[i]));
        OK(msgr_messenger_destroy(cli[i]));
    }
    OK(msgr_messenger_destroy(srv));
    check_no_leaks();
    printf("blocking: ok\n");
    return 0;
}
