/* pull_latency: W1 (64 B ping-pong) from a plain C thread in pull mode,
 * the way the Python package works (send_copy, then msgr_messenger_recv
 * with a timeout), without Python. It shows what the C API's pull mode costs
 * per round trip, next to examples/c/msgr_bench (callbacks on the worker
 * threads) against the same server:
 *
 *   cc -O2 -Iinclude bindings/python/bench/pull_latency.c -o build/pull_latency \
 *      -Lbuild/lib -lmsgr -Wl,-rpath,$PWD/build/lib
 *   build/examples/msgr_bench server --addr 127.0.0.1:7000 &
 *   build/pull_latency 127.0.0.1:7000 5000 [ms_async_busy_poll]
 *   build/examples/msgr_bench client --addr 127.0.0.1:7000 --workload W1
 */
#define _GNU_SOURCE
#include <msgr.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    msgr_messenger m;
    msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
    msgr_option o[2] = {{"ms_async_op_threads", "2"}, {"ms_async_busy_poll", argc > 3 ? argv[3] : "50us"}};
    msgr_policy p;
    msgr_conn c;
    msgr_outmsg out;
    msgr_event ev[4];
    char pl[64];
    long long *lat, *snd;
    int n, i;
    if (argc < 3) {
        fprintf(stderr, "usage: pull_latency ADDR COUNT [ms_async_busy_poll]\n");
        return 2;
    }
    n = atoi(argv[2]);
    cfg.name = "client.9";
    cfg.nonce = 99;
    cfg.options = o;
    cfg.noptions = 2;
    if (msgr_messenger_create(&m, &cfg) != 0)
        return 1;
    msgr_policy_init(&p, MSGR_POLICY_LOSSLESS_CLIENT, 0);
    msgr_messenger_set_policy(m, MSGR_ENTITY_OSD, &p);
    msgr_messenger_add_pull(m, MSGR_TAIL);
    msgr_messenger_start(m);
    if (msgr_messenger_connect(m, MSGR_ENTITY_OSD, argv[1], &c) != 0)
        return 1;
    lat = malloc((size_t)n * sizeof *lat);
    snd = malloc((size_t)n * sizeof *snd);
    memset(pl, 'a', sizeof pl);
    pl[0] = 'P';
    memset(&out, 0, sizeof out);
    out.type = 2;
    out.data = pl;
    out.data_len = sizeof pl;
    for (i = 0; i < n + 1000; i++) {
        long long t = now();
        msgr_conn_send_copy(c, &out, 1, sizeof out, NULL);
        if (i >= 1000)
            snd[i - 1000] = now() - t;
        for (;;) {
            int k = msgr_messenger_recv(m, ev, 1, sizeof ev[0], 5000);
            if (k < 0) {
                fprintf(stderr, "recv: %s\n", msgr_err_name(k));
                return 1;
            }
            if (ev[0].msg) {
                msgr_msg_put(ev[0].msg);
                break;
            }
        }
        if (i >= 1000)
            lat[i - 1000] = now() - t;
    }
    qsort(snd, (size_t)n, sizeof *snd, cmp);
    qsort(lat, (size_t)n, sizeof *lat, cmp);
    printf("send_copy call p50 %.1f us; pull-mode round trip p50 %.1f us, p99 %.1f us\n", snd[n / 2] / 1e3,
           lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3);
    msgr_conn_put(c);
    msgr_messenger_destroy(m);
    free(lat);
    free(snd);
    return 0;
}
