#!/usr/bin/env python3
"""Connection-count curve: the seed's claim that the async model scales where
thread-per-connection does not, measured.

For each implementation and each connection count it runs the W5 workload of
../shared/bench/ADAPTER.md (every connection a 64 B ping-pong, all at once)
and records total round trips/s, p99, and the peak thread count and RSS of
the server and client processes (sampled from /proc every 50 ms). The
picture shows the server's threads and RSS (the process serving N
connections in every implementation) and names the runs that failed.

  bench/conncurve.py --msgr-bench BUILD/bin/msgr-bench [--anchors DIR]
                     [--conns 1,10,100,1000,5000] [--rounds 200000]
                     [--out bench/results/conncurve]

Writes OUT.jsonl (one line per run) and OUT.png (needs matplotlib; pip
installs it into the user site if missing, and says so). Every run is bounded
by --timeout; a run that fails or times out is recorded with its error and
drawn as a gap, never retried.
"""
import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port: int, deadline: float = 10.0) -> bool:
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def proc_status(pid: int) -> tuple[int, int]:
    """(threads, RSS KiB) of pid, or (0, 0) once it is gone."""
    threads = rss = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    threads = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return threads, rss


class Peak:
    """Samples a process's threads and RSS until stopped; keeps the peaks."""

    def __init__(self, pid: int) -> None:
        self.pid, self.threads, self.rss = pid, 0, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            t, r = proc_status(self.pid)
            self.threads, self.rss = max(self.threads, t), max(self.rss, r)

    def stop(self) -> None:
        self._stop.set()
        self._t.join(1)


def run(name: str, server: str, client: str, conns: int, count: int, timeout: float) -> dict:
    port = free_port()
    addr = f"127.0.0.1:{port}"
    rec: dict = {"impl": name, "conns": conns, "count": count}
    srv = subprocess.Popen(shlex.split(server.format(addr=addr)), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if not wait_port(port):
            rec["error"] = "server did not listen"
            return rec
        sp = Peak(srv.pid)
        cmd = shlex.split(client.format(addr=addr)) + ["--workload", "W5", "--conns", str(conns), "--count", str(count)]
        cl = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cp = Peak(cl.pid)
        try:
            out, err = cl.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            cl.kill()
            cl.communicate()
            rec["error"] = f"timeout after {timeout:.0f}s"
            return rec
        finally:
            sp.stop()
            cp.stop()
        rec.update(server_threads=sp.threads, server_rss_kib=sp.rss, client_threads=cp.threads, client_rss_kib=cp.rss)
        lines = [l for l in out.splitlines() if l.startswith("{")]
        if cl.returncode != 0 or not lines:
            rec["error"] = f"client exit {cl.returncode}: {err.strip()[-300:]}"
            return rec
        j = json.loads(lines[-1])
        rec.update(rt_per_s=j.get("msgs_per_s"), p99_us=j.get("p99_us"), p50_us=j.get("p50_us"), seconds=j.get("seconds"))
        return rec
    finally:
        srv.terminate()
        try:
            srv.wait(5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


def plot(recs: list[dict], path: str) -> None:
    try:
        import matplotlib  # type: ignore
    except ImportError:
        print("conncurve: installing matplotlib with pip (--user) for the picture", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--user", "-q", "matplotlib"], check=True)
        import site, importlib
        importlib.reload(site)
        import matplotlib  # type: ignore
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore

    impls = list(dict.fromkeys(r["impl"] for r in recs))
    # Threads and RSS of the server: the process that serves N connections
    # in every implementation (msgr-bench's W5 client is N messengers, one
    # per connection, so its footprint is not the model's).
    panels = [("rt_per_s", "round trips/s (total)"), ("p99_us", "p99 round trip (µs)"),
              ("threads", "server threads (peak)"), ("rss", "server RSS MiB (peak)")]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (key, title) in zip(axes.flat, panels):
        for impl in impls:
            xs, ys = [], []
            for r in recs:
                if r["impl"] != impl or "error" in r:
                    continue
                if key == "threads":
                    v = r["server_threads"]
                elif key == "rss":
                    v = r["server_rss_kib"] / 1024
                else:
                    v = r.get(key)
                if v:
                    xs.append(r["conns"])
                    ys.append(v)
            ax.plot(xs, ys, marker="o", label=impl)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("connections")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes.flat[0].legend()
    failed = [f"{r['impl']} at {r['conns']}: {r['error'][:60]}" for r in recs if "error" in r]
    if failed:
        fig.text(0.01, 0.005, "failed: " + "; ".join(failed), fontsize=8)
    fig.suptitle("W5 ping-pong (64 B) by connection count, one run, this machine (2 cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--msgr-bench", default="build/bin/msgr-bench")
    ap.add_argument("--anchors", default=os.environ.get("BENCH_BIN", ""), help="dir with rawc/gonet anchors (optional)")
    ap.add_argument("--conns", default="1,10,100,1000,5000")
    ap.add_argument("--rounds", type=int, default=200000, help="total round trips per run (split over connections, at least 20 each)")
    ap.add_argument("--timeout", type=float, default=180)
    ap.add_argument("--out", default="bench/results/conncurve")
    ap.add_argument("--replot", action="store_true", help="redraw OUT.png from OUT.jsonl without running")
    a = ap.parse_args()
    if a.replot:
        with open(a.out + ".jsonl") as f:
            plot([json.loads(l) for l in f if l.strip()], a.out + ".png")
        return 0
    mb = os.path.abspath(a.msgr_bench)
    impls = {
        "msgr async+posix": (f"{mb} server --addr {{addr}} --max-seconds 600 --ms-type async+posix",
                             f"{mb} client --addr {{addr}} --ms-type async+posix"),
        "msgr simple": (f"{mb} server --addr {{addr}} --max-seconds 600 --ms-type simple",
                        f"{mb} client --addr {{addr}} --ms-type simple"),
    }
    for anchor in ("rawc", "gonet"):
        b = os.path.join(a.anchors, anchor) if a.anchors else ""
        if b and os.path.exists(b):
            impls[anchor] = (f"{b} server --addr {{addr}} --max-seconds 600", f"{b} client --addr {{addr}}")
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    recs = []
    with open(a.out + ".jsonl", "w") as f:
        for n in [int(x) for x in a.conns.split(",")]:
            for name, (srv, cl) in impls.items():
                r = run(name, srv, cl, n, max(20, a.rounds // n), a.timeout)
                print(json.dumps(r), flush=True)
                f.write(json.dumps(r) + "\n")
                recs.append(r)
    plot(recs, a.out + ".png")
    print(f"conncurve: wrote {a.out}.jsonl and {a.out}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
