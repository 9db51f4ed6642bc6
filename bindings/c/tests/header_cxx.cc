// Header hygiene: msgr.h compiles as C++ (extern "C") with -Wall -Wextra
// -Werror -pedantic, and links: the declarations name the library's symbols.
#include <msgr.h>

#include <cstring>
#include <type_traits>

static_assert(MSGR_OK == 0, "MSGR_OK");
static_assert(std::is_standard_layout<msgr_messenger_config>::value, "C layout");
static_assert(std::is_trivially_copyable<msgr_conn>::value, "handles copy");

int main() {
    msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
    msgr_messenger m = MSGR_MESSENGER_INITIALIZER;
    cfg.name = "client.1";
    if (msgr_version() != MSGR_VERSION_HEX)
        return 1;
    if (std::strcmp(msgr_err_name(MSGR_EBADF), "MSGR_EBADF") != 0)
        return 2;
    if (msgr_messenger_create(&m, &cfg) != 0)
        return 3;
    return msgr_messenger_destroy(m) == 0 ? 0 : 4;
}
