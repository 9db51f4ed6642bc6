/* Error codes, error text, version. */
#include "testutil.h"

int main(void) {
    char buf[64];
    int code;
    /* Every code of the table has a distinct name and text. */
#define X(name, value, text)                                                   \
    CHECK(strcmp(msgr_err_name(value), "MSGR_" #name) == 0);                  \
    CHECK(strcmp(msgr_strerror(value), text) == 0);                           \
    CHECK(MSGR_##name == value);
    MSGR_ERRNO_MAP(X)
#undef X
    for (code = MSGR_ERRNO_MIN_; code < 0; code++)
        CHECK(strcmp(msgr_err_name(code), "MSGR_E?") != 0);
    CHECK(strcmp(msgr_err_name(0), "MSGR_OK") == 0);
    CHECK(strcmp(msgr_strerror(0), "success") == 0);
    CHECK(strcmp(msgr_err_name(-9999), "MSGR_E?") == 0);
    CHECK(strcmp(msgr_strerror(12345), "unknown error") == 0);
    /* Values are written out in the header and must never change. */
    CHECK(MSGR_EINVAL == -1 && MSGR_EBADF == -7 && MSGR_EAGAIN == -8 &&
          MSGR_EDEADLK == -16 && MSGR_EFORK == -17 && MSGR_EIO == -22);

    /* Version: macros agree with the library. */
    CHECK(msgr_version() == MSGR_VERSION_HEX);
    CHECK(msgr_version() >> 16 == MSGR_VERSION_MAJOR);
    CHECK(strcmp(msgr_version_string(), MSGR_VERSION_STRING) == 0);
    snprintf(buf, sizeof buf, "%d.%d.%d", MSGR_VERSION_MAJOR, MSGR_VERSION_MINOR,
             MSGR_VERSION_PATCH);
    CHECK(strcmp(buf, MSGR_VERSION_STRING) == 0);

    /* Last error: per thread, NUL-terminated, ERANGE when truncated. */
    {
        msgr_messenger m;
        msgr_option bad = {"ms_no_such_option", "1"};
        msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
        char small[8], big[512];
        cfg.name = "client.1";
        cfg.options = &bad;
        cfg.noptions = 1;
        CHECK_RC(msgr_messenger_create(&m, &cfg), MSGR_EINVAL);
        CHECK(m.id == 0);
        OK(msgr_last_error(big, sizeof big));
        CHECK(strstr(big, "ms_no_such_option") != NULL);
        CHECK_RC(msgr_last_error(small, sizeof small), MSGR_ERANGE);
        CHECK(strlen(small) == sizeof small - 1);
        CHECK(strncmp(small, big, sizeof small - 1) == 0);
        CHECK_RC(msgr_last_error(NULL, 10), MSGR_EINVAL);
        CHECK_RC(msgr_last_error(small, 0), MSGR_EINVAL);
        /* A bad value names the option too. */
        bad.name = "ms_tcp_nodelay";
        bad.value = "maybe";
        CHECK_RC(msgr_messenger_create(&m, &cfg), MSGR_EINVAL);
        OK(msgr_last_error(big, sizeof big));
        CHECK(strstr(big, "ms_tcp_nodelay") != NULL && strstr(big, "maybe") != NULL);
    }
    msgr_free(NULL);
    check_no_leaks();
    printf("errors: ok\n");
    return 0;
}
