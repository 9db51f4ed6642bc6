/* ABI compatibility: this program is compiled against the header of a
 * release (abi/<version>/msgr.h, frozen when that version shipped) and run
 * against the library built from the current tree. It passes every
 * size-prefixed struct with the size its header knew, so the library's
 * size checks are exercised at run time. `make abi-check` and capi_test.go
 * build and run it against each kept release header. */
#include <msgr.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c)) {                                                            \
            char eb_[256];                                                     \
            msgr_last_error(eb_, sizeof eb_);                                  \
            fprintf(stderr, "compat: %s:%d: %s (last error: %s)\n", __FILE__,  \
                    __LINE__, #c, eb_);                                        \
            return 1;                                                          \
        }                                                                      \
    } while (0)

static int fast_seen;
static int can_fast(void *u, const msgr_msg *m) {
    (void)u;
    return msgr_msg_type(m) == 9;
}
static void fast(void *u, msgr_conn c, msgr_msg *m) {
    msgr_msg *r;
    (void)u;
    (void)m;
    fast_seen++;
    if (msgr_msg_alloc(&r, 10) == 0 && msgr_conn_send(c, r) != 0)
        msgr_msg_put(r);
}
static int releases;
static void release(void *u) {
    (void)u;
    releases++;
}

int main(void) {
    msgr_messenger srv, cli;
    msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
    msgr_dispatcher_ops ops;
    msgr_policy pol;
    msgr_conn c;
    struct {
        msgr_conn_info info;
        uint64_t canary;
    } iw;
    msgr_msg_header h;
    msgr_live_counts lc;
    msgr_event ev[8];
    msgr_msg *m;
    char addr[128];
    int n, got = 0, tries;

    /* Same major version at run time as at build time. */
    CHECK(msgr_version() >> 16 == MSGR_VERSION_MAJOR);
    CHECK(msgr_version() >= (unsigned)MSGR_VERSION_HEX);

    cfg.name = "osd.1";
    CHECK(msgr_messenger_create(&srv, &cfg) == 0);
    memset(&ops, 0, sizeof ops);
    ops.size = sizeof ops;
    ops.can_fast_dispatch = can_fast;
    ops.fast_dispatch = fast;
    ops.release = release;
    CHECK(msgr_messenger_add_dispatcher(srv, &ops, NULL, MSGR_HEAD) == 0);
    CHECK(msgr_policy_init(&pol, MSGR_POLICY_STATELESS_SERVER, 0) == 0);
    CHECK(pol.size == sizeof pol);
    CHECK(msgr_messenger_set_policy(srv, MSGR_ENTITY_CLIENT, &pol) == 0);
    CHECK(msgr_messenger_bind(srv, "127.0.0.1:0") == 0);
    CHECK(msgr_messenger_get_addrs(srv, addr, sizeof addr) == 0);
    CHECK(msgr_messenger_start(srv) == 0);

    cfg.name = "client.1";
    CHECK(msgr_messenger_create(&cli, &cfg) == 0);
    CHECK(msgr_messenger_add_pull(cli, MSGR_TAIL) == 0);
    CHECK(msgr_messenger_start(cli) == 0);
    CHECK(msgr_messenger_connect(cli, MSGR_ENTITY_OSD, addr, &c) == 0);
    CHECK(msgr_msg_alloc(&m, 9) == 0);
    CHECK(msgr_msg_set_segment(m, MSGR_SEG_FRONT, "compat", 6) == 0);
    memset(&h, 0, sizeof h);
    h.size = sizeof h;
    CHECK(msgr_msg_get_header(m, &h) == 0 && h.type == 9 && h.front_len == 6);
    CHECK(msgr_conn_send(c, m) == 0);
    for (tries = 0; tries < 100 && !got; tries++) {
        int i;
        n = msgr_messenger_recv(cli, ev, 8, sizeof ev[0], 100);
        for (i = 0; i < n; i++) {
            if (ev[i].msg) {
                got = msgr_msg_type(ev[i].msg) == 10;
                msgr_msg_put(ev[i].msg);
            }
        }
    }
    CHECK(got && fast_seen == 1);
    /* The library may know a longer struct: it must write only what this
     * header's size covers (the canary after it stays). */
    memset(&iw, 0, sizeof iw);
    iw.info.size = sizeof iw.info;
    iw.canary = 0x5a5a5a5a5a5a5a5aull;
    CHECK(msgr_conn_get_info(c, &iw.info) == 0 && iw.info.peer_type == MSGR_ENTITY_OSD);
    CHECK(iw.canary == 0x5a5a5a5a5a5a5a5aull);
    CHECK(msgr_conn_put(c) == 0);
    CHECK(msgr_messenger_destroy(cli) == 0);
    CHECK(msgr_messenger_destroy(srv) == 0);
    CHECK(releases == 1);
    memset(&lc, 0, sizeof lc);
    lc.size = sizeof lc;
    CHECK(msgr_live_counts_get(&lc) == 0);
    CHECK(lc.messengers == 0 && lc.conns == 0 && lc.msgs == 0 && lc.dispatchers == 0);
    printf("compat %s against %s: ok\n", MSGR_VERSION_STRING, msgr_version_string());
    return 0;
}
