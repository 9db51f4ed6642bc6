/* Pull mode: msgr_messenger_recv with timeouts, the pollable fd, batches,
 * events with priv, several receiving threads, shutdown. */
#include "testutil.h"

#include <poll.h>
#include <pthread.h>

#define N 3000

static size_t size_of(int i) {
    static const size_t sizes[] = {0, 1, 64, 104, 105, 2048, 2049, 70000};
    return sizes[i % 8];
}

static void fill(unsigned char *p, size_t n, int i) {
    size_t k;
    for (k = 0; k < n; k++)
        p[k] = (unsigned char)(i + k * 13);
}

static msgr_messenger srv;
static int got_msgs[2];

static void *puller(void *arg) {
    int idx = *(int *)arg;
    msgr_event ev[32];
    for (;;) {
        int n = msgr_messenger_recv(srv, ev, 32, sizeof ev[0], 5000), i;
        if (n == MSGR_ESHUTDOWN)
            break;
        CHECK(n > 0);
        for (i = 0; i < n; i++) {
            if (ev[i].type == MSGR_EVENT_MESSAGE) {
                got_msgs[idx]++;
                OK(msgr_msg_put(ev[i].msg));
            }
        }
    }
    return NULL;
}

int main(void) {
    msgr_messenger cli;
    msgr_conn c, sc = MSGR_CONN_INITIALIZER;
    char addr[128];
    int fd, i, next = 0, accepts = 0, connects = 0;
    msgr_event ev[64];
    struct pollfd pfd;
    int marker;
    msgr_policy pol;

    srv = make_messenger("osd.1", 1, NULL);
    OK(msgr_messenger_add_pull(srv, MSGR_TAIL));
    OK(msgr_messenger_event_fd(srv, &fd));
    CHECK(fd >= 0);
    OK(msgr_messenger_bind(srv, "127.0.0.1:0"));
    OK(msgr_messenger_get_addrs(srv, addr, sizeof addr));
    OK(msgr_messenger_start(srv));
    /* Nothing yet: the fd is not readable, recv says so. */
    pfd.fd = fd;
    pfd.events = POLLIN;
    CHECK(poll(&pfd, 1, 0) == 0);
    CHECK_RC(msgr_messenger_recv(srv, ev, 64, sizeof ev[0], 0), MSGR_EAGAIN);
    {
        int64_t t0 = now_ns();
        CHECK_RC(msgr_messenger_recv(srv, ev, 64, sizeof ev[0], 50), MSGR_ETIMEDOUT);
        CHECK(now_ns() - t0 >= 45 * 1000000LL);
    }

    cli = make_messenger("client.4", 4, NULL);
    OK(msgr_messenger_add_pull(cli, MSGR_HEAD));
    OK(msgr_policy_init(&pol, MSGR_POLICY_LOSSY_CLIENT, 0));
    OK(msgr_messenger_set_policy(cli, MSGR_ENTITY_OSD, &pol));
    OK(msgr_messenger_start(cli));
    OK(msgr_messenger_connect(cli, MSGR_ENTITY_OSD, addr, &c));
    OK(msgr_conn_set_priv(c, &marker));

    /* Send sizes around every internal threshold, in batches: half as
     * message objects, half described in place (msgr_conn_send_copy). */
    for (i = 0; i < N; i += 100) {
        if ((i / 100) % 2 == 1) {
            msgr_outmsg out[100];
            static unsigned char bufs[100][70000];
            size_t sent = 0;
            int k;
            memset(out, 0, sizeof out);
            for (k = 0; k < 100; k++) {
                size_t n = size_of(i + k);
                const void **p = (i + k) % 3 == 0 ? &out[k].front : (i + k) % 3 == 1 ? &out[k].middle : &out[k].data;
                size_t *l = (i + k) % 3 == 0 ? &out[k].front_len : (i + k) % 3 == 1 ? &out[k].middle_len : &out[k].data_len;
                fill(bufs[k], n, i + k);
                out[k].type = 10;
                out[k].tid = (uint64_t)(i + k);
                *p = bufs[k];
                *l = n;
            }
            OK(msgr_conn_send_copy(c, out, 100, sizeof out[0], &sent));
            CHECK(sent == 100);
            memset(bufs, 0, sizeof bufs); /* ours again at once */
            continue;
        }
        msgr_msg *batch[100];
        size_t sent = 0;
        int k;
        for (k = 0; k < 100; k++) {
            void *buf;
            size_t n = size_of(i + k);
            OK(msgr_msg_alloc(&batch[k], 10));
            OK(msgr_msg_set_tid(batch[k], (uint64_t)(i + k)));
            OK(msgr_msg_reserve_segment(batch[k], (i + k) % 3, n, &buf));
            fill(buf, n, i + k);
        }
        OK(msgr_conn_send_many(c, batch, 100, &sent));
        CHECK(sent == 100);
    }

    /* Receive with poll() on the fd, as an event loop would. */
    while (next < N) {
        int n;
        CHECK(poll(&pfd, 1, 10000) == 1);
        n = msgr_messenger_recv(srv, ev, 64, sizeof ev[0], 0);
        if (n == MSGR_EAGAIN)
            continue; /* another event came and went */
        CHECK(n > 0 && n <= 64);
        for (i = 0; i < n; i++) {
            if (ev[i].type == MSGR_EVENT_ACCEPT) {
                accepts++;
                sc = ev[i].conn;
                OK(msgr_conn_get(sc));
                continue;
            }
            CHECK(ev[i].type == MSGR_EVENT_MESSAGE);
            /* Events come in order with the connection's messages: the
             * accept before the first message. */
            CHECK(accepts == 1);
            {
                msgr_msg_header h;
                const void *p;
                size_t len, want = size_of(next);
                int seg = next % 3, s;
                unsigned char exp[70000];
                memset(&h, 0, sizeof h);
                h.size = sizeof h;
                OK(msgr_msg_get_header(ev[i].msg, &h));
                CHECK(h.type == 10 && h.tid == (uint64_t)next);
                CHECK(h.src_type == MSGR_ENTITY_CLIENT && h.src_num == 4);
                for (s = 0; s < 3; s++) {
                    OK(msgr_msg_get_segment(ev[i].msg, s, &p, &len));
                    CHECK(len == (s == seg ? want : 0));
                }
                OK(msgr_msg_get_segment(ev[i].msg, seg, &p, &len));
                fill(exp, want, next);
                CHECK(want == 0 || memcmp(p, exp, want) == 0);
                /* The message is ours: keep it past recv, modify a copy. */
                OK(msgr_msg_put(ev[i].msg));
                next++;
            }
        }
    }
    CHECK(accepts == 1);
    CHECK(poll(&pfd, 1, 0) == 0); /* drained */

    /* Replies the other way; the client pulls with a timeout. */
    for (i = 0; i < 10; i++)
        OK(msgr_conn_send(sc, make_msg(20, "pong", 4)));
    for (i = 0; i < 10;) {
        int n = msgr_messenger_recv(cli, ev, 64, sizeof ev[0], 5000), k;
        CHECK(n > 0);
        for (k = 0; k < n; k++) {
            if (ev[k].type == MSGR_EVENT_CONNECT) {
                connects++;
                CHECK(ev[k].conn.id == c.id && ev[k].conn_priv == &marker);
            } else {
                CHECK(connects == 1); /* the connect came first */
                CHECK(ev[k].type == MSGR_EVENT_MESSAGE && msgr_msg_type(ev[k].msg) == 20);
                CHECK(ev[k].conn.id == c.id && ev[k].conn_priv == &marker);
                OK(msgr_msg_put(ev[k].msg));
                i++;
            }
        }
    }

    /* recv_copy: headers in msgr_rxmsg, payloads packed into one buffer; a
     * message larger than the buffer is MSGR_ERANGE and stays queued. */
    {
        enum { M = 64 };
        static unsigned char buf[4096], exp[70000];
        msgr_rxmsg rx[16];
        size_t used = 1;
        int got = 0;
        CHECK_RC(msgr_messenger_recv_copy(cli, rx, 16, sizeof rx[0], buf, sizeof buf, &used, 0),
                 MSGR_EAGAIN);
        CHECK(used == 0);
        CHECK_RC(msgr_messenger_recv_copy(cli, NULL, 16, sizeof rx[0], buf, sizeof buf, NULL, 0),
                 MSGR_EINVAL);
        CHECK_RC(msgr_messenger_recv_copy(cli, rx, 16, sizeof rx[0], NULL, sizeof buf, NULL, 0),
                 MSGR_EINVAL);
        CHECK_RC(msgr_messenger_recv_copy(cli, rx, 16, sizeof rx[0] - 1, buf, sizeof buf, NULL, 0),
                 MSGR_EINVAL);
        for (i = 0; i < M; i++) {
            size_t want = size_of(i) % 3000; /* all fit in buf */
            msgr_msg *m;
            OK(msgr_msg_alloc(&m, 40));
            OK(msgr_msg_set_tid(m, (uint64_t)i));
            fill(exp, want, i);
            OK(msgr_msg_set_segment(m, i % 3, exp, want));
            OK(msgr_conn_send(sc, m));
        }
        {   /* Then one too large for buf. */
            msgr_msg *m;
            OK(msgr_msg_alloc(&m, 41));
            fill(exp, sizeof exp, 99);
            OK(msgr_msg_set_segment(m, MSGR_SEG_DATA, exp, sizeof exp));
            OK(msgr_conn_send(sc, m));
        }
        while (got < M) {
            int n = msgr_messenger_recv_copy(cli, rx, 16, sizeof rx[0], buf, sizeof buf, &used, 5000), k;
            size_t end = 0;
            CHECK(n > 0);
            for (k = 0; k < n; k++) {
                size_t want = size_of(got) % 3000, lens[3];
                int s = got % 3;
                CHECK(rx[k].type == MSGR_EVENT_MESSAGE);
                CHECK(rx[k].msg_type == 40 && rx[k].tid == (uint64_t)got);
                CHECK(rx[k].conn.id == c.id && rx[k].conn_priv == &marker);
                CHECK(rx[k].src_type == MSGR_ENTITY_OSD && rx[k].src_num == 1);
                lens[0] = rx[k].front_len;
                lens[1] = rx[k].middle_len;
                lens[2] = rx[k].data_len;
                CHECK(lens[s] == want && lens[0] + lens[1] + lens[2] == want);
                CHECK(rx[k].off == end); /* back to back */
                fill(exp, want, got);
                CHECK(want == 0 || memcmp(buf + rx[k].off, exp, want) == 0);
                end += want;
                got++;
            }
            CHECK(used == end && used <= sizeof buf);
        }
        CHECK_RC(msgr_messenger_recv_copy(cli, rx, 16, sizeof rx[0], buf, sizeof buf, &used, 5000),
                 MSGR_ERANGE);
        CHECK(used == 0);
        CHECK(msgr_messenger_recv(cli, ev, 1, sizeof ev[0], 0) == 1); /* still queued */
        CHECK(ev[0].type == MSGR_EVENT_MESSAGE && msgr_msg_type(ev[0].msg) == 41);
        OK(msgr_msg_put(ev[0].msg));
    }

    /* A reset reaches the client as an event carrying the priv pointer. */
    OK(msgr_conn_mark_down(sc));
    for (;;) {
        int n = msgr_messenger_recv(cli, ev, 64, sizeof ev[0], 5000), k, reset = 0;
        CHECK(n > 0);
        for (k = 0; k < n; k++) {
            if (ev[k].type == MSGR_EVENT_CONNECT)
                connects++;
            if (ev[k].type == MSGR_EVENT_RESET) {
                CHECK(ev[k].conn.id == c.id && ev[k].conn_priv == &marker);
                reset = 1;
            }
            if (ev[k].msg)
                OK(msgr_msg_put(ev[k].msg));
        }
        if (reset)
            break;
    }
    CHECK(connects == 1);
    OK(msgr_conn_put(sc));
    OK(msgr_conn_put(c));
    OK(msgr_messenger_destroy(cli));

    /* Two threads pulling from one messenger share the messages. */
    {
        pthread_t th[2];
        int idx[2] = {0, 1};
        msgr_messenger cli2 = make_messenger("client.5", 5, NULL);
        OK(msgr_messenger_start(cli2));
        OK(msgr_messenger_connect(cli2, MSGR_ENTITY_OSD, addr, &c));
        CHECK(pthread_create(&th[0], NULL, puller, &idx[0]) == 0);
        CHECK(pthread_create(&th[1], NULL, puller, &idx[1]) == 0);
        for (i = 0; i < 2000; i++)
            OK(msgr_conn_send(c, make_msg(30, "x", 1)));
        for (i = 0; i < 1000 && got_msgs[0] + got_msgs[1] < 2000; i++)
            sleep_ms(10);
        CHECK(got_msgs[0] + got_msgs[1] == 2000);
        /* Shutdown wakes both: recv returns MSGR_ESHUTDOWN. */
        OK(msgr_messenger_shutdown(srv));
        CHECK(pthread_join(th[0], NULL) == 0 && pthread_join(th[1], NULL) == 0);
        CHECK(poll(&pfd, 1, 0) == 1); /* readable for good after shutdown */
        CHECK_RC(msgr_messenger_recv(srv, ev, 1, sizeof ev[0], -1), MSGR_ESHUTDOWN);
        OK(msgr_conn_put(c));
        OK(msgr_messenger_destroy(cli2));
    }
    OK(msgr_messenger_destroy(srv));
    check_no_leaks();
    printf("pull: ok\n");
    return 0;
}
