/* fast_dispatch_copy: a whole read's messages in one call, headers in
 * msgr_rxmsg and payloads copied into one buffer; checked for content and
 * order. Also: an old-size ops struct (0.1.0's, without the field) still
 * works, and FAST_ALL with neither fast callback is refused. */
#include "testutil.h"

#include <stdatomic.h>

#define N 20000

static size_t size_of(int i) {
    static const size_t sizes[] = {0, 1, 64, 200, 4096, 17};
    return sizes[i % 6];
}

static void fill(unsigned char *p, size_t n, int i) {
    size_t k;
    for (k = 0; k < n; k++)
        p[k] = (unsigned char)(i * 7 + k);
}

static atomic_int got, calls, bad, priv_seen;
static int marker, conn_mark;

static void on_copy(void *user, msgr_conn c, const msgr_rxmsg *rx, size_t n,
                    const unsigned char *buf) {
    unsigned char exp[4096];
    size_t k, end = 0;
    void *priv = NULL;
    if (user != &marker || n == 0)
        atomic_store(&bad, 1);
    /* Calls into the library work from here, as from fast_dispatch. */
    if (msgr_conn_get_priv(c, &priv) != 0)
        atomic_store(&bad, 2);
    for (k = 0; k < n; k++) {
        int i = atomic_load(&got);
        size_t want = size_of(i), lens[3];
        lens[0] = rx[k].front_len;
        lens[1] = rx[k].middle_len;
        lens[2] = rx[k].data_len;
        if (rx[k].type != MSGR_EVENT_MESSAGE || rx[k].msg_type != 50 ||
            rx[k].tid != (uint64_t)i || rx[k].conn.id != c.id || rx[k].off != end ||
            lens[i % 3] != want || lens[0] + lens[1] + lens[2] != want ||
            rx[k].conn_priv != priv) {
            atomic_store(&bad, 3);
            return;
        }
        fill(exp, want, i);
        if (want > 0 && memcmp(buf + rx[k].off, exp, want) != 0) {
            atomic_store(&bad, 4);
            return;
        }
        end += want;
        atomic_fetch_add(&got, 1);
    }
    /* Every item carries the priv of the call's start; later calls see
     * the one set here. */
    if (priv == &conn_mark)
        atomic_store(&priv_seen, 1);
    else if (msgr_conn_set_priv(c, &conn_mark) != 0)
        atomic_store(&bad, 5);
    atomic_fetch_add(&calls, 1);
}

int main(void) {
    msgr_messenger srv, cli, old;
    msgr_dispatcher_ops ops;
    msgr_conn c;
    char addr[128];
    unsigned char payload[4096];
    int i;

    /* FAST_ALL needs a fast callback. */
    old = make_messenger("osd.9", 9, NULL);
    memset(&ops, 0, sizeof ops);
    ops.size = sizeof ops;
    ops.flags = MSGR_DISPATCH_F_FAST_ALL;
    CHECK_RC(msgr_messenger_add_dispatcher(old, &ops, NULL, MSGR_TAIL), MSGR_EINVAL);
    /* 0.1.0's struct size: accepted, fast_dispatch_copy (beyond it) unread. */
    ops.size = (uint32_t)offsetof(msgr_dispatcher_ops, fast_dispatch_copy);
    ops.fast_dispatch_copy = on_copy; /* beyond size: must be ignored */
    CHECK_RC(msgr_messenger_add_dispatcher(old, &ops, NULL, MSGR_TAIL), MSGR_EINVAL);
    OK(msgr_messenger_destroy(old));

    srv = make_messenger("osd.1", 1, NULL);
    memset(&ops, 0, sizeof ops);
    ops.size = sizeof ops;
    ops.flags = MSGR_DISPATCH_F_FAST_ALL;
    ops.fast_dispatch_copy = on_copy;
    OK(msgr_messenger_add_dispatcher(srv, &ops, &marker, MSGR_TAIL));
    OK(msgr_messenger_bind(srv, "127.0.0.1:0"));
    OK(msgr_messenger_get_addrs(srv, addr, sizeof addr));
    OK(msgr_messenger_start(srv));

    cli = make_messenger("client.4", 4, NULL);
    OK(msgr_messenger_start(cli));
    OK(msgr_messenger_connect(cli, MSGR_ENTITY_OSD, addr, &c));
    for (i = 0; i < N; i++) {
        size_t want = size_of(i);
        msgr_msg *m;
        OK(msgr_msg_alloc(&m, 50));
        OK(msgr_msg_set_tid(m, (uint64_t)i));
        fill(payload, want, i);
        OK(msgr_msg_set_segment(m, i % 3, payload, want));
        OK(msgr_conn_send(c, m));
        if (i == 0) {
            /* Message 0 is empty and alone in its read: a call whose
             * payload buffer holds nothing, on a fresh rxCopy. */
            int k;
            for (k = 0; k < 2000 && atomic_load(&got) < 1 && !atomic_load(&bad); k++)
                sleep_ms(5);
            CHECK(atomic_load(&got) == 1);
        }
        if (i % 1000 == 999)
            OK(msgr_conn_wait_held(c, 0, 10000));
    }
    for (i = 0; i < 2000 && atomic_load(&got) < N && !atomic_load(&bad); i++)
        sleep_ms(5);
    if (atomic_load(&bad))
        FAILF("fast_dispatch_copy check %d failed at message %d", atomic_load(&bad), atomic_load(&got));
    CHECK(atomic_load(&got) == N);
    CHECK(atomic_load(&calls) >= 1 && atomic_load(&calls) <= N);
    CHECK(atomic_load(&calls) == 1 || atomic_load(&priv_seen));
    printf("fast_copy: %d messages in %d calls\n", N, atomic_load(&calls));
    OK(msgr_conn_put(c));
    OK(msgr_messenger_destroy(cli));
    OK(msgr_messenger_destroy(srv));
    check_no_leaks();
    return 0;
}
