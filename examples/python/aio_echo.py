#!/usr/bin/env python3
"""aio_echo.py: an asyncio echo server and many concurrent clients.

    aio_echo.py [--conns N] [--count M]   server and N clients (default 100),
                                          each client M round trips, in one
                                          event loop; exit 0 if every echo
                                          matched
    aio_echo.py --serve ADDR              only the server, until SIGINT/SIGTERM

Shows msgr.aio: ``async for msg in messenger``, ``await conn.send(msg)``,
``await messenger.recv()`` built on the messenger's event fd
(loop.add_reader), so waiting takes no thread. A messenger keeps one
connection per peer (as Ceph's), so each client is its own messenger; they
share one network stack (the ms_stack_group option), so 100 clients run on
two worker threads.
"""

import argparse
import asyncio
import signal
import sys
import time

import msgr
import msgr.aio

PING = 1


async def serve(srv: msgr.aio.Messenger) -> None:
    async for msg in srv:  # messages until the messenger shuts down
        try:
            await msg.conn.send(msg)  # the received message goes back as is
        except msgr.NotConnected:
            pass


async def client(k: int, addr: str, count: int) -> int:
    """count round trips on one connection; returns the number of good echoes."""
    async with msgr.aio.Messenger(f"client.{k + 1}", options={"ms_stack_group": "aio-clients"}) as m:
        m.start()
        conn = m.connect(addr, msgr.EntityType.OSD)
        good = 0
        try:
            for i in range(count):
                body = f"client {k} ping {i}".encode()
                await conn.send(msgr.Message(PING, data=body, tid=i))
                reply = await m.recv_message()
                with reply:
                    good += reply.tid == i and reply.data == body
        finally:
            conn.close()
        return good


async def main_async(conns: int, count: int) -> int:
    async with msgr.aio.Messenger("osd.0", nonce=0) as srv:
        srv.bind("127.0.0.1:0")
        srv.start()
        server = asyncio.ensure_future(serve(srv))
        t0 = time.monotonic()
        goods = await asyncio.gather(*(client(k, srv.addrs, count) for k in range(conns)))
        secs = time.monotonic() - t0
        srv.shutdown()  # ends `async for` in serve()
        await server
    total = sum(goods)
    print(f"aio_echo: {total} of {conns * count} echoes good, {conns} connections, {secs:.2f} s")
    return 0 if total == conns * count else 1


async def serve_forever(addr: str) -> int:
    async with msgr.aio.Messenger("osd.0", nonce=0) as srv:
        srv.bind(addr)
        srv.start()
        print(f"aio_echo: listening on {srv.addrs}", file=sys.stderr, flush=True)
        loop = asyncio.get_running_loop()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, srv.shutdown)
        await serve(srv)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--serve", metavar="ADDR")
    a = ap.parse_args()
    if a.serve:
        return asyncio.run(serve_forever(a.serve))
    return asyncio.run(main_async(a.conns, a.count))


if __name__ == "__main__":
    sys.exit(main())
