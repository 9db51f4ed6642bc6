/*
 * shim.c: implements every prototype of include/msgr.h exactly (so the
 * compiler checks the header against the implementation, const included) and
 * forwards to the Go exports msgrgo_* (STYLE.md §3, libtailscale's
 * tailscale.c).
 *
 * What lives here rather than in Go, and why:
 *   - messages: a message is C memory with its header, its segments and a
 *     small inline buffer. Building and reading one never crosses into Go,
 *     so a program that builds many messages pays no crossing per field.
 *   - the checks that must work when Go cannot run: after fork() in the
 *     child, and inside restricted callbacks (log, zero-copy free).
 *   - the callback trampolines (Go cannot call a C function pointer).
 *   - the thread's last error text (a C thread-local, so it is per caller
 *     thread whatever goroutine served the call).
 *   - waiting in msgr_messenger_recv: the thread sleeps in poll() on the
 *     pull queue's eventfd, in C, so no Go thread is parked for it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msgr_impl.h"
#include "_cgo_export.h"

/* ---- ABI: the first release's struct sizes ------------------------------ */

/* Each struct the caller sizes is frozen at these sizes (LP64) for
 * major version 0; a struct may only grow, and the V0 sizes below stay the
 * minimum this library accepts. A failing assertion means an ABI change. */
#if UINTPTR_MAX == 0xFFFFFFFFFFFFFFFFu
_Static_assert(sizeof(msgr_messenger_config) == 56, "msgr_messenger_config changed size");
_Static_assert(sizeof(msgr_policy) == 40, "msgr_policy changed size");
_Static_assert(offsetof(msgr_dispatcher_ops, fast_dispatch_copy) == 80,
               "0.1.0's msgr_dispatcher_ops changed");
_Static_assert(sizeof(msgr_dispatcher_ops) == 88, "msgr_dispatcher_ops changed size");
_Static_assert(sizeof(msgr_event) == 32, "msgr_event changed size");
_Static_assert(offsetof(msgr_conn_info, unacked) == 72, "0.1.0's msgr_conn_info changed");
_Static_assert(sizeof(msgr_conn_info) == 88, "msgr_conn_info changed size");
_Static_assert(sizeof(msgr_msg_header) == 64, "msgr_msg_header changed size");
_Static_assert(sizeof(msgr_live_counts) == 40, "msgr_live_counts changed size");
_Static_assert(sizeof(msgr_outmsg) == 64, "msgr_outmsg changed size");
_Static_assert(sizeof(msgr_rxmsg) == 80, "msgr_rxmsg changed size");
_Static_assert(sizeof(msgr_messenger) == 8 && sizeof(msgr_conn) == 8, "handles changed size");
#endif

/* ---- process and thread state ----------------------------------------- */

/* Set in the child after fork(): the Go runtime's threads are gone there. */
static volatile int msgrc_forked;
/* The few thread-locals read on every call use the initial-exec model (a
 * plain %fs access instead of a __tls_get_addr call): 32 bytes of static
 * TLS, next to what the Go runtime of a c-shared library takes anyway. */
#define MSGRC_TLS __thread __attribute__((tls_model("initial-exec")))
/* Nesting depth of dispatcher callbacks on this thread. */
static MSGRC_TLS int msgrc_cb_depth;
/* > 0 while a restricted callback (log, zero-copy free) runs on this thread. */
static MSGRC_TLS int msgrc_restricted;
/* The connection of the innermost dispatcher callback on this thread and its
 * priv pointer, so msgr_conn_get_priv on it needs no call into Go. */
static MSGRC_TLS uint64_t msgrc_cb_conn;
static MSGRC_TLS void *msgrc_cb_priv;

static void msgrc_atfork_child(void) { msgrc_forked = 1; }

/* A per-thread cache of free message structs: a program that builds and
 * sends many messages from one thread (or a worker that lends many) reuses
 * them without malloc/free. Off under AddressSanitizer, so it still sees
 * every use after msgr_msg_put. */
#if defined(__SANITIZE_ADDRESS__)
#define MSGRC_CACHE 0
#else
#define MSGRC_CACHE 64
#endif
#if MSGRC_CACHE > 0
struct msgrc_cache {
    int n;
    struct msgr_msg *m[MSGRC_CACHE];
};
#endif
#if MSGRC_CACHE > 0
/* One pointer of initial-exec TLS, so reaching the cache costs no
 * __tls_get_addr call (the cache itself would be too large for the static
 * TLS a dlopen'ed library may take); allocated on first use. */
static MSGRC_TLS struct msgrc_cache *msgrc_tc;
#endif
static pthread_key_t msgrc_cache_key;

/* Thread exit: free the thread's cached structs. */
static void msgrc_cache_flush(void *p) {
#if MSGRC_CACHE > 0
    struct msgrc_cache *tc = (struct msgrc_cache *)p;
    if (tc == NULL)
        return;
    while (tc->n > 0)
        free(tc->m[--tc->n]);
    free(tc);
    msgrc_tc = NULL;
#else
    (void)p;
#endif
}

__attribute__((constructor)) static void msgrc_init(void) {
    pthread_atfork(NULL, NULL, msgrc_atfork_child);
    pthread_key_create(&msgrc_cache_key, msgrc_cache_flush);
}

/* ---- errors ------------------------------------------------------------ */

#define MSGRC_ERRLEN 512
static __thread char msgrc_err[MSGRC_ERRLEN];

void msgrc_set_error(const char *text, size_t len) {
    if (len >= MSGRC_ERRLEN)
        len = MSGRC_ERRLEN - 1;
    memcpy(msgrc_err, text, len);
    msgrc_err[len] = 0;
}

static int msgrc_fail(int code, const char *text) {
    msgrc_set_error(text, strlen(text));
    return code;
}

const char *msgr_strerror(int code) {
    switch (code) {
    case 0:
        return "success";
#define MSGR_X_STR_(name, value, text) \
    case value:                        \
        return text;
        MSGR_ERRNO_MAP(MSGR_X_STR_)
#undef MSGR_X_STR_
    }
    return "unknown error";
}

const char *msgr_err_name(int code) {
    switch (code) {
    case 0:
        return "MSGR_OK";
#define MSGR_X_NAME_(name, value, text) \
    case value:                         \
        return "MSGR_" #name;
        MSGR_ERRNO_MAP(MSGR_X_NAME_)
#undef MSGR_X_NAME_
    }
    return "MSGR_E?";
}

int msgr_last_error(char *buf, size_t len) {
    size_t n;
    if (buf == NULL || len == 0)
        return MSGR_EINVAL;
    n = strlen(msgrc_err);
    if (n >= len) {
        memcpy(buf, msgrc_err, len - 1);
        buf[len - 1] = 0;
        return MSGR_ERANGE;
    }
    memcpy(buf, msgrc_err, n + 1);
    return 0;
}

/* Every call that needs the Go runtime starts with this. */
#define MSGRC_GO_ENTRY()                                                        \
    do {                                                                        \
        if (msgrc_forked)                                                       \
            return msgrc_fail(MSGR_EFORK,                                       \
                              "libmsgr: called in a forked child; the "         \
                              "library's threads did not survive fork()");     \
        if (msgrc_restricted)                                                   \
            return msgrc_fail(MSGR_EDEADLK,                                     \
                              "libmsgr: called from a log callback or a data "  \
                              "free function, where only msgr_msg_* is "        \
                              "allowed");                                       \
    } while (0)

/* ---- version, memory --------------------------------------------------- */

unsigned msgr_version(void) { return MSGR_VERSION_HEX; }
const char *msgr_version_string(void) { return MSGR_VERSION_STRING; }
void msgr_free(void *p) { free(p); }

/* Struct size rules (header contract): a caller's struct must be at least
 * the first release's size; bytes beyond what this library knows must be 0
 * (the caller set fields of a newer release this library cannot honour). */
static int msgrc_check_in_size(const void *s, uint32_t size, size_t min,
                               size_t known, const char *what) {
    char text[160];
    if (size < min) {
        snprintf(text, sizeof text, "libmsgr: %s.size %u is smaller than %zu",
                 what, (unsigned)size, min);
        return msgrc_fail(MSGR_EINVAL, text);
    }
    if (size > known) {
        const unsigned char *p = (const unsigned char *)s;
        size_t i;
        for (i = known; i < size; i++) {
            if (p[i] != 0) {
                snprintf(text, sizeof text,
                         "libmsgr: %s sets fields this library (%s) does not "
                         "know", what, MSGR_VERSION_STRING);
                return msgrc_fail(MSGR_ENOTSUP, text);
            }
        }
    }
    return 0;
}

/* Output structs: the caller's size must cover the first release's fields;
 * bytes beyond what this library knows are zeroed. */
static int msgrc_check_out_size(void *s, uint32_t size, size_t min,
                                size_t known, const char *what) {
    char text[160];
    if (size < min) {
        snprintf(text, sizeof text, "libmsgr: %s.size %u is smaller than %zu",
                 what, (unsigned)size, min);
        return msgrc_fail(MSGR_EINVAL, text);
    }
    if (size > known)
        memset((unsigned char *)s + known, 0, size - known);
    return 0;
}

#define MSGRC_NULL(p, what)                                                    \
    do {                                                                       \
        if ((p) == NULL)                                                       \
            return msgrc_fail(MSGR_EINVAL, "libmsgr: " what " is NULL");       \
    } while (0)
/* A buffer the call writes a string into: not NULL, not empty. */
#define MSGRC_STRBUF(buf, len)                                                 \
    do {                                                                       \
        MSGRC_NULL(buf, "buf");                                                \
        if ((len) == 0)                                                        \
            return msgrc_fail(MSGR_ERANGE, "libmsgr: buffer of length 0");     \
    } while (0)

/* ---- messages ---------------------------------------------------------- */

static uint64_t msgrc_msgs_live;

uint64_t msgrc_live_msgs(void) {
    return __atomic_load_n(&msgrc_msgs_live, __ATOMIC_RELAXED);
}

static void msgrc_msg_init(struct msgr_msg *m, uint16_t type) {
    m->magic = MSGRC_MSG_MAGIC;
    m->refs = 1;
    m->flags = 0;
    m->lock = 0;
    m->type = type;
    m->priority = MSGR_PRIO_DEFAULT;
    m->version = 1;
    m->compat_version = 1;
    m->data_off = 0;
    m->hflags = 3; /* Ceph's default footer flags: complete | nocrc */
    m->src_type = 0;
    m->inline_used = 0;
    m->seq = 0;
    m->tid = 0;
    m->src_num = -1;
    memset(m->seg, 0, sizeof m->seg);
}

/* A struct with extra bytes of payload storage after it (extra 0: a plain
 * struct, maybe from the thread's cache). The caller initializes it. */
static struct msgr_msg *msgrc_msg_new(size_t extra) {
    struct msgr_msg *m;
#if MSGRC_CACHE > 0
    struct msgrc_cache *tc = msgrc_tc;
    if (extra == 0 && tc != NULL && tc->n > 0)
        m = tc->m[--tc->n];
    else
#endif
        m = (struct msgr_msg *)malloc(sizeof(struct msgr_msg) + extra);
    if (m != NULL)
        __atomic_add_fetch(&msgrc_msgs_live, 1, __ATOMIC_RELAXED);
    return m;
}

static void msgrc_msg_mem_free(struct msgr_msg *m, int plain) {
    __atomic_sub_fetch(&msgrc_msgs_live, 1, __ATOMIC_RELAXED);
#if MSGRC_CACHE > 0
    if (plain) {
        struct msgrc_cache *tc = msgrc_tc;
        if (tc == NULL) {
            tc = (struct msgrc_cache *)calloc(1, sizeof *tc);
            if (tc != NULL) { /* freed at thread exit by the key's destructor */
                pthread_setspecific(msgrc_cache_key, tc);
                msgrc_tc = tc;
            }
        }
        if (tc != NULL && tc->n < MSGRC_CACHE) {
            tc->m[tc->n++] = m;
            return;
        }
    }
#endif
    (void)plain;
    free(m);
}

static void msgrc_seg_release(struct msgrc_seg *s) {
    if (s->owned != NULL)
        free(s->owned);
    if (s->ffn != NULL) {
        msgrc_restricted++;
        s->ffn(s->p, s->hint);
        msgrc_restricted--;
    }
    memset(s, 0, sizeof *s);
}

static void msgrc_msg_free(struct msgr_msg *m) {
    int i;
    if (!(m->flags & MSGRC_F_BORROWED))
        for (i = 0; i < 3; i++)
            msgrc_seg_release(&m->seg[i]);
    m->magic = MSGRC_MSG_DEAD;
    msgrc_msg_mem_free(m, !(m->flags & MSGRC_F_TAIL));
}

static int msgrc_msg_ok(const struct msgr_msg *m) {
    return m != NULL && m->magic == MSGRC_MSG_MAGIC;
}

#define MSGRC_MSG_CHECK(m)                                                     \
    do {                                                                       \
        if (!msgrc_msg_ok(m))                                                  \
            return msgrc_fail(MSGR_EINVAL, (m) == NULL                         \
                                               ? "libmsgr: message is NULL"    \
                                               : "libmsgr: not a live message"); \
    } while (0)

/* A setter may change m only while the caller holds its only reference. */
static int msgrc_msg_writable(const struct msgr_msg *m) {
    MSGRC_MSG_CHECK(m);
    if (__atomic_load_n(&m->flags, __ATOMIC_ACQUIRE) & (MSGRC_F_BORROWED | MSGRC_F_STACK))
        return msgrc_fail(MSGR_ESTATE, "libmsgr: message is borrowed (read only)");
    if (__atomic_load_n(&m->refs, __ATOMIC_ACQUIRE) != 1)
        return msgrc_fail(MSGR_ESTATE,
                          "libmsgr: message is shared or being sent (read only)");
    return 0;
}

/* Storage for len payload bytes of m: the inline buffer while it has room,
 * else a malloc'd block returned in *owned. */
static unsigned char *msgrc_msg_space(struct msgr_msg *m, size_t len, void **owned) {
    *owned = NULL;
    if (len == 0)
        return NULL;
    if (len <= (size_t)(MSGRC_INLINE - m->inline_used)) {
        unsigned char *p = m->inline_buf + m->inline_used;
        m->inline_used += (uint32_t)len;
        return p;
    }
    *owned = malloc(len);
    return (unsigned char *)*owned;
}

int msgr_msg_alloc(msgr_msg **out, uint16_t type) {
    struct msgr_msg *m;
    MSGRC_NULL(out, "out");
    *out = NULL;
    m = msgrc_msg_new(0);
    if (m == NULL)
        return msgrc_fail(MSGR_ENOMEM, "libmsgr: out of memory");
    msgrc_msg_init(m, type);
    *out = m;
    return 0;
}

/* Copies a borrowed message's segments into memory it owns (once). */
static int msgrc_msg_own(struct msgr_msg *m) {
    int rc = 0, i;
    while (__atomic_exchange_n(&m->lock, 1, __ATOMIC_ACQUIRE))
        ;
    if (m->flags & MSGRC_F_BORROWED) {
        struct msgrc_seg copy[3];
        memset(copy, 0, sizeof copy);
        for (i = 0; i < 3 && rc == 0; i++) {
            size_t len = m->seg[i].len;
            if (len == 0)
                continue;
            copy[i].p = msgrc_msg_space(m, len, &copy[i].owned);
            if (copy[i].p == NULL) {
                rc = MSGR_ENOMEM;
                break;
            }
            memcpy(copy[i].p, m->seg[i].p, len);
            copy[i].len = len;
        }
        if (rc == 0) {
            memcpy(m->seg, copy, sizeof copy);
            __atomic_and_fetch(&m->flags, ~MSGRC_F_BORROWED, __ATOMIC_RELEASE);
        } else {
            for (i = 0; i < 3; i++)
                free(copy[i].owned);
        }
    }
    __atomic_store_n(&m->lock, 0, __ATOMIC_RELEASE);
    return rc;
}

int msgr_msg_ref(msgr_msg *m) {
    MSGRC_MSG_CHECK(m);
    if (m->flags & MSGRC_F_STACK)
        return msgrc_fail(MSGR_ESTATE,
                          "libmsgr: a message in can_fast_dispatch cannot be kept");
    if (__atomic_load_n(&m->flags, __ATOMIC_ACQUIRE) & MSGRC_F_BORROWED) {
        if (msgrc_msg_own(m) != 0)
            return msgrc_fail(MSGR_ENOMEM, "libmsgr: out of memory");
    }
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_ACQ_REL);
    return 0;
}

static void msgrc_msg_unref(struct msgr_msg *m) {
    if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0)
        msgrc_msg_free(m);
}

int msgr_msg_put(msgr_msg *m) {
    MSGRC_MSG_CHECK(m);
    if (__atomic_load_n(&m->flags, __ATOMIC_ACQUIRE) & (MSGRC_F_BORROWED | MSGRC_F_STACK))
        return msgrc_fail(MSGR_ESTATE,
                          "libmsgr: message is borrowed; you hold no reference");
    msgrc_msg_unref(m);
    return 0;
}

void msgrc_msg_put_from_go(struct msgr_msg *m) { msgrc_msg_unref(m); }

void msgrc_msg_discard(struct msgr_msg *m) { msgrc_msg_free(m); }

int msgr_msg_copy(const msgr_msg *m, msgr_msg **out) {
    struct msgr_msg *c;
    size_t total = 0, off = 0;
    int i;
    MSGRC_NULL(out, "out");
    *out = NULL;
    MSGRC_MSG_CHECK(m);
    for (i = 0; i < 3; i++)
        total += m->seg[i].len;
    c = msgrc_msg_new(total > MSGRC_INLINE ? total : 0);
    if (c == NULL)
        return msgrc_fail(MSGR_ENOMEM, "libmsgr: out of memory");
    msgrc_msg_init(c, m->type);
    if (total > MSGRC_INLINE)
        c->flags |= MSGRC_F_TAIL;
    c->priority = m->priority;
    c->version = m->version;
    c->compat_version = m->compat_version;
    c->tid = m->tid;
    c->seq = m->seq;
    c->src_type = m->src_type;
    c->src_num = m->src_num;
    c->data_off = m->data_off;
    c->hflags = m->hflags;
    {
        unsigned char *base = total > MSGRC_INLINE ? (unsigned char *)(c + 1) : c->inline_buf;
        for (i = 0; i < 3; i++) {
            size_t len = m->seg[i].len;
            if (len == 0)
                continue;
            memcpy(base + off, m->seg[i].p, len);
            c->seg[i].p = base + off;
            c->seg[i].len = len;
            off += len;
        }
        if (base == c->inline_buf)
            c->inline_used = (uint32_t)off;
    }
    *out = c;
    return 0;
}

int msgr_msg_set_priority(msgr_msg *m, uint16_t priority) {
    int rc = msgrc_msg_writable(m);
    if (rc == 0)
        m->priority = priority;
    return rc;
}

int msgr_msg_set_version(msgr_msg *m, uint16_t version, uint16_t compat_version) {
    int rc = msgrc_msg_writable(m);
    if (rc == 0) {
        m->version = version;
        m->compat_version = compat_version;
    }
    return rc;
}

int msgr_msg_set_tid(msgr_msg *m, uint64_t tid) {
    int rc = msgrc_msg_writable(m);
    if (rc == 0)
        m->tid = tid;
    return rc;
}

static int msgrc_seg_args(int seg, size_t len) {
    if (seg < MSGR_SEG_FRONT || seg > MSGR_SEG_DATA)
        return msgrc_fail(MSGR_EINVAL, "libmsgr: segment must be MSGR_SEG_FRONT, "
                                       "MSGR_SEG_MIDDLE or MSGR_SEG_DATA");
    if ((uint64_t)len > (uint64_t)MSGR_SEGMENT_MAX)
        return msgrc_fail(MSGR_EMSGSIZE,
                          "libmsgr: segment longer than MSGR_SEGMENT_MAX");
    return 0;
}

int msgr_msg_reserve_segment(msgr_msg *m, int seg, size_t len, void **buf) {
    int rc;
    struct msgrc_seg s;
    MSGRC_NULL(buf, "buf");
    *buf = NULL;
    if ((rc = msgrc_msg_writable(m)) != 0)
        return rc;
    if ((rc = msgrc_seg_args(seg, len)) != 0)
        return rc;
    memset(&s, 0, sizeof s);
    s.p = msgrc_msg_space(m, len, &s.owned);
    if (len > 0 && s.p == NULL)
        return msgrc_fail(MSGR_ENOMEM, "libmsgr: out of memory");
    s.len = len;
    msgrc_seg_release(&m->seg[seg]);
    m->seg[seg] = s;
    *buf = s.p;
    return 0;
}

int msgr_msg_set_segment(msgr_msg *m, int seg, const void *data, size_t len) {
    void *buf;
    int rc;
    if (data == NULL && len > 0)
        return msgrc_fail(MSGR_EINVAL, "libmsgr: data is NULL with a length");
    rc = msgr_msg_reserve_segment(m, seg, len, &buf);
    if (rc == 0 && len > 0)
        memcpy(buf, data, len);
    return rc;
}

int msgr_msg_set_data_nocopy(msgr_msg *m, void *data, size_t len,
                             msgr_free_fn free_fn, void *hint) {
    int rc;
    if (data == NULL && len > 0)
        return msgrc_fail(MSGR_EINVAL, "libmsgr: data is NULL with a length");
    if ((rc = msgrc_msg_writable(m)) != 0)
        return rc;
    if ((rc = msgrc_seg_args(MSGR_SEG_DATA, len)) != 0)
        return rc;
    msgrc_seg_release(&m->seg[MSGR_SEG_DATA]);
    m->seg[MSGR_SEG_DATA].p = (unsigned char *)data;
    m->seg[MSGR_SEG_DATA].len = len;
    m->seg[MSGR_SEG_DATA].ffn = free_fn;
    m->seg[MSGR_SEG_DATA].hint = hint;
    return 0;
}

#define MSGRC_HEADER_V0 sizeof(msgr_msg_header)

int msgr_msg_get_header(const msgr_msg *m, msgr_msg_header *h) {
    int rc;
    MSGRC_NULL(h, "header");
    MSGRC_MSG_CHECK(m);
    if ((rc = msgrc_check_out_size(h, h->size, MSGRC_HEADER_V0, sizeof *h, "msgr_msg_header")) != 0)
        return rc;
    h->type = m->type;
    h->priority = m->priority;
    h->version = m->version;
    h->compat_version = m->compat_version;
    h->src_type = m->src_type;
    memset(h->reserved, 0, sizeof h->reserved);
    h->seq = m->seq;
    h->tid = m->tid;
    h->src_num = m->src_num;
    h->front_len = m->seg[0].len;
    h->middle_len = m->seg[1].len;
    h->data_len = m->seg[2].len;
    return 0;
}

uint16_t msgr_msg_type(const msgr_msg *m) { return msgrc_msg_ok(m) ? m->type : 0; }

int msgr_msg_get_segment(const msgr_msg *m, int seg, const void **data, size_t *len) {
    int rc;
    MSGRC_NULL(data, "data");
    MSGRC_NULL(len, "len");
    *data = NULL;
    *len = 0;
    MSGRC_MSG_CHECK(m);
    if ((rc = msgrc_seg_args(seg, 0)) != 0)
        return rc;
    *data = m->seg[seg].len ? m->seg[seg].p : NULL;
    *len = m->seg[seg].len;
    return 0;
}

struct msgr_msg *msgrc_msg_new_rx(size_t payload, unsigned char **tail) {
    struct msgr_msg *m = msgrc_msg_new(payload > MSGRC_INLINE ? payload : 0);
    if (m == NULL)
        return NULL;
    msgrc_msg_init(m, 0);
    if (payload > MSGRC_INLINE) {
        m->flags |= MSGRC_F_TAIL;
        *tail = (unsigned char *)(m + 1);
    } else {
        *tail = m->inline_buf;
        m->inline_used = (uint32_t)payload;
    }
    return m;
}

void msgrc_msg_new_rx_batch(size_t n, const size_t *sizes, struct msgr_msg **out,
                            unsigned char **tails) {
    size_t i;
    for (i = 0; i < n; i++) {
        tails[i] = NULL;
        out[i] = msgrc_msg_new_rx(sizes[i], &tails[i]);
    }
}

/* ---- trampolines ------------------------------------------------------- */

/* Fills m as a message lent by Go (segments in Go memory, valid for the
 * callback only; msgr_msg_ref copies them out). */
static void msgrc_lend(struct msgr_msg *m, int on_stack, uint64_t seq, uint64_t tid,
                       int64_t src_num, uint64_t packed, uint64_t packed2,
                       uintptr_t front, size_t front_len, uintptr_t middle,
                       size_t middle_len, uintptr_t data, size_t data_len) {
    m->magic = MSGRC_MSG_MAGIC;
    m->refs = 1;
    m->flags = MSGRC_F_BORROWED | (on_stack ? MSGRC_F_STACK : 0);
    m->lock = 0;
    m->type = (uint16_t)packed;
    m->priority = (uint16_t)(packed >> 16);
    m->version = (uint16_t)(packed >> 32);
    m->compat_version = (uint16_t)(packed >> 48);
    m->src_type = (uint8_t)packed2;
    m->hflags = (uint8_t)(packed2 >> 8);
    m->data_off = (uint16_t)(packed2 >> 16);
    m->inline_used = 0;
    m->seq = seq;
    m->tid = tid;
    m->src_num = src_num;
    memset(m->seg, 0, sizeof m->seg);
    m->seg[0].p = (unsigned char *)front;
    m->seg[0].len = front_len;
    m->seg[1].p = (unsigned char *)middle;
    m->seg[1].len = middle_len;
    m->seg[2].p = (unsigned char *)data;
    m->seg[2].len = data_len;
}

/* A callback's context on this thread (what msgr_conn_get_priv and the
 * restrictions read): entered before calling C, restored after, so that a
 * callback run inside another (a local send dispatched inline) unwinds. */
struct msgrc_cb_saved {
    uint64_t conn;
    void *priv;
};
static struct msgrc_cb_saved msgrc_cb_enter(uint64_t conn, uintptr_t priv) {
    struct msgrc_cb_saved s;
    s.conn = msgrc_cb_conn;
    s.priv = msgrc_cb_priv;
    msgrc_cb_conn = conn;
    msgrc_cb_priv = (void *)priv;
    msgrc_cb_depth++;
    return s;
}
static void msgrc_cb_leave(struct msgrc_cb_saved s) {
    msgrc_cb_depth--;
    msgrc_cb_conn = s.conn;
    msgrc_cb_priv = s.priv;
}

int msgrc_call_msg(struct msgrc_dispatcher *d, int kind, uint64_t conn, uintptr_t priv,
                   uint64_t seq, uint64_t tid, int64_t src_num,
                   uint64_t packed, uint64_t packed2, uintptr_t front,
                   size_t front_len, uintptr_t middle, size_t middle_len,
                   uintptr_t data, size_t data_len) {
    struct msgr_msg onstack;
    struct msgr_msg *m;
    msgr_conn c;
    struct msgrc_cb_saved saved;
    int r = 0;
    if (kind == 0) {
        m = &onstack;
    } else {
        m = msgrc_msg_new(0);
        if (m == NULL)
            return 0; /* cannot lend it: the message is dropped as unclaimed */
    }
    msgrc_lend(m, kind == 0, seq, tid, src_num, packed, packed2, front, front_len, middle,
               middle_len, data, data_len);
    c.id = conn;
    saved = msgrc_cb_enter(conn, priv);
    switch (kind) {
    case 0:
        r = d->ops.can_fast_dispatch(d->user, m);
        break;
    case 1:
        d->ops.fast_dispatch(d->user, c, m);
        r = 1;
        break;
    default:
        r = d->ops.dispatch(d->user, c, m);
        break;
    }
    msgrc_cb_leave(saved);
    if (kind == 0) {
        onstack.magic = MSGRC_MSG_DEAD;
    } else {
        /* Drop the lender's reference. If the callback kept the message
         * (msgr_msg_ref), it owns copies by now and lives on. */
        msgrc_msg_unref(m);
    }
    return r != 0;
}

void msgrc_call_copy(struct msgrc_dispatcher *d, uint64_t conn, uintptr_t priv,
                     uintptr_t rx, size_t n, uintptr_t buf) {
    msgr_conn c;
    struct msgrc_cb_saved saved = msgrc_cb_enter(conn, priv);
    c.id = conn;
    d->ops.fast_dispatch_copy(d->user, c, (const msgr_rxmsg *)rx, n, (const unsigned char *)buf);
    msgrc_cb_leave(saved);
}

void msgrc_call_fast_batch(struct msgrc_dispatcher *d, uint64_t conn, uintptr_t priv,
                           uintptr_t rxp, size_t n) {
    const struct msgrc_rx *rx = (const struct msgrc_rx *)rxp;
    msgr_conn c;
    size_t i;
    struct msgrc_cb_saved saved = msgrc_cb_enter(conn, priv);
    c.id = conn;
    for (i = 0; i < n; i++) {
        struct msgr_msg *m = msgrc_msg_new(0);
        if (m == NULL)
            continue; /* cannot lend it: dropped, as msgrc_call_msg does */
        msgrc_lend(m, 0, rx[i].seq, rx[i].tid, rx[i].src_num, rx[i].packed, rx[i].packed2,
                   rx[i].seg[0], rx[i].len[0], rx[i].seg[1], rx[i].len[1], rx[i].seg[2],
                   rx[i].len[2]);
        /* Each call starts from the priv Go knew (a callback may set it). */
        msgrc_cb_priv = (void *)priv;
        d->ops.fast_dispatch(d->user, c, m);
        priv = (uintptr_t)msgrc_cb_priv;
        msgrc_msg_unref(m);
    }
    msgrc_cb_leave(saved);
}

int msgrc_call_event(struct msgrc_dispatcher *d, int ev, uint64_t conn, uintptr_t priv) {
    msgr_conn c;
    int r = 0;
    struct msgrc_cb_saved saved = msgrc_cb_enter(conn, priv);
    c.id = conn;
    switch (ev) {
    case MSGR_EVENT_CONNECT:
        if (d->ops.handle_connect)
            d->ops.handle_connect(d->user, c);
        break;
    case MSGR_EVENT_ACCEPT:
        if (d->ops.handle_accept)
            d->ops.handle_accept(d->user, c);
        break;
    case MSGR_EVENT_RESET:
        if (d->ops.handle_reset)
            r = d->ops.handle_reset(d->user, c);
        break;
    case MSGR_EVENT_REMOTE_RESET:
        if (d->ops.handle_remote_reset)
            d->ops.handle_remote_reset(d->user, c);
        break;
    case MSGR_EVENT_REFUSED:
        if (d->ops.handle_refused)
            r = d->ops.handle_refused(d->user, c);
        break;
    }
    msgrc_cb_leave(saved);
    return r != 0;
}

void msgrc_call_release(struct msgrc_dispatcher *d) {
    if (d->ops.release != NULL) {
        msgrc_cb_depth++;
        d->ops.release(d->user);
        msgrc_cb_depth--;
    }
    free(d);
}

void msgrc_call_log(msgr_log_fn fn, void *user, uint64_t mid, int level,
                    const char *line, size_t len) {
    char small[512];
    char *buf = small;
    msgr_messenger m;
    if (len >= sizeof small) {
        buf = (char *)malloc(len + 1);
        if (buf == NULL) {
            buf = small;
            len = sizeof small - 1;
        }
    }
    memcpy(buf, line, len);
    buf[len] = 0;
    m.id = mid;
    msgrc_restricted++;
    fn(user, m, level, buf);
    msgrc_restricted--;
    if (buf != small)
        free(buf);
}

/* ---- messenger --------------------------------------------------------- */

#define MSGRC_CONFIG_V0 sizeof(msgr_messenger_config)

int msgr_messenger_create(msgr_messenger *out, const msgr_messenger_config *cfg) {
    int rc;
    MSGRC_NULL(out, "out");
    out->id = 0;
    MSGRC_NULL(cfg, "config");
    MSGRC_GO_ENTRY();
    if ((rc = msgrc_check_in_size(cfg, cfg->size, MSGRC_CONFIG_V0, sizeof *cfg,
                                  "msgr_messenger_config")) != 0)
        return rc;
    if (cfg->reserved0 != 0 || cfg->reserved1 != 0)
        return msgrc_fail(MSGR_EINVAL, "libmsgr: msgr_messenger_config reserved fields must be 0");
    MSGRC_NULL(cfg->name, "config name");
    if (cfg->noptions > 0 && cfg->options == NULL)
        return msgrc_fail(MSGR_EINVAL, "libmsgr: options is NULL with noptions > 0");
    return msgrgo_messenger_create(&out->id, (char *)cfg->name, cfg->nonce,
                                   (msgr_option *)cfg->options, cfg->noptions,
                                   cfg->log, cfg->log_user);
}

int msgr_messenger_destroy(msgr_messenger m) {
    MSGRC_GO_ENTRY();
    if (msgrc_cb_depth > 0)
        return msgrc_fail(MSGR_EDEADLK, "libmsgr: msgr_messenger_destroy from a callback");
    return msgrgo_messenger_destroy(m.id);
}

#define MSGRC_POLICY_V0 sizeof(msgr_policy)

int msgr_policy_init(msgr_policy *p, int kind, uint64_t features_required) {
    uint32_t f;
    MSGRC_NULL(p, "policy");
    switch (kind) {
    case MSGR_POLICY_LOSSY_CLIENT:
        f = MSGR_POLICY_F_LOSSY | MSGR_POLICY_F_REGISTER_LOSSY_CLIENTS;
        break;
    case MSGR_POLICY_LOSSLESS_CLIENT:
        f = MSGR_POLICY_F_RESETCHECK | MSGR_POLICY_F_REGISTER_LOSSY_CLIENTS;
        break;
    case MSGR_POLICY_LOSSLESS_PEER:
        f = MSGR_POLICY_F_STANDBY | MSGR_POLICY_F_REGISTER_LOSSY_CLIENTS;
        break;
    case MSGR_POLICY_LOSSLESS_PEER_REUSE:
        f = MSGR_POLICY_F_STANDBY | MSGR_POLICY_F_RESETCHECK |
            MSGR_POLICY_F_REGISTER_LOSSY_CLIENTS;
        break;
    case MSGR_POLICY_STATEFUL_SERVER:
        f = MSGR_POLICY_F_SERVER | MSGR_POLICY_F_STANDBY | MSGR_POLICY_F_RESETCHECK |
            MSGR_POLICY_F_REGISTER_LOSSY_CLIENTS;
        break;
    case MSGR_POLICY_STATELESS_SERVER:
        f = MSGR_POLICY_F_LOSSY | MSGR_POLICY_F_SERVER;
        break;
    case MSGR_POLICY_STATELESS_REGISTERED_SERVER:
        f = MSGR_POLICY_F_LOSSY | MSGR_POLICY_F_SERVER | MSGR_POLICY_F_REGISTER_LOSSY_CLIENTS;
        break;
    default:
        return msgrc_fail(MSGR_EINVAL, "libmsgr: unknown policy kind");
    }
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
    p->flags = f;
    p->features_supported = 0x3f01cfbdfffdffffull; /* CEPH_FEATURES_ALL, 16.2.15 */
    p->features_required = features_required;
    return 0;
}

int msgr_messenger_set_policy(msgr_messenger m, int peer_type, const msgr_policy *p) {
    int rc;
    msgr_policy local;
    MSGRC_NULL(p, "policy");
    MSGRC_GO_ENTRY();
    if ((rc = msgrc_check_in_size(p, p->size, MSGRC_POLICY_V0, sizeof *p, "msgr_policy")) != 0)
        return rc;
    memcpy(&local, p, sizeof local);
    return msgrgo_messenger_set_policy(m.id, peer_type, &local);
}

int msgr_messenger_bind(msgr_messenger m, const char *addr) {
    MSGRC_NULL(addr, "addr");
    MSGRC_GO_ENTRY();
    return msgrgo_messenger_bind(m.id, (char *)addr, 0, 0, 0);
}

int msgr_messenger_bind_range(msgr_messenger m, const char *addr, int min_port, int max_port) {
    MSGRC_NULL(addr, "addr");
    MSGRC_GO_ENTRY();
    if (min_port < 0 || max_port > 65535 || min_port > max_port)
        return msgrc_fail(MSGR_EINVAL, "libmsgr: bad port range");
    return msgrgo_messenger_bind(m.id, (char *)addr, min_port, max_port, 1);
}

int msgr_messenger_get_addrs(msgr_messenger m, char *buf, size_t len) {
    MSGRC_STRBUF(buf, len);
    MSGRC_GO_ENTRY();
    return msgrgo_messenger_string(m.id, 0, buf, len);
}

int msgr_messenger_get_name(msgr_messenger m, char *buf, size_t len) {
    MSGRC_STRBUF(buf, len);
    MSGRC_GO_ENTRY();
    return msgrgo_messenger_string(m.id, 1, buf, len);
}

int msgr_messenger_start(msgr_messenger m) {
    MSGRC_GO_ENTRY();
    return msgrgo_messenger_start(m.id);
}

int msgr_messenger_wait(msgr_messenger m) {
    MSGRC_GO_ENTRY();
    if (msgrc_cb_depth > 0)
        return msgrc_fail(MSGR_EDEADLK, "libmsgr: msgr_messenger_wait from a callback");
    return msgrgo_messenger_wait(m.id);
}

int msgr_messenger_shutdown(msgr_messenger m) {
    MSGRC_GO_ENTRY();
    return msgrgo_messenger_shutdown(m.id, msgrc_cb_depth > 0);
}

/* 0.1.0's msgr_dispatcher_ops ended at release. */
#define MSGRC_OPS_V0 offsetof(msgr_dispatcher_ops, fast_dispatch_copy)

int msgr_messenger_add_dispatcher(msgr_messenger m, const msgr_dispatcher_ops *ops,
                                  void *user, int where) {
    struct msgrc_dispatcher *d;
    int rc;
    MSGRC_NULL(ops, "ops");
    MSGRC_GO_ENTRY();
    if ((rc = msgrc_check_in_size(ops, ops->size, MSGRC_OPS_V0, sizeof *ops,
                                  "msgr_dispatcher_ops")) != 0)
        return rc;
    if (ops->flags & ~MSGR_DISPATCH_F_FAST_ALL)
        return msgrc_fail(MSGR_EINVAL, "libmsgr: unknown msgr_dispatcher_ops.flags");
    {
        msgr_dispatcher_ops full;
        memset(&full, 0, sizeof full);
        /* An older caller's struct is smaller: read only what its size covers. */
        memcpy(&full, ops, ops->size < sizeof full ? ops->size : sizeof full);
        if ((full.can_fast_dispatch != NULL || (full.flags & MSGR_DISPATCH_F_FAST_ALL)) &&
            full.fast_dispatch == NULL && full.fast_dispatch_copy == NULL)
            return msgrc_fail(MSGR_EINVAL,
                              "libmsgr: can_fast_dispatch or FAST_ALL without fast_dispatch");
    }
    if (where != MSGR_HEAD && where != MSGR_TAIL)
        return msgrc_fail(MSGR_EINVAL, "libmsgr: where must be MSGR_HEAD or MSGR_TAIL");
    d = (struct msgrc_dispatcher *)malloc(sizeof *d);
    if (d == NULL)
        return msgrc_fail(MSGR_ENOMEM, "libmsgr: out of memory");
    memset(d, 0, sizeof *d);
    memcpy(&d->ops, ops, ops->size < sizeof d->ops ? ops->size : sizeof d->ops);
    d->ops.size = sizeof d->ops;
    d->user = user;
    rc = msgrgo_messenger_add_dispatcher(m.id, d, where);
    if (rc != 0)
        free(d); /* never registered: no callback, not even release */
    return rc;
}

int msgr_messenger_add_pull(msgr_messenger m, int where) {
    MSGRC_GO_ENTRY();
    if (where != MSGR_HEAD && where != MSGR_TAIL)
        return msgrc_fail(MSGR_EINVAL, "libmsgr: where must be MSGR_HEAD or MSGR_TAIL");
    return msgrgo_messenger_add_pull(m.id, where);
}

#define MSGRC_EVENT_V0 sizeof(msgr_event)

static int64_t msgrc_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The receive loop of msgr_messenger_recv and msgr_messenger_recv_copy
 * (buf != NULL: items are msgr_rxmsg, payloads copied into buf). */
static int msgrc_recv(msgr_messenger m, void *evs, size_t n, size_t ev_size,
                      unsigned char *buf, size_t buf_len, size_t *used, int timeout_ms) {
    int64_t deadline = 0;
    if (n > INT_MAX)
        n = INT_MAX;
    if (timeout_ms > 0)
        deadline = msgrc_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int fd = -1, wait_ms, rc;
        int64_t spin_ns = 0, now;
        int64_t *word = NULL;
        struct pollfd pfd;
        rc = msgrgo_messenger_pull(m.id, evs, n, ev_size, buf, buf_len, used, 0, &fd, &spin_ns, &word);
        if (rc != MSGR_EAGAIN)
            return rc;
        if (timeout_ms == 0)
            return msgrc_fail(MSGR_EAGAIN, "libmsgr: nothing to receive");
        if (msgrc_cb_depth > 0)
            return msgrc_fail(MSGR_EDEADLK,
                              "libmsgr: msgr_messenger_recv may only poll (timeout 0) "
                              "from a callback");
        /* Poll for as long as the workers busy-poll: a message arriving
         * meanwhile costs no sleep and wake-up on either side. The poll
         * watches the queue's readiness word in C memory and enters Go only
         * when it changes: a call into Go from this (foreign) thread needs
         * one of the runtime's Ps, which busy-polling workers hold. */
        now = msgrc_now_ns();
        if (spin_ns > 0 && word != NULL) {
            int64_t spin_end = now + spin_ns;
            if (timeout_ms > 0 && spin_end > deadline)
                spin_end = deadline;
            while (msgrc_now_ns() < spin_end) {
                if (__atomic_load_n(word, __ATOMIC_ACQUIRE) == 0) {
#if defined(__x86_64__) || defined(__i386__)
                    __builtin_ia32_pause();
#endif
                    continue;
                }
                rc = msgrgo_messenger_pull(m.id, evs, n, ev_size, buf, buf_len, used, 0, &fd, &spin_ns, &word);
                if (rc != MSGR_EAGAIN)
                    return rc;
            }
        }
        rc = msgrgo_messenger_pull(m.id, evs, n, ev_size, buf, buf_len, used, 1, &fd, &spin_ns, &word);
        if (rc != MSGR_EAGAIN)
            return rc;
        wait_ms = -1;
        if (timeout_ms > 0) {
            int64_t left = deadline - msgrc_now_ns();
            if (left <= 0) {
                msgrgo_pull_unwait(fd);
                return msgrc_fail(MSGR_ETIMEDOUT, "libmsgr: nothing received in time");
            }
            left = (left + 999999) / 1000000;
            wait_ms = left > INT_MAX ? INT_MAX : (int)left;
        }
        pfd.fd = fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        rc = poll(&pfd, 1, wait_ms);
        msgrgo_pull_unwait(fd);
        if (rc < 0 && errno != EINTR)
            return msgrc_fail(MSGR_EIO, "libmsgr: poll failed");
        if (rc == 0 && timeout_ms > 0 && msgrc_now_ns() >= deadline) {
            rc = msgrgo_messenger_pull(m.id, evs, n, ev_size, buf, buf_len, used, 0, &fd, &spin_ns, &word);
            if (rc != MSGR_EAGAIN)
                return rc;
            return msgrc_fail(MSGR_ETIMEDOUT, "libmsgr: nothing received in time");
        }
    }
}

int msgr_messenger_recv(msgr_messenger m, msgr_event *evs, size_t n, size_t ev_size,
                        int timeout_ms) {
    MSGRC_NULL(evs, "evs");
    MSGRC_GO_ENTRY();
    if (n == 0)
        return msgrc_fail(MSGR_EINVAL, "libmsgr: n is 0");
    if (ev_size < MSGRC_EVENT_V0)
        return msgrc_fail(MSGR_EINVAL, "libmsgr: ev_size is smaller than msgr_event");
    return msgrc_recv(m, evs, n, ev_size, NULL, 0, NULL, timeout_ms);
}

#define MSGRC_RXMSG_V0 sizeof(msgr_rxmsg)

int msgr_messenger_recv_copy(msgr_messenger m, msgr_rxmsg *out, size_t n, size_t rx_size,
                             void *buf, size_t buf_len, size_t *buf_used, int timeout_ms) {
    size_t used = 0;
    int rc;
    MSGRC_NULL(out, "out");
    MSGRC_NULL(buf, "buf");
    MSGRC_GO_ENTRY();
    if (buf_used != NULL)
        *buf_used = 0;
    if (n == 0)
        return msgrc_fail(MSGR_EINVAL, "libmsgr: n is 0");
    if (rx_size < MSGRC_RXMSG_V0)
        return msgrc_fail(MSGR_EINVAL, "libmsgr: rx_size is smaller than msgr_rxmsg");
    rc = msgrc_recv(m, out, n, rx_size, (unsigned char *)buf, buf_len, &used, timeout_ms);
    if (buf_used != NULL)
        *buf_used = used;
    return rc;
}

int msgr_messenger_event_fd(msgr_messenger m, int *fd) {
    MSGRC_NULL(fd, "fd");
    *fd = -1;
    MSGRC_GO_ENTRY();
    return msgrgo_messenger_event_fd(m.id, fd);
}

int msgr_messenger_connect(msgr_messenger m, int peer_type, const char *addrs, msgr_conn *out) {
    MSGRC_NULL(out, "out");
    out->id = 0;
    MSGRC_NULL(addrs, "addrs");
    MSGRC_GO_ENTRY();
    return msgrgo_messenger_connect(m.id, peer_type, (char *)addrs, &out->id);
}

int msgr_messenger_perf_dump(msgr_messenger m, char **json) {
    MSGRC_NULL(json, "json");
    *json = NULL;
    MSGRC_GO_ENTRY();
    return msgrgo_messenger_perf_dump(m.id, json);
}

int msgr_live_counts_get(msgr_live_counts *out) {
    int rc;
    uint64_t v[3] = {0, 0, 0};
    MSGRC_NULL(out, "out");
    if ((rc = msgrc_check_out_size(out, out->size, sizeof *out, sizeof *out,
                                   "msgr_live_counts")) != 0)
        return rc;
    MSGRC_GO_ENTRY();
    rc = msgrgo_live_counts(v);
    if (rc != 0)
        return rc;
    out->reserved = 0;
    out->messengers = v[0];
    out->conns = v[1];
    out->dispatchers = v[2];
    out->msgs = msgrc_live_msgs();
    return 0;
}

/* ---- connections ------------------------------------------------------- */

int msgr_conn_get(msgr_conn c) {
    MSGRC_GO_ENTRY();
    return msgrgo_conn_ref(c.id, 1);
}

int msgr_conn_put(msgr_conn c) {
    MSGRC_GO_ENTRY();
    return msgrgo_conn_ref(c.id, -1);
}

static int msgrc_sendable(const struct msgr_msg *m) {
    MSGRC_MSG_CHECK(m);
    if (__atomic_load_n(&m->flags, __ATOMIC_ACQUIRE) & (MSGRC_F_BORROWED | MSGRC_F_STACK))
        return msgrc_fail(MSGR_ESTATE, "libmsgr: cannot send a borrowed message: "
                                       "msgr_msg_ref it (or msgr_msg_copy) first");
    return 0;
}

int msgr_conn_send(msgr_conn c, msgr_msg *m) {
    int rc;
    MSGRC_GO_ENTRY();
    if ((rc = msgrc_sendable(m)) != 0)
        return rc;
    rc = msgrgo_conn_send(c.id, m);
    if (rc == 1) { /* the payload was copied: the caller's reference ends here */
        msgrc_msg_unref(m);
        rc = 0;
    }
    return rc;
}

#define MSGRC_BATCH 64

int msgr_conn_send_many(msgr_conn c, msgr_msg *const *msgs, size_t n, size_t *sent) {
    size_t done = 0, i;
    int rc = 0;
    if (sent != NULL)
        *sent = 0;
    if (n == 0)
        return 0;
    MSGRC_NULL(msgs, "msgs");
    MSGRC_GO_ENTRY();
    while (done < n && rc == 0) {
        unsigned char copied[MSGRC_BATCH];
        size_t chunk = n - done, took = 0;
        if (chunk > MSGRC_BATCH)
            chunk = MSGRC_BATCH;
        for (i = 0; i < chunk; i++) {
            if ((rc = msgrc_sendable(msgs[done + i])) != 0) {
                chunk = i;
                break;
            }
        }
        if (chunk > 0) {
            int grc = msgrgo_conn_send_many(c.id, (struct msgr_msg **)(msgs + done), chunk,
                                            copied, &took);
            for (i = 0; i < took; i++)
                if (copied[i])
                    msgrc_msg_unref(msgs[done + i]);
            done += took;
            if (grc != 0)
                rc = grc;
        }
    }
    if (sent != NULL)
        *sent = done;
    return rc;
}

int msgr_conn_wait_held(msgr_conn c, uint64_t max_held, int timeout_ms) {
    MSGRC_GO_ENTRY();
    if (msgrc_cb_depth > 0)
        return msgrc_fail(MSGR_EDEADLK, "libmsgr: msgr_conn_wait_held from a callback");
    return msgrgo_conn_wait_held(c.id, max_held, timeout_ms);
}

#define MSGRC_OUTMSG_V0 sizeof(msgr_outmsg)

int msgr_conn_send_copy(msgr_conn c, const msgr_outmsg *msgs, size_t n, size_t outmsg_size,
                        size_t *sent) {
    size_t i, ok = n, took = 0;
    int rc = 0;
    if (sent != NULL)
        *sent = 0;
    if (n == 0)
        return 0;
    MSGRC_NULL(msgs, "msgs");
    MSGRC_GO_ENTRY();
    if (outmsg_size < MSGRC_OUTMSG_V0)
        return msgrc_fail(MSGR_EINVAL, "libmsgr: outmsg_size is smaller than msgr_outmsg");
    /* Check every message first: the bad one and those after it stay out. */
    for (i = 0; i < n && rc == 0; i++) {
        const msgr_outmsg *o = (const msgr_outmsg *)(const void *)((const char *)msgs + i * outmsg_size);
        if ((o->front == NULL && o->front_len) || (o->middle == NULL && o->middle_len) ||
            (o->data == NULL && o->data_len))
            rc = msgrc_fail(MSGR_EINVAL, "libmsgr: a segment pointer is NULL with a length");
        else if ((uint64_t)o->front_len > MSGR_SEGMENT_MAX ||
                 (uint64_t)o->middle_len > MSGR_SEGMENT_MAX ||
                 (uint64_t)o->data_len > MSGR_SEGMENT_MAX)
            rc = msgrc_fail(MSGR_EMSGSIZE, "libmsgr: segment longer than MSGR_SEGMENT_MAX");
        if (rc != 0)
            ok = i;
    }
    if (ok > 0) {
        int grc = msgrgo_conn_send_copy(c.id, (msgr_outmsg *)msgs, ok, outmsg_size, &took);
        if (grc != 0)
            rc = grc;
    }
    if (sent != NULL)
        *sent = took;
    return rc;
}

int msgr_conn_send_keepalive(msgr_conn c) {
    MSGRC_GO_ENTRY();
    return msgrgo_conn_op(c.id, 0);
}

int msgr_conn_mark_down(msgr_conn c) {
    MSGRC_GO_ENTRY();
    return msgrgo_conn_op(c.id, 1);
}

/* 0.1.0's msgr_conn_info ended at queued. */
#define MSGRC_CONN_INFO_V0 offsetof(msgr_conn_info, unacked)

int msgr_conn_get_info(msgr_conn c, msgr_conn_info *info) {
    int rc;
    msgr_conn_info local;
    MSGRC_NULL(info, "info");
    if ((rc = msgrc_check_out_size(info, info->size, MSGRC_CONN_INFO_V0, sizeof *info,
                                   "msgr_conn_info")) != 0)
        return rc;
    MSGRC_GO_ENTRY();
    memset(&local, 0, sizeof local);
    rc = msgrgo_conn_get_info(c.id, &local);
    if (rc != 0)
        return rc;
    local.size = info->size;
    /* An older caller's struct is smaller: write only what its size covers. */
    memcpy(info, &local, info->size < sizeof local ? info->size : sizeof local);
    return 0;
}

int msgr_conn_peer_addr(msgr_conn c, char *buf, size_t len) {
    MSGRC_STRBUF(buf, len);
    MSGRC_GO_ENTRY();
    return msgrgo_conn_string(c.id, 0, buf, len);
}

int msgr_conn_peer_name(msgr_conn c, char *buf, size_t len) {
    MSGRC_STRBUF(buf, len);
    MSGRC_GO_ENTRY();
    return msgrgo_conn_string(c.id, 1, buf, len);
}

int msgr_conn_last_fault(msgr_conn c, char *buf, size_t len) {
    MSGRC_STRBUF(buf, len);
    MSGRC_GO_ENTRY();
    return msgrgo_conn_string(c.id, 2, buf, len);
}

int msgr_conn_set_priv(msgr_conn c, void *priv) {
    int rc;
    MSGRC_GO_ENTRY();
    rc = msgrgo_conn_priv(c.id, 1, (uintptr_t)priv, NULL);
    if (rc == 0 && c.id != 0 && c.id == msgrc_cb_conn)
        msgrc_cb_priv = priv;
    return rc;
}

int msgr_conn_get_priv(msgr_conn c, void **priv) {
    uintptr_t v = 0;
    int rc;
    MSGRC_NULL(priv, "priv");
    if (c.id != 0 && c.id == msgrc_cb_conn && msgrc_cb_depth > 0) {
        *priv = msgrc_cb_priv; /* the callback's connection: no crossing */
        return 0;
    }
    *priv = NULL;
    MSGRC_GO_ENTRY();
    rc = msgrgo_conn_priv(c.id, 0, 0, &v);
    if (rc == 0)
        *priv = (void *)v;
    return rc;
}
