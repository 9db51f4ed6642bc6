#!/usr/bin/env python3
"""msgr_bench.py: the W1-W5 benchmark server and client of
/work/shared/bench/ADAPTER.md over the Python package.

    msgr_bench.py server --addr 127.0.0.1:PORT [--max-seconds S]
    msgr_bench.py client --addr 127.0.0.1:PORT --workload W1..W5
                         [--count N] [--size B] [--conns C]

The client prints one JSON line. The protocol is the one of the C and Go
twins (examples/c/msgr_bench.c, cmd/msgr-bench), so any pairing runs: MPing
messages (type 2), the payload in the data segment, its first byte the op:
'P' echoed back, 'S' counted, 'E' answered with 'C' + the 8-byte
little-endian count. Lossless sessions, one worker thread (as the Go and C
twins).

The server takes messages in fast dispatch (Messenger.set_fast_dispatch:
the worker thread calls Python once per read with the read's messages,
headers and payloads copied out in one block) and echoes with send_copy;
its main thread only takes connection events. The W2-W4 client sends batches of 64
with send_copy_many and keeps a window of what the library holds
(Connection.wait_held: the sender sleeps until the worker wakes it). The
W1 client sends each ping from the previous reply's fast dispatch; W5
drives 100 connections from one selector in pull mode.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import sys
import threading
import time

import msgr
from msgr import EntityType, Message, Policy

MSG_PING = 2
DATA = msgr.Segment.DATA
WINDOW_BYTES = 64 << 20


def new_messenger(name: str, nonce: int, group: str | None = None) -> msgr.Messenger:
    opts: dict = {"ms_async_op_threads": 1}
    if group:
        opts["ms_stack_group"] = group  # W5: 100 messengers on one stack
    for kv in filter(None, os.environ.get("MSGR_BENCH_OPTS", "").split(",")):
        k, _, v = kv.partition("=")
        opts[k] = v
    m = msgr.Messenger(name, nonce, opts)
    m.set_policy(EntityType.ANY, Policy.stateful_server())
    m.set_policy(EntityType.OSD, Policy.lossless_client())
    return m


# ---- server ------------------------------------------------------------------


def server(args: argparse.Namespace) -> int:
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    m = new_messenger("osd.0", 0)  # nonce 0: clients dial a bare IP:PORT
    counts: dict = {}  # sink count per connection id

    def on_read(batch: msgr.ReadBatch) -> None:
        # Fast dispatch: the worker thread hands over each read's messages,
        # all of one connection, also by column (no tuple per message). A
        # run of sink messages is counted at once.
        conn = batch.conn
        k = conn.id  # an int key: hashing it costs no Python call
        ops = [d[:1] for d in batch.datas]
        if batch.types.count(MSG_PING) != len(ops):
            ops = [op if t == MSG_PING else b"" for op, t in zip(ops, batch.types)]
        sinks = ops.count(b"S")
        if sinks == len(ops):
            counts[k] = counts.get(k, 0) + sinks
            return
        for it, op in zip(batch, ops):
            if op == b"S":
                counts[k] = counts.get(k, 0) + 1
            elif op == b"P":
                try:
                    conn.send_copy(MSG_PING, it.data)  # the echo
                except msgr.Error:
                    pass  # the connection went away
            elif op == b"E":
                n = counts.pop(k, 0)
                try:
                    conn.send_copy(MSG_PING, b"C" + n.to_bytes(8, "little"))
                except msgr.Error:
                    pass

    m.set_fast_dispatch(on_read)
    m.bind(args.addr)
    m.start()
    print(f"msgr_bench.py server on {m.addrs}", file=sys.stderr, flush=True)
    end = time.monotonic() + args.max_seconds
    while not stop and time.monotonic() < end:
        # Connection events still come through the pull queue.
        for ev in m.recv_batch(64, 0.2):
            if ev.type == msgr.EventType.RESET:
                counts.pop(ev.conn.id, None)
    m.close()
    return 0


# ---- client ------------------------------------------------------------------


def payload(n: int, op: bytes) -> bytes:
    b = bytes((ord("a") + i % 26) for i in range(n))
    return op + b[1:] if n else b""


def report(w: str, msgs: int, nbytes: float, secs: float, lat_ns: list | None) -> None:
    p50 = p99 = None
    if lat_ns:
        lat_ns.sort()
        k = len(lat_ns) - 1
        p50 = round(lat_ns[int(0.5 * k)] / 1e3, 3)
        p99 = round(lat_ns[int(0.99 * k)] / 1e3, 3)
    print(
        json.dumps(
            {
                "impl": "msgr-py",
                "workload": w,
                "msgs": msgs,
                "bytes": nbytes,
                "seconds": round(secs, 6),
                "msgs_per_s": round(msgs / secs, 1),
                "mb_per_s": round(nbytes / secs / 1e6, 2),
                "p50_us": p50,
                "p99_us": p99,
            }
        ),
        flush=True,
    )


class Failed(Exception):
    pass


def next_message(m: msgr.Messenger, deadline: float) -> Message:
    """The next message on m (events are checked and skipped)."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failed("timed out waiting for a reply")
        try:
            it = m.recv(timeout=min(left, 5.0))
        except msgr.Timeout:
            continue
        if it.__class__ is Message:
            return it  # type: ignore[return-value]
        if it.type in (msgr.EventType.RESET, msgr.EventType.REMOTE_RESET, msgr.EventType.REFUSED):
            raise Failed(f"connection event {it.type.name}: the run cannot verify")


def w1(args: argparse.Namespace, deadline: float) -> int:
    """Ping-pong driven from fast dispatch: each reply's callback, on the
    worker thread, records the round trip and sends the next ping."""
    count = args.count or 20000
    warm = 1000
    req = payload(args.size or 64, b"P")
    pid = os.getpid()
    lat: list = []
    done = threading.Event()
    why: list = []
    perf = time.perf_counter_ns
    st = {"left": warm + count, "t": 0}
    with new_messenger(f"client.{pid}", pid) as m:

        def on_read(items: msgr.ReadBatch) -> None:
            for it in items:
                t = perf()
                if it.data != req:
                    why.append("echo differs from the request")
                    done.set()
                    return
                if st["left"] <= count:
                    lat.append(t - st["t"])
                st["left"] -= 1
                if st["left"] == 0:
                    done.set()
                    return
                st["t"] = perf()
                it.conn.send_copy(MSG_PING, req)

        m.set_fast_dispatch(on_read)
        m.start()
        with m.connect(args.addr, EntityType.OSD) as c:
            t0 = perf()
            st["t"] = perf()
            c.send_copy(MSG_PING, req)
            while not done.wait(0.2):
                for ev in m.recv_batch(16, 0):
                    if ev.type in (msgr.EventType.RESET, msgr.EventType.REMOTE_RESET):
                        raise Failed("connection reset")
                if time.monotonic() > deadline:
                    raise Failed("timed out")
            secs = (perf() - t0) / 1e9
    if why:
        raise Failed(why[0])
    report("W1", count, count * len(req), secs, lat)
    return 0


def w234(args: argparse.Namespace, deadline: float) -> int:
    w = args.workload
    n = args.count or {"W2": 1_000_000, "W3": 200_000, "W4": 2000}[w]
    size = args.size or {"W2": 64, "W3": 4096, "W4": 1 << 20}[w]
    window = max(4, min(16384, WINDOW_BYTES // size))
    batch = 64 if window >= 64 else 1
    pl = payload(size, b"S")
    many = [pl] * batch
    pid = os.getpid()
    with new_messenger(f"client.{pid}", pid) as m:
        m.start()
        with m.connect(args.addr, EntityType.OSD) as c:
            t0 = time.perf_counter()
            sent = 0
            send_many = c.send_copy_many
            held = 0
            while sent < n:
                if held >= window:
                    # The library holds a window (queued, or written and
                    # not yet acknowledged): sleep until it drains to half,
                    # so the sender sleeps once per half window.
                    try:
                        c.wait_held(window // 2, timeout=max(0.0, deadline - time.monotonic()))
                    except msgr.Timeout:
                        raise Failed(f"stalled at {sent} sent") from None
                    held = c.held
                b = min(batch, n - sent)
                send_many(MSG_PING, many if b == batch else many[:b])
                sent += b
                held += b  # an upper bound: no call per batch to look
            c.send_copy(MSG_PING, b"E")
            reply = next_message(m, deadline).tobytes(DATA)
            secs = time.perf_counter() - t0
    if len(reply) != 9 or reply[:1] != b"C":
        raise Failed(f"bad count reply {reply!r}")
    got = int.from_bytes(reply[1:], "little")
    if got != n:
        raise Failed(f"server counted {got} of {n}")
    report(w, n, n * size, secs, None)
    return 0


def w5(args: argparse.Namespace, deadline: float) -> int:
    """100 connections, each a ping-pong chain, from one thread: a messenger
    per connection (a messenger keeps one connection per peer, as Ceph's),
    all on one shared stack, their event fds in one selector."""
    nconn = args.conns or 100
    per = args.count or 2000
    req = payload(args.size or 64, b"P")
    pid = os.getpid()
    ms = [new_messenger(f"client.{pid * 1000 + k}", (pid + k) & 0xFFFFFFFF, "w5") for k in range(nconn)]
    sel = selectors.DefaultSelector()
    conns = []
    try:
        for k, m in enumerate(ms):
            m.start()
            conns.append(m.connect(args.addr, EntityType.OSD))
            sel.register(m.fileno(), selectors.EVENT_READ, k)
        left = [per + 10] * nconn  # 10 warm-up round trips each
        sent_at = [0] * nconn
        lat = []
        perf = time.perf_counter_ns
        active = nconn
        t0 = perf()
        for k in range(nconn):
            sent_at[k] = perf()
            conns[k].send_copy(MSG_PING, req)
        while active:
            ready = sel.select(timeout=5.0)
            if not ready and time.monotonic() > deadline:
                raise Failed("W5 stalled")
            for key, _ in ready:
                k = key.data
                for it in ms[k].recv_batch(64, 0):
                    if it.__class__ is not Message:
                        if it.type in (msgr.EventType.RESET, msgr.EventType.REMOTE_RESET):
                            raise Failed("connection reset")
                        continue
                    t = perf()
                    if it.tobytes(DATA) != req:
                        raise Failed("echo differs from the request")
                    left[k] -= 1
                    if left[k] < per:
                        lat.append(t - sent_at[k])
                    if left[k] == 0:
                        active -= 1
                        continue
                    sent_at[k] = perf()
                    conns[k].send_copy(MSG_PING, req)
        secs = (perf() - t0) / 1e9
    finally:
        sel.close()
        for c in conns:
            c.close()
        for m in ms:
            m.close()
    report("W5", len(lat), len(lat) * len(req), secs, lat)
    return 0


def client(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + 240
    try:
        if args.workload == "W1":
            return w1(args, deadline)
        if args.workload in ("W2", "W3", "W4"):
            return w234(args, deadline)
        if args.workload == "W5":
            return w5(args, deadline)
    except Failed as e:
        print(f"msgr_bench.py: {e}", file=sys.stderr)
        return 1
    print(f"msgr_bench.py: unknown workload {args.workload}", file=sys.stderr)
    return 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["server", "client"])
    ap.add_argument("--addr", default="127.0.0.1:6800")
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--workload", default="W1")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--conns", type=int, default=100)
    args = ap.parse_args()
    return server(args) if args.mode == "server" else client(args)


if __name__ == "__main__":
    sys.exit(main())
