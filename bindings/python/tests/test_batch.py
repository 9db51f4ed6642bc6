"""The batch paths of 0.2: recv_copy, fast dispatch a read at a time, and
flow control with wait_held."""

from __future__ import annotations

import struct
import threading
import time

import pytest

import msgr

from conftest import recv_messages, wait_for


def payload(i: int) -> bytes:
    return struct.pack("<Q", i) + bytes([i % 251]) * (i % 70)


def check(i: int, data: bytes) -> bool:
    return int.from_bytes(data[:8], "little") == i and data[8:] == bytes([i % 251]) * (i % 70)


def test_recv_copy_in_order_with_every_segment(live_baseline, client, echo_server):
    n = 20_000
    with client.connect(echo_server.addr) as c:
        for base in range(0, n, 200):
            c.send_copy_many(7, [payload(i) for i in range(base, base + 200)])
        # One message on each other segment, echoed as built.
        c.send(msgr.Message(8, front=b"F" * 10, middle=b"M" * 3, data=b"D"))
        got = 0
        end = time.monotonic() + 60
        seen_last = False
        while not seen_last:
            assert time.monotonic() < end, f"{got} of {n}"
            for it in client.recv_copy(256, timeout=1.0):
                if it.__class__ is not msgr.Received:
                    continue
                assert it.conn == c
                if it.type == 8:
                    assert (it.front, it.middle, it.data) == (b"F" * 10, b"M" * 3, b"D")
                    seen_last = True
                    continue
                assert it.type == 7 and it.seq > 0
                assert check(got, it.data), f"message {got} corrupt or out of order"
                assert it.front == b"" and it.middle == b""
                got += 1
        assert got == n
    assert client.recv_copy(10, timeout=0) == [] or True  # only events may remain


def test_recv_copy_large_message_and_arguments(live_baseline, client, echo_server):
    big = bytes(range(256)) * 8192  # 2 MiB: more than the copy buffer
    with client.connect(echo_server.addr) as c:
        c.send_copy(9, big)
        c.send_copy(9, b"small")
        got = []
        end = time.monotonic() + 30
        while len(got) < 2:
            assert time.monotonic() < end
            got += [it for it in client.recv_copy(8, timeout=1.0) if isinstance(it, msgr.Received)]
        assert got[0].data == big and got[1].data == b"small"
    with pytest.raises(msgr.InvalidArgument):
        client.recv_copy(0)
    with pytest.raises(TypeError):
        client.recv_copy("x")  # type: ignore[arg-type]
    assert client.recv_copy(4, timeout=0.01) == [] or True


def test_fast_dispatch_read_batches(live_baseline, echo_server):
    n = 30_000
    got: list = []
    calls = []
    errors: list = []
    done = threading.Event()
    m = msgr.Messenger("client.78", options={"ms_async_op_threads": 1})
    m.set_policy(msgr.EntityType.OSD, msgr.Policy.lossless_client())

    def on_read(items: list) -> None:
        calls.append(threading.get_ident())
        if not isinstance(items, msgr.ReadBatch) or len({it.conn.id for it in items}) != 1:
            errors.append("a batch mixed connections")
        if items.datas != [it.data for it in items] or items.types != [5] * len(items):
            errors.append("columns differ from the items")
        if items.conn != items[0].conn or items.tids != [it.tid for it in items]:
            errors.append("conn or tids columns differ")
        for it in items:
            if not check(len(got), it.data):
                errors.append(f"message {len(got)} corrupt or out of order")
            got.append(it.tid)
        # Sending from the callback works; waiting does not.
        try:
            items[0].conn.wait_held(0, timeout=1)
            errors.append("wait_held in fast dispatch did not refuse")
        except msgr.Deadlock:
            pass
        if len(got) >= n:
            done.set()

    try:
        m.set_fast_dispatch(on_read)
        with pytest.raises(msgr.WrongState):
            m.set_fast_dispatch(on_read)
        with pytest.raises(TypeError):
            msgr.Messenger("client.79").set_fast_dispatch(3)  # type: ignore[arg-type]
        m.start()
        with m.connect(echo_server.addr) as c:
            for base in range(0, n, 500):
                c.send_copy_many(5, [payload(i) for i in range(base, base + 500)], tid=1)
                c.wait_held(5000, timeout=30)
            assert done.wait(60), f"{len(got)} of {n}"
        assert not errors, errors[:3]
        assert len(got) == n and all(t == 1 for t in got)
        assert threading.get_ident() not in calls  # a library thread called
        assert len(calls) < n  # batched: fewer calls than messages
        # Events still come through the pull queue.
        kinds = {ev.type for ev in m.recv_batch(64, timeout=0.5)}
        assert msgr.EventType.CONNECT in kinds
    finally:
        m.close()


def test_wait_held_flow_control(live_baseline):
    # A server that does not receive: its dispatch budget fills, it stops
    # reading, and the sender's held count stays up until it reads again.
    srv = msgr.Messenger("osd.3", nonce=0, options={"ms_dispatch_throttle_bytes": 65536})
    srv.set_policy(msgr.EntityType.CLIENT, msgr.Policy.stateful_server())
    srv.bind("127.0.0.1:0")
    srv.start()
    cli = msgr.Messenger("client.80")
    cli.set_policy(msgr.EntityType.OSD, msgr.Policy.lossless_client())
    cli.start()
    try:
        with cli.connect(srv.addrs) as c:
            body = b"x" * 4096
            for _ in range(10):
                c.send_copy_many(1, [body] * 50)
            info = c.info()
            assert info.queued + info.unacked > 0 and c.held > 0
            with pytest.raises(msgr.Timeout):
                c.wait_held(0, timeout=0.2)
            with pytest.raises(msgr.InvalidArgument):
                c.wait_held(-1)
            got = 0
            end = time.monotonic() + 30
            while got < 500:
                assert time.monotonic() < end
                got += sum(1 for it in srv.recv_copy(256, timeout=0.5) if isinstance(it, msgr.Received))
            c.wait_held(0, timeout=10)
            assert c.held == 0
            c.mark_down()
            with pytest.raises((msgr.NotConnected, msgr.BadHandle)):
                c.wait_held(0, timeout=1)
    finally:
        cli.close()
        srv.close()


def test_last_fault_of_a_refused_connection(live_baseline):
    m = msgr.Messenger("client.81")
    m.set_policy(msgr.EntityType.OSD, msgr.Policy.lossy_client())
    m.start()
    try:
        with m.connect("127.0.0.1:1") as c:  # nothing listens on port 1
            assert c.last_fault() is None or isinstance(c.last_fault(), msgr.ConnectionRefused)
            c.send_copy(1, b"x")
            wait_for(lambda: c.info().faults >= 1, 10, "a fault")
            f = c.last_fault()
            assert isinstance(f, msgr.ConnectionRefused) and "refused" in f.detail
            assert c.info().last_fault == f.code
    finally:
        m.close()
