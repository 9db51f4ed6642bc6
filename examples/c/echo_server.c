/* echo_server: answers every message with a copy of it.
 *
 *   echo_server [ADDR]      listen on ADDR (default 127.0.0.1:6800) until
 *                           SIGINT/SIGTERM
 *   echo_server --selftest  listen on a free port, echo to an in-process
 *                           client once, exit 0 (used by the tests)
 *
 * Shows: creating a messenger with Ceph options, a policy, a dispatcher
 * whose fast_dispatch replies from the worker thread, bind with port 0,
 * reading the bound address, a clean shutdown. Build:
 *   cc echo_server.c $(pkg-config --cflags --libs msgr)
 */
#define _GNU_SOURCE
#include <msgr.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DIE(what, rc)                                                          \
    do {                                                                       \
        char buf_[256];                                                        \
        msgr_last_error(buf_, sizeof buf_);                                    \
        fprintf(stderr, "echo_server: %s: %s: %s\n", what, msgr_err_name(rc), buf_); \
        return 1;                                                              \
    } while (0)

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

/* Take every message on the worker thread: it must not block. */
static int can_fast(void *user, const msgr_msg *m) {
    (void)user;
    (void)m;
    return 1;
}

/* m is borrowed: copy what we need into a new message and send it. The
 * reply is owned by the library once msgr_conn_send returns 0. */
static void fast_dispatch(void *user, msgr_conn conn, msgr_msg *m) {
    msgr_msg *reply;
    int seg;
    unsigned long *echoed = user;
    msgr_msg_header h;
    memset(&h, 0, sizeof h);
    h.size = sizeof h;
    if (msgr_msg_get_header(m, &h) != 0 || msgr_msg_alloc(&reply, h.type) != 0)
        return;
    msgr_msg_set_tid(reply, h.tid);
    for (seg = MSGR_SEG_FRONT; seg <= MSGR_SEG_DATA; seg++) {
        const void *p;
        size_t n;
        msgr_msg_get_segment(m, seg, &p, &n);
        msgr_msg_set_segment(reply, seg, p, n);
    }
    if (msgr_conn_send(conn, reply) != 0)
        msgr_msg_put(reply); /* the connection went away: still ours */
    (*echoed)++; /* one worker thread per connection; good enough for a demo */
}

static void on_accept(void *user, msgr_conn conn) {
    char name[64], addr[128];
    (void)user;
    msgr_conn_peer_name(conn, name, sizeof name);
    msgr_conn_peer_addr(conn, addr, sizeof addr);
    fprintf(stderr, "echo_server: %s connected from %s\n", name, addr);
}

static int selftest(msgr_messenger srv, const char *addr) {
    msgr_messenger cli;
    msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
    msgr_conn c;
    msgr_msg *m;
    msgr_event ev[4];
    int rc, i, got = 0;
    (void)srv;
    cfg.name = "client.1";
    cfg.nonce = 1;
    if ((rc = msgr_messenger_create(&cli, &cfg)) != 0 || (rc = msgr_messenger_add_pull(cli, MSGR_TAIL)) != 0 ||
        (rc = msgr_messenger_start(cli)) != 0 ||
        (rc = msgr_messenger_connect(cli, MSGR_ENTITY_OSD, addr, &c)) != 0)
        DIE("selftest client", rc);
    msgr_msg_alloc(&m, 1);
    msgr_msg_set_segment(m, MSGR_SEG_FRONT, "hello", 5);
    if ((rc = msgr_conn_send(c, m)) != 0)
        DIE("send", rc);
    for (i = 0; i < 50 && !got; i++) {
        int n = msgr_messenger_recv(cli, ev, 4, sizeof ev[0], 200), k;
        for (k = 0; k < n; k++) {
            if (ev[k].msg) {
                const void *p;
                size_t len;
                msgr_msg_get_segment(ev[k].msg, MSGR_SEG_FRONT, &p, &len);
                got = len == 5 && memcmp(p, "hello", 5) == 0;
                msgr_msg_put(ev[k].msg);
            }
        }
    }
    msgr_conn_put(c);
    msgr_messenger_destroy(cli);
    if (!got) {
        fprintf(stderr, "echo_server: selftest: no echo\n");
        return 1;
    }
    printf("echo_server: selftest ok\n");
    return 0;
}

int main(int argc, char **argv) {
    int self = argc > 1 && strcmp(argv[1], "--selftest") == 0;
    const char *listen = self ? "127.0.0.1:0" : argc > 1 ? argv[1] : "127.0.0.1:6800";
    msgr_option opts[] = {{"ms_async_op_threads", "2"}, {"ms_tcp_nodelay", "true"}};
    msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
    msgr_dispatcher_ops ops;
    msgr_messenger srv;
    msgr_policy pol;
    unsigned long echoed = 0;
    char addr[128];
    int rc;

    cfg.name = "osd.0";
    cfg.nonce = 0; /* clients may dial "IP:PORT" without a nonce */
    cfg.options = opts;
    cfg.noptions = sizeof opts / sizeof opts[0];
    if ((rc = msgr_messenger_create(&srv, &cfg)) != 0)
        DIE("create", rc);
    /* Clients are lossy: a fault closes their session (Ceph's OSD policy). */
    msgr_policy_init(&pol, MSGR_POLICY_STATELESS_SERVER, 0);
    if ((rc = msgr_messenger_set_policy(srv, MSGR_ENTITY_CLIENT, &pol)) != 0)
        DIE("set_policy", rc);
    memset(&ops, 0, sizeof ops);
    ops.size = sizeof ops;
    ops.can_fast_dispatch = can_fast;
    ops.fast_dispatch = fast_dispatch;
    ops.handle_accept = on_accept;
    if ((rc = msgr_messenger_add_dispatcher(srv, &ops, &echoed, MSGR_TAIL)) != 0)
        DIE("add_dispatcher", rc);
    if ((rc = msgr_messenger_bind(srv, listen)) != 0)
        DIE("bind", rc);
    if ((rc = msgr_messenger_start(srv)) != 0)
        DIE("start", rc);
    msgr_messenger_get_addrs(srv, addr, sizeof addr);
    fprintf(stderr, "echo_server: listening on %s\n", addr);

    if (self) {
        rc = selftest(srv, addr);
    } else {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_ONSTACK; /* required next to the Go runtime */
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        while (!stop) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    msgr_messenger_destroy(srv); /* graceful shutdown, then frees everything */
    fprintf(stderr, "echo_server: echoed %lu messages\n", echoed);
    return rc;
}
