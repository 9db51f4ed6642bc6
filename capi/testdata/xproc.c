/* 1,000,000 messages C to C across two processes, content checked. The
 * program starts itself as the server ("xproc serve"), which receives in
 * pull mode (batches from msgr_messenger_recv), checks every message, and
 * answers the end marker with its count. */
#include "testutil.h"

#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

#define SIZE 64
#define BATCH 256
#define WINDOW 100000
enum { T_DATA = 0x700, T_END = 0x701, T_COUNT = 0x702, T_ACK = 0x703 };

static void fill(unsigned char *p, long i) {
    int k;
    memcpy(p, &i, sizeof i);
    for (k = sizeof i; k < SIZE; k++)
        p[k] = (unsigned char)(i * 7 + k);
}

static int serve(void) {
    msgr_messenger m = make_messenger("osd.2", 2, NULL);
    char addr[128];
    msgr_event ev[256];
    long next = 0, bad = 0;
    int done = 0;
    OK(msgr_messenger_add_pull(m, MSGR_TAIL));
    OK(msgr_messenger_bind(m, "127.0.0.1:0"));
    OK(msgr_messenger_get_addrs(m, addr, sizeof addr));
    OK(msgr_messenger_start(m));
    printf("%s\n", addr);
    fflush(stdout);
    while (!done) {
        int n = msgr_messenger_recv(m, ev, 256, sizeof ev[0], 30000), i;
        if (n < 0)
            FAILF("serve: recv: %s", msgr_err_name(n));
        for (i = 0; i < n; i++) {
            msgr_msg *msg = ev[i].msg;
            if (msg == NULL)
                continue;
            if (msgr_msg_type(msg) == T_DATA) {
                const void *p;
                size_t len;
                unsigned char want[SIZE];
                OK(msgr_msg_get_segment(msg, MSGR_SEG_FRONT, &p, &len));
                fill(want, next);
                if (len != SIZE || memcmp(p, want, SIZE) != 0)
                    bad++;
                next++;
                if (next % 50000 == 0) /* window ack */
                    OK(msgr_conn_send(ev[i].conn, make_msg(T_ACK, &next, sizeof next)));
            } else if (msgr_msg_type(msg) == T_END) {
                long out[2];
                out[0] = next;
                out[1] = bad;
                OK(msgr_conn_send(ev[i].conn, make_msg(T_COUNT, out, sizeof out)));
                done = 1;
            }
            OK(msgr_msg_put(msg));
        }
    }
    OK(msgr_messenger_destroy(m)); /* graceful: the count reply is flushed */
    check_no_leaks();
    return 0;
}

int main(int argc, char **argv) {
    long total = (long)(1000000 * test_scale()), sent = 0, acked = 0;
    int pfd[2], status;
    pid_t pid;
    posix_spawn_file_actions_t fa;
    char *args[] = {argv[0], (char *)"serve", NULL};
    char addr[128];
    FILE *f;
    msgr_messenger m;
    msgr_conn c;
    msgr_event ev[64];
    int64_t t0, t1;
    long result[2] = {-1, -1};

    if (argc > 1 && strcmp(argv[1], "serve") == 0)
        return serve();

    CHECK(pipe(pfd) == 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    CHECK(posix_spawn(&pid, "/proc/self/exe", &fa, NULL, args, environ) == 0);
    close(pfd[1]);
    f = fdopen(pfd[0], "r");
    CHECK(f != NULL && fgets(addr, sizeof addr, f) != NULL);
    addr[strcspn(addr, "\n")] = 0;

    m = make_messenger("client.3", 3, NULL);
    OK(msgr_messenger_add_pull(m, MSGR_TAIL));
    OK(msgr_messenger_start(m));
    OK(msgr_messenger_connect(m, MSGR_ENTITY_OSD, addr, &c));
    t0 = now_ns();
    while (sent < total) {
        msgr_msg *batch[BATCH];
        size_t k, n = (size_t)(total - sent < BATCH ? total - sent : BATCH), took;
        while (sent - acked > WINDOW) {
            int r = msgr_messenger_recv(m, ev, 64, sizeof ev[0], 30000), i;
            if (r < 0)
                FAILF("waiting for acks: %s", msgr_err_name(r));
            for (i = 0; i < r; i++) {
                if (ev[i].msg == NULL)
                    continue;
                if (msgr_msg_type(ev[i].msg) == T_ACK) {
                    const void *p;
                    size_t len;
                    OK(msgr_msg_get_segment(ev[i].msg, MSGR_SEG_FRONT, &p, &len));
                    memcpy(&acked, p, sizeof acked);
                }
                OK(msgr_msg_put(ev[i].msg));
            }
        }
        for (k = 0; k < n; k++) {
            void *buf;
            OK(msgr_msg_alloc(&batch[k], T_DATA));
            OK(msgr_msg_reserve_segment(batch[k], MSGR_SEG_FRONT, SIZE, &buf));
            fill(buf, sent + (long)k);
        }
        OK(msgr_conn_send_many(c, batch, n, &took));
        CHECK(took == n);
        sent += (long)n;
    }
    OK(msgr_conn_send(c, make_msg(T_END, "", 0)));
    while (result[0] < 0) {
        int r = msgr_messenger_recv(m, ev, 64, sizeof ev[0], 60000), i;
        if (r < 0)
            FAILF("waiting for the count: %s", msgr_err_name(r));
        for (i = 0; i < r; i++) {
            if (ev[i].msg == NULL)
                continue;
            if (msgr_msg_type(ev[i].msg) == T_COUNT) {
                const void *p;
                size_t len;
                OK(msgr_msg_get_segment(ev[i].msg, MSGR_SEG_FRONT, &p, &len));
                CHECK(len == sizeof result);
                memcpy(result, p, sizeof result);
            }
            OK(msgr_msg_put(ev[i].msg));
        }
    }
    t1 = now_ns();
    CHECK(result[0] == total);
    CHECK(result[1] == 0);
    printf("xproc: %ld messages across processes in %.2f s: %.0f msgs/s\n", total,
           (double)(t1 - t0) / 1e9, (double)total / ((double)(t1 - t0) / 1e9));
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    OK(msgr_conn_put(c));
    OK(msgr_messenger_destroy(m));
    fclose(f);
    posix_spawn_file_actions_destroy(&fa);
    check_no_leaks();
    printf("xproc: ok\n");
    return 0;
}
