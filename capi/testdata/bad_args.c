/* Every call with NULL, an unknown or closed handle, the wrong state or a bad
 * struct gets its documented code, never a crash. */
#include "testutil.h"

static void check_messenger_calls(msgr_messenger m, int want) {
    char buf[64];
    int fd;
    msgr_conn c;
    msgr_event ev;
    msgr_policy p;
    msgr_dispatcher_ops ops;
    char *js;
    memset(&ops, 0, sizeof ops);
    ops.size = sizeof ops;
    OK(msgr_policy_init(&p, MSGR_POLICY_LOSSY_CLIENT, 0));
    CHECK_RC(msgr_messenger_destroy(m), want);
    CHECK_RC(msgr_messenger_set_policy(m, MSGR_ENTITY_OSD, &p), want);
    CHECK_RC(msgr_messenger_bind(m, "127.0.0.1:0"), want);
    CHECK_RC(msgr_messenger_bind_range(m, "127.0.0.1:0", 40000, 40010), want);
    CHECK_RC(msgr_messenger_get_addrs(m, buf, sizeof buf), want);
    CHECK_RC(msgr_messenger_get_name(m, buf, sizeof buf), want);
    CHECK_RC(msgr_messenger_start(m), want);
    CHECK_RC(msgr_messenger_wait(m), want);
    CHECK_RC(msgr_messenger_shutdown(m), want);
    CHECK_RC(msgr_messenger_add_dispatcher(m, &ops, NULL, MSGR_TAIL), want);
    CHECK_RC(msgr_messenger_add_pull(m, MSGR_TAIL), want);
    CHECK_RC(msgr_messenger_recv(m, &ev, 1, sizeof ev, 0), want);
    CHECK_RC(msgr_messenger_event_fd(m, &fd), want);
    CHECK_RC(msgr_messenger_connect(m, MSGR_ENTITY_OSD, "127.0.0.1:1", &c), want);
    CHECK(c.id == 0);
    CHECK_RC(msgr_messenger_perf_dump(m, &js), want);
    CHECK(js == NULL);
}

static void check_conn_calls(msgr_conn c, int want) {
    char buf[64];
    msgr_conn_info info;
    void *priv;
    msgr_msg *m = make_msg(1, "x", 1);
    msgr_msg *ms[2];
    size_t sent = 99;
    ms[0] = m;
    ms[1] = m;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    CHECK_RC(msgr_conn_get(c), want);
    CHECK_RC(msgr_conn_put(c), want);
    CHECK_RC(msgr_conn_send(c, m), want);
    CHECK_RC(msgr_conn_send_many(c, ms, 2, &sent), want);
    CHECK(sent == 0);
    {
        msgr_outmsg o;
        memset(&o, 0, sizeof o);
        sent = 9;
        CHECK_RC(msgr_conn_send_copy(c, &o, 1, sizeof o, &sent), want);
        CHECK(sent == 0);
    }
    CHECK_RC(msgr_conn_send_keepalive(c), want);
    CHECK_RC(msgr_conn_wait_held(c, 0, 0), want);
    CHECK_RC(msgr_conn_mark_down(c), want);
    CHECK_RC(msgr_conn_get_info(c, &info), want);
    CHECK_RC(msgr_conn_peer_addr(c, buf, sizeof buf), want);
    CHECK_RC(msgr_conn_peer_name(c, buf, sizeof buf), want);
    CHECK_RC(msgr_conn_last_fault(c, buf, sizeof buf), want);
    CHECK_RC(msgr_conn_set_priv(c, buf), want);
    CHECK_RC(msgr_conn_get_priv(c, &priv), want);
    OK(msgr_msg_put(m)); /* failed sends left it with us */
}

int main(void) {
    msgr_messenger unknown = {12345}, zero = MSGR_MESSENGER_INITIALIZER, m, m2;
    msgr_conn cunk = {0x2a00000099ull}, czero = MSGR_CONN_INITIALIZER, c;
    msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
    msgr_policy p;
    msgr_dispatcher_ops ops;
    msgr_event ev;
    char buf[128];
    int fd;
    msgr_msg *msg;

    /* Unknown handles: EBADF for everything. */
    check_messenger_calls(zero, MSGR_EBADF);
    check_messenger_calls(unknown, MSGR_EBADF);
    check_conn_calls(czero, MSGR_EBADF);
    check_conn_calls(cunk, MSGR_EBADF);

    /* NULL arguments: EINVAL, outputs cleared. */
    CHECK_RC(msgr_messenger_create(NULL, &cfg), MSGR_EINVAL);
    m.id = 77;
    CHECK_RC(msgr_messenger_create(&m, NULL), MSGR_EINVAL);
    CHECK(m.id == 0);
    CHECK_RC(msgr_messenger_create(&m, &cfg), MSGR_EINVAL); /* name NULL */
    cfg.name = "client.1";
    cfg.noptions = 1; /* options NULL */
    CHECK_RC(msgr_messenger_create(&m, &cfg), MSGR_EINVAL);
    cfg.noptions = 0;
    cfg.name = "mon.a"; /* entity_name_t numbers are numeric */
    CHECK_RC(msgr_messenger_create(&m, &cfg), MSGR_EINVAL);
    cfg.name = "wizard.1";
    CHECK_RC(msgr_messenger_create(&m, &cfg), MSGR_EINVAL);
    cfg.name = "client.1";
    {
        msgr_option o = {"ms_async_op_threads", NULL};
        cfg.options = &o;
        cfg.noptions = 1;
        CHECK_RC(msgr_messenger_create(&m, &cfg), MSGR_EINVAL);
        o.value = "0"; /* out of range */
        CHECK_RC(msgr_messenger_create(&m, &cfg), MSGR_EINVAL);
        msgr_last_error(buf, sizeof buf);
        CHECK(strstr(buf, "ms_async_op_threads") != NULL);
        cfg.options = NULL;
        cfg.noptions = 0;
    }
    /* Struct sizes: too small, and a newer caller's unknown non-zero tail. */
    cfg.size = 8;
    CHECK_RC(msgr_messenger_create(&m, &cfg), MSGR_EINVAL);
    {
        unsigned char raw[sizeof cfg + 8];
        msgr_messenger_config *big = (msgr_messenger_config *)(void *)raw;
        memset(raw, 0, sizeof raw);
        memcpy(raw, &cfg, sizeof cfg);
        big->size = sizeof raw;
        raw[sizeof cfg + 3] = 1;
        CHECK_RC(msgr_messenger_create(&m, big), MSGR_ENOTSUP);
        raw[sizeof cfg + 3] = 0; /* zeros are fine: a newer struct, unused fields */
        OK(msgr_messenger_create(&m, big));
        OK(msgr_messenger_destroy(m));
    }
    cfg.size = sizeof cfg;
    cfg.reserved0 = 1;
    CHECK_RC(msgr_messenger_create(&m, &cfg), MSGR_EINVAL);
    cfg.reserved0 = 0;

    OK(msgr_messenger_create(&m, &cfg));
    CHECK(m.id != 0);
    CHECK_RC(msgr_policy_init(NULL, MSGR_POLICY_LOSSY_CLIENT, 0), MSGR_EINVAL);
    CHECK_RC(msgr_policy_init(&p, 99, 0), MSGR_EINVAL);
    OK(msgr_policy_init(&p, MSGR_POLICY_STATELESS_SERVER, 0));
    CHECK(p.size == sizeof p && (p.flags & MSGR_POLICY_F_LOSSY) && (p.flags & MSGR_POLICY_F_SERVER));
    CHECK_RC(msgr_messenger_set_policy(m, MSGR_ENTITY_OSD, NULL), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_set_policy(m, 0x40, &p), MSGR_EINVAL); /* no such type */
    p.flags |= 0x80000000u;
    CHECK_RC(msgr_messenger_set_policy(m, MSGR_ENTITY_OSD, &p), MSGR_EINVAL);
    p.flags &= ~0x80000000u;
    p.size = 4;
    CHECK_RC(msgr_messenger_set_policy(m, MSGR_ENTITY_OSD, &p), MSGR_EINVAL);
    p.size = sizeof p;
    OK(msgr_messenger_set_policy(m, MSGR_ENTITY_OSD, &p));
    OK(msgr_messenger_set_policy(m, MSGR_ENTITY_ANY, &p));
    CHECK_RC(msgr_messenger_bind(m, NULL), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_bind(m, "not an address"), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_bind(m, "[v2:127.0.0.1:0,garbage]"), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_bind(m, "none:127.0.0.1:0"), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_bind_range(m, "[v2:127.0.0.1:0,v1:127.0.0.1:0]", 10, 20), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_bind_range(m, "127.0.0.1:0", 10, 5), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_bind_range(m, "127.0.0.1:0", -1, 5), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_bind_range(m, "127.0.0.1:0", 1, 70000), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_get_addrs(m, NULL, 10), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_get_addrs(m, buf, 0), MSGR_ERANGE);
    CHECK_RC(msgr_messenger_get_name(m, buf, 3), MSGR_ERANGE);
    CHECK(strcmp(buf, "cl") == 0);
    CHECK_RC(msgr_messenger_add_dispatcher(m, NULL, NULL, MSGR_TAIL), MSGR_EINVAL);
    memset(&ops, 0, sizeof ops);
    ops.size = sizeof ops;
    CHECK_RC(msgr_messenger_add_dispatcher(m, &ops, NULL, 7), MSGR_EINVAL);
    ops.size = 3;
    CHECK_RC(msgr_messenger_add_dispatcher(m, &ops, NULL, MSGR_TAIL), MSGR_EINVAL);
    ops.size = sizeof ops;
    ops.can_fast_dispatch = (int (*)(void *, const msgr_msg *))1; /* without fast_dispatch */
    CHECK_RC(msgr_messenger_add_dispatcher(m, &ops, NULL, MSGR_TAIL), MSGR_EINVAL);
    ops.can_fast_dispatch = NULL;
    ops.flags = MSGR_DISPATCH_F_FAST_ALL; /* without fast_dispatch */
    CHECK_RC(msgr_messenger_add_dispatcher(m, &ops, NULL, MSGR_TAIL), MSGR_EINVAL);
    ops.flags = 0x80; /* unknown flag */
    CHECK_RC(msgr_messenger_add_dispatcher(m, &ops, NULL, MSGR_TAIL), MSGR_EINVAL);
    ops.flags = 0;
    CHECK_RC(msgr_messenger_add_pull(m, 5), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_recv(m, NULL, 1, sizeof ev, 0), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_recv(m, &ev, 0, sizeof ev, 0), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_recv(m, &ev, 1, 4, 0), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_event_fd(m, NULL), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_connect(m, MSGR_ENTITY_OSD, NULL, &c), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_connect(m, MSGR_ENTITY_OSD, "127.0.0.1:1", NULL), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_perf_dump(m, NULL), MSGR_EINVAL);
    CHECK_RC(msgr_live_counts_get(NULL), MSGR_EINVAL);

    /* Wrong states before start. */
    CHECK_RC(msgr_messenger_wait(m), MSGR_ESTATE);
    CHECK_RC(msgr_messenger_connect(m, MSGR_ENTITY_OSD, "127.0.0.1:1", &c), MSGR_ESTATE);
    CHECK_RC(msgr_messenger_recv(m, &ev, 1, sizeof ev, 0), MSGR_ESTATE); /* no pull */
    CHECK_RC(msgr_messenger_event_fd(m, &fd), MSGR_ESTATE);
    CHECK(fd == -1);
    OK(msgr_messenger_add_pull(m, MSGR_TAIL));
    CHECK_RC(msgr_messenger_add_pull(m, MSGR_TAIL), MSGR_ESTATE);
    OK(msgr_messenger_bind(m, "127.0.0.1:0"));
    CHECK_RC(msgr_messenger_bind(m, "127.0.0.1:0"), MSGR_ESTATE); /* already bound */
    CHECK_RC(msgr_messenger_recv(m, &ev, 1, sizeof ev, 0), MSGR_EAGAIN);
    CHECK_RC(msgr_messenger_recv(m, &ev, 1, sizeof ev, 20), MSGR_ETIMEDOUT);
    OK(msgr_messenger_start(m));
    /* ... and after. */
    CHECK_RC(msgr_messenger_start(m), MSGR_ESTATE);
    CHECK_RC(msgr_messenger_set_policy(m, MSGR_ENTITY_OSD, &p), MSGR_ESTATE);
    CHECK_RC(msgr_messenger_bind(m, "127.0.0.1:0"), MSGR_ESTATE);
    CHECK_RC(msgr_messenger_add_dispatcher(m, &ops, NULL, MSGR_TAIL), MSGR_ESTATE);
    CHECK_RC(msgr_messenger_add_pull(m, MSGR_TAIL), MSGR_ESTATE);
    CHECK_RC(msgr_messenger_connect(m, MSGR_ENTITY_ANY, "127.0.0.1:1", &c), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_connect(m, MSGR_ENTITY_OSD, "garbage", &c), MSGR_EINVAL);
    CHECK_RC(msgr_messenger_connect(m, MSGR_ENTITY_OSD, "127.0.0.1:0", &c), MSGR_EINVAL); /* no port */
    CHECK_RC(msgr_messenger_connect(m, MSGR_ENTITY_OSD, "v1:127.0.0.1:0", &c), MSGR_EINVAL); /* no port */

    /* A connection (to a port nobody listens on: the handle works anyway). */
    OK(msgr_messenger_create(&m2, &cfg));
    OK(msgr_messenger_bind(m2, "127.0.0.1:0"));
    OK(msgr_messenger_get_addrs(m2, buf, sizeof buf));
    OK(msgr_messenger_destroy(m2)); /* frees the port */
    OK(msgr_messenger_connect(m, MSGR_ENTITY_OSD, buf, &c));
    CHECK(c.id != 0);
    CHECK_RC(msgr_conn_get_info(c, NULL), MSGR_EINVAL);
    {
        msgr_conn_info info;
        memset(&info, 0, sizeof info);
        info.size = 2;
        CHECK_RC(msgr_conn_get_info(c, &info), MSGR_EINVAL);
    }
    CHECK_RC(msgr_conn_peer_addr(c, NULL, 5), MSGR_EINVAL);
    CHECK_RC(msgr_conn_peer_addr(c, buf, 0), MSGR_ERANGE);
    CHECK_RC(msgr_conn_peer_name(c, buf, 2), MSGR_ERANGE);
    CHECK_RC(msgr_conn_get_priv(c, NULL), MSGR_EINVAL);
    CHECK_RC(msgr_conn_send(c, NULL), MSGR_EINVAL);
    CHECK_RC(msgr_conn_send_many(c, NULL, 1, NULL), MSGR_EINVAL);
    OK(msgr_conn_send_many(c, NULL, 0, NULL));
    {
        msgr_msg *ms[3];
        size_t sent = 9;
        ms[0] = make_msg(1, "a", 1);
        ms[1] = NULL;
        ms[2] = make_msg(1, "c", 1);
        CHECK_RC(msgr_conn_send_many(c, ms, 3, &sent), MSGR_EINVAL);
        CHECK(sent == 1); /* ms[0] went, ms[2] is still ours */
        OK(msgr_msg_put(ms[2]));
    }
    {
        msgr_outmsg out[3];
        size_t sent = 9;
        memset(out, 0, sizeof out);
        out[0].type = 1;
        out[1].type = 1;
        out[1].front = NULL;
        out[1].front_len = 5; /* NULL with a length */
        out[2].type = 1;
        CHECK_RC(msgr_conn_send_copy(c, NULL, 1, sizeof out[0], &sent), MSGR_EINVAL);
        CHECK_RC(msgr_conn_send_copy(c, out, 1, 8, &sent), MSGR_EINVAL); /* stride */
        CHECK_RC(msgr_conn_send_copy(c, out, 3, sizeof out[0], &sent), MSGR_EINVAL);
        CHECK(sent == 1); /* out[0] was queued, out[1] and out[2] were not */
#if SIZE_MAX > 0xFFFFFFFFu
        out[1].front = "x";
        out[1].front_len = (size_t)MSGR_SEGMENT_MAX + 1;
        CHECK_RC(msgr_conn_send_copy(c, out + 1, 1, sizeof out[0], &sent), MSGR_EMSGSIZE);
        CHECK(sent == 0);
#endif
        OK(msgr_conn_send_copy(c, out, 0, sizeof out[0], NULL));
    }
    OK(msgr_conn_mark_down(c));
    {
        msgr_outmsg one;
        memset(&one, 0, sizeof one);
        CHECK_RC(msgr_conn_send_copy(c, &one, 1, sizeof one, NULL), MSGR_ENOTCONN);
    }
    CHECK_RC(msgr_conn_wait_held(c, 0, 100), MSGR_ENOTCONN);
    msg = make_msg(1, "x", 1);
    CHECK_RC(msgr_conn_send(c, msg), MSGR_ENOTCONN);
    OK(msgr_msg_put(msg)); /* a failed send leaves it ours */
    OK(msgr_conn_put(c));
    CHECK_RC(msgr_conn_put(c), MSGR_EINVAL); /* no reference left */

    OK(msgr_messenger_shutdown(m));
    OK(msgr_messenger_shutdown(m)); /* twice is fine */
    OK(msgr_messenger_wait(m));
    CHECK_RC(msgr_messenger_start(m), MSGR_ESHUTDOWN);
    CHECK_RC(msgr_messenger_connect(m, MSGR_ENTITY_OSD, "127.0.0.1:1", &c), MSGR_ESHUTDOWN);
    {
        /* Events queued before the shutdown (the dead connection's) come
         * first; then the queue says it is shut down. */
        int rc, guard = 0;
        while ((rc = msgr_messenger_recv(m, &ev, 1, sizeof ev, 1000)) > 0 && guard++ < 10)
            if (ev.msg != NULL)
                OK(msgr_msg_put(ev.msg));
        CHECK_RC(rc, MSGR_ESHUTDOWN);
    }
    OK(msgr_messenger_destroy(m));

    /* Closed handle: EBADF for everything, including its connection. */
    check_messenger_calls(m, MSGR_EBADF);
    check_conn_calls(c, MSGR_EBADF);
    check_no_leaks();
    printf("bad_args: ok\n");
    return 0;
}
