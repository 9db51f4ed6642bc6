/* Messenger lifecycle: bind forms, addresses, options, log callback, wait
 * woken by shutdown, shutdown from a callback, local connection, perf JSON,
 * destroy in every state. */
#include "testutil.h"

#include <pthread.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int log_lines, log_deadlk;
static unsigned log_levels; /* bit per level seen: each line has its own */
static msgr_messenger log_m;

static void log_fn(void *user, msgr_messenger m, int level, const char *line) {
    char buf[64];
    CHECK(user == &log_lines);
    CHECK(level >= 0 && level <= 20); /* debug_ms is 20 here */
    CHECK(line != NULL && strlen(line) > 0 && line[strlen(line) - 1] != '\n');
    pthread_mutex_lock(&mu);
    log_lines++;
    log_levels |= 1u << level;
    log_m = m;
    /* Only pure calls are allowed here. */
    if (msgr_messenger_get_name(m, buf, sizeof buf) == MSGR_EDEADLK)
        log_deadlk++;
    pthread_mutex_unlock(&mu);
}

static void *waiter(void *arg) {
    msgr_messenger m = *(msgr_messenger *)arg;
    OK(msgr_messenger_wait(m));
    return NULL;
}

static int self_msgs;
static msgr_messenger self_m;
static int self_dispatch(void *user, msgr_conn c, msgr_msg *m) {
    msgr_conn_info info;
    (void)user;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    OK(msgr_conn_get_info(c, &info));
    CHECK(info.local == 1);
    CHECK(msgr_msg_type(m) == 5);
    pthread_mutex_lock(&mu);
    self_msgs++;
    pthread_mutex_unlock(&mu);
    /* Shutdown from a callback starts it and returns at once. */
    OK(msgr_messenger_shutdown(self_m));
    return 1;
}

int main(void) {
    msgr_messenger m;
    char addr[128], buf[128];
    pthread_t th;
    int i;

    /* Destroy in every state. */
    m = make_messenger("client.1", 1, NULL);
    OK(msgr_messenger_destroy(m));
    m = make_messenger("client.1", 1, NULL);
    OK(msgr_messenger_bind(m, "127.0.0.1:0"));
    OK(msgr_messenger_destroy(m));
    m = make_messenger("client.1", 1, NULL);
    OK(msgr_messenger_start(m));
    OK(msgr_messenger_destroy(m)); /* shuts down first */

    /* Bind forms. */
    {
        const char *forms[] = {"127.0.0.1:0", "v2:127.0.0.1:0/0", "any:127.0.0.1:0", NULL};
        for (i = 0; forms[i] != NULL; i++) {
            m = make_messenger("osd.0", 42, NULL);
            OK(msgr_messenger_bind(m, forms[i]));
            OK(msgr_messenger_get_addrs(m, addr, sizeof addr));
            CHECK(strstr(addr, "127.0.0.1:") != NULL && strstr(addr, ":0/") == NULL);
            CHECK(strstr(addr, "/42") != NULL);
            OK(msgr_messenger_destroy(m));
        }
        m = make_messenger("osd.0", 42, NULL);
        if (msgr_messenger_bind(m, "[::1]:0") == 0) { /* skip without IPv6 */
            OK(msgr_messenger_get_addrs(m, addr, sizeof addr));
            CHECK(strncmp(addr, "v2:[::1]:", 9) == 0);
        }
        OK(msgr_messenger_destroy(m));
        /* A port range. */
        m = make_messenger("osd.0", 42, NULL);
        OK(msgr_messenger_bind_range(m, "127.0.0.1:0", 41000, 41999));
        OK(msgr_messenger_get_addrs(m, addr, sizeof addr));
        {
            int port = atoi(strrchr(addr, ':') + 1);
            CHECK(port >= 41000 && port <= 41999);
        }
        /* The port is taken now: a second messenger must fail. */
        {
            msgr_messenger m2 = make_messenger("osd.1", 43, NULL);
            char exact[64];
            snprintf(exact, sizeof exact, "127.0.0.1:%d", atoi(strrchr(addr, ':') + 1));
            CHECK_RC(msgr_messenger_bind(m2, exact), MSGR_EADDRINUSE);
            OK(msgr_messenger_destroy(m2));
        }
        OK(msgr_messenger_destroy(m));
    }

    /* Names, options, log callback. */
    {
        const char *kv[] = {"ms_async_op_threads", "1", "ms_tcp_nodelay", "false",
                            "ms-max-backoff", "2", "debug_ms", "20",
                            "ms_dispatch_throttle_bytes", "10M", NULL};
        msgr_option opts[5];
        msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
        msgr_messenger peer;
        msgr_conn c;
        for (i = 0; i < 5; i++) {
            opts[i].name = kv[2 * i];
            opts[i].value = kv[2 * i + 1];
        }
        cfg.name = "mgr.3";
        cfg.nonce = 3;
        cfg.options = opts;
        cfg.noptions = 5;
        cfg.log = log_fn;
        cfg.log_user = &log_lines;
        OK(msgr_messenger_create(&m, &cfg));
        OK(msgr_messenger_get_name(m, buf, sizeof buf));
        CHECK(strcmp(buf, "mgr.3") == 0);
        OK(msgr_messenger_get_addrs(m, buf, sizeof buf));
        CHECK(strcmp(buf, "") == 0); /* not bound */
        OK(msgr_messenger_start(m));
        /* Some traffic to log about. */
        peer = make_messenger("osd.7", 7, NULL);
        OK(msgr_messenger_bind(peer, "127.0.0.1:0"));
        OK(msgr_messenger_start(peer));
        OK(msgr_messenger_get_addrs(peer, addr, sizeof addr));
        OK(msgr_messenger_connect(m, MSGR_ENTITY_OSD, addr, &c));
        for (i = 0; i < 200; i++) {
            msgr_conn_info info;
            memset(&info, 0, sizeof info);
            info.size = sizeof info;
            OK(msgr_conn_get_info(c, &info));
            if (info.state == MSGR_CONN_OPEN)
                break;
            sleep_ms(10);
        }
        OK(msgr_conn_put(c));
        OK(msgr_messenger_destroy(peer));
        OK(msgr_messenger_destroy(m));
        pthread_mutex_lock(&mu);
        CHECK(log_lines > 0);
        /* Lines carry their own level (connection events are 1), not
         * the messenger's debug_ms (20 here) for all. */
        CHECK((log_levels & (1u << 1)) != 0 && (log_levels & (1u << 20)) == 0);
        CHECK(log_deadlk == log_lines);
        CHECK(log_m.id == m.id);
        pthread_mutex_unlock(&mu);
    }

    /* Messengers sharing one network stack (ms_stack_group), destroyed in
     * any order: the stack lives until the last one is gone. */
    {
        const char *grp[] = {"ms_stack_group", "g1", "ms_async_op_threads", "1", NULL};
        msgr_messenger srv = make_messenger("osd.9", 9, grp), cl[3];
        msgr_conn cc[3];
        msgr_event ev[8];
        OK(msgr_messenger_add_pull(srv, MSGR_TAIL));
        OK(msgr_messenger_bind(srv, "127.0.0.1:0"));
        OK(msgr_messenger_get_addrs(srv, addr, sizeof addr));
        OK(msgr_messenger_start(srv));
        for (i = 0; i < 3; i++) {
            char name[32];
            snprintf(name, sizeof name, "client.%d", 20 + i);
            cl[i] = make_messenger(name, (uint32_t)(20 + i), grp);
            OK(msgr_messenger_start(cl[i]));
            OK(msgr_messenger_connect(cl[i], MSGR_ENTITY_OSD, addr, &cc[i]));
            OK(msgr_conn_send(cc[i], make_msg(7, "grp", 3)));
        }
        for (i = 0; i < 3;) {
            int n = msgr_messenger_recv(srv, ev, 8, sizeof ev[0], 5000), k;
            CHECK(n > 0);
            for (k = 0; k < n; k++)
                if (ev[k].msg) {
                    i++;
                    OK(msgr_msg_put(ev[k].msg));
                }
        }
        OK(msgr_conn_put(cc[1]));
        OK(msgr_messenger_destroy(cl[1])); /* one leaves early: the others go on */
        OK(msgr_conn_send(cc[0], make_msg(7, "again", 5)));
        for (i = 0; i < 1;) {
            int n = msgr_messenger_recv(srv, ev, 8, sizeof ev[0], 5000), k;
            CHECK(n > 0);
            for (k = 0; k < n; k++)
                if (ev[k].msg) {
                    i++;
                    OK(msgr_msg_put(ev[k].msg));
                }
        }
        OK(msgr_conn_put(cc[0]));
        OK(msgr_conn_put(cc[2]));
        OK(msgr_messenger_destroy(srv));
        OK(msgr_messenger_destroy(cl[0]));
        OK(msgr_messenger_destroy(cl[2]));
    }

    /* Wait on another thread, woken by shutdown; perf JSON. */
    {
        char *js = NULL;
        m = make_messenger("client.2", 2, NULL);
        OK(msgr_messenger_start(m));
        CHECK(pthread_create(&th, NULL, waiter, &m) == 0);
        OK(msgr_messenger_perf_dump(m, &js));
        CHECK(js != NULL && js[0] == '{');
        CHECK(strstr(js, "\"msgr\"") && strstr(js, "msgr_send_messages") &&
              strstr(js, "msgr_dispatch_queue_len") && strstr(js, "\"capi\""));
        msgr_free(js);
        sleep_ms(20);
        OK(msgr_messenger_shutdown(m));
        CHECK(pthread_join(th, NULL) == 0);
        OK(msgr_messenger_wait(m)); /* after shutdown: returns at once */
        OK(msgr_messenger_destroy(m));
    }

    /* The local connection: a message to our own address, and shutdown
     * from inside the callback. */
    {
        msgr_dispatcher_ops ops;
        msgr_conn c;
        msgr_conn_info info;
        memset(&ops, 0, sizeof ops);
        ops.size = sizeof ops;
        ops.dispatch = self_dispatch;
        self_m = make_messenger("osd.8", 8, NULL);
        OK(msgr_messenger_add_dispatcher(self_m, &ops, NULL, MSGR_TAIL));
        OK(msgr_messenger_bind(self_m, "127.0.0.1:0"));
        OK(msgr_messenger_get_addrs(self_m, addr, sizeof addr));
        OK(msgr_messenger_start(self_m));
        OK(msgr_messenger_connect(self_m, MSGR_ENTITY_OSD, addr, &c));
        memset(&info, 0, sizeof info);
        info.size = sizeof info;
        OK(msgr_conn_get_info(c, &info));
        CHECK(info.local == 1 && info.state == MSGR_CONN_OPEN);
        OK(msgr_conn_send(c, make_msg(5, "me", 2)));
        OK(msgr_messenger_wait(self_m)); /* the callback shut it down */
        CHECK(self_msgs == 1);
        OK(msgr_conn_put(c));
        OK(msgr_messenger_destroy(self_m));
    }
    check_no_leaks();
    printf("lifecycle: ok\n");
    return 0;
}
