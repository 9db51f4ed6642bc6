#!/usr/bin/env python3
"""compare.py: msgr's Python package against pyzmq on the same workloads,
in the same run, interleaved (this machine is shared and noisy: only
figures from one run compare).

    python bindings/python/bench/compare.py [--workloads W1,W2] [--repeat 3]
                                            [--count N] [--json FILE]

Each implementation is a server and a client process following
/work/shared/bench/ADAPTER.md: examples/python/msgr_bench.py (msgr) and
bench/zmq_bench.py (pyzmq), both pure Python on both ends, run with this
interpreter. Prints the median of each figure and msgr's ratio to pyzmq
(W1: p50 latency, lower is better; W2-W4: msgs/s or MB/s, higher is better).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
IMPLS = {
    "msgr-py": os.path.join(ROOT, "examples", "python", "msgr_bench.py"),
    "pyzmq": os.path.join(HERE, "zmq_bench.py"),
}
METRIC = {"W1": "p50_us", "W2": "msgs_per_s", "W3": "mb_per_s", "W4": "mb_per_s", "W5": "msgs_per_s"}
LOWER_IS_BETTER = {"p50_us", "p99_us"}


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port: int, proc: subprocess.Popen, deadline: float = 15.0) -> bool:
    end = time.time() + deadline
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def run_one(impl: str, workload: str, count: int, timeout: float) -> dict:
    script = IMPLS[impl]
    port = free_port()
    addr = f"127.0.0.1:{port}"
    srv = subprocess.Popen(
        [sys.executable, script, "server", "--addr", addr, "--max-seconds", str(int(timeout) + 30)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        if not wait_port(port, srv):
            err = srv.stderr.read().decode(errors="replace")[-300:] if srv.poll() is not None and srv.stderr else ""
            return {"impl": impl, "workload": workload, "error": f"server did not listen {err}"}
        cmd = [sys.executable, script, "client", "--addr", addr, "--workload", workload]
        if count:
            cmd += ["--count", str(count)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"impl": impl, "workload": workload, "error": "client timed out"}
        lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
        if p.returncode != 0 or not lines:
            return {"impl": impl, "workload": workload, "error": (p.stderr or p.stdout)[-300:] or f"rc={p.returncode}"}
        r = json.loads(lines[-1])
        r["impl"] = impl
        return r
    finally:
        try:
            os.killpg(srv.pid, signal.SIGTERM)
            srv.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(srv.pid, signal.SIGKILL)
            srv.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="W1,W2")
    ap.add_argument("--impls", default="msgr-py,pyzmq")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--count", type=int, default=0, help="override the workload's count")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--json", help="append every raw result to this JSON-lines file")
    args = ap.parse_args()
    impls = args.impls.split(",")
    for i in impls:
        if i not in IMPLS:
            ap.error(f"unknown impl {i}")
    results: dict = {}
    for r in range(args.repeat):
        for w in args.workloads.split(","):
            for impl in impls if r % 2 == 0 else list(reversed(impls)):
                res = run_one(impl, w, args.count, args.timeout)
                print(json.dumps(res), file=sys.stderr, flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps(res) + "\n")
                results.setdefault((w, impl), []).append(res)
    print(f"\nmedian of {args.repeat} (noisy shared machine: compare within this run only)")
    print(f"{'workload':8} {'impl':8} {'figure':>12} {'value':>14} {'p99_us':>10} {'ratio msgr/pyzmq':>18}")
    status = 0
    for w in args.workloads.split(","):
        metric = METRIC[w]
        med = {}
        for impl in impls:
            ok = [x for x in results.get((w, impl), []) if "error" not in x]
            if not ok:
                errs = [x.get("error") for x in results.get((w, impl), [])]
                print(f"{w:8} {impl:8} {'error':>12} {str(errs)[:60]}")
                status = 1
                continue
            med[impl] = statistics.median(x[metric] for x in ok)
            p99 = statistics.median(x["p99_us"] for x in ok) if ok[0].get("p99_us") is not None else None
            ratio = ""
            if impl == "msgr-py" and "pyzmq" in impls:
                pass
            print(f"{w:8} {impl:8} {metric:>12} {med[impl]:>14,.1f} {'' if p99 is None else f'{p99:,.1f}':>10} {ratio:>18}")
        if "msgr-py" in med and "pyzmq" in med and med["pyzmq"]:
            ratio = med["msgr-py"] / med["pyzmq"]
            better = ratio <= 1 if metric in LOWER_IS_BETTER else ratio >= 1
            note = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
            print(f"{w:8} {'ratio':8} {metric:>12} {ratio:>14.2f}  ({note}; msgr {'ahead' if better else 'behind'})")
    return status


if __name__ == "__main__":
    sys.exit(main())
