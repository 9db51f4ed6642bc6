/* 1,000,000 messages C to C through two messengers in one process, content
 * checked: the sender batches with msgr_conn_send_many, the receiver counts
 * and checks on fast dispatch, and acknowledges every 10,000 messages so the
 * sender keeps a bounded window (flow control is the application's job). */
#include "testutil.h"

#include <stdatomic.h>

#define SIZE 64
#define BATCH 256
#define WINDOW 200000

static atomic_long received;
static atomic_int bad;
static long expect_next;

static void fill(unsigned char *p, long i) {
    int k;
    memcpy(p, &i, sizeof i);
    for (k = sizeof i; k < SIZE; k++)
        p[k] = (unsigned char)(i * 7 + k);
}

static int can_fast(void *u, const msgr_msg *m) {
    (void)u;
    return msgr_msg_type(m) == 0x700;
}

static void fast(void *u, msgr_conn c, msgr_msg *m) {
    const void *p;
    size_t n;
    unsigned char want[SIZE];
    (void)u;
    (void)c;
    /* One connection: its messages arrive in order on one worker. */
    if (msgr_msg_get_segment(m, MSGR_SEG_FRONT, &p, &n) != 0 || n != SIZE) {
        atomic_fetch_add(&bad, 1);
    } else {
        fill(want, expect_next);
        if (memcmp(p, want, SIZE) != 0)
            atomic_fetch_add(&bad, 1);
    }
    expect_next++;
    atomic_fetch_add_explicit(&received, 1, memory_order_release);
}

int main(int argc, char **argv) {
    long total = (long)(1000000 * test_scale()), sent = 0;
    msgr_messenger rx, tx;
    msgr_dispatcher_ops ops;
    msgr_conn c;
    char addr[128];
    int64_t t0, t1;
    (void)argc;
    (void)argv;

    rx = make_messenger("osd.1", 1, NULL);
    memset(&ops, 0, sizeof ops);
    ops.size = sizeof ops;
    ops.can_fast_dispatch = can_fast;
    ops.fast_dispatch = fast;
    OK(msgr_messenger_add_dispatcher(rx, &ops, NULL, MSGR_HEAD));
    OK(msgr_messenger_bind(rx, "127.0.0.1:0"));
    OK(msgr_messenger_get_addrs(rx, addr, sizeof addr));
    OK(msgr_messenger_start(rx));
    tx = make_messenger("client.1", 2, NULL);
    OK(msgr_messenger_start(tx));
    OK(msgr_messenger_connect(tx, MSGR_ENTITY_OSD, addr, &c));

    t0 = now_ns();
    while (sent < total) {
        msgr_msg *batch[BATCH];
        size_t k, n = (size_t)(total - sent < BATCH ? total - sent : BATCH), took = 0;
        int64_t deadline = now_ns() + 30 * 1000000000LL;
        while (sent - atomic_load_explicit(&received, memory_order_acquire) > WINDOW) {
            if (now_ns() > deadline)
                FAILF("receiver stalled at %ld of %ld", (long)atomic_load(&received), sent);
            sleep_ms(1);
        }
        for (k = 0; k < n; k++) {
            void *buf;
            OK(msgr_msg_alloc(&batch[k], 0x700));
            OK(msgr_msg_reserve_segment(batch[k], MSGR_SEG_FRONT, SIZE, &buf));
            fill(buf, sent + (long)k);
        }
        OK(msgr_conn_send_many(c, batch, n, &took));
        CHECK(took == n);
        sent += (long)n;
    }
    {
        int64_t deadline = now_ns() + 60 * 1000000000LL;
        while (atomic_load(&received) < total) {
            if (now_ns() > deadline)
                FAILF("received %ld of %ld", (long)atomic_load(&received), total);
            sleep_ms(1);
        }
    }
    t1 = now_ns();
    CHECK(atomic_load(&bad) == 0);
    CHECK(atomic_load(&received) == total);
    printf("million: %ld messages of %d B in %.2f s: %.0f msgs/s\n", total, SIZE,
           (double)(t1 - t0) / 1e9, (double)total / ((double)(t1 - t0) / 1e9));
    OK(msgr_conn_put(c));
    OK(msgr_messenger_destroy(tx));
    OK(msgr_messenger_destroy(rx));
    check_no_leaks();
    printf("million: ok\n");
    return 0;
}
