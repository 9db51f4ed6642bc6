/* testutil.h: helpers of the C API tests (capi/testdata/NAME.c). Each test is
 * a plain C program using only <msgr.h>: exit status 0 means pass. They run
 * from capi_test.go (go test ./capi) and from ctest. */
#ifndef MSGR_TESTUTIL_H
#define MSGR_TESTUTIL_H

#define _GNU_SOURCE
#include <msgr.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FAILF(...)                                                             \
    do {                                                                       \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                        \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
        exit(1);                                                               \
    } while (0)

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            FAILF("CHECK failed: %s", #cond);                                  \
    } while (0)

/* CHECK_RC(expr, want): expr must return the code want. */
#define CHECK_RC(expr, want)                                                   \
    do {                                                                       \
        int rc_ = (expr);                                                      \
        if (rc_ != (want)) {                                                   \
            char eb_[512];                                                     \
            msgr_last_error(eb_, sizeof eb_);                                  \
            FAILF("%s = %s (%d), want %s; last error: %s", #expr,              \
                  msgr_err_name(rc_), rc_, msgr_err_name(want), eb_);          \
        }                                                                      \
    } while (0)

#define OK(expr) CHECK_RC(expr, 0)

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void sleep_ms(int ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

/* Scale for long tests: MSGR_TEST_SCALE=0.01 runs 1% of the messages
 * (sanitizer builds). */
static inline double test_scale(void) {
    const char *s = getenv("MSGR_TEST_SCALE");
    double v = s ? atof(s) : 1.0;
    return v > 0 ? v : 1.0;
}

/* A messenger named name, options as name/value pairs (NULL-terminated). */
static inline msgr_messenger make_messenger(const char *name, uint32_t nonce,
                                            const char *const *kv) {
    msgr_messenger m;
    msgr_option opts[16];
    size_t n = 0;
    msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
    while (kv != NULL && kv[2 * n] != NULL && n < 16) {
        opts[n].name = kv[2 * n];
        opts[n].value = kv[2 * n + 1];
        n++;
    }
    cfg.name = name;
    cfg.nonce = nonce;
    cfg.options = opts;
    cfg.noptions = n;
    OK(msgr_messenger_create(&m, &cfg));
    return m;
}

/* Every handle and message of the test must be gone at its end (STYLE.md
 * §14, libtailscale's TestConn). */
static inline void check_no_leaks(void) {
    msgr_live_counts lc;
    memset(&lc, 0, sizeof lc);
    lc.size = sizeof lc;
    OK(msgr_live_counts_get(&lc));
    if (lc.messengers || lc.conns || lc.msgs || lc.dispatchers)
        FAILF("leak: %" PRIu64 " messengers, %" PRIu64 " conns, %" PRIu64
              " msgs, %" PRIu64 " dispatchers still live",
              lc.messengers, lc.conns, lc.msgs, lc.dispatchers);
}

static inline msgr_msg *make_msg(uint16_t type, const void *front, size_t len) {
    msgr_msg *m = NULL;
    OK(msgr_msg_alloc(&m, type));
    OK(msgr_msg_set_segment(m, MSGR_SEG_FRONT, front, len));
    return m;
}

#endif
