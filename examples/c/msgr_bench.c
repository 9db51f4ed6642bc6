/* msgr_bench: the W1-W5 benchmark server and client over libmsgr's C API,
 * following /work/shared/bench/ADAPTER.md.
 *
 *   msgr_bench server --addr 127.0.0.1:PORT [--max-seconds S]
 *   msgr_bench client --addr 127.0.0.1:PORT --workload W1..W5 [--count N]
 *                     [--size B] [--conns C]
 *
 * The client prints one JSON line. It speaks exactly the protocol of the Go
 * twin, cmd/msgr-bench (so a C client runs against a Go server and back,
 * which isolates what the C API costs): MPing messages (type 2) with the
 * payload in the data segment, whose first byte is the op: 'P' is echoed
 * back, 'S' counted, 'E' answered with 'C' + the 8-byte little-endian count.
 * Lossless sessions, one worker thread (as the Go twin: on 2 cores a second busy-polling
 * worker costs more than it brings), fast dispatch on both ends.
 *
 * Everything runs in callbacks: the server answers on its worker threads
 * (fast dispatch), and the W1/W5 client sends the next ping from the
 * reply's fast dispatch, so a round trip involves no other thread.
 * msgr_conn_send never blocks, so the W2-W4 sender keeps a window itself:
 * it batches with msgr_conn_send_many and waits while the connection's
 * queue (msgr_conn_info.queued) is over the Go twin's window. Large payloads
 * (W3, W4) go zero-copy from the sender's buffer (msgr_msg_set_data_nocopy),
 * bounded too by the bytes the library still references.
 */
#define _GNU_SOURCE
#include <msgr.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MSG_PING 2 /* CEPH_MSG_PING */
#define WINDOW_BYTES (64L << 20)

static void die(const char *what, int rc) {
    char buf[256];
    msgr_last_error(buf, sizeof buf);
    fprintf(stderr, "msgr_bench: %s: %s (%s)\n", what, msgr_err_name(rc), buf);
    exit(2);
}
#define TRY(what, expr)                                                        \
    do {                                                                       \
        int rc_ = (expr);                                                      \
        if (rc_ != 0)                                                          \
            die(what, rc_);                                                    \
    } while (0)

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *opt(int argc, char **argv, const char *name, const char *def) {
    int i;
    for (i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

/* The op of a message: the first byte of its data segment (0 if empty). */
static int op_of(const msgr_msg *m, const unsigned char **p, size_t *n) {
    if (msgr_msg_get_segment(m, MSGR_SEG_DATA, (const void **)p, n) != 0 || *n == 0)
        return 0;
    return (*p)[0];
}

static msgr_msg *make(const void *data, size_t n) {
    msgr_msg *m;
    TRY("alloc", msgr_msg_alloc(&m, MSG_PING));
    TRY("set data", msgr_msg_set_segment(m, MSGR_SEG_DATA, data, n));
    return m;
}

static void send_or_drop(msgr_conn c, msgr_msg *m) {
    if (msgr_conn_send(c, m) != 0)
        msgr_msg_put(m); /* connection gone */
}

/* Both ends: 1 worker, stateful server for peers by default, lossless
 * client towards OSDs (cmd/msgr-bench's policies). */
static const char *stack_group; /* W5: the client messengers share one stack */

static msgr_messenger new_messenger(const char *name, uint32_t nonce, const msgr_dispatcher_ops *ops) {
    msgr_option opts[10] = {{"ms_async_op_threads", "1"}};
    static char extra[512];
    msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
    msgr_messenger m;
    msgr_policy pol;
    size_t n = 1;
    if (stack_group != NULL) {
        opts[n].name = "ms_stack_group";
        opts[n++].value = stack_group;
    }
    /* MSGR_BENCH_OPTS="name=value,name=value": more options, for experiments. */
    if (getenv("MSGR_BENCH_OPTS") != NULL) {
        char *save = NULL, *kv;
        snprintf(extra, sizeof extra, "%s", getenv("MSGR_BENCH_OPTS"));
        for (kv = strtok_r(extra, ",", &save); kv != NULL && n < 10; kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');
            if (eq == NULL)
                continue;
            *eq = 0;
            opts[n].name = kv;
            opts[n++].value = eq + 1;
        }
    }
    cfg.name = name;
    cfg.nonce = nonce;
    cfg.options = opts;
    cfg.noptions = n;
    TRY("create", msgr_messenger_create(&m, &cfg));
    TRY("policy", msgr_policy_init(&pol, MSGR_POLICY_STATEFUL_SERVER, 0));
    TRY("set_policy", msgr_messenger_set_policy(m, MSGR_ENTITY_ANY, &pol));
    TRY("policy", msgr_policy_init(&pol, MSGR_POLICY_LOSSLESS_CLIENT, 0));
    TRY("set_policy", msgr_messenger_set_policy(m, MSGR_ENTITY_OSD, &pol));
    TRY("add_dispatcher", msgr_messenger_add_dispatcher(m, ops, NULL, MSGR_TAIL));
    return m;
}

/* ---- server --------------------------------------------------------------- */

/* Per-connection sink count on the connection's priv pointer; only the
 * connection's worker thread touches it. */
struct counter {
    uint64_t n;
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

/* The connection's sink counter (on its priv pointer), made on first use. */
static struct counter *counter_of(msgr_conn c) {
    struct counter *k = NULL;
    msgr_conn_get_priv(c, (void **)&k);
    if (k == NULL) {
        k = calloc(1, sizeof *k);
        if (k == NULL || msgr_conn_set_priv(c, k) != 0) {
            free(k);
            return NULL;
        }
    }
    return k;
}

/* 'S' counts; 'E' answers 'C' + the count (little endian) and resets it. */
static void sink(msgr_conn c, struct counter *k, unsigned char op) {
    if (op == 'S') {
        k->n++;
    } else if (op == 'E') {
        unsigned char rep[9];
        int i;
        rep[0] = 'C';
        for (i = 0; i < 8; i++)
            rep[1 + i] = (unsigned char)(k->n >> (8 * i));
        k->n = 0;
        send_or_drop(c, make(rep, sizeof rep));
    }
}

static void srv_fast(void *u, msgr_conn c, msgr_msg *m) {
    const unsigned char *p;
    size_t n;
    struct counter *k = NULL;
    (void)u;
    if (msgr_msg_type(m) != MSG_PING)
        return;
    switch (op_of(m, &p, &n)) {
    case 'P':
        send_or_drop(c, make(p, n)); /* echo */
        return;
    case 'S':
    case 'E':
        if ((k = counter_of(c)) != NULL)
            sink(c, k, p[0]);
        return;
    }
}

/* The same server with fast_dispatch_copy: one call per read of a
 * connection, headers in rx[] and payloads in buf. A run of sink messages
 * costs one counter update. */
static void srv_copy(void *u, msgr_conn c, const msgr_rxmsg *rx, size_t n, const unsigned char *buf) {
    struct counter *k = NULL;
    size_t i;
    (void)u;
    for (i = 0; i < n; i++) {
        const unsigned char *p = buf + rx[i].off + rx[i].front_len + rx[i].middle_len;
        size_t len = rx[i].data_len;
        if (rx[i].msg_type != MSG_PING || len == 0)
            continue;
        if (p[0] == 'P') {
            msgr_outmsg o;
            memset(&o, 0, sizeof o);
            o.type = MSG_PING;
            o.data = p;
            o.data_len = len;
            msgr_conn_send_copy(c, &o, 1, sizeof o, NULL); /* the echo */
            continue;
        }
        if (k == NULL && (k = counter_of(c)) == NULL)
            return;
        sink(c, k, p[0]);
    }
}

/* Counters of connections that reset are freed here; the rest at exit. */
static int srv_reset(void *u, msgr_conn c) {
    void *p = NULL;
    (void)u;
    if (msgr_conn_get_priv(c, &p) == 0 && p != NULL) {
        msgr_conn_set_priv(c, NULL);
        free(p);
    }
    return 0;
}

/* --pull: the same server in pull mode, one thread receiving batches. */
static void serve_pull(msgr_messenger m, int64_t end) {
    msgr_event ev[256];
    msgr_outmsg echo[256];
    int i, n;
    while (!stop && now_ns() < end) {
        int k = 0;
        msgr_conn echo_conn = MSGR_CONN_INITIALIZER;
        n = msgr_messenger_recv(m, ev, 256, sizeof ev[0], 100);
        if (n == MSGR_ETIMEDOUT)
            continue;
        if (n < 0)
            break;
        memset(echo, 0, sizeof echo);
        for (i = 0; i < n; i++) {
            msgr_msg *msg = ev[i].msg;
            const unsigned char *p;
            size_t len;
            if (ev[i].type == MSGR_EVENT_RESET)
                srv_reset(NULL, ev[i].conn);
            if (msg == NULL)
                continue;
            if (msgr_msg_type(msg) == MSG_PING && op_of(msg, &p, &len) == 'P') {
                /* Echoes of one batch go out in one call per connection. */
                if (k > 0 && ev[i].conn.id != echo_conn.id) {
                    msgr_conn_send_copy(echo_conn, echo, (size_t)k, sizeof echo[0], NULL);
                    k = 0;
                }
                echo_conn = ev[i].conn;
                /* send_copy copies now: keep msg until then. */
                msgr_msg_ref(msg);
                echo[k].type = MSG_PING;
                echo[k].data = p;
                echo[k].data_len = len;
                k++;
            } else {
                srv_fast(NULL, ev[i].conn, msg);
            }
        }
        if (k > 0)
            msgr_conn_send_copy(echo_conn, echo, (size_t)k, sizeof echo[0], NULL);
        for (i = 0; i < n; i++)
            if (ev[i].msg != NULL) {
                const unsigned char *p;
                size_t len;
                if (msgr_msg_type(ev[i].msg) == MSG_PING && op_of(ev[i].msg, &p, &len) == 'P')
                    msgr_msg_put(ev[i].msg); /* the ref taken above */
                msgr_msg_put(ev[i].msg);
            }
    }
}

static int server(int argc, char **argv) {
    const char *addr = opt(argc, argv, "--addr", "127.0.0.1:6800");
    int max_s = atoi(opt(argc, argv, "--max-seconds", "120"));
    int pull = getenv("MSGR_BENCH_PULL") != NULL;
    msgr_dispatcher_ops ops;
    msgr_messenger m;
    char bound[128];
    int64_t end;
    struct sigaction sa;

    memset(&ops, 0, sizeof ops);
    ops.size = sizeof ops;
    ops.flags = MSGR_DISPATCH_F_FAST_ALL; /* every message on the worker thread */
    ops.fast_dispatch = srv_fast;
    /* MSGR_BENCH_PER_MSG=1: one fast_dispatch call per message instead of
     * fast_dispatch_copy's one call per read (to compare the two). */
    if (getenv("MSGR_BENCH_PER_MSG") == NULL)
        ops.fast_dispatch_copy = srv_copy;
    ops.handle_reset = srv_reset;
    /* Nonce 0, as a monitor's: clients dial a bare IP:PORT. */
    if (pull) {
        msgr_dispatcher_ops none;
        memset(&none, 0, sizeof none);
        none.size = sizeof none;
        m = new_messenger("osd.0", 0, &none);
        TRY("add_pull", msgr_messenger_add_pull(m, MSGR_TAIL));
    } else {
        m = new_messenger("osd.0", 0, &ops);
    }
    TRY("bind", msgr_messenger_bind(m, addr));
    TRY("start", msgr_messenger_start(m));
    TRY("addrs", msgr_messenger_get_addrs(m, bound, sizeof bound));
    fprintf(stderr, "msgr_bench server on %s\n", bound);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_ONSTACK; /* required next to the Go runtime */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    end = now_ns() + (int64_t)max_s * 1000000000;
    if (pull)
        serve_pull(m, end);
    while (!stop && now_ns() < end) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    TRY("destroy", msgr_messenger_destroy(m));
    return 0;
}

/* ---- client ------------------------------------------------------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

/* W1 / W5: one ping-pong chain per connection, driven from callbacks. */
struct chain {
    msgr_conn conn;
    long left, warm;
    int64_t sent_at;
    int64_t *lat;
    long nlat;
    int bad, done;
};

static long chains_done;
static const char *volatile why = "none"; /* the first verification failure */
static unsigned char *req;
static size_t req_size;
static uint64_t final_count = UINT64_MAX;
static atomic_long inflight_bytes;
static atomic_int bad;

static void finish(struct chain *ch, int failed) {
    pthread_mutex_lock(&mu);
    ch->bad |= failed;
    if (!ch->done) {
        ch->done = 1;
        chains_done++;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void chain_send(struct chain *ch) {
    msgr_msg *m = make(req, req_size);
    ch->sent_at = now_ns();
    if (msgr_conn_send(ch->conn, m) != 0) {
        msgr_msg_put(m);
        why = "send failed";
        finish(ch, 1);
    }
}

static void cli_fast(void *u, msgr_conn c, msgr_msg *m) {
    const unsigned char *p;
    size_t n;
    (void)u;
    if (msgr_msg_type(m) != MSG_PING) {
        atomic_store(&bad, 1);
        return;
    }
    switch (op_of(m, &p, &n)) {
    case 'P': {
        int64_t t = now_ns();
        struct chain *ch = NULL;
        msgr_conn_get_priv(c, (void **)&ch);
        if (ch == NULL) {
            why = "reply on an unknown connection";
            atomic_store(&bad, 1);
            return;
        }
        if (n != req_size || memcmp(p, req, n) != 0) {
            why = "echo differs from the request";
            finish(ch, 1);
            return;
        }
        if (ch->warm > 0) {
            ch->warm--;
        } else {
            ch->lat[ch->nlat++] = t - ch->sent_at;
            ch->left--;
        }
        if (ch->left == 0)
            finish(ch, 0);
        else
            chain_send(ch);
        return;
    }
    case 'C':
        pthread_mutex_lock(&mu);
        if (n == 9) {
            int i;
            final_count = 0;
            for (i = 0; i < 8; i++)
                final_count |= (uint64_t)p[1 + i] << (8 * i);
        } else {
            why = "bad count reply";
            atomic_store(&bad, 1);
        }
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
        return;
    default:
        why = "unexpected op";
        atomic_store(&bad, 1);
    }
}

static int cli_reset(void *u, msgr_conn c) {
    (void)u;
    (void)c;
    why = "connection reset";
    atomic_store(&bad, 1); /* a reset can lose messages: the run cannot verify */
    return 1;
}

static void data_free(void *data, void *hint) {
    (void)data;
    atomic_fetch_sub(&inflight_bytes, (long)(size_t)hint);
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static unsigned char *payload(size_t n, int op) {
    unsigned char *b = malloc(n ? n : 1);
    size_t i;
    if (b == NULL)
        exit(2);
    for (i = 0; i < n; i++)
        b[i] = (unsigned char)('a' + i % 26);
    b[0] = (unsigned char)op;
    return b;
}

static void print_json(const char *w, long msgs, double bytes, double secs, int64_t *lat, long nlat) {
    printf("{\"impl\": \"msgr-c\", \"workload\": \"%s\", \"msgs\": %ld, \"bytes\": %.0f, "
           "\"seconds\": %.6f, \"msgs_per_s\": %.1f, \"mb_per_s\": %.2f, ",
           w, msgs, bytes, secs, (double)msgs / secs, bytes / secs / 1e6);
    if (nlat > 0) {
        qsort(lat, (size_t)nlat, sizeof *lat, cmp64);
        printf("\"p50_us\": %.3f, \"p99_us\": %.3f}\n", (double)lat[(long)(0.5 * (double)(nlat - 1))] / 1e3,
               (double)lat[(long)(0.99 * (double)(nlat - 1))] / 1e3);
    } else {
        printf("\"p50_us\": null, \"p99_us\": null}\n");
    }
    fflush(stdout);
}

static int client(int argc, char **argv) {
    const char *addr = opt(argc, argv, "--addr", "127.0.0.1:6800");
    const char *w = opt(argc, argv, "--workload", "W1");
    long count = atol(opt(argc, argv, "--count", "0"));
    long size = atol(opt(argc, argv, "--size", "0"));
    long conns = atol(opt(argc, argv, "--conns", "100"));
    msgr_dispatcher_ops ops;
    int64_t t0, t1, deadline = now_ns() + 240 * 1000000000LL;
    char name[32];
    int pid = (int)getpid();

    memset(&ops, 0, sizeof ops);
    ops.size = sizeof ops;
    ops.flags = MSGR_DISPATCH_F_FAST_ALL;
    ops.fast_dispatch = cli_fast;
    ops.handle_reset = cli_reset;

    if (strcmp(w, "W1") == 0 || strcmp(w, "W5") == 0) {
        int w5 = w[1] == '5';
        long nconn = w5 ? (conns > 0 ? conns : 100) : 1, k, total = 0;
        long per = count > 0 ? count : (w5 ? 2000 : 20000);
        struct chain *chains = calloc((size_t)nconn, sizeof *chains);
        msgr_messenger *ms = calloc((size_t)nconn, sizeof *ms);
        int64_t *all;
        req_size = (size_t)(size > 0 ? size : 64);
        req = payload(req_size, 'P');
        if (chains == NULL || ms == NULL)
            return 2;
        /* A messenger keeps one connection per peer address (as Ceph's):
         * W5 dials from a messenger per connection, as 100 clients would,
         * all on one shared stack of 1 worker (cmd/msgr-bench does the
         * same). */
        if (w5)
            stack_group = "w5";
        for (k = 0; k < nconn; k++) {
            snprintf(name, sizeof name, "client.%ld", (long)pid * 1000 + k);
            ms[k] = new_messenger(name, (uint32_t)(pid + k), &ops);
            TRY("start", msgr_messenger_start(ms[k]));
            TRY("connect", msgr_messenger_connect(ms[k], MSGR_ENTITY_OSD, addr, &chains[k].conn));
            chains[k].left = per;
            chains[k].warm = w5 ? 10 : 1000;
            chains[k].lat = malloc((size_t)per * sizeof(int64_t));
            if (chains[k].lat == NULL)
                return 2;
            TRY("set_priv", msgr_conn_set_priv(chains[k].conn, &chains[k]));
        }
        t0 = now_ns();
        for (k = 0; k < nconn; k++)
            chain_send(&chains[k]);
        pthread_mutex_lock(&mu);
        while (chains_done < nconn && now_ns() < deadline) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec++;
            pthread_cond_timedwait(&cv, &mu, &ts);
        }
        pthread_mutex_unlock(&mu);
        t1 = now_ns();
        all = malloc((size_t)(per * nconn) * sizeof *all);
        for (k = 0; k < nconn; k++) {
            if (chains[k].bad || !chains[k].done)
                atomic_store(&bad, 1);
            memcpy(all + total, chains[k].lat, (size_t)chains[k].nlat * sizeof *all);
            total += chains[k].nlat;
        }
        if (atomic_load(&bad) || total != per * nconn) {
            fprintf(stderr, "msgr_bench: %ld of %ld round trips, verification %s (%s)\n", total,
                    per * nconn, atomic_load(&bad) ? "failed" : "ok", why);
            return 1;
        }
        print_json(w, total, (double)total * (double)req_size, (double)(t1 - t0) / 1e9, all, total);
        for (k = 0; k < nconn; k++) {
            msgr_conn_put(chains[k].conn);
            free(chains[k].lat);
        }
        for (k = 0; k < nconn; k++)
            msgr_messenger_destroy(ms[k]);
        free(all);
        free(chains);
        free(ms);
        free(req);
        return 0;
    }
    if (strcmp(w, "W2") == 0 || strcmp(w, "W3") == 0 || strcmp(w, "W4") == 0) {
        long n = count > 0 ? count : (w[1] == '2' ? 1000000 : w[1] == '3' ? 200000 : 2000);
        size_t sz = (size_t)(size > 0 ? size : (w[1] == '2' ? 64 : w[1] == '3' ? 4096 : 1 << 20));
        long window = (long)((64 << 20) / sz), sent = 0, batch;
        unsigned char *buf = payload(sz, 'S');
        int zero_copy = sz > 2048;
        msgr_messenger m;
        msgr_conn c;
        msgr_conn_info info;
        if (window > 16384)
            window = 16384;
        if (window < 4)
            window = 4;
        batch = window < 64 ? 1 : 64;
        snprintf(name, sizeof name, "client.%d", pid);
        m = new_messenger(name, (uint32_t)pid, &ops);
        TRY("start", msgr_messenger_start(m));
        TRY("connect", msgr_messenger_connect(m, MSGR_ENTITY_OSD, addr, &c));
        memset(&info, 0, sizeof info);
        info.size = sizeof info;
        t0 = now_ns();
        while (sent < n) {
            msgr_msg *msgs[64];
            long k, b = n - sent < batch ? n - sent : batch;
            size_t took = 0;
            /* The window (cmd/msgr-bench's): messages the library still
             * holds (not yet written, or written and not yet acknowledged:
             * lossless sessions keep them), and zero-copy bytes it still
             * references. Looked at every 4 batches: the window is far
             * larger, and each look takes the connection's queue lock. */
            if (sent % (4 * batch) == 0)
                TRY("info", msgr_conn_get_info(c, &info));
            else
                info.queued = info.unacked = 0;
            if ((long)(info.queued + info.unacked) >= window || atomic_load(&inflight_bytes) >= WINDOW_BYTES) {
                /* Full: sleep until the worker frees some (it wakes us).
                 * Small messages resume once an eighth of the window is
                 * free, as soon as the first acks come back, like the Go
                 * client: waiting for half left the pipe half empty after
                 * each wait (W2 median of 7 against the Go client, same
                 * run: half 0.82, an eighth 0.90-1.03). Zero-copy ones
                 * (W3, W4) wait for half: an eighth measured no better on
                 * W3 and 0.93 of half on W4. */
                long resume = zero_copy ? window / 2 : window - window / 8;
                int rc = msgr_conn_wait_held(c, (uint64_t)resume, 10000);
                if (rc != 0)
                    die("wait_held", rc);
                while (atomic_load(&inflight_bytes) > WINDOW_BYTES / 2) {
                    usleep(50); /* zero-copy bytes: freed by data_free */
                    if (now_ns() > deadline) {
                        fprintf(stderr, "msgr_bench: stalled at %ld sent\n", sent);
                        return 1;
                    }
                }
            }
            if (zero_copy) {
                /* Large: messages whose data is our buffer, no copy. */
                for (k = 0; k < b; k++) {
                    TRY("alloc", msgr_msg_alloc(&msgs[k], MSG_PING));
                    atomic_fetch_add(&inflight_bytes, (long)sz);
                    TRY("nocopy", msgr_msg_set_data_nocopy(msgs[k], buf, sz, data_free, (void *)sz));
                }
                TRY("send_many", msgr_conn_send_many(c, msgs, (size_t)b, &took));
            } else {
                /* Small: described in place and copied by the library in
                 * one call, no message objects. */
                msgr_outmsg out[64];
                memset(out, 0, sizeof out);
                for (k = 0; k < b; k++) {
                    out[k].type = MSG_PING;
                    out[k].data = buf;
                    out[k].data_len = sz;
                }
                TRY("send_copy", msgr_conn_send_copy(c, out, (size_t)b, sizeof out[0], &took));
            }
            sent += b;
        }
        TRY("send end", msgr_conn_send(c, make("E", 1)));
        pthread_mutex_lock(&mu);
        while (final_count == UINT64_MAX && now_ns() < deadline) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec++;
            pthread_cond_timedwait(&cv, &mu, &ts);
        }
        pthread_mutex_unlock(&mu);
        t1 = now_ns();
        if (final_count != (uint64_t)n || atomic_load(&bad)) {
            fprintf(stderr, "msgr_bench: server counted %lld of %ld%s (%s)\n", (long long)final_count,
                    n, atomic_load(&bad) ? ", verification failed" : "", why);
            return 1;
        }
        print_json(w, n, (double)n * (double)sz, (double)(t1 - t0) / 1e9, NULL, 0);
        msgr_conn_put(c);
        msgr_messenger_destroy(m); /* waits until no zero-copy buffer is referenced */
        free(buf);
        return 0;
    }
    fprintf(stderr, "msgr_bench: unknown workload %s\n", w);
    return 2;
}

int main(int argc, char **argv) {
    if (msgr_version() >> 16 != MSGR_VERSION_MAJOR) {
        fprintf(stderr, "msgr_bench: built for libmsgr %d.x, loaded %s\n", MSGR_VERSION_MAJOR,
                msgr_version_string());
        return 2;
    }
    if (argc > 1 && strcmp(argv[1], "server") == 0)
        return server(argc, argv);
    if (argc > 1 && strcmp(argv[1], "client") == 0)
        return client(argc, argv);
    fprintf(stderr, "usage: msgr_bench server --addr IP:PORT [--max-seconds S]\n"
                    "       msgr_bench client --addr IP:PORT --workload W1|W2|W3|W4|W5 "
                    "[--count N] [--size B] [--conns C]\n");
    return 2;
}
