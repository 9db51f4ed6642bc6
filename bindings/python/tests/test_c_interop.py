"""Python against the C examples (build/examples, built by `make examples`
if needed): both directions, and the benchmark protocol."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import msgr

from conftest import ROOT, EchoServer, recv_messages


def start_c_server(path: str, *args: str) -> "tuple[subprocess.Popen, str]":
    p = subprocess.Popen([path, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 15
    line = ""
    while time.monotonic() < end:
        line = p.stderr.readline()
        m = re.search(r"(?:listening on|server on) (\S+)", line)
        if m:
            return p, m.group(1)
        if not line and p.poll() is not None:
            break
    p.kill()
    raise AssertionError(f"{path} did not start: {line}")


def stop(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def test_python_client_c_echo_server(live_baseline, c_examples):
    p, addr = start_c_server(os.path.join(c_examples, "echo_server"), "127.0.0.1:0")
    try:
        with msgr.Messenger("client.21") as cli:
            cli.start()
            with cli.connect(addr) as c:
                n = 2000
                for i in range(n):
                    c.send_copy(1, b"data %d" % i, front=b"front %d" % i, tid=i)
                got = recv_messages(cli, n)
                for i, m in enumerate(sorted(got, key=lambda m: m.tid)):
                    assert m.tid == i and m.front == b"front %d" % i and m.data == b"data %d" % i
                    m.close()
    finally:
        stop(p)


def test_c_echo_client_python_server(live_baseline, c_examples):
    srv = EchoServer()
    try:
        r = subprocess.run([os.path.join(c_examples, "echo_client"), srv.addr, "5000"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "5000 of 5000 echoes (0 bad)" in r.stdout
        assert srv.echo.echoed == 5000
    finally:
        srv.close()


BENCH = os.path.join(ROOT or "", "examples", "python", "msgr_bench.py")


@pytest.mark.skipif(ROOT is None, reason="examples/python not found")
@pytest.mark.parametrize("workload,count", [("W1", 300), ("W2", 20000), ("W4", 20), ("W5", 20)])
def test_python_bench_client_c_server(c_examples, workload, count):
    p, addr = start_c_server(os.path.join(c_examples, "msgr_bench"), "server", "--addr", "127.0.0.1:0")
    try:
        args = ["--conns", "10"] if workload == "W5" else []
        r = subprocess.run([sys.executable, BENCH, "client", "--addr", addr, "--workload", workload, "--count", str(count), *args],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        res = json.loads(r.stdout.strip().splitlines()[-1])
        assert res["impl"] == "msgr-py" and res["workload"] == workload
        assert res["msgs"] == (count * 10 if workload == "W5" else count)
    finally:
        stop(p)


@pytest.mark.skipif(ROOT is None, reason="examples/python not found")
@pytest.mark.parametrize("workload,count", [("W1", 300), ("W2", 20000), ("W3", 2000)])
def test_c_bench_client_python_server(c_examples, workload, count):
    p = subprocess.Popen([sys.executable, BENCH, "server", "--addr", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
    try:
        line = p.stderr.readline()
        addr = re.search(r"server on (\S+)", line).group(1)
        r = subprocess.run([os.path.join(c_examples, "msgr_bench"), "client", "--addr", addr, "--workload", workload,
                            "--count", str(count)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout.strip().splitlines()[-1])["msgs"] == count
    finally:
        stop(p)
