"""msgr.aio: await recv, async for, await send, 100 concurrent connections."""

from __future__ import annotations

import asyncio
import socket

import pytest

import msgr
import msgr.aio


def test_asyncio_echo_100_connections(live_baseline):
    conns, rounds = 100, 10

    async def serve(srv):
        async for msg in srv:
            await msg.conn.send(msg)

    async def one_client(k, addr):
        async with msgr.aio.Messenger(f"client.{k + 1}", options={"ms_stack_group": "aio-test"}) as m:
            m.start()
            conn = m.connect(addr)
            assert isinstance(conn, msgr.aio.Connection)
            try:
                for i in range(rounds):
                    body = f"{k}:{i}".encode() * (1 + i)
                    await conn.send_copy(1, body, tid=i)
                    reply = await m.recv_message()
                    assert isinstance(reply.conn, msgr.aio.Connection)
                    assert reply.tid == i and reply.data == body
                    reply.close()
                return rounds
            finally:
                conn.close()

    async def main():
        async with msgr.aio.Messenger("osd.0", nonce=0) as srv:
            srv.bind("127.0.0.1:0")
            srv.start()
            server = asyncio.ensure_future(serve(srv))
            done = await asyncio.wait_for(asyncio.gather(*(one_client(k, srv.addrs) for k in range(conns))), 60)
            srv.shutdown()
            await asyncio.wait_for(server, 10)
            return sum(done)

    assert asyncio.run(main()) == conns * rounds


def test_aio_recv_events_batches_and_close(live_baseline):
    async def main():
        srv = msgr.aio.Messenger("osd.1", nonce=0)
        srv.bind("127.0.0.1:0")
        srv.start()
        cli = msgr.aio.Messenger("client.2")
        cli.start()
        c = cli.connect(srv.addrs)
        for i in range(50):
            c.send_copy_nowait(1, b"%d" % i)
        got = []
        while len([x for x in got if isinstance(x, msgr.Message)]) < 50:
            got += await asyncio.wait_for(srv.recv_batch(16), 10)
        assert [x.tobytes() for x in got if isinstance(x, msgr.Message)] == [b"%d" % i for i in range(50)]
        ev = await asyncio.wait_for(cli.recv(), 10)
        assert isinstance(ev, msgr.Event) and ev.type == msgr.EventType.CONNECT
        # a waiter is woken with BadHandle when its messenger is closed
        waiter = asyncio.ensure_future(cli.recv())
        await asyncio.sleep(0.05)
        c.close()
        cli.close()
        with pytest.raises(msgr.BadHandle):
            await asyncio.wait_for(waiter, 5)
        del got
        await srv.aclose()

    asyncio.run(main())


def test_aio_send_waits_for_the_queue(live_baseline, monkeypatch):
    # A peer that never answers: the lossless queue grows, and send() waits
    # for it to drain instead of growing it without bound.
    monkeypatch.setattr(msgr.aio.Connection, "high_water", 10)
    monkeypatch.setattr(msgr.aio.Connection, "low_water", 5)

    # A listener that never accepts: the handshake never completes, so every
    # message stays queued.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    port = silent.getsockname()[1]

    async def main():
        async with msgr.aio.Messenger("client.3") as cli:
            cli.set_policy(msgr.EntityType.OSD, msgr.Policy.lossless_client())
            cli.start()
            c = cli.connect(f"127.0.0.1:{port}")
            for i in range(10):
                await asyncio.wait_for(c.send_copy(1, b"x"), 5)
            assert c.queued == 10
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.send_copy(1, b"x"), 0.3)
            c.close()

    try:
        asyncio.run(main())
    finally:
        silent.close()
