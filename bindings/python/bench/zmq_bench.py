#!/usr/bin/env python3
"""zmq_bench.py: the W1-W5 workloads of ADAPTER.md with pyzmq, written as
the msgr Python bench is (examples/python/msgr_bench.py), so the two run the
same workload from Python in the same run (bench/compare.py).

    zmq_bench.py server --addr 127.0.0.1:PORT [--max-seconds S]
    zmq_bench.py client --addr 127.0.0.1:PORT --workload W1..W5 [--count N] [--size B] [--conns C]

As the libzmq anchor (shared/bench/anchors/zmq): DEALER client, ROUTER
server, 2 I/O threads each side, high-water marks of 100,000, the op as the
payload's first byte ('P' echo, 'S' count, 'E' answered with 'C' + the
8-byte little-endian count).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

import zmq


def ctx() -> zmq.Context:
    c = zmq.Context(io_threads=2)
    return c


def sock(c: zmq.Context, kind: int) -> zmq.Socket:
    s = c.socket(kind)
    s.setsockopt(zmq.SNDHWM, 100000)
    s.setsockopt(zmq.RCVHWM, 100000)
    s.setsockopt(zmq.LINGER, 0)
    return s


def server(args: argparse.Namespace) -> int:
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    c = ctx()
    r = sock(c, zmq.ROUTER)
    r.bind(f"tcp://{args.addr}")
    poller = zmq.Poller()
    poller.register(r, zmq.POLLIN)
    end = time.monotonic() + args.max_seconds
    counts: dict = {}
    recv, send = r.recv, r.send
    while not stop and time.monotonic() < end:
        if not poller.poll(200):
            continue
        while True:
            try:
                ident = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            m = recv()
            op = m[:1]
            if op == b"P":
                send(ident, zmq.SNDMORE)
                send(m)
            elif op == b"S":
                counts[ident] = counts.get(ident, 0) + 1
            elif op == b"E":
                n = counts.pop(ident, 0)
                send(ident, zmq.SNDMORE)
                send(b"C" + n.to_bytes(8, "little"))
    r.close()
    c.term()
    return 0


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
                "impl": "pyzmq",
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


def client(args: argparse.Namespace) -> int:
    w = args.workload
    c = ctx()
    ep = f"tcp://{args.addr}"
    perf = time.perf_counter_ns
    if w == "W1":
        count = args.count or 20000
        req = payload(args.size or 64, b"P")
        d = sock(c, zmq.DEALER)
        d.connect(ep)
        send, recv = d.send, d.recv
        lat = []
        t0 = 0
        for i in range(1000 + count):
            if i == 1000:
                t0 = perf()
            s = perf()
            send(req)
            rep = recv()
            e = perf()
            if rep != req:
                print("zmq_bench.py: echo mismatch", file=sys.stderr)
                return 1
            if i >= 1000:
                lat.append(e - s)
        report(w, count, count * len(req), (perf() - t0) / 1e9, lat)
    elif w in ("W2", "W3", "W4"):
        n = args.count or {"W2": 1_000_000, "W3": 200_000, "W4": 2000}[w]
        size = args.size or {"W2": 64, "W3": 4096, "W4": 1 << 20}[w]
        pl = payload(size, b"S")
        d = sock(c, zmq.DEALER)
        d.connect(ep)
        send = d.send
        t0 = time.perf_counter()
        for _ in range(n):
            send(pl)
        send(b"E")
        rep = d.recv()
        secs = time.perf_counter() - t0
        got = int.from_bytes(rep[1:], "little") if len(rep) == 9 and rep[:1] == b"C" else -1
        if got != n:
            print(f"zmq_bench.py: server counted {got} of {n}", file=sys.stderr)
            return 1
        report(w, n, n * size, secs, None)
    elif w == "W5":
        nconn, per = args.conns or 100, args.count or 2000
        req = payload(args.size or 64, b"P")
        socks = [sock(c, zmq.DEALER) for _ in range(nconn)]
        poller = zmq.Poller()
        for s in socks:
            s.connect(ep)
            poller.register(s, zmq.POLLIN)
        idx = {s: k for k, s in enumerate(socks)}
        left = [per + 10] * nconn
        sent_at = [0] * nconn
        lat = []
        active = nconn
        t0 = perf()
        for k, s in enumerate(socks):
            sent_at[k] = perf()
            s.send(req)
        while active:
            ready = poller.poll(5000)
            if not ready:
                print("zmq_bench.py: W5 stalled", file=sys.stderr)
                return 1
            for s, _ in ready:
                k = idx[s]
                while True:
                    try:
                        rep = s.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    t = perf()
                    if rep != req:
                        print("zmq_bench.py: echo mismatch", file=sys.stderr)
                        return 1
                    left[k] -= 1
                    if left[k] < per:
                        lat.append(t - sent_at[k])
                    if left[k] == 0:
                        active -= 1
                        break
                    sent_at[k] = perf()
                    s.send(req)
        report(w, len(lat), len(lat) * len(req), (perf() - t0) / 1e9, lat)
    else:
        print(f"zmq_bench.py: unknown workload {w}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    os._exit(0)  # skip the context's linger, as the C anchor does


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["server", "client"])
    ap.add_argument("--addr", default="127.0.0.1:7000")
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--workload", default="W1")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--conns", type=int, default=100)
    args = ap.parse_args()
    return server(args) if args.mode == "server" else client(args)


if __name__ == "__main__":
    sys.exit(main())
