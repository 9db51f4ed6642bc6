/* After fork(), the child gets MSGR_EFORK instead of hanging; message and
 * error-text calls, which need no library thread, keep working; the parent
 * is unaffected. */
#include "testutil.h"

#include <sys/wait.h>

int main(void) {
    msgr_messenger m = make_messenger("client.1", 1, NULL), m2;
    msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
    char buf[64];
    pid_t pid;
    int status;
    OK(msgr_messenger_start(m));
    fflush(NULL);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        msgr_msg *msg;
        cfg.name = "client.2";
        if (msgr_messenger_create(&m2, &cfg) != MSGR_EFORK)
            _exit(10);
        if (msgr_messenger_get_name(m, buf, sizeof buf) != MSGR_EFORK)
            _exit(11);
        if (msgr_messenger_destroy(m) != MSGR_EFORK)
            _exit(12);
        if (msgr_last_error(buf, sizeof buf) != MSGR_ERANGE && strlen(buf) == 0)
            _exit(13);
        if (msgr_msg_alloc(&msg, 1) != 0 || msgr_msg_set_segment(msg, 0, "x", 1) != 0 ||
            msgr_msg_put(msg) != 0)
            _exit(14);
        if (strcmp(msgr_err_name(MSGR_EFORK), "MSGR_EFORK") != 0)
            _exit(15);
        _exit(0);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAILF("child failed: status %d", status);
    OK(msgr_messenger_get_name(m, buf, sizeof buf));
    CHECK(strcmp(buf, "client.1") == 0);
    OK(msgr_messenger_destroy(m));
    check_no_leaks();
    printf("fork: ok\n");
    return 0;
}
