"""No leak: file descriptors, Python memory (tracemalloc) and library
objects stay bounded over 10,000 connect/close cycles."""

from __future__ import annotations

import gc
import os
import time
import tracemalloc

import msgr

from conftest import EchoServer


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_connect_close_cycles_leak_nothing(live_baseline):
    cycles = 10_000
    srv = EchoServer()
    cli = msgr.Messenger("client.31", options={"ms_async_op_threads": 1})
    cli.set_policy(msgr.EntityType.OSD, msgr.Policy.lossy_client())
    cli.start()
    try:

        def cycle(i: int) -> None:
            # connect, one round trip (so the session really comes up), close
            c = cli.connect(srv.addr)
            c.send_copy(1, b"%d" % i)
            end = time.monotonic() + 10
            while True:
                got = [x for x in cli.recv_batch(16, timeout=1.0) if isinstance(x, msgr.Message)]
                if got:
                    assert got[0].tobytes() == b"%d" % i
                    break
                assert time.monotonic() < end, f"no echo in cycle {i}"
            c.mark_down()
            c.close()

        for i in range(200):  # warm up: caches, lazily created objects
            cycle(i)
        gc.collect()
        time.sleep(0.2)
        fds0 = open_fds()
        tracemalloc.start()
        mem0 = tracemalloc.get_traced_memory()[0]
        t0 = time.monotonic()
        for i in range(cycles):
            cycle(i)
        elapsed = time.monotonic() - t0
        gc.collect()
        mem1 = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        # Marked-down sockets close asynchronously: give them a moment.
        end = time.monotonic() + 10
        while open_fds() > fds0 + 4 and time.monotonic() < end:
            time.sleep(0.05)
        fds1 = open_fds()
        assert fds1 <= fds0 + 4, f"fds grew from {fds0} to {fds1} over {cycles} cycles"
        growth = mem1 - mem0
        assert growth < 256 * 1024, f"Python memory grew by {growth} bytes over {cycles} cycles"
        # Closed connections' handles go stale when the library's garbage
        # collector has run; they must not pile up with the cycles.
        end = time.monotonic() + 10
        while msgr.live_counts()["conns"] > cycles // 10 and time.monotonic() < end:
            time.sleep(0.05)
        assert msgr.live_counts()["conns"] <= cycles // 10, msgr.live_counts()
        print(f"{cycles} cycles in {elapsed:.1f} s; fds {fds0}->{fds1}; tracemalloc growth {growth} B")
    finally:
        cli.close()
        srv.close()
