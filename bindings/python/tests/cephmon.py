"""A real ceph-mon on loopback for the tests, as core/internal/testenv does
for Go (see /work/shared/msgr2/ceph-on-loopback.md): msgr2 only, auth none,
a free port, fast paxos, ready once `ceph health` answers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from typing import Optional

BINARIES = ("ceph-mon", "monmaptool", "ceph")


def missing() -> list:
    return [b for b in BINARIES if shutil.which(b) is None]


def try_install(root: Optional[str]) -> str:
    """Runs scripts/ensure-deps.sh ceph once, as root (it uses apt-get)."""
    if os.geteuid() != 0:
        return "not root: run scripts/ensure-deps.sh ceph as root"
    if root is None or not os.path.exists(os.path.join(root, "scripts", "ensure-deps.sh")):
        return "scripts/ensure-deps.sh not found"
    r = subprocess.run([os.path.join(root, "scripts", "ensure-deps.sh"), "ceph"], capture_output=True, text=True, timeout=900)
    return "" if r.returncode == 0 else f"ensure-deps.sh ceph failed: {r.stderr[-500:]}"


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("CEPH_ARGS", "CEPH_CONF")}


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Mon:
    def __init__(self, base: str) -> None:
        self.dir = base
        # The admin socket path must fit sockaddr_un: a short run dir.
        self.run_dir = tempfile.mkdtemp(prefix="cephrun")
        self.fsid = str(uuid.uuid4())
        self.port = _free_port()
        self.addr = f"v2:127.0.0.1:{self.port}"
        self.conf = os.path.join(base, "ceph.conf")
        self.log = os.path.join(base, "mon.a.log")
        self.proc: Optional[subprocess.Popen] = None

    def write_conf(self) -> None:
        lines = {
            "fsid": self.fsid,
            "mon host": self.addr,
            "public addr": "127.0.0.1",
            "auth cluster required": "none",
            "auth service required": "none",
            "auth client required": "none",
            "auth allow insecure global id reclaim": "true",
            "mon warn on insecure global id reclaim allowed": "false",
            "ms bind msgr1": "false",
            "ms bind msgr2": "true",
            "ms bind ipv6": "false",
            "ms bind retry count": "1",
            "ms bind retry delay": "1",
            "mon data": f"{self.dir}/mon.$id",
            "log file": f"{self.dir}/$name.log",
            "mon cluster log file": f"{self.dir}/cluster.log",
            "crash dir": f"{self.dir}/crash",
            "run dir": self.run_dir,
            "keyring": "/dev/null",
            "paxos propose interval": "0.1",
            "paxos min wait": "0.01",
            "mon data avail warn": "1",
            "mon data avail crit": "0",
        }
        with open(self.conf, "w") as f:
            f.write("[global]\n")
            for k, v in lines.items():
                f.write(f"{k} = {v}\n")
            f.write(f"[mon]\nadmin socket = {self.run_dir}/$name.asok\npid file = {self.run_dir}/$name.pid\n")

    def start(self, timeout: float = 30.0) -> None:
        self.write_conf()
        monmap = os.path.join(self.dir, "monmap")
        subprocess.run(["monmaptool", "--create", "--fsid", self.fsid, "--addv", "a", f"[{self.addr}]", monmap],
                       check=True, capture_output=True, env=_env(), timeout=30)
        subprocess.run(["ceph-mon", "-c", self.conf, "-i", "a", "--mkfs", "--monmap", monmap],
                       check=True, capture_output=True, env=_env(), timeout=60, cwd=self.dir)
        err = open(os.path.join(self.dir, "mon.stderr"), "w")
        self.proc = subprocess.Popen(["ceph-mon", "-f", "-c", self.conf, "-i", "a"], stdout=err, stderr=err,
                                     env=_env(), cwd=self.dir, start_new_session=True)
        err.close()
        end = time.monotonic() + timeout
        last = ""
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ceph-mon exited during start-up: {self.tail()}")
            # A new leader refuses clients until its auth service committed
            # its first map: ready once a real client gets through.
            r = subprocess.run(["ceph", "-c", self.conf, "--connect-timeout", "5", "health"],
                               capture_output=True, text=True, env=_env(), timeout=30)
            if r.returncode == 0:
                return
            last = r.stderr
            time.sleep(0.2)
        raise RuntimeError(f"ceph-mon not ready in {timeout} s: {last[-500:]} {self.tail()}")

    def tail(self, n: int = 3000) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def ceph(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["ceph", "-c", self.conf, "--connect-timeout", str(int(timeout)), *args],
                              capture_output=True, text=True, env=_env(), timeout=timeout + 10)

    def stop(self) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        shutil.rmtree(self.run_dir, ignore_errors=True)


def versions_json(mon: Mon) -> dict:
    r = mon.ceph("mon", "versions", "--format", "json")
    r.check_returncode()
    return json.loads(r.stdout)
