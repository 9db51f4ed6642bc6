/* priority_dispatch: a chain of dispatchers, fast dispatch, and the dispatch
 * queue's priority order, in one process.
 *
 * The server's chain, in order:
 *   1. "fast"  (head): can_fast_dispatch takes PING, answered on the worker
 *              thread even while the dispatch thread is busy;
 *   2. "ops":  dispatch takes HOLD (blocks the dispatch thread for a while,
 *              so requests pile up) and OP (records the order it sees);
 *   3. "rest"  (tail): takes whatever nobody else did.
 * The client sends HOLD, then OPs at low, default and high priority,
 * interleaved, a few PINGs and one message of an unknown type. The OPs come
 * out of the queue highest priority first, FIFO within a priority, as in
 * Ceph's DispatchQueue. Exit status 0 if that is what happened.
 *   priority_dispatch
 */
#define _GNU_SOURCE
#include <msgr.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { PING = 1, PONG = 2, HOLD = 3, OP = 4, ODD = 99 };
#define NOPS 15

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int holding, release_hold, pongs, rest_seen;
static atomic_int ops_arrived;
static uint16_t order_prio[NOPS];
static uint64_t order_tid[NOPS];
static int norder;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* 1. fast: PING only. It also sees every message's header first (the
 * queue asks can_fast_dispatch on the worker thread), which the demo uses to
 * know when all OPs have arrived. */
static int fast_can(void *user, const msgr_msg *m) {
    (void)user;
    if (msgr_msg_type(m) == OP)
        atomic_fetch_add(&ops_arrived, 1);
    return msgr_msg_type(m) == PING;
}
static void fast_dispatch(void *user, msgr_conn c, msgr_msg *m) {
    msgr_msg *r;
    (void)user;
    (void)m;
    msgr_msg_alloc(&r, PONG);
    if (msgr_conn_send(c, r) != 0)
        msgr_msg_put(r);
}

/* 2. ops: HOLD and OP on the dispatch thread. */
static int ops_dispatch(void *user, msgr_conn c, msgr_msg *m) {
    msgr_msg_header h;
    (void)user;
    (void)c;
    memset(&h, 0, sizeof h);
    h.size = sizeof h;
    msgr_msg_get_header(m, &h);
    if (h.type == HOLD) {
        pthread_mutex_lock(&mu);
        holding = 1;
        pthread_cond_broadcast(&cv);
        while (!release_hold)
            pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
        return 1;
    }
    if (h.type == OP) {
        pthread_mutex_lock(&mu);
        if (norder < NOPS) {
            order_prio[norder] = h.priority;
            order_tid[norder] = h.tid;
            norder++;
        }
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
        return 1;
    }
    return 0; /* not ours: the next dispatcher is asked */
}

/* 3. rest. */
static int rest_dispatch(void *user, msgr_conn c, msgr_msg *m) {
    (void)user;
    (void)c;
    printf("rest: took a message of type %u nobody else wanted\n", msgr_msg_type(m));
    pthread_mutex_lock(&mu);
    rest_seen++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return 1;
}

/* The client counts PONGs on its worker thread. */
static int cli_can(void *user, const msgr_msg *m) {
    (void)user;
    return msgr_msg_type(m) == PONG;
}
static void cli_fast(void *user, msgr_conn c, msgr_msg *m) {
    (void)user;
    (void)c;
    (void)m;
    pthread_mutex_lock(&mu);
    pongs++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void send_msg(msgr_conn c, uint16_t type, uint16_t prio, uint64_t tid) {
    msgr_msg *m;
    msgr_msg_alloc(&m, type);
    msgr_msg_set_priority(m, prio);
    msgr_msg_set_tid(m, tid);
    if (msgr_conn_send(c, m) != 0)
        msgr_msg_put(m);
}

static msgr_messenger make(const char *name, uint32_t nonce) {
    msgr_messenger m;
    msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
    cfg.name = name;
    cfg.nonce = nonce;
    if (msgr_messenger_create(&m, &cfg) != 0) {
        fprintf(stderr, "create failed\n");
        m.id = 0;
    }
    return m;
}

int main(void) {
    static const uint16_t prios[3] = {MSGR_PRIO_LOW, MSGR_PRIO_DEFAULT, MSGR_PRIO_HIGH};
    msgr_messenger srv = make("osd.0", 0), cli = make("client.1", 1);
    msgr_dispatcher_ops fast, ops, rest, cops;
    msgr_conn c;
    char addr[128];
    int i, ok = 1, waited;

    memset(&fast, 0, sizeof fast);
    fast.size = sizeof fast;
    fast.can_fast_dispatch = fast_can;
    fast.fast_dispatch = fast_dispatch;
    memset(&ops, 0, sizeof ops);
    ops.size = sizeof ops;
    ops.dispatch = ops_dispatch;
    memset(&rest, 0, sizeof rest);
    rest.size = sizeof rest;
    rest.dispatch = rest_dispatch;
    /* Order of the chain: "ops" added at the tail, "rest" after it, and
     * "fast" at the head, in front of both. */
    msgr_messenger_add_dispatcher(srv, &ops, NULL, MSGR_TAIL);
    msgr_messenger_add_dispatcher(srv, &rest, NULL, MSGR_TAIL);
    msgr_messenger_add_dispatcher(srv, &fast, NULL, MSGR_HEAD);
    msgr_messenger_bind(srv, "127.0.0.1:0");
    msgr_messenger_get_addrs(srv, addr, sizeof addr);
    msgr_messenger_start(srv);

    memset(&cops, 0, sizeof cops);
    cops.size = sizeof cops;
    cops.can_fast_dispatch = cli_can;
    cops.fast_dispatch = cli_fast;
    msgr_messenger_add_dispatcher(cli, &cops, NULL, MSGR_TAIL);
    msgr_messenger_start(cli);
    if (msgr_messenger_connect(cli, MSGR_ENTITY_OSD, addr, &c) != 0) {
        fprintf(stderr, "connect failed\n");
        return 1;
    }

    send_msg(c, HOLD, MSGR_PRIO_DEFAULT, 0);
    pthread_mutex_lock(&mu);
    while (!holding)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    for (i = 0; i < NOPS; i++) /* low, default, high, low, default, high... */
        send_msg(c, OP, prios[i % 3], (uint64_t)i);
    for (i = 0; i < 3; i++)
        send_msg(c, PING, MSGR_PRIO_DEFAULT, 100 + (uint64_t)i);
    send_msg(c, ODD, MSGR_PRIO_DEFAULT, 200);

    /* PINGs are answered although the dispatch thread is held. */
    pthread_mutex_lock(&mu);
    for (waited = 0; pongs < 3 && waited < 1000; waited++) {
        pthread_mutex_unlock(&mu);
        sleep_ms(5);
        pthread_mutex_lock(&mu);
    }
    printf("fast: %d pongs while the dispatch thread was held\n", pongs);
    ok &= pongs == 3;
    pthread_mutex_unlock(&mu);
    for (waited = 0; atomic_load(&ops_arrived) < NOPS && waited < 2000; waited++)
        sleep_ms(5);
    pthread_mutex_lock(&mu);
    release_hold = 1;
    pthread_cond_broadcast(&cv);
    while (norder < NOPS || rest_seen < 1)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);

    printf("ops: dispatch order (priority/tid):");
    for (i = 0; i < NOPS; i++) {
        printf(" %u/%llu", order_prio[i], (unsigned long long)order_tid[i]);
        if (i > 0 && (order_prio[i] > order_prio[i - 1] ||
                      (order_prio[i] == order_prio[i - 1] && order_tid[i] < order_tid[i - 1])))
            ok = 0;
    }
    printf("\n%s\n", ok ? "priority order: ok" : "priority order: WRONG");
    msgr_conn_put(c);
    msgr_messenger_destroy(cli);
    msgr_messenger_destroy(srv);
    return ok ? 0 : 1;
}
