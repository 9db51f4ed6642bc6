#!/usr/bin/env python3
"""echo_server.py: answers every message with the message itself.

    echo_server.py [ADDR]     listen on ADDR (default 127.0.0.1:6800) until
                              SIGINT/SIGTERM; prints "listening on ADDRS"

Shows: a messenger with Ceph options and a policy, binding (port 0 picks
one), a Dispatcher driven by Messenger.run on this thread (pull mode: no
callback runs on a library thread), sending a received message back
without a copy, a clean shutdown. Works with examples/c/echo_client.
"""

import signal
import sys
import threading

import msgr


class Echo(msgr.Dispatcher):
    def __init__(self) -> None:
        self.echoed = 0

    def dispatch(self, conn: msgr.Connection, msg: msgr.Message) -> bool:
        try:
            conn.send(msg)  # the library takes it: no copy
            self.echoed += 1
        except msgr.NotConnected:
            pass  # the client went away
        return True

    def handle_accept(self, conn: msgr.Connection) -> None:
        print(f"echo_server: {conn.peer_name} connected from {conn.peer_addr}", file=sys.stderr)

    def handle_reset(self, conn: msgr.Connection) -> bool:
        print(f"echo_server: {conn.peer_name} went away", file=sys.stderr)
        return True


def main() -> int:
    addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:6800"
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # nonce 0: clients may dial a bare "IP:PORT".
    with msgr.Messenger("osd.0", nonce=0, options={"ms_async_op_threads": 2, "ms_tcp_nodelay": True}) as srv:
        # Clients are lossy: a fault closes their session (Ceph's OSD policy).
        srv.set_policy(msgr.EntityType.CLIENT, msgr.Policy.stateless_server())
        echo = Echo()
        srv.add_dispatcher(echo)
        srv.bind(addr)
        srv.start()
        print(f"echo_server: listening on {srv.addrs}", file=sys.stderr, flush=True)
        srv.run(stop)  # dispatches on this thread until stop is set
        print(f"echo_server: echoed {echo.echoed} messages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
