"""Messages: segments from any buffer, header fields, zero-copy views and
their lifetime (no view can read freed memory)."""

from __future__ import annotations

import array
import gc

import pytest

import msgr

from conftest import recv_messages


def test_build_and_read(live_baseline):
    with msgr.Message(42, front=b"F" * 3, middle=bytearray(b"mid"), data=memoryview(b"0123456789")[2:6], tid=9,
                      priority=msgr.Priority.HIGH, version=3, compat_version=2) as m:
        h = m.header()
        assert (h.type, h.tid, h.priority, h.version, h.compat_version) == (42, 9, 196, 3, 2)
        assert (h.front_len, h.middle_len, h.data_len) == (3, 3, 4)
        assert m.type == 42 and m.tid == 9 and m.priority == 196
        assert bytes(m.front) == b"FFF" and m.middle == b"mid" and m.data.tobytes() == b"2345"
        assert m.tobytes(msgr.Segment.MIDDLE) == b"mid"
        assert m.front.readonly and m.front.format == "B"
        m.tid = 10
        m.priority = 1
        assert m.header().tid == 10 and m.priority == 1
        m.data = array.array("i", [1, 2, 3])  # any buffer
        assert m.segment_len() == 12
        c = m.copy()
        assert c.tobytes() == m.tobytes() and c.tid == 10
        c.close()
        assert "type=42" in repr(m)


def test_reserve_fills_in_place(live_baseline):
    with msgr.Message(1) as m:
        buf = m.reserve(msgr.Segment.DATA, 1000)
        assert not buf.readonly and len(buf) == 1000
        buf[:] = bytes(range(250)) * 4
        assert m.tobytes() == bytes(range(250)) * 4
        assert m.reserve(msgr.Segment.FRONT, 0) == b""


def test_empty_segments(live_baseline):
    with msgr.Message(1) as m:
        assert m.front == b"" and m.tobytes(0) == b"" and m.segment_len(1) == 0
        m.front = b""
        m.front = bytearray()
        assert m.header().front_len == 0


def test_view_is_zero_copy_and_released_with_the_message(live_baseline):
    m = msgr.Message(1, data=b"abc" * 1000)
    v1, v2 = m.data, m.data
    assert v1 == v2 and len(v1) == 3000
    m.close()
    for v in (v1, v2):
        with pytest.raises(ValueError):
            len(v)


def test_slice_outlives_the_message(live_baseline):
    # A buffer derived from a view (here a slice) keeps the bytes: after the
    # message is closed the slice still reads the right data, never freed
    # memory. 1 MiB is allocated with mmap by malloc, so a read after the
    # free would fault.
    payload = bytes(range(256)) * 4096
    m = msgr.Message(1, data=payload)
    tail = m.data[-4096:]
    nested = memoryview(tail)[100:200]
    m.close()
    gc.collect()
    assert tail.tobytes() == payload[-4096:]
    assert nested.tobytes() == payload[-4096 + 100 : -4096 + 200]
    before = msgr.live_counts()["msgs"]
    del tail, nested
    gc.collect()
    assert msgr.live_counts()["msgs"] == before - 1  # the last holder freed it


def test_setter_with_a_live_derived_view_is_refused(live_baseline):
    with msgr.Message(1, data=b"x" * 100) as m:
        s = m.data[10:20]
        with pytest.raises(msgr.WrongState):
            m.data = b"new"  # would free the bytes s shows
        assert s.tobytes() == b"x" * 10
        del s
        m.data = b"new"  # fine once nothing refers to the old bytes
        assert m.tobytes() == b"new"
        v = m.data
        m.front = b"front"  # a view without derived buffers is just released
        with pytest.raises(ValueError):
            v[0]


def test_received_message_views_and_echo_content(live_baseline, client, echo_server):
    payload = bytes(range(256)) * 2048  # 512 KiB
    with client.connect(echo_server.addr) as c:
        c.send(msgr.Message(5, front=b"hdr", data=payload, tid=77))
        (r,) = recv_messages(client, 1)
        assert r.conn == c and r.conn.id == c.id
        h = r.header()
        assert (h.type, h.tid, h.front_len, h.data_len) == (5, 77, 3, len(payload))
        assert h.src_type == msgr.EntityType.OSD and h.src_num == 0 and h.seq >= 1
        assert r.src == (msgr.EntityType.OSD, 0)
        piece = r.data[1000:2000]
        r.close()
        assert piece == payload[1000:2000]
        del piece


def test_send_received_message_back_keeps_views(live_baseline, client, echo_server):
    with client.connect(echo_server.addr) as c:
        c.send_copy(6, b"d" * 10000)
        (r,) = recv_messages(client, 1)
        part = r.data[:10]
        c.send(r)  # sent while a slice of it is alive: the slice keeps its own reference
        assert r.closed
        assert part == b"d" * 10
        del part
        (r2,) = recv_messages(client, 1)
        assert r2.tobytes() == b"d" * 10000
        r2.close()


def test_messages_are_freed_by_gc(live_baseline):
    for _ in range(1000):
        m = msgr.Message(1, data=b"x" * 3000)
        _ = m.data
    del m, _
