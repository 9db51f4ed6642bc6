/* mon_client: talks to a Ceph monitor (a real ceph-mon, or `msgr serve`)
 * from C: the handshake (auth none), a keepalive, the monmap (for the
 * cluster's fsid) and one monitor command, whose output it prints.
 *
 *   mon_client ADDR [JSON]
 *     ADDR  v2:127.0.0.1:3300, v1:127.0.0.1:6789 or [v2:...,v1:...]
 *     JSON  the command, default {"prefix": "mon versions"}
 *
 * Shows: pull mode (msgr_messenger_recv on the caller's thread, no
 * callbacks), building Ceph messages by hand (MMonGetMap, MMonCommand and,
 * over msgr1, MAuth: msgr1 has no auth frames, so a client authenticates to
 * a monitor in messages), reading replies' segments. The library picks
 * msgr2 when ADDR has a v2 address, msgr1 otherwise. Exit status 0 when the
 * command returned 0. Build:
 *   cc mon_client.c $(pkg-config --cflags --libs msgr)
 */
#include <msgr.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MSG_MON_MAP = 4, MSG_MON_GET_MAP = 5, MSG_AUTH = 17, MSG_AUTH_REPLY = 18,
       MSG_MON_COMMAND = 50, MSG_MON_COMMAND_ACK = 51 };

/* Little-endian encoders into a bounded buffer (Ceph's denc). */
typedef struct {
    unsigned char b[4096];
    size_t n;
} buf;

static void put(buf *w, const void *p, size_t n) {
    if (w->n + n <= sizeof w->b) {
        memcpy(w->b + w->n, p, n);
    }
    w->n += n; /* an overflow shows as n > sizeof b */
}
static void u8(buf *w, uint8_t v) { put(w, &v, 1); }
static void u32(buf *w, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(w, b, 4);
}
static void u64(buf *w, uint64_t v) {
    u32(w, (uint32_t)v);
    u32(w, (uint32_t)(v >> 32));
}
static void str(buf *w, const char *s) {
    u32(w, (uint32_t)strlen(s));
    put(w, s, strlen(s));
}
/* The PaxosServiceMessage prefix: version 0, session mon -1, tid 0. */
static void paxos(buf *w) {
    u64(w, 0);
    u8(w, 0xff);
    u8(w, 0xff);
    u64(w, 0);
}
static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reports rc with the library's detail for this thread's last error. */
static void report(const char *what, int rc) {
    char detail[256] = "";
    msgr_last_error(detail, sizeof detail);
    fprintf(stderr, "mon_client: %s: %s (%s)\n", what, msgr_strerror(rc), detail);
}

static int send_msg(msgr_conn c, uint16_t type, uint64_t tid, const buf *front) {
    msgr_msg *m;
    int rc;
    if (front->n > sizeof front->b)
        return MSGR_EMSGSIZE;
    if ((rc = msgr_msg_alloc(&m, type)) != 0)
        return rc;
    if ((rc = msgr_msg_set_tid(m, tid)) != 0 || (rc = msgr_msg_set_segment(m, MSGR_SEG_FRONT, front->b, front->n)) != 0) {
        msgr_msg_put(m);
        return rc;
    }
    return msgr_conn_send(c, m); /* takes the reference, even on error */
}

/* Waits (bounded) for a message of type `type` and returns it, or NULL. */
static msgr_msg *wait_for(msgr_messenger m, uint16_t type, int timeout_ms) {
    msgr_event ev;
    int waited = 0;
    while (waited < timeout_ms) {
        int n = msgr_messenger_recv(m, &ev, 1, sizeof ev, 100);
        waited += 100;
        if (n == MSGR_ETIMEDOUT)
            continue;
        if (n < 0) {
            fprintf(stderr, "mon_client: recv: %s\n", msgr_strerror(n));
            return NULL;
        }
        if (ev.type == MSGR_EVENT_RESET || ev.type == MSGR_EVENT_REFUSED) {
            fprintf(stderr, "mon_client: connection %s\n", ev.type == MSGR_EVENT_RESET ? "reset" : "refused");
            return NULL;
        }
        if (ev.type != MSGR_EVENT_MESSAGE)
            continue;
        msgr_msg_header h;
        memset(&h, 0, sizeof h);
        h.size = sizeof h;
        msgr_msg_get_header(ev.msg, &h);
        if (h.type == type)
            return ev.msg;
        msgr_msg_put(ev.msg); /* maps pushed by the monitor, and the like */
    }
    fprintf(stderr, "mon_client: no message of type %u after %d ms\n", type, timeout_ms);
    return NULL;
}

int main(int argc, char **argv) {
    const char *addr = argc > 1 ? argv[1] : "v2:127.0.0.1:3300";
    const char *cmd = argc > 2 ? argv[2] : "{\"prefix\": \"mon versions\"}";
    msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
    msgr_messenger m;
    msgr_policy pol;
    msgr_conn c;
    msgr_msg *r;
    const void *p;
    size_t n;
    unsigned char fsid[16];
    buf w;
    int rc, status = 1;
    /* msgr1 when the address has no v2 part (the library's rule too). */
    int v1 = strstr(addr, "v1:") != NULL && strstr(addr, "v2:") == NULL;

    cfg.name = "client.?";
    cfg.nonce = 4242;
    if ((rc = msgr_messenger_create(&m, &cfg)) != 0 || (rc = msgr_policy_init(&pol, MSGR_POLICY_LOSSY_CLIENT, 0)) != 0 ||
        (rc = msgr_messenger_set_policy(m, MSGR_ENTITY_MON, &pol)) != 0 ||
        (rc = msgr_messenger_add_pull(m, MSGR_TAIL)) != 0 || (rc = msgr_messenger_start(m)) != 0) {
        report("setup", rc);
        return 2;
    }
    if ((rc = msgr_messenger_connect(m, MSGR_ENTITY_MON, addr, &c)) != 0) {
        report(addr, rc);
        msgr_messenger_destroy(m);
        return 2;
    }
    if (v1) {
        /* MAuth: protocol 0 (negotiate), payload {1, [none], client.admin,
         * global id 0}, monmap epoch 0 (V1-FACTS.md §6.1). */
        buf pl = {{0}, 0};
        u8(&pl, 1);
        u32(&pl, 1);
        u32(&pl, 1); /* [CEPH_AUTH_NONE] */
        u32(&pl, 8);
        str(&pl, "admin");
        u64(&pl, 0);
        w.n = 0;
        paxos(&w);
        u32(&w, 0);
        u32(&w, (uint32_t)pl.n);
        put(&w, pl.b, pl.n);
        u32(&w, 0);
        if ((rc = send_msg(c, MSG_AUTH, 0, &w)) != 0)
            goto out;
        if ((r = wait_for(m, MSG_AUTH_REPLY, 10000)) == NULL)
            goto out;
        msgr_msg_get_segment(r, MSGR_SEG_FRONT, &p, &n);
        printf("auth: protocol %u result %d global id %llu\n", n >= 16 ? get32(p) : 0,
               n >= 16 ? (int)get32((const unsigned char *)p + 4) : -1,
               n >= 16 ? (unsigned long long)get32((const unsigned char *)p + 8) : 0ULL);
        msgr_msg_put(r);
    }
    if ((rc = msgr_conn_send_keepalive(c)) != 0)
        goto out;

    /* The monmap, for the fsid a command must carry: MMonMap's front is a
     * bufferlist (u32 length) holding the map, which starts with a struct
     * header (u8 v, u8 compat, u32 len) and then the 16-byte fsid. */
    w.n = 0;
    if ((rc = send_msg(c, MSG_MON_GET_MAP, 0, &w)) != 0 || (r = wait_for(m, MSG_MON_MAP, 10000)) == NULL)
        goto out;
    msgr_msg_get_segment(r, MSGR_SEG_FRONT, &p, &n);
    if (n < 26) {
        fprintf(stderr, "mon_client: monmap of %zu bytes\n", n);
        msgr_msg_put(r);
        goto out;
    }
    memcpy(fsid, (const unsigned char *)p + 10, 16);
    msgr_msg_put(r);
    printf("fsid: %02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x\n", fsid[0], fsid[1],
           fsid[2], fsid[3], fsid[4], fsid[5], fsid[6], fsid[7], fsid[8], fsid[9], fsid[10], fsid[11], fsid[12],
           fsid[13], fsid[14], fsid[15]);

    /* MMonCommand: paxos prefix, fsid, vector<string> cmd; tid in the
     * header, echoed by the ack. */
    w.n = 0;
    paxos(&w);
    put(&w, fsid, 16);
    u32(&w, 1);
    str(&w, cmd);
    if ((rc = send_msg(c, MSG_MON_COMMAND, 1, &w)) != 0 || (r = wait_for(m, MSG_MON_COMMAND_ACK, 10000)) == NULL)
        goto out;
    /* MMonCommandAck: paxos prefix (18), i32 r, string rs, ...; output in
     * the data segment. */
    msgr_msg_get_segment(r, MSGR_SEG_FRONT, &p, &n);
    if (n >= 22) {
        int ret = (int)get32((const unsigned char *)p + 18);
        const void *d;
        size_t dn;
        msgr_msg_get_segment(r, MSGR_SEG_DATA, &d, &dn);
        printf("command: %s -> %d\n%.*s", cmd, ret, (int)dn, (const char *)d);
        if (dn == 0 || ((const char *)d)[dn - 1] != '\n')
            printf("\n");
        status = ret == 0 ? 0 : 1;
    }
    msgr_msg_put(r);
out:
    if (rc != 0)
        report("send", rc);
    msgr_conn_put(c);
    msgr_messenger_destroy(m);
    return status;
}
