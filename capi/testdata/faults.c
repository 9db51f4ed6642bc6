/* Per-connection faults: a connection to a closed port reports why in
 * msgr_conn_info.last_fault / faults and msgr_conn_last_fault; a healthy
 * one reports none. */
#include "testutil.h"

int main(void) {
    msgr_messenger m = make_messenger("client.6", 6, NULL), srv;
    msgr_conn c, ok;
    msgr_conn_info info;
    char buf[256], addr[128];
    int i;

    OK(msgr_messenger_start(m));
    /* Port 1 on loopback: nothing listens there. */
    OK(msgr_messenger_connect(m, MSGR_ENTITY_OSD, "127.0.0.1:1", &c));
    OK(msgr_conn_send(c, make_msg(1, "x", 1)));
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    for (i = 0; i < 500; i++) {
        OK(msgr_conn_get_info(c, &info));
        if (info.faults > 0)
            break;
        sleep_ms(10);
    }
    CHECK(info.faults >= 1);
    CHECK_RC(info.last_fault, MSGR_ECONNREFUSED);
    OK(msgr_conn_last_fault(c, buf, sizeof buf));
    CHECK(strstr(buf, "refused") != NULL);
    CHECK_RC(msgr_conn_last_fault(c, buf, 4), MSGR_ERANGE);
    CHECK_RC(msgr_conn_last_fault(c, buf, 0), MSGR_ERANGE);
    CHECK_RC(msgr_conn_last_fault(c, NULL, 8), MSGR_EINVAL);
    OK(msgr_conn_mark_down(c));
    OK(msgr_conn_put(c));

    /* A connection that never faulted. */
    srv = make_messenger("osd.2", 2, NULL);
    OK(msgr_messenger_bind(srv, "127.0.0.1:0"));
    OK(msgr_messenger_get_addrs(srv, addr, sizeof addr));
    OK(msgr_messenger_start(srv));
    OK(msgr_messenger_connect(m, MSGR_ENTITY_OSD, addr, &ok));
    OK(msgr_conn_send(ok, make_msg(1, "y", 1)));
    OK(msgr_conn_wait_held(ok, 0, 5000));
    OK(msgr_conn_get_info(ok, &info));
    CHECK(info.faults == 0 && info.last_fault == 0);
    OK(msgr_conn_last_fault(ok, buf, sizeof buf));
    CHECK(buf[0] == 0);
    OK(msgr_conn_put(ok));
    OK(msgr_messenger_destroy(m));
    OK(msgr_messenger_destroy(srv));
    check_no_leaks();
    printf("faults: ok\n");
    return 0;
}
