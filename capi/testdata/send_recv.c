/* Callbacks end to end: fast dispatch and ordinary dispatch, replies sent
 * from inside callbacks, borrowed messages kept with msgr_msg_ref, zero-copy
 * data, connection handles, priv pointers, info, events, release. */
#include "testutil.h"

#include <pthread.h>

enum { T_FAST = 1, T_SLOW = 2, T_BORROW = 3, T_ZC = 4, REPLY = 100 };
#define N 200
#define BURSTS 100
#define ZC_LEN (256 * 1024)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

/* Server state. */
static msgr_messenger srv;
static msgr_conn srv_conn; /* kept with msgr_conn_get in handle_accept */
static int srv_accepts, srv_releases, srv_deadlk_checked, srv_fast_calls;
static int srv_marker;
static int zc_frees; /* server's zero-copy reply buffers freed */

/* Client state. */
static msgr_msg *replies[4 * N];
static int nreplies, cli_connects, cli_resets, cli_releases;
static int client_zc_frees;

static void zc_free(void *data, void *hint) {
    int *counter = (int *)hint;
    free(data);
    pthread_mutex_lock(&mu);
    (*counter)++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void reply_copy(msgr_conn c, const msgr_msg *m, uint16_t type) {
    msgr_msg *r;
    msgr_msg_header h;
    const void *p;
    size_t n;
    memset(&h, 0, sizeof h);
    h.size = sizeof h;
    OK(msgr_msg_get_header(m, &h));
    OK(msgr_msg_alloc(&r, type));
    OK(msgr_msg_get_segment(m, MSGR_SEG_FRONT, &p, &n));
    OK(msgr_msg_set_segment(r, MSGR_SEG_FRONT, p, n));
    OK(msgr_msg_set_tid(r, h.tid));
    OK(msgr_conn_send(c, r)); /* a reply from inside a callback */
}

static int srv_can_fast(void *user, const msgr_msg *m) {
    CHECK(user == &srv_marker);
    return msgr_msg_type(m) == T_FAST;
}

static void srv_fast(void *user, msgr_conn c, msgr_msg *m) {
    void *priv = NULL;
    (void)user;
    if (srv_fast_calls++ == 0) {
        /* Calls that would wait for this very thread refuse. */
        CHECK_RC(msgr_messenger_destroy(srv), MSGR_EDEADLK);
        CHECK_RC(msgr_messenger_wait(srv), MSGR_EDEADLK);
        CHECK_RC(msgr_conn_wait_held(c, 0, 0), MSGR_EDEADLK);
        srv_deadlk_checked = 1;
    }
    /* handle_accept sets priv on the dispatch thread; a fast message may
     * come first (Ceph has the same race), so set it here too. */
    OK(msgr_conn_get_priv(c, &priv));
    if (priv == NULL) {
        OK(msgr_conn_set_priv(c, &srv_marker));
        OK(msgr_conn_get_priv(c, &priv)); /* this thread's set is seen at once */
    }
    CHECK(priv == &srv_marker);
    reply_copy(c, m, REPLY + T_FAST);
}

static int srv_dispatch(void *user, msgr_conn c, msgr_msg *m) {
    msgr_msg_header h;
    (void)user;
    memset(&h, 0, sizeof h);
    h.size = sizeof h;
    OK(msgr_msg_get_header(m, &h));
    CHECK(h.src_type == MSGR_ENTITY_CLIENT && h.src_num == 9);
    CHECK(h.seq > 0);
    switch (h.type) {
    case T_SLOW:
        reply_copy(c, m, REPLY + T_SLOW);
        return 1;
    case T_BORROW:
        /* Borrowed: sending it needs a reference of our own. */
        CHECK_RC(msgr_conn_send(c, m), MSGR_ESTATE);
        CHECK_RC(msgr_msg_put(m), MSGR_ESTATE);
        CHECK_RC(msgr_msg_set_tid(m, 5), MSGR_ESTATE);
        OK(msgr_msg_ref(m));
        OK(msgr_conn_send(c, m)); /* the reference goes with it */
        return 1;
    case T_ZC: {
        const void *p;
        size_t n;
        msgr_msg *r;
        void *copy;
        OK(msgr_msg_get_segment(m, MSGR_SEG_DATA, &p, &n));
        CHECK(n == ZC_LEN);
        copy = malloc(n);
        CHECK(copy != NULL);
        memcpy(copy, p, n);
        OK(msgr_msg_alloc(&r, REPLY + T_ZC));
        OK(msgr_msg_set_data_nocopy(r, copy, n, zc_free, &zc_frees));
        OK(msgr_conn_send(c, r));
        return 1;
    }
    }
    return 0;
}

static void srv_accept(void *user, msgr_conn c) {
    (void)user;
    OK(msgr_conn_set_priv(c, &srv_marker));
    OK(msgr_conn_get(c));
    pthread_mutex_lock(&mu);
    srv_conn = c;
    srv_accepts++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void count_release(void *user) {
    (*(int *)user)++;
}

static void srv_release(void *user) {
    CHECK(user == &srv_marker);
    srv_releases++;
}

static int cli_dispatch(void *user, msgr_conn c, msgr_msg *m) {
    (void)user;
    (void)c;
    OK(msgr_msg_ref(m)); /* keep it past the callback */
    pthread_mutex_lock(&mu);
    CHECK(nreplies < 4 * N);
    replies[nreplies++] = m;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return 1;
}

static void cli_connect(void *user, msgr_conn c) {
    (void)user;
    (void)c;
    pthread_mutex_lock(&mu);
    cli_connects++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static int cli_reset(void *user, msgr_conn c) {
    msgr_conn_info info;
    (void)user;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    OK(msgr_conn_get_info(c, &info)); /* the handle is valid in the callback */
    pthread_mutex_lock(&mu);
    cli_resets++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return 1;
}

/* Waits (bounded) until *counter >= want. */
static void wait_for(int *counter, int want, const char *what) {
    int64_t deadline = now_ns() + 20 * 1000000000LL;
    pthread_mutex_lock(&mu);
    while (*counter < want) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&cv, &mu, &ts);
        if (now_ns() > deadline) {
            pthread_mutex_unlock(&mu);
            FAILF("timed out waiting for %s: %d of %d", what, *counter, want);
        }
    }
    pthread_mutex_unlock(&mu);
}

int main(void) {
    msgr_messenger cli;
    msgr_dispatcher_ops ops;
    msgr_policy pol;
    msgr_conn c;
    msgr_conn_info info;
    char addr[128], buf[128];
    int i, fast_seen = 0, slow_seen = 0;
    void *priv;

    srv = make_messenger("osd.5", 1111, NULL);
    memset(&ops, 0, sizeof ops);
    ops.size = sizeof ops;
    ops.can_fast_dispatch = srv_can_fast;
    ops.fast_dispatch = srv_fast;
    ops.dispatch = srv_dispatch;
    ops.handle_accept = srv_accept;
    ops.release = srv_release;
    OK(msgr_messenger_add_dispatcher(srv, &ops, &srv_marker, MSGR_HEAD));
    OK(msgr_messenger_bind(srv, "v2:127.0.0.1:0/0"));
    OK(msgr_messenger_get_addrs(srv, addr, sizeof addr));
    CHECK(strncmp(addr, "v2:127.0.0.1:", 13) == 0 && strstr(addr, ":0/") == NULL);
    CHECK(strstr(addr, "/1111") != NULL); /* the messenger's nonce */
    OK(msgr_messenger_start(srv));

    cli = make_messenger("client.9", 2222, NULL);
    memset(&ops, 0, sizeof ops);
    ops.size = sizeof ops;
    ops.dispatch = cli_dispatch;
    ops.handle_connect = cli_connect;
    ops.handle_reset = cli_reset;
    ops.release = count_release;
    OK(msgr_messenger_add_dispatcher(cli, &ops, &cli_releases, MSGR_TAIL));
    OK(msgr_policy_init(&pol, MSGR_POLICY_LOSSY_CLIENT, 0));
    OK(msgr_messenger_set_policy(cli, MSGR_ENTITY_OSD, &pol));
    OK(msgr_messenger_start(cli));
    OK(msgr_messenger_connect(cli, MSGR_ENTITY_OSD, addr, &c));

    /* Fast and slow requests, interleaved; tids number them. */
    for (i = 0; i < N; i++) {
        msgr_msg *m;
        snprintf(buf, sizeof buf, "%s-%d", i % 2 ? "slow" : "fast", i);
        m = make_msg(i % 2 ? T_SLOW : T_FAST, buf, strlen(buf));
        OK(msgr_msg_set_tid(m, (uint64_t)i));
        OK(msgr_conn_send(c, m));
    }
    wait_for(&nreplies, N, "replies");
    wait_for(&cli_connects, 1, "handle_connect");
    wait_for(&srv_accepts, 1, "handle_accept");
    CHECK(srv_deadlk_checked);
    for (i = 0; i < N; i++) {
        msgr_msg_header h;
        const void *p;
        size_t n;
        char want[64];
        memset(&h, 0, sizeof h);
        h.size = sizeof h;
        OK(msgr_msg_get_header(replies[i], &h));
        CHECK(h.type == REPLY + T_FAST || h.type == REPLY + T_SLOW);
        CHECK(h.src_type == MSGR_ENTITY_OSD && h.src_num == 5);
        snprintf(want, sizeof want, "%s-%d", h.type == REPLY + T_SLOW ? "slow" : "fast", (int)h.tid);
        OK(msgr_msg_get_segment(replies[i], MSGR_SEG_FRONT, &p, &n));
        CHECK(n == strlen(want) && memcmp(p, want, n) == 0);
        /* Each path replies in order. */
        if (h.type == REPLY + T_FAST) {
            CHECK((int)h.tid == 2 * fast_seen);
            fast_seen++;
        } else {
            CHECK((int)h.tid == 2 * slow_seen + 1);
            slow_seen++;
        }
        OK(msgr_msg_put(replies[i]));
    }
    CHECK(fast_seen == N / 2 && slow_seen == N / 2);
    nreplies = 0;

    /* Bursts of fast and slow messages, interleaved: received messages
     * are pooled, so a fast one often reuses the struct of a slow one the
     * dispatch thread just released; the library must ask
     * can_fast_dispatch about each message (an answer once cached by
     * address sent such a fast message down the slow path, unclaimed:
     * lost in about one burst in fifty). */
    for (i = 0; i < BURSTS; i++) {
        int k;
        for (k = 0; k < N; k++) {
            msgr_msg *m = make_msg(k % 2 ? T_SLOW : T_FAST, "burst", 5);
            OK(msgr_msg_set_tid(m, (uint64_t)k));
            OK(msgr_conn_send(c, m));
        }
        wait_for(&nreplies, N, "burst replies");
        for (k = 0; k < N; k++)
            OK(msgr_msg_put(replies[k]));
        nreplies = 0;
    }

    /* A borrowed message sent back as is. */
    {
        msgr_msg *m = make_msg(T_BORROW, "borrowed", 8);
        const void *p;
        size_t n;
        OK(msgr_conn_send(c, m));
        wait_for(&nreplies, 1, "borrow reply");
        CHECK(msgr_msg_type(replies[0]) == T_BORROW);
        OK(msgr_msg_get_segment(replies[0], MSGR_SEG_FRONT, &p, &n));
        CHECK(n == 8 && memcmp(p, "borrowed", 8) == 0);
        OK(msgr_msg_put(replies[0]));
        nreplies = 0;
    }

    /* Zero copy both ways: our buffer is freed once the library is done. */
    {
        unsigned char *data = malloc(ZC_LEN);
        msgr_msg *m;
        const void *p;
        size_t n;
        CHECK(data != NULL);
        for (i = 0; i < ZC_LEN; i++)
            data[i] = (unsigned char)(i * 31 + 7);
        OK(msgr_msg_alloc(&m, T_ZC));
        OK(msgr_msg_set_data_nocopy(m, data, ZC_LEN, zc_free, &client_zc_frees));
        OK(msgr_conn_send(c, m));
        wait_for(&nreplies, 1, "zero-copy reply");
        wait_for(&client_zc_frees, 1, "client zero-copy buffer freed");
        OK(msgr_msg_get_segment(replies[0], MSGR_SEG_DATA, &p, &n));
        CHECK(n == ZC_LEN);
        for (i = 0; i < ZC_LEN; i++)
            CHECK(((const unsigned char *)p)[i] == (unsigned char)(i * 31 + 7));
        OK(msgr_msg_put(replies[0]));
        nreplies = 0;
        wait_for(&zc_frees, 1, "server zero-copy buffer freed");
        CHECK(client_zc_frees == 1 && zc_frees == 1);
    }

    /* Connection info, names, addresses, priv. */
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    OK(msgr_conn_get_info(c, &info));
    CHECK(info.state == MSGR_CONN_OPEN);
    CHECK(info.peer_type == MSGR_ENTITY_OSD && info.peer_num == 5);
    CHECK(info.lossy == 1 && info.local == 0 && info.features != 0);
    /* Per-connection counters: everything sent so far was written. */
    CHECK(info.msgs_sent >= N + 2 && info.msgs_recv >= N + 2);
    CHECK(info.bytes_sent > ZC_LEN && info.bytes_recv > ZC_LEN);
    CHECK(info.queued == 0 && info.unacked == 0); /* lossy: nothing kept */
    OK(msgr_conn_wait_held(c, 0, 0));
    OK(msgr_conn_wait_held(c, 0, -1));
    OK(msgr_conn_wait_held(c, UINT64_MAX, 1000));
    OK(msgr_conn_peer_name(c, buf, sizeof buf));
    CHECK(strcmp(buf, "osd.5") == 0);
    OK(msgr_conn_peer_addr(c, buf, sizeof buf));
    CHECK(strcmp(buf, addr) == 0);
    OK(msgr_conn_get_priv(c, &priv));
    CHECK(priv == NULL);
    OK(msgr_conn_set_priv(c, buf));
    OK(msgr_conn_get_priv(c, &priv));
    CHECK(priv == buf);
    OK(msgr_conn_send_keepalive(c));
    /* The same peer gives the same connection (and another reference). */
    {
        msgr_conn c2;
        OK(msgr_messenger_connect(cli, MSGR_ENTITY_OSD, addr, &c2));
        CHECK(c2.id == c.id);
        OK(msgr_conn_put(c2));
    }
    /* Server side: name of the client, the handle kept from the callback. */
    OK(msgr_conn_peer_name(srv_conn, buf, sizeof buf));
    CHECK(strcmp(buf, "client.9") == 0);

    /* The server marks the session down: the lossy client sees a reset. */
    OK(msgr_conn_mark_down(srv_conn));
    wait_for(&cli_resets, 1, "handle_reset");
    {
        msgr_msg *m = make_msg(T_FAST, "late", 4);
        int rc = msgr_conn_send(c, m);
        CHECK(rc == MSGR_ENOTCONN);
        OK(msgr_msg_put(m));
    }
    OK(msgr_conn_get_info(c, &info));
    CHECK(info.state == MSGR_CONN_CLOSED);

    OK(msgr_conn_put(c));
    OK(msgr_conn_put(srv_conn));
    OK(msgr_messenger_destroy(cli));
    OK(msgr_messenger_destroy(srv));
    CHECK(srv_releases == 1 && cli_releases == 1);
    CHECK_RC(msgr_conn_get_info(c, &info), MSGR_EBADF);
    check_no_leaks();
    printf("send_recv: ok\n");
    return 0;
}
