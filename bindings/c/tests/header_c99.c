/* Header hygiene: msgr.h alone compiles as C99 with -Wall -Wextra -Werror
 * -pedantic (nng's tests/cplusplus_pair.cc idea), and its constants are
 * what the contract says. Built by capi_test.go and CMake; it also runs. */
#include <msgr.h>
#include <msgr.h> /* include guard */

typedef char check_ok[MSGR_OK == 0 ? 1 : -1];
typedef char check_version[MSGR_VERSION_HEX ==
                                   MSGR_MAKE_VERSION(MSGR_VERSION_MAJOR, MSGR_VERSION_MINOR,
                                                     MSGR_VERSION_PATCH)
                               ? 1
                               : -1];
typedef char check_handle[sizeof(msgr_messenger) == 8 && sizeof(msgr_conn) == 8 ? 1 : -1];

int main(void) {
    msgr_messenger m = MSGR_MESSENGER_INITIALIZER;
    msgr_conn c = MSGR_CONN_INITIALIZER;
    msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
    check_ok *a = 0;
    check_version *b = 0;
    check_handle *h = 0;
    (void)a;
    (void)b;
    (void)h;
    return (int)(m.id + c.id) + (cfg.size == sizeof cfg ? 0 : 1) +
           (MSGR_EINVAL == -1 ? 0 : 1);
}
