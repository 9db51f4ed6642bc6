/*
 * msgr_impl.h: libmsgr internals shared by shim.c and the Go side (cgo
 * preambles). Not installed, not part of the ABI.
 *
 * Names: msgr_* are the public functions (msgr.h, exported by the version
 * script), msgrc_* are C internals, msgrgo_* are the Go exports the shim
 * forwards to. Neither internal prefix matches the script's msgr_*, so they
 * stay local to the library.
 */
#ifndef MSGR_IMPL_H
#define MSGR_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "msgr.h"

/* ---- messages ---------------------------------------------------------- */

#define MSGRC_MSG_MAGIC 0x6d736721u /* live message */
#define MSGRC_MSG_DEAD 0x64656164u  /* freed (best-effort use-after-put check) */

/* msgr_msg.flags */
#define MSGRC_F_BORROWED 0x1u /* segments point into Go memory: valid only during
                                 the callback that lent the message */
#define MSGRC_F_STACK 0x2u    /* the struct itself lives on a C stack
                                 (can_fast_dispatch): never ref'd or freed */
#define MSGRC_F_TAIL 0x4u     /* payload storage follows the struct in the
                                 same allocation (not a plain struct) */

/* Payload up to this many bytes lives inside the message (one malloc per
 * small message). */
#define MSGRC_INLINE 104

struct msgrc_seg {
    unsigned char *p;  /* first byte (NULL if len == 0) */
    size_t len;
    void *owned;       /* malloc'd block to free with the segment, or NULL */
    msgr_free_fn ffn;  /* zero-copy: user's free function, or NULL */
    void *hint;
};

/* No C11 _Atomic here: cgo must read this struct from Go. refs, flags and
 * lock are only touched with __atomic builtins. */
struct msgr_msg {
    uint32_t magic;
    uint32_t refs;
    uint32_t flags;
    uint32_t lock; /* spin lock for the borrowed -> owned copy in msgr_msg_ref */
    uint16_t type;
    uint16_t priority;
    uint16_t version;
    uint16_t compat_version;
    uint16_t data_off;
    uint8_t hflags;
    uint8_t src_type;
    uint32_t inline_used;
    uint64_t seq;
    uint64_t tid;
    int64_t src_num;
    struct msgrc_seg seg[3];
    unsigned char inline_buf[MSGRC_INLINE];
};

/* Allocates a message whose payload storage (payload bytes, contiguous)
 * follows the struct; *tail gets its start. For the Go side (pull mode). */
struct msgr_msg *msgrc_msg_new_rx(size_t payload, unsigned char **tail);
/* Allocates n received messages at once: sizes[i] payload bytes each;
 * out[i] gets the message (0 if out of memory), tails[i] its payload. One
 * crossing per batch instead of one per message. */
void msgrc_msg_new_rx_batch(size_t n, const size_t *sizes, struct msgr_msg **out,
                            unsigned char **tails);
/* Drops one reference from the Go side (a sent message's buffers are no
 * longer needed). Runs any zero-copy free function in restricted mode. */
void msgrc_msg_put_from_go(struct msgr_msg *m);
/* Frees a message nobody can reference (Go side, pull queue cleanup). */
void msgrc_msg_discard(struct msgr_msg *m);

/* ---- errors ------------------------------------------------------------ */

/* Records text as the calling thread's last error (msgr_last_error). */
void msgrc_set_error(const char *text, size_t len);

/* ---- callbacks --------------------------------------------------------- */

/* A registered dispatcher: a copy of the caller's ops and user pointer, in
 * C memory so Go never hands C a Go pointer. */
struct msgrc_dispatcher {
    msgr_dispatcher_ops ops;
    void *user;
};

/* Trampolines: Go cannot call C function pointers, so it calls these, which
 * wrap the received message (segments borrowed from Go memory, passed as
 * arguments) and call the user's function. kind: 0 can_fast_dispatch,
 * 1 fast_dispatch, 2 dispatch. packed = type | priority << 16 |
 * version << 32 | compat_version << 48; packed2 = src_type | hflags << 8 |
 * data_off << 16. The segments are Go memory lent for the call (passed
 * as integers: see dispatcher.go). priv is the connection's
 * msgr_conn_set_priv pointer (read
 * by msgr_conn_get_priv in the callback without a crossing). Returns the
 * callback's answer (0/1). */
int msgrc_call_msg(struct msgrc_dispatcher *d, int kind, uint64_t conn, uintptr_t priv,
                   uint64_t seq, uint64_t tid, int64_t src_num,
                   uint64_t packed, uint64_t packed2, uintptr_t front,
                   size_t front_len, uintptr_t middle, size_t middle_len,
                   uintptr_t data, size_t data_len);
/* One received message of a batch for fast_dispatch: the arguments of
 * msgrc_call_msg, in Go memory that holds no Go pointers (the segment
 * addresses are integers, valid for the call). */
struct msgrc_rx {
    uint64_t seq, tid;
    int64_t src_num;
    uint64_t packed, packed2;
    uintptr_t seg[3];
    size_t len[3];
};
/* fast_dispatch of rx[0..n), in order, all from connection conn: one
 * crossing from Go for a whole read's messages. */
void msgrc_call_fast_batch(struct msgrc_dispatcher *d, uint64_t conn, uintptr_t priv,
                           uintptr_t rx, size_t n);
/* fast_dispatch_copy of rx[0..n) with their payloads in buf, all from
 * connection conn: Go filled both (in C memory) in one pass. rx and buf
 * are C pointers passed as integers: cgo's check of pointer arguments
 * (cgoIsGoPointer) was 1.7% of the C server's W1 profile. */
void msgrc_call_copy(struct msgrc_dispatcher *d, uint64_t conn, uintptr_t priv,
                     uintptr_t rx, size_t n, uintptr_t buf);
/* ev: MSGR_EVENT_CONNECT..REFUSED. Returns the callback's answer (0/1). */
int msgrc_call_event(struct msgrc_dispatcher *d, int ev, uint64_t conn, uintptr_t priv);
void msgrc_call_release(struct msgrc_dispatcher *d);
void msgrc_call_log(msgr_log_fn fn, void *user, uint64_t m, int level,
                    const char *line, size_t len);

/* Live message count (msgr_live_counts). */
uint64_t msgrc_live_msgs(void);

#endif /* MSGR_IMPL_H */
