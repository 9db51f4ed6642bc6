"""Every bad input raises the right exception (never a crash): closed
handles, bad addresses and names, unknown options, oversized messages, use
after close, wrong states, wrong types."""

from __future__ import annotations

import mmap
import pickle

import pytest

import msgr
from msgr import errors

from conftest import recv_messages


def test_every_code_has_a_class_name_and_text():
    for name, code, text in msgr._lib.ERRNO_MAP:
        e = errors.from_code(code, "detail here")
        assert isinstance(e, msgr.Error)
        assert e.code == code and e.name == "MSGR_" + name and e.strerror == text
        assert "detail here" in str(e) and e.name in str(e) and text in str(e)
        assert pickle.loads(pickle.dumps(e)).code == code
    assert errors.error_class(-1) is msgr.InvalidArgument
    assert errors.error_class(-7) is msgr.BadHandle
    assert errors.error_class(-5) is msgr.MessageTooLarge
    assert errors.error_class(-999) is msgr.Error
    assert issubclass(msgr.InvalidArgument, ValueError)
    e = msgr.Timeout()
    assert e.code == -4 and "timed out" in str(e)


def test_unknown_option():
    with pytest.raises(msgr.InvalidArgument) as ei:
        msgr.Messenger("client.1", options={"ms_no_such_option": "1"})
    assert ei.value.code == -1
    assert "ms_no_such_option" in str(ei.value)


def test_bad_option_value():
    with pytest.raises(msgr.InvalidArgument) as ei:
        msgr.Messenger("client.1", options={"ms_async_op_threads": "many"})
    assert "ms_async_op_threads" in str(ei.value)
    with pytest.raises(TypeError):
        msgr.Messenger("client.1", options={"ms_tcp_nodelay": object()})


def test_bad_entity_names():
    for name in ("mon.a", "nobody.1", "", "client.1\0x"):
        with pytest.raises(msgr.InvalidArgument):
            msgr.Messenger(name)
    with pytest.raises(TypeError):
        msgr.Messenger(42)  # type: ignore[arg-type]
    with pytest.raises(msgr.InvalidArgument):
        msgr.Messenger("client.1", nonce=-1)
    with pytest.raises(msgr.InvalidArgument):
        msgr.Messenger("client.1", nonce=1 << 32)


def test_bad_addresses(live_baseline):
    with msgr.Messenger("osd.1") as m:
        for addr in ("not an address", "127.0.0.1:99999", "v9:127.0.0.1:1/0", "127.0.0.1:1\0"):
            with pytest.raises(msgr.InvalidArgument):
                m.bind(addr)
        with pytest.raises(TypeError):
            m.bind(None)  # type: ignore[arg-type]
        m.start()
        for addr in ("garbage", "", "[v2:127.0.0.1:1/0"):
            with pytest.raises(msgr.InvalidArgument):
                m.connect(addr)
        with pytest.raises(msgr.InvalidArgument):
            m.connect("127.0.0.1:1", peer_type=0x77)
        with pytest.raises(msgr.InvalidArgument):
            m.connect("127.0.0.1:1", peer_type=msgr.EntityType.ANY)


def test_address_in_use(live_baseline):
    with msgr.Messenger("osd.1", nonce=0) as a, msgr.Messenger("osd.2", nonce=0) as b:
        a.bind("127.0.0.1:0")
        port = a.addrs.rsplit(":", 1)[1].split("/")[0]
        with pytest.raises(msgr.AddressInUse):
            b.bind(f"127.0.0.1:{port}")


def test_closed_messenger_raises_bad_handle():
    m = msgr.Messenger("client.5")
    m.close()
    m.close()  # idempotent
    assert m.closed
    for call in (
        m.start,
        m.shutdown,
        lambda: m.bind("127.0.0.1:0"),
        lambda: m.connect("127.0.0.1:1"),
        lambda: m.recv(timeout=0),
        lambda: m.recv_batch(timeout=0),
        m.fileno,
        lambda: m.addrs,
        lambda: m.set_policy(msgr.EntityType.ANY, msgr.Policy.lossy_client()),
        m.perf_dump,
    ):
        with pytest.raises(msgr.BadHandle) as ei:
            call()
        assert ei.value.code == -7


def test_wrong_states(live_baseline):
    with msgr.Messenger("osd.3") as m:
        with pytest.raises(msgr.WrongState):
            m.connect("127.0.0.1:1")  # before start
        m.bind("127.0.0.1:0")
        m.start()
        with pytest.raises(msgr.WrongState):
            m.start()
        with pytest.raises(msgr.WrongState):
            m.bind("127.0.0.1:0")
        with pytest.raises(msgr.WrongState):
            m.set_policy(msgr.EntityType.CLIENT, msgr.Policy.lossy_client())
        with pytest.raises(msgr.WrongState):
            m.dispatch_once()  # no dispatcher


def test_recv_timeouts_and_shutdown(live_baseline):
    with msgr.Messenger("client.8") as m:
        m.start()
        with pytest.raises(msgr.WouldBlock):
            m.recv(timeout=0)
        with pytest.raises(msgr.Timeout):
            m.recv(timeout=0.01)
        assert m.recv_batch(timeout=0) == []
        assert m.recv_batch(timeout=0.01) == []
        with pytest.raises(msgr.InvalidArgument):
            m.recv(timeout=-1)
        with pytest.raises(TypeError):
            m.recv(timeout="1")  # type: ignore[arg-type]
        with pytest.raises(msgr.InvalidArgument):
            m.recv_batch(0)
        m.shutdown()
        m.shutdown()  # idempotent
        with pytest.raises(msgr.MessengerShutdown):
            m.recv(timeout=1)
        with pytest.raises(msgr.MessengerShutdown):
            m.recv_batch(timeout=None)
        assert list(m) == []  # iteration ends at shutdown
        with pytest.raises((msgr.WrongState, msgr.MessengerShutdown)):
            m.connect("127.0.0.1:1")


def test_without_pull_recv_is_wrong_state(live_baseline):
    with msgr.Messenger("client.9", pull=False) as m:
        m.start()
        with pytest.raises(msgr.WrongState):
            m.recv(timeout=0)
        with pytest.raises(msgr.WrongState):
            m.fileno()


def test_message_bad_values(live_baseline):
    for bad in (-1, 70000):
        with pytest.raises(msgr.InvalidArgument):
            msgr.Message(bad)
    with pytest.raises(TypeError):
        msgr.Message("1")  # type: ignore[arg-type]
    with msgr.Message(1) as m:
        with pytest.raises(msgr.InvalidArgument):
            m.tid = -1
        with pytest.raises(msgr.InvalidArgument):
            m.priority = 256 * 256
        with pytest.raises(msgr.InvalidArgument):
            m.set_segment(3, b"x")
        with pytest.raises(msgr.InvalidArgument):
            m.segment(7)
        with pytest.raises(TypeError):
            m.segment("front")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            m.front = 12  # type: ignore[assignment]
        with pytest.raises(TypeError):
            m.front = "text"  # type: ignore[assignment]
        with pytest.raises(msgr.InvalidArgument):
            m.reserve(0, -1)


def test_oversized_message(live_baseline):
    # Larger than MSGR_SEGMENT_MAX (4 GiB - 1): refused before any copy.
    # An anonymous mapping is only address space until touched.
    with msgr.Message(1) as m:
        with pytest.raises(msgr.MessageTooLarge) as ei:
            m.reserve(msgr.Segment.DATA, msgr.SEGMENT_MAX + 1)
        assert ei.value.code == -5
        try:
            big = mmap.mmap(-1, msgr.SEGMENT_MAX + 1)
        except (OSError, OverflowError, MemoryError):
            pytest.skip("cannot map 4 GiB of address space here")
        try:
            with pytest.raises(msgr.MessageTooLarge):
                m.data = big
            with pytest.raises(msgr.MessageTooLarge):
                msgr.Message(1, front=memoryview(big))
        finally:
            big.close()
        assert m.segment_len(msgr.Segment.DATA) == 0


def test_oversized_send_copy(client, echo_server):
    with client.connect(echo_server.addr) as c:
        big = mmap.mmap(-1, msgr.SEGMENT_MAX + 1)
        try:
            with pytest.raises(msgr.MessageTooLarge):
                c.send_copy(1, big)
            with pytest.raises(msgr.MessageTooLarge):
                c.send_copy_many(1, [b"ok", big])
        finally:
            big.close()
        with pytest.raises(msgr.InvalidArgument):
            c.send_copy(1 << 16, b"x")
        with pytest.raises(TypeError):
            c.send_copy(1, 12345)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            c.send(b"raw bytes")  # type: ignore[arg-type]
        with pytest.raises(msgr.InvalidArgument):
            c.send_copy_many(1, [b"x"], segment=5)


def test_use_after_close_message(live_baseline):
    m = msgr.Message(7, front=b"front", data=b"x" * 5000)
    view = m.front
    m.close()
    m.close()  # idempotent
    assert m.closed
    for call in (
        lambda: m.type,
        lambda: m.front,
        lambda: m.tobytes(),
        lambda: m.header(),
        lambda: m.copy(),
        lambda: setattr(m, "tid", 3),
        lambda: m.set_segment(0, b"again"),
        lambda: m.reserve(0, 4),
    ):
        with pytest.raises(msgr.BadHandle):
            call()
    with pytest.raises(ValueError):  # the view was released with the message
        view[0]
    with pytest.raises(ValueError):
        bytes(view)
    assert repr(m) == "<msgr.Message closed>"


def test_use_after_send(live_baseline, client, echo_server):
    with client.connect(echo_server.addr) as c:
        m = msgr.Message(3, data=b"payload")
        v = m.data
        c.send(m)
        assert m.closed
        with pytest.raises(msgr.BadHandle):
            c.send(m)  # sending twice
        with pytest.raises(msgr.BadHandle):
            m.data
        with pytest.raises(ValueError):
            v.tobytes()
        # A released view passed as a buffer is a clean error too.
        with pytest.raises(msgr.BadHandle):
            c.send_copy(1, v)
        for r in recv_messages(client, 1):
            r.close()


def test_use_after_close_connection(live_baseline, client, echo_server):
    c = client.connect(echo_server.addr)
    c.close()
    c.close()  # idempotent
    for call in (
        lambda: c.send(msgr.Message(1)),
        lambda: c.send_copy(1, b"x"),
        lambda: c.send_copy_many(1, [b"x"]),
        lambda: c.send_many([msgr.Message(1)]),
        c.info,
        c.mark_down,
        c.send_keepalive,
        lambda: c.peer_addr,
        c.hold,
    ):
        with pytest.raises(msgr.BadHandle):
            call()


def test_send_on_marked_down_connection(live_baseline, client, echo_server):
    with client.connect(echo_server.addr) as c:
        c.mark_down()
        m = msgr.Message(1, front=b"x")
        with pytest.raises(msgr.NotConnected):
            c.send(m)
        assert not m.closed  # still ours after a failed send
        m.close()
        with pytest.raises(msgr.NotConnected):
            c.send_copy(1, b"x")


def test_connections_go_stale_with_their_messenger(echo_server):
    m = msgr.Messenger("client.10")
    m.start()
    c = m.connect(echo_server.addr)
    m.close()
    assert c.closed
    with pytest.raises(msgr.BadHandle):
        c.send_copy(1, b"x")
    c.close()  # no error: nothing left to release


def test_policy_bad_values():
    with pytest.raises(msgr.InvalidArgument):
        msgr.Policy.preset(99)
    with pytest.raises(msgr.InvalidArgument):
        msgr.Policy(flags=-1)
    with pytest.raises(TypeError):
        msgr.Policy(flags="lossy")  # type: ignore[arg-type]
    with msgr.Messenger("client.11") as m:
        with pytest.raises(TypeError):
            m.set_policy(msgr.EntityType.OSD, "lossy")  # type: ignore[arg-type]
        with pytest.raises(msgr.InvalidArgument):
            m.set_policy(0x77, msgr.Policy.lossy_client())


def test_ctrl_c_interrupts_a_blocking_recv():
    # recv(timeout=None) waits in slices, so Python's SIGINT handler runs
    # (KeyboardInterrupt) instead of the wait hanging in C.
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import msgr, sys\n"
        "m = msgr.Messenger('client.1'); m.start()\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    m.recv()\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "m.close()\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=10)
        assert "interrupted" in out and p.returncode == 0
        assert time.monotonic() - t0 < 5
    finally:
        if p.poll() is None:
            p.kill()


def test_close_while_another_thread_waits_in_recv(live_baseline):
    import threading

    m = msgr.Messenger("client.40")
    m.start()
    errs = []

    def waiter():
        try:
            m.recv()
        except msgr.Error as e:
            errs.append(e)

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for t in threads:
        t.start()
    import time

    time.sleep(0.2)
    m.close()
    for t in threads:
        t.join(10)
        assert not t.is_alive(), "a receiver kept waiting after close"
    assert len(errs) == 3
    assert all(isinstance(e, (msgr.MessengerShutdown, msgr.BadHandle)) for e in errs), errs
