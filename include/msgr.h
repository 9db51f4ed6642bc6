/*
 * msgr.h: the C interface of libmsgr, Ceph's async messenger rebuilt in Go.
 *
 * THE CONTRACT
 *   This header is the whole public interface of libmsgr. Nothing outside it
 *   (symbols, cgo-generated headers, internal structs) is supported.
 *   Within one major version (MSGR_VERSION_MAJOR, also the library's soname,
 *   libmsgr.so.MAJOR):
 *     - a program built against this header runs against any later library of
 *       the same major version;
 *     - constants (error codes, enum values, flags) never change value and a
 *       retired value is never reused;
 *     - structs the caller fills begin with a `size` field (set it to
 *       sizeof(the struct) as your header declares it). The library reads only
 *       the fields that size covers, so a struct may grow at its end without
 *       breaking older callers; a size smaller than the first release's struct
 *       is MSGR_EINVAL.
 *     - the exported symbol list (abi/symbols.txt in the source tree) only
 *       grows; removing or changing a function is a new major version.
 *
 * CONVENTIONS
 *   Status: every call that can fail returns int: 0 (MSGR_OK) on success, a
 *   negative MSGR_E* code on failure. The codes are this library's own
 *   (written out below), not the platform's errno values. Calls that count
 *   things (msgr_messenger_recv) return the count, >= 0, on success.
 *   msgr_strerror()/msgr_err_name() name every code; msgr_last_error() gives
 *   the text of the calling thread's last failure (e.g. which option was bad).
 *   No call aborts the process on bad input: NULL pointers, closed or unknown
 *   handles, calls in the wrong state and oversized lengths get an error code.
 *
 *   Handles: messengers and connections are small structs holding an id
 *   (msgr_messenger, msgr_conn). 0 is never valid; a closed or unknown id
 *   gets MSGR_EBADF, never a crash; an id comes back only after its slot has
 *   been reused 2^32 times. Messages (msgr_msg *) are reference-counted pointers, as
 *   zmq_msg_t/nng_msg: after the last msgr_msg_put the pointer is gone.
 *
 *   Ownership is written on each declaration. "Borrowed" means: valid until
 *   the callback (or call) returns; take a reference to keep it.
 *
 *   Threads: every call is safe from any thread, including from inside a
 *   dispatch callback (sending a reply from a callback is the normal case and
 *   never deadlocks). The library runs its own threads (Go runtime). The few
 *   calls that block until library threads finish (msgr_messenger_destroy,
 *   msgr_messenger_wait) return MSGR_EDEADLK when called from a callback.
 *   Callbacks that run in restricted contexts (the log callback, data free
 *   functions) must not call into the library except for msgr_msg_* and
 *   msgr_strerror-style pure functions; other calls there return MSGR_EDEADLK.
 *
 *   fork(): the library's threads (started when it is loaded) do not survive
 *   fork(). In the child, every call that would need them returns MSGR_EFORK
 *   (message and error-text calls keep working): a child that needs the
 *   library must exec().
 *
 *   The runtime: the library embeds a Go runtime, which runs Go code on at
 *   most GOMAXPROCS threads at once (default: the number of CPUs; the
 *   GOMAXPROCS environment variable read at load time overrides it). A call
 *   from one of your threads takes one of those slots for its duration.
 *
 *   Signals: the Go runtime installs handlers for SIGSEGV, SIGBUS, SIGFPE,
 *   SIGPIPE, SIGPROF and a few others when the library loads. A host that
 *   installs its own handlers must use SA_ONSTACK and chain to the previous
 *   handler (see the Go documentation of os/signal, "Go programs that use cgo
 *   or SWIG" / c-shared).
 */
#ifndef MSGR_H
#define MSGR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MSGR_API __attribute__((visibility("default")))
#else
#define MSGR_API
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */

/* The same MAJOR means ABI compatible: a program built against MAJOR.x runs
 * against any MAJOR.y library. MINOR grows with additions, PATCH with fixes.
 * Bindings that load the library at run time compare msgr_version() >> 16
 * with the MAJOR they were written for. */
#define MSGR_VERSION_MAJOR 0
#define MSGR_VERSION_MINOR 2
#define MSGR_VERSION_PATCH 0
#define MSGR_MAKE_VERSION(major, minor, patch) \
    (((major) << 16) | ((minor) << 8) | (patch))
#define MSGR_VERSION_HEX \
    MSGR_MAKE_VERSION(MSGR_VERSION_MAJOR, MSGR_VERSION_MINOR, MSGR_VERSION_PATCH)
#define MSGR_VERSION_STRING "0.2.0"

/* The library's version as MSGR_MAKE_VERSION(major, minor, patch). Any thread. */
MSGR_API unsigned msgr_version(void);
/* The library's version as "MAJOR.MINOR.PATCH"; static storage. Any thread. */
MSGR_API const char *msgr_version_string(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/* X(NAME, value, text): the one table behind the enum, msgr_strerror() and
 * msgr_err_name(). Values are fixed forever. */
#define MSGR_ERRNO_MAP(X)                                                    \
    X(EINVAL, -1, "invalid argument")                                        \
    X(ENOTCONN, -2, "not connected")                                         \
    X(ECONNREFUSED, -3, "connection refused")                                \
    X(ETIMEDOUT, -4, "timed out")                                            \
    X(EMSGSIZE, -5, "message too large")                                     \
    X(ESHUTDOWN, -6, "messenger shut down")                                  \
    X(EBADF, -7, "bad handle (closed or unknown)")                           \
    X(EAGAIN, -8, "would block")                                             \
    X(ENOMEM, -9, "out of memory")                                           \
    X(EBANNER, -10, "protocol: bad banner")                                  \
    X(EBADCRC, -11, "protocol: crc mismatch")                                \
    X(EAUTH, -12, "protocol: authentication refused")                        \
    X(EFEATURES, -13, "protocol: feature mismatch")                          \
    X(ERANGE, -14, "buffer too small")                                       \
    X(ESTATE, -15, "wrong state for this call")                              \
    X(EDEADLK, -16, "call would deadlock (made from a callback)")            \
    X(EFORK, -17, "library unusable in a forked child")                      \
    X(EINTERNAL, -18, "internal error")                                      \
    X(ENOTSUP, -19, "not supported")                                         \
    X(EADDRINUSE, -20, "address in use")                                     \
    X(EPROTO, -21, "protocol error")                                         \
    X(EIO, -22, "i/o error")

enum msgr_error {
    MSGR_OK = 0,
#define MSGR_X_ENUM_(name, value, text) MSGR_##name = value,
    MSGR_ERRNO_MAP(MSGR_X_ENUM_)
#undef MSGR_X_ENUM_
    MSGR_ERRNO_MIN_ = -22 /* lowest code of this release; not a code */
};

/* A short description of code ("success" for 0, "unknown error" for values
 * this release does not know). Static storage; any thread; never NULL. */
MSGR_API const char *msgr_strerror(int code);
/* The code's name ("MSGR_EINVAL", "MSGR_OK", "MSGR_E?" if unknown). Static
 * storage; any thread; never NULL. */
MSGR_API const char *msgr_err_name(int code);
/* Copies the text of the calling thread's last failed call (with its detail,
 * e.g. "unknown option \"ms_foo\"") into buf, NUL-terminated. Text that does
 * not fit is truncated and MSGR_ERANGE returned. Successful calls do not
 * clear it. MSGR_EINVAL if buf is NULL or len is 0. Any thread. */
MSGR_API int msgr_last_error(char *buf, size_t len);

/* Frees memory the library handed out with "free with msgr_free" (JSON of
 * msgr_messenger_perf_dump). NULL is a no-op. Any thread. */
MSGR_API void msgr_free(void *p);

/* ------------------------------------------------------------------------ */
/* Entity types, handles                                                     */
/* ------------------------------------------------------------------------ */

/* Ceph's CEPH_ENTITY_TYPE_* (the type of "client.4242", "osd.3", "mon.a"). */
enum msgr_entity_type {
    MSGR_ENTITY_MON = 0x01,
    MSGR_ENTITY_MDS = 0x02,
    MSGR_ENTITY_OSD = 0x04,
    MSGR_ENTITY_CLIENT = 0x08,
    MSGR_ENTITY_MGR = 0x10,
    MSGR_ENTITY_AUTH = 0x20,
    MSGR_ENTITY_ANY = 0xFF
};

/* A messenger (Ceph's Messenger). Copy it freely; it is just an id. */
typedef struct msgr_messenger {
    uint64_t id;
} msgr_messenger;
/* A connection (Ceph's Connection). Copy it freely; it is just an id. */
typedef struct msgr_conn {
    uint64_t id;
} msgr_conn;
#define MSGR_MESSENGER_INITIALIZER {0}
#define MSGR_CONN_INITIALIZER {0}

/* A message (Ceph's Message): opaque, reference counted. */
typedef struct msgr_msg msgr_msg;

/* Frees a zero-copy data buffer (see msgr_msg_set_data_nocopy). */
typedef void (*msgr_free_fn)(void *data, void *hint);

/* ------------------------------------------------------------------------ */
/* Messenger lifecycle                                                       */
/* ------------------------------------------------------------------------ */

/* One option by Ceph's own name and value as text, e.g.
 * {"ms_tcp_nodelay", "true"}, {"ms_async_op_threads", "2"},
 * {"ms_initial_backoff", "0.2"} (seconds, or "200ms"), {"ms_type",
 * "async+posix"}, {"debug_ms", "5"}. Names (dashes may replace
 * underscores, as in Ceph): ms_type (async+posix, async+poll,
 * async+select, async+io_uring, simple), ms_async_op_threads, ms_crc_data, ms_crc_header, ms_tcp_nodelay,
 * ms_tcp_rcvbuf, ms_tcp_listen_backlog, ms_initial_backoff, ms_max_backoff,
 * ms_connection_ready_timeout, ms_connection_idle_timeout,
 * ms_dispatch_throttle_bytes, ms_inject_socket_failures,
 * ms_inject_delay_type, ms_inject_delay_max, ms_inject_delay_probability,
 * ms_inject_seed, ms_async_busy_poll, ms_shutdown_timeout, debug_ms.
 * Sizes take K/M/G suffixes. One more is the C API's own:
 * {"ms_stack_group", "NAME"}: messengers created with the same NAME share
 * one network stack (worker threads), as Ceph's messengers share their
 * CephContext's NetworkStack; the first one's ms_type, ms_async_op_threads
 * and ms_async_busy_poll make it, the last one destroyed stops it. Many
 * messengers (100 clients in one process) then run on a few threads. */
typedef struct msgr_option {
    const char *name;
    const char *value;
} msgr_option;

/* Log callback. Lines are produced up to the messenger's debug_ms option
 * (Ceph's levels: 0 = errors only, 1 = connection events, 5 = faults in
 * detail, 10+ = handshake steps). level is the line's own level (since
 * 0.2.0; 0.1.0 passed debug_ms for every line). line is borrowed,
 * NUL-terminated, without a trailing newline.
 * Thread: any library thread, possibly with library locks held: it must not
 * block and must not call into the library (such calls return
 * MSGR_EDEADLK); copy the line and return. */
typedef void (*msgr_log_fn)(void *user, msgr_messenger m, int level,
                            const char *line);

/* What msgr_messenger_create needs. Fill `size` with sizeof(msgr_messenger_config);
 * MSGR_MESSENGER_CONFIG_INIT gives a zeroed config with size set. */
typedef struct msgr_messenger_config {
    uint32_t size;
    uint32_t reserved0;      /* must be 0 */
    const char *name;        /* entity name (Ceph's entity_name_t, so the
                                number is numeric): "client.4242", "osd.3",
                                "mon.0" (the rank of mon.a), "client.?" (no
                                number yet) */
    uint32_t nonce;          /* address nonce (Ceph: random per process for
                                clients, 0 for monitors) */
    uint32_t reserved1;      /* must be 0 */
    const msgr_option *options; /* may be NULL when noptions is 0 */
    size_t noptions;
    msgr_log_fn log;         /* may be NULL: lines go nowhere */
    void *log_user;          /* passed to log; must stay valid until
                                msgr_messenger_destroy returns */
} msgr_messenger_config;
#define MSGR_MESSENGER_CONFIG_INIT \
    {sizeof(msgr_messenger_config), 0, NULL, 0, 0, NULL, 0, NULL, NULL}

/* Creates a messenger (stopped). The config and everything it points to are
 * read during the call only. On failure *out is left {0}; an unknown option
 * or a bad value is MSGR_EINVAL and msgr_last_error() names it. Any thread. */
MSGR_API int msgr_messenger_create(msgr_messenger *out,
                                   const msgr_messenger_config *cfg);

/* Shuts the messenger down if it runs (as msgr_messenger_shutdown), waits for
 * its threads, calls every dispatcher's `release`, frees what it holds, and
 * makes the handle (and its connections' handles) stale: later calls get
 * MSGR_EBADF. Messages already handed to the application stay valid. Not from
 * a callback (MSGR_EDEADLK). Any other thread. */
MSGR_API int msgr_messenger_destroy(msgr_messenger m);

/* Ceph's Messenger::Policy presets. */
enum msgr_policy_kind {
    MSGR_POLICY_LOSSY_CLIENT = 1,
    MSGR_POLICY_LOSSLESS_CLIENT = 2,
    MSGR_POLICY_LOSSLESS_PEER = 3,
    MSGR_POLICY_LOSSLESS_PEER_REUSE = 4,
    MSGR_POLICY_STATEFUL_SERVER = 5,
    MSGR_POLICY_STATELESS_SERVER = 6,
    MSGR_POLICY_STATELESS_REGISTERED_SERVER = 7
};
/* msgr_policy.flags bits. */
#define MSGR_POLICY_F_LOSSY 0x1u
#define MSGR_POLICY_F_SERVER 0x2u
#define MSGR_POLICY_F_STANDBY 0x4u
#define MSGR_POLICY_F_RESETCHECK 0x8u
#define MSGR_POLICY_F_REGISTER_LOSSY_CLIENTS 0x10u

/* How connections to one peer type behave (Ceph's Messenger::Policy). */
typedef struct msgr_policy {
    uint32_t size;               /* sizeof(msgr_policy) */
    uint32_t flags;              /* MSGR_POLICY_F_* */
    uint64_t features_supported; /* advertised feature bits */
    uint64_t features_required;  /* the peer must support all of these */
    uint64_t throttle_bytes;     /* cap on received bytes not yet released
                                    by the application; 0 = unlimited */
    uint64_t throttle_messages;  /* same, in messages; 0 = unlimited */
} msgr_policy;

/* Fills *p (size included) with Ceph's preset `kind` and the given required
 * features (0 is fine for msgr peers). MSGR_EINVAL for an unknown kind. */
MSGR_API int msgr_policy_init(msgr_policy *p, int kind,
                              uint64_t features_required);
/* Sets the policy for peers of entity type peer_type (MSGR_ENTITY_*), or the
 * default policy for every other type when peer_type is MSGR_ENTITY_ANY.
 * Before msgr_messenger_start (MSGR_ESTATE after). *p is copied. */
MSGR_API int msgr_messenger_set_policy(msgr_messenger m, int peer_type,
                                       const msgr_policy *p);

/* Binds to an address or an address vector in Ceph's syntax:
 * "127.0.0.1:0", "[::1]:6800", "v2:127.0.0.1:6800/0", "v1:127.0.0.1:6789",
 * "[v2:127.0.0.1:3300,v1:127.0.0.1:6789]" (no prefix means msgr2; a v1
 * address speaks the msgr1 protocol; port 0 picks a free port). Before
 * msgr_messenger_start. MSGR_EADDRINUSE if one is taken (none stays bound). */
MSGR_API int msgr_messenger_bind(msgr_messenger m, const char *addr);
/* Binds to the first free port in [min_port, max_port] of addr's IP (addr's
 * own port is ignored), as Ceph's ms_bind_port_min/max. One address only. */
MSGR_API int msgr_messenger_bind_range(msgr_messenger m, const char *addr,
                                       int min_port, int max_port);
/* Writes the messenger's addresses, Ceph-style ("v2:127.0.0.1:41234/77" for
 * one, "[v2:...,v1:...]" for several, "" before bind), port 0 resolved, into
 * buf, NUL-terminated; MSGR_ERANGE if it does not fit (truncated). */
MSGR_API int msgr_messenger_get_addrs(msgr_messenger m, char *buf, size_t len);
/* Writes the messenger's entity name ("client.4242") into buf, as above. */
MSGR_API int msgr_messenger_get_name(msgr_messenger m, char *buf, size_t len);

/* Starts the workers and, if bound, accepting. MSGR_ESTATE if already
 * started or shut down. */
MSGR_API int msgr_messenger_start(msgr_messenger m);
/* Blocks until the messenger has shut down (msgr_messenger_shutdown from any
 * thread) and its threads are gone. MSGR_ESTATE if never started;
 * MSGR_EDEADLK from a callback. */
MSGR_API int msgr_messenger_wait(msgr_messenger m);
/* Graceful shutdown, bounded in time: stops accepting, gives queued output
 * up to ms_shutdown_timeout (default 1 s) to be written, closes every
 * connection (without reset events), stops the workers and the dispatch
 * thread (queued messages are dropped), and wakes msgr_messenger_wait and
 * msgr_messenger_recv. From a callback it only starts
 * the shutdown and returns 0 (the rest happens when callbacks return).
 * Shutting down twice is a no-op returning 0. */
MSGR_API int msgr_messenger_shutdown(msgr_messenger m);

/* ------------------------------------------------------------------------ */
/* Dispatchers (Ceph's Dispatcher)                                           */
/* ------------------------------------------------------------------------ */

/* A table of optional callbacks. The chain of dispatchers is walked in
 * order until one takes a message (dispatch returns nonzero) or, for
 * fast dispatch, until one's can_fast_dispatch says yes.
 *
 * In every callback: `conn` is borrowed (msgr_conn_get keeps it) and `m` is
 * borrowed (msgr_msg_ref keeps it; that copies the payload out of the
 * library's receive buffer once). No library lock is held, and calling the
 * library (msgr_conn_send to reply, msgr_conn_mark_down...) is allowed,
 * except msgr_messenger_destroy/msgr_messenger_wait (MSGR_EDEADLK).
 *
 * Threads: dispatch and the handle_* events run on the messenger's dispatch
 * thread, one call at a time, messages in priority order (highest first,
 * FIFO per connection). can_fast_dispatch and fast_dispatch run on the
 * connection's worker thread, possibly several workers at once: they must
 * not block (that stalls every connection of the worker). */
/* A received message described with its payload in a buffer (since 0.2.0):
 * the items of msgr_messenger_recv_copy and of fast_dispatch_copy. In a
 * fast_dispatch_copy call every item is a MESSAGE. */
typedef struct msgr_rxmsg {
    int32_t type;            /* MSGR_EVENT_*; only MESSAGE items have the
                                fields below (zero for events) */
    uint16_t msg_type;       /* the message header's type, priority, ... */
    uint16_t priority;
    msgr_conn conn;          /* as msgr_event.conn: not a reference */
    void *conn_priv;         /* as msgr_event.conn_priv */
    uint64_t tid;
    uint64_t seq;
    int64_t src_num;
    uint16_t version;
    uint16_t compat_version;
    uint8_t src_type;
    uint8_t reserved0;
    uint16_t data_off;
    uint64_t off;            /* where the segments start in buf: front, then
                                middle, then data, back to back */
    uint32_t front_len;
    uint32_t middle_len;
    uint32_t data_len;
    uint32_t reserved1;
} msgr_rxmsg;

typedef struct msgr_dispatcher_ops {
    uint32_t size;  /* sizeof(msgr_dispatcher_ops) */
    uint32_t flags; /* MSGR_DISPATCH_F_* (0 for none) */
    /* Ceph ms_dispatch: return nonzero if this dispatcher handled m (the
     * walk stops); 0 passes it to the next one. */
    int (*dispatch)(void *user, msgr_conn conn, msgr_msg *m);
    /* Ceph ms_can_fast_dispatch: nonzero means fast_dispatch takes m on the
     * worker thread. Must be cheap; may read m's header and segments only.
     * NULL means never. */
    int (*can_fast_dispatch)(void *user, const msgr_msg *m);
    /* Ceph ms_fast_dispatch. Required (or fast_dispatch_copy) if
     * can_fast_dispatch is set or flags has MSGR_DISPATCH_F_FAST_ALL. */
    void (*fast_dispatch)(void *user, msgr_conn conn, msgr_msg *m);
    /* An outgoing session is up (ms_handle_connect). */
    void (*handle_connect)(void *user, msgr_conn conn);
    /* An incoming session is up (ms_handle_accept). */
    void (*handle_accept)(void *user, msgr_conn conn);
    /* A lossy connection faulted or was reset; what was queued on it is
     * gone (ms_handle_reset). Return nonzero if handled. */
    int (*handle_reset)(void *user, msgr_conn conn);
    /* The peer reset the session (it restarted); messages in flight may be
     * lost (ms_handle_remote_reset). */
    void (*handle_remote_reset)(void *user, msgr_conn conn);
    /* The peer refused the connection (ms_handle_refused). Return nonzero
     * if handled. */
    int (*handle_refused)(void *user, msgr_conn conn);
    /* Called once after the messenger has stopped calling this dispatcher
     * (from msgr_messenger_destroy, on its thread): free `user` here. */
    void (*release)(void *user);
    /* Since 0.2.0 (leave it out of ops.size, or NULL, for none): fast
     * dispatch of many messages in one call. If set, the messages this
     * dispatcher takes on the worker thread (FAST_ALL or can_fast_dispatch)
     * come here instead of fast_dispatch: rx[0..n) are messages of conn, in
     * order, as one read of its socket brought them (n >= 1), their
     * segments copied into buf as msgr_messenger_recv_copy describes. rx
     * and buf are valid during the call only: copy what you keep. For
     * callers with a fixed cost per call (a language runtime to enter),
     * this is one call per read instead of one per message. */
    void (*fast_dispatch_copy)(void *user, msgr_conn conn, const msgr_rxmsg *rx,
                               size_t n, const unsigned char *buf);
} msgr_dispatcher_ops;

/* msgr_dispatcher_ops.flags: take every message in fast_dispatch without
 * asking can_fast_dispatch (which may then be NULL): saves one call per
 * message for a dispatcher that takes everything. */
#define MSGR_DISPATCH_F_FAST_ALL 0x1u

#define MSGR_HEAD 0 /* add at the head of the chain (asked first) */
#define MSGR_TAIL 1 /* add at the tail of the chain (asked last) */

/* Adds a dispatcher at MSGR_HEAD or MSGR_TAIL. *ops is copied; `user` is
 * passed to every callback and must stay valid until ops->release is called
 * (or, without release, until msgr_messenger_destroy returns). If this call
 * fails, no callback (not even release) is ever called. Before
 * msgr_messenger_start (MSGR_ESTATE after). */
MSGR_API int msgr_messenger_add_dispatcher(msgr_messenger m,
                                           const msgr_dispatcher_ops *ops,
                                           void *user, int where);

/* ------------------------------------------------------------------------ */
/* Pull mode: receive with a timeout, and a pollable fd                      */
/* ------------------------------------------------------------------------ */

/* Adds the messenger's pull queue to the dispatcher chain at MSGR_HEAD or
 * MSGR_TAIL: it takes every message that reaches it (on the worker thread,
 * as a fast dispatcher, so it never waits behind the dispatch thread) and
 * every connection event, and holds them for msgr_messenger_recv. Once per
 * messenger (MSGR_ESTATE the second time); before msgr_messenger_start.
 * Ordering: messages of one connection arrive in order; connection events
 * travel through the dispatch thread, as in Ceph, so a CONNECT/ACCEPT may
 * be received after the first messages of that connection. Messages are
 * claimed at fast-dispatch time, so dispatchers after the pull queue (and
 * the `dispatch` callback of any dispatcher) see no messages; put fast
 * dispatchers that should take some messages first at the head. The queue
 * is not bounded: receive at least as fast as peers send. */
MSGR_API int msgr_messenger_add_pull(msgr_messenger m, int where);

enum msgr_event_type {
    MSGR_EVENT_MESSAGE = 1,      /* msg is set */
    MSGR_EVENT_CONNECT = 2,      /* handle_connect */
    MSGR_EVENT_ACCEPT = 3,       /* handle_accept */
    MSGR_EVENT_RESET = 4,        /* handle_reset */
    MSGR_EVENT_REMOTE_RESET = 5, /* handle_remote_reset */
    MSGR_EVENT_REFUSED = 6       /* handle_refused */
};

/* One event handed out by msgr_messenger_recv. */
typedef struct msgr_event {
    int32_t type;         /* MSGR_EVENT_* */
    uint32_t reserved;
    msgr_conn conn;       /* not a reference: the handle may go stale later
                             (calls then return MSGR_EBADF); msgr_conn_get
                             keeps it */
    void *conn_priv;      /* the connection's msgr_conn_set_priv pointer when
                             the event was handed out (so a RESET can free it
                             even if the handle is already stale) */
    msgr_msg *msg;        /* MSGR_EVENT_MESSAGE: owned by the caller, release
                             it with msgr_msg_put; NULL for other types */
} msgr_event;

/* Receives up to n events into evs (ev_size = sizeof(msgr_event), so the
 * struct may grow). Waits up to timeout_ms for the first one (-1 = forever,
 * 0 = do not wait), never for more: it returns the count (>= 1) of what is
 * queued at that moment. MSGR_EAGAIN if timeout_ms is 0 and nothing is
 * queued; MSGR_ETIMEDOUT when the time ran out; MSGR_ESHUTDOWN once the
 * messenger is shut down and the queue is empty; MSGR_ESTATE without
 * msgr_messenger_add_pull. Several threads may call it at once; each event
 * goes to one of them. May be called from a callback with timeout_ms 0. */
MSGR_API int msgr_messenger_recv(msgr_messenger m, msgr_event *evs, size_t n,
                                 size_t ev_size, int timeout_ms);


/* The fastest way to receive many small messages: as msgr_messenger_recv
 * (same waiting, same errors, same order), but each message is described in
 * out[i] (rx_size = sizeof(msgr_rxmsg), so the struct may grow) and its
 * segments are copied into buf, one message after the other; the library's
 * message is released at once (no msgr_msg to put). It takes up to n items,
 * stopping before the first message whose payload does not fit in what is
 * left of buf_len; *buf_used (may be NULL) is how many bytes of buf it
 * wrote. MSGR_ERANGE if the very first message is larger than buf_len: it
 * stays queued; take it with msgr_messenger_recv. Any thread; as
 * msgr_messenger_recv from a callback (timeout_ms 0 only). */
MSGR_API int msgr_messenger_recv_copy(msgr_messenger m, msgr_rxmsg *out, size_t n,
                                      size_t rx_size, void *buf, size_t buf_len,
                                      size_t *buf_used, int timeout_ms);

/* Gives a file descriptor that is readable (POLLIN) whenever
 * msgr_messenger_recv has something for you (or the messenger is shut
 * down). Level-triggered from your point of view: it stays readable until
 * msgr_messenger_recv has taken everything. Do not read, write or close it;
 * it is valid until msgr_messenger_destroy. MSGR_ESTATE without
 * msgr_messenger_add_pull. */
MSGR_API int msgr_messenger_event_fd(msgr_messenger m, int *fd);

/* ------------------------------------------------------------------------ */
/* Connections                                                               */
/* ------------------------------------------------------------------------ */

/* Returns at once a connection to the peer at addrs (one address in Ceph's
 * syntax, or an address vector "[v2:1.2.3.4:3300/0,v1:1.2.3.4:6789/0]"),
 * of entity type peer_type (MSGR_ENTITY_*), under the policy for that type.
 * The handshake runs in the background (handle_connect / MSGR_EVENT_CONNECT
 * when it is up); messages sent before are queued. If a connection to that
 * peer exists it is returned. *out holds one reference: msgr_conn_put it.
 * MSGR_ESTATE before msgr_messenger_start; MSGR_ESHUTDOWN after shutdown. */
MSGR_API int msgr_messenger_connect(msgr_messenger m, int peer_type,
                                    const char *addrs, msgr_conn *out);

/* Takes a reference: the handle stays valid (not stale) until the matching
 * msgr_conn_put, even after the connection closes. Use it to keep a handle
 * borrowed in a callback. */
MSGR_API int msgr_conn_get(msgr_conn c);
/* Drops a reference taken by msgr_conn_get or msgr_messenger_connect.
 * Once the connection is closed and no reference is left, the handle goes
 * stale. MSGR_EINVAL if you hold no reference. */
MSGR_API int msgr_conn_put(msgr_conn c);

/* Queues m for the peer (highest priority first, FIFO within a priority).
 * On success the library owns m (your reference is consumed: do not put
 * it). On failure you still own it. MSGR_ENOTCONN if the connection is
 * closed (marked down, reset), MSGR_ESTATE if m is a borrowed message you
 * hold no reference to. A payload of up to 2 KiB is copied now (m is freed
 * at once); a larger one is sent from m's buffers, which the library keeps
 * (with m) until sent (lossy) or acknowledged (lossless). */
MSGR_API int msgr_conn_send(msgr_conn c, msgr_msg *m);
/* Sends msgs[0..n) in order in one call (one crossing into the library).
 * Stops at the first failure: *sent (may be NULL) is how many were taken;
 * those are owned by the library, the rest still by you. Returns 0 if all
 * were sent, else the error of msgs[*sent]. */
MSGR_API int msgr_conn_send_many(msgr_conn c, msgr_msg *const *msgs, size_t n,
                                 size_t *sent);
/* One message for msgr_conn_send_copy, described in place: no msgr_msg is
 * built. Zero priority, version and compat_version mean MSGR_PRIO_DEFAULT,
 * 1 and 1. A segment pointer may be NULL only if its length is 0. */
typedef struct msgr_outmsg {
    uint16_t type;
    uint16_t priority;
    uint16_t version;
    uint16_t compat_version;
    uint64_t tid;
    const void *front;
    size_t front_len;
    const void *middle;
    size_t middle_len;
    const void *data;
    size_t data_len;
} msgr_outmsg;

/* The fastest way to send many messages from buffers: msgs[0..n) (elements
 * outmsg_size = sizeof(msgr_outmsg) bytes apart, so the struct may grow) are
 * copied and queued in order in one call; the caller's buffers are free
 * again when it returns. *sent (may be NULL) is how many were queued;
 * returns 0 if all were, else the error of msgs[*sent] (MSGR_EINVAL,
 * MSGR_EMSGSIZE are checked for every message before any is queued). */
MSGR_API int msgr_conn_send_copy(msgr_conn c, const msgr_outmsg *msgs, size_t n,
                                 size_t outmsg_size, size_t *sent);
/* Flow control (since 0.2.0): blocks the calling thread until the
 * connection holds at most max_held messages for the peer (queued, plus on
 * lossless sessions written but not yet acknowledged: msgr_conn_info's
 * queued + unacked), without polling: the worker wakes the caller. A sender
 * that calls this when it is over its window keeps the library's memory
 * bounded (msgr_conn_send never blocks). timeout_ms < 0 waits for ever,
 * 0 only checks. Returns 0, MSGR_ETIMEDOUT, MSGR_ENOTCONN (closed
 * meanwhile), MSGR_EBADF, or MSGR_EDEADLK from a callback (the thread that
 * would drain the queue is the caller). Any thread but callbacks. */
MSGR_API int msgr_conn_wait_held(msgr_conn c, uint64_t max_held, int timeout_ms);
/* Sends a KEEPALIVE2. */
MSGR_API int msgr_conn_send_keepalive(msgr_conn c);
/* Closes the connection and drops its queues without a reset event (Ceph
 * mark_down). Later sends get MSGR_ENOTCONN. The handle stays valid while
 * you hold a reference. */
MSGR_API int msgr_conn_mark_down(msgr_conn c);

enum msgr_conn_state {
    MSGR_CONN_NONE = 0,       /* created, not started */
    MSGR_CONN_CONNECTING = 1, /* connecting or handshaking (client) */
    MSGR_CONN_ACCEPTING = 2,  /* handshaking (server) */
    MSGR_CONN_OPEN = 3,       /* session up, messages flow */
    MSGR_CONN_STANDBY = 4,    /* lossless, no socket, waiting */
    MSGR_CONN_BACKOFF = 5,    /* waiting to reconnect after a fault */
    MSGR_CONN_CLOSED = 6      /* closed for good */
};

/* What msgr_conn_get_info reports. Set size = sizeof(msgr_conn_info). */
typedef struct msgr_conn_info {
    uint32_t size;
    int32_t state;          /* MSGR_CONN_* */
    uint64_t features;      /* agreed with the peer (0 before the session) */
    int64_t peer_num;       /* peer entity number; -1 until known */
    uint8_t peer_type;      /* MSGR_ENTITY_* (0 until known on the server) */
    uint8_t lossy;          /* 1 if the session is lossy */
    uint8_t local;          /* 1 for the messenger's connection to itself */
    uint8_t reserved[5];
    uint64_t msgs_sent;     /* messages written to / read from the peer */
    uint64_t msgs_recv;
    uint64_t bytes_sent;    /* payload and framing bytes */
    uint64_t bytes_recv;
    uint64_t queued;        /* messages waiting to be written: an application
                               that sends faster than the peer reads keeps
                               this bounded (msgr_conn_send never blocks) */
    /* Since 0.2.0 (a caller whose size ends before a field gets nothing
     * written there): */
    uint64_t unacked;       /* lossless: messages written and kept until the
                               peer acknowledges them; a sender bounding its
                               memory bounds queued + unacked */
    int32_t last_fault;     /* MSGR_E* code of the connection's most recent
                               fault (socket error, timeout, bad input from the
                               peer, refused connect), 0 if none: why a lossy
                               connection was reset or a lossless one
                               reconnected; text: msgr_conn_last_fault */
    uint32_t faults;        /* how many faults it had */
} msgr_conn_info;
/* Fills *info (the fields its size covers). */
MSGR_API int msgr_conn_get_info(msgr_conn c, msgr_conn_info *info);
/* Since 0.2.0: the text of the connection's most recent fault
 * ("protocol fault in READY: read: connection reset by peer"), into buf,
 * NUL-terminated ("" if it never faulted); MSGR_ERANGE if truncated. The
 * code is msgr_conn_info.last_fault. */
MSGR_API int msgr_conn_last_fault(msgr_conn c, char *buf, size_t len);
/* The peer's address, Ceph-style ("v2:127.0.0.1:6800/0"), into buf,
 * NUL-terminated; MSGR_ERANGE if truncated. */
MSGR_API int msgr_conn_peer_addr(msgr_conn c, char *buf, size_t len);
/* The peer's entity name ("osd.3", "client.?" until known) into buf. */
MSGR_API int msgr_conn_peer_name(msgr_conn c, char *buf, size_t len);
/* Attaches a user pointer to the connection (Ceph set_priv). The library
 * never dereferences it. It lives as long as the connection's handle. */
MSGR_API int msgr_conn_set_priv(msgr_conn c, void *priv);
/* Reads the pointer set by msgr_conn_set_priv (NULL if none). Inside a
 * callback, for the callback's own connection, this is a plain memory read
 * (no call into the library's runtime): the value as of the callback's start,
 * or as this thread set it since. */
MSGR_API int msgr_conn_get_priv(msgr_conn c, void **priv);

/* ------------------------------------------------------------------------ */
/* Messages (Ceph's Message: header + front, middle, data)                   */
/* ------------------------------------------------------------------------ */

/* Ceph's CEPH_MSG_PRIO_*. Higher is sent and dispatched first. */
#define MSGR_PRIO_LOW 64
#define MSGR_PRIO_DEFAULT 127
#define MSGR_PRIO_HIGH 196
#define MSGR_PRIO_HIGHEST 255

/* The three payload segments. */
enum msgr_segment {
    MSGR_SEG_FRONT = 0,
    MSGR_SEG_MIDDLE = 1,
    MSGR_SEG_DATA = 2
};

/* Largest segment (msgr2 carries a segment length in 32 bits). */
#define MSGR_SEGMENT_MAX 0xFFFFFFFFu

/* Creates a message of type `type` with priority MSGR_PRIO_DEFAULT,
 * version 1, compat version 1, tid 0 and empty segments. *out holds the one
 * reference (msgr_msg_put, or msgr_conn_send passes it on). Pure C: no
 * crossing into the library's runtime; works in a forked child. */
MSGR_API int msgr_msg_alloc(msgr_msg **out, uint16_t type);
/* Takes a reference. On a borrowed message (in a callback) this first copies
 * the payload out of the library's buffers, once. */
MSGR_API int msgr_msg_ref(msgr_msg *m);
/* Drops a reference; the last one frees the message (and calls a zero-copy
 * data buffer's free function). Putting a borrowed message you hold no
 * reference to is MSGR_ESTATE. */
MSGR_API int msgr_msg_put(msgr_msg *m);
/* A new message with the same header and a copy of every segment; *out
 * holds its one reference. Works on borrowed messages too. */
MSGR_API int msgr_msg_copy(const msgr_msg *m, msgr_msg **out);

/* Setters work only on a message you alone hold (one reference, not
 * borrowed, not sent): MSGR_ESTATE otherwise. */
MSGR_API int msgr_msg_set_priority(msgr_msg *m, uint16_t priority);
MSGR_API int msgr_msg_set_version(msgr_msg *m, uint16_t version,
                                  uint16_t compat_version);
MSGR_API int msgr_msg_set_tid(msgr_msg *m, uint64_t tid);
/* Replaces a segment with a copy of [data, data+len). data may be NULL only
 * if len is 0. MSGR_EMSGSIZE if len > MSGR_SEGMENT_MAX. */
MSGR_API int msgr_msg_set_segment(msgr_msg *m, int seg, const void *data,
                                  size_t len);
/* Replaces a segment with len bytes owned by the message and returns them in
 * *buf for you to fill (saves a copy). Contents are unspecified until
 * written. */
MSGR_API int msgr_msg_reserve_segment(msgr_msg *m, int seg, size_t len,
                                      void **buf);
/* Zero copy: the data segment becomes your buffer [data, data+len). The
 * library never writes it; free_fn(data, hint) is called exactly once when
 * the library and every message reference are done with it (free_fn may be
 * NULL if you manage the buffer otherwise). Keep the buffer unchanged until
 * then. If this call fails, free_fn is not called and the buffer stays
 * yours. free_fn runs on any thread, possibly a library worker with locks
 * held: it must not block or call into the library except msgr_msg_*. */
MSGR_API int msgr_msg_set_data_nocopy(msgr_msg *m, void *data, size_t len,
                                      msgr_free_fn free_fn, void *hint);

/* The header of a message. Set size = sizeof(msgr_msg_header). */
typedef struct msgr_msg_header {
    uint32_t size;
    uint16_t type;
    uint16_t priority;
    uint16_t version;
    uint16_t compat_version;
    uint8_t src_type;     /* sender's entity type (received messages) */
    uint8_t reserved[3];
    uint64_t seq;         /* per-session sequence (received messages) */
    uint64_t tid;
    int64_t src_num;      /* sender's entity number; -1 if unknown */
    uint64_t front_len;
    uint64_t middle_len;
    uint64_t data_len;
} msgr_msg_header;

/* Fills *h (the fields its size covers). Works on borrowed messages. */
MSGR_API int msgr_msg_get_header(const msgr_msg *m, msgr_msg_header *h);
/* The message's type, or 0 if m is NULL. Cheap: for can_fast_dispatch. */
MSGR_API uint16_t msgr_msg_type(const msgr_msg *m);
/* Points *data and *len at a segment (borrowed: valid while you hold a
 * reference, or until the callback returns for a borrowed message). An
 * empty segment gives *data NULL, *len 0. */
MSGR_API int msgr_msg_get_segment(const msgr_msg *m, int seg,
                                  const void **data, size_t *len);

/* ------------------------------------------------------------------------ */
/* Observability                                                             */
/* ------------------------------------------------------------------------ */

/* The messenger's counters as a JSON object, Ceph perf-dump style, with
 * Ceph's AsyncMessenger counter names:
 * {"msgr": {"msgr_send_messages": ..., "msgr_recv_messages": ...,
 *  "msgr_send_bytes": ..., "msgr_recv_bytes": ..., "msgr_connections": ...,
 *  "msgr_active_connections": ..., "msgr_reconnects": ..., "msgr_faults": ...,
 *  "msgr_protocol_errors": ..., "msgr_dispatch_queue_len": ...,
 *  "msgr_throttle_stalls": ..., ...}, "capi": {"sends": ..., ...}}.
 * Keys may be added; none is removed within a major version. *json is
 * allocated by the library: free it with msgr_free. */
MSGR_API int msgr_messenger_perf_dump(msgr_messenger m, char **json);

/* Objects alive in this process, for leak checks in tests. Set size. */
typedef struct msgr_live_counts {
    uint32_t size;
    uint32_t reserved;
    uint64_t messengers;  /* created, not destroyed */
    uint64_t conns;       /* connection handles not yet stale */
    uint64_t msgs;        /* messages not yet freed (any owner) */
    uint64_t dispatchers; /* registered, release not yet called */
} msgr_live_counts;
MSGR_API int msgr_live_counts_get(msgr_live_counts *out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MSGR_H */
