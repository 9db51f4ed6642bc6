#!/usr/bin/env python3
"""echo_client.py: sends COUNT messages to an echo server and checks every
echo, measuring the time.

    echo_client.py ADDR [COUNT]     (e.g. echo_client.py v2:127.0.0.1:6800/0 1000)

Shows: connecting (the handshake runs in the background; messages sent
before it is up are queued), sending from a buffer without building a
Message (send_copy) and with one (Message), receiving in batches
(recv_batch) and reading segments without a copy (memoryview). Works with
examples/c/echo_server and echo_server.py.
"""

import sys
import time

import msgr

PING = 1


def main() -> int:
    addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:6800"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    with msgr.Messenger("client.4242", options={"ms_tcp_nodelay": True}) as cli:
        cli.set_policy(msgr.EntityType.OSD, msgr.Policy.lossy_client())
        cli.start()
        with cli.connect(addr, msgr.EntityType.OSD) as conn:
            t0 = time.monotonic()
            for i in range(count):
                text = f"ping {i}".encode()
                if i % 2:
                    conn.send_copy(PING, front=text, tid=i)  # copied during the call
                else:
                    conn.send(msgr.Message(PING, front=text, tid=i))  # the library takes it
            echoes = bad = 0
            deadline = time.monotonic() + 10
            while echoes < count and time.monotonic() < deadline:
                for item in cli.recv_batch(256, timeout=0.5):
                    if isinstance(item, msgr.Event):
                        if item.type == msgr.EventType.CONNECT:
                            print(f"echo_client: session up with {item.conn.peer_name}", file=sys.stderr)
                        elif item.type == msgr.EventType.RESET:
                            print("echo_client: connection reset", file=sys.stderr)
                            deadline = 0
                        continue
                    with item:  # releases the message (and its views) at once
                        want = f"ping {item.tid}".encode()
                        if item.front != want:  # a zero-copy view of the front
                            bad += 1
                        echoes += 1
            secs = time.monotonic() - t0
    print(f"echo_client: {echoes} of {count} echoes ({bad} bad) in {secs:.3f} s")
    return 0 if echoes == count and bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
