"""Shared fixtures: messengers on loopback, an echo server thread, the C
examples, a real Ceph monitor (tests/cephmon.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from typing import Iterator, List, Optional

import pytest

import msgr

HERE = os.path.dirname(os.path.abspath(__file__))


def repo_root() -> Optional[str]:
    """The repository checkout these tests came from (go.mod and
    include/msgr.h above them), or None."""
    d = HERE
    while True:
        if os.path.isfile(os.path.join(d, "go.mod")) and os.path.isfile(os.path.join(d, "include", "msgr.h")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


ROOT = repo_root()


def wait_for(cond, timeout: float = 10.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def recv_messages(m: msgr.Messenger, n: int, timeout: float = 10.0) -> List[msgr.Message]:
    """Exactly n messages from m (events skipped), or fail after timeout."""
    out: List[msgr.Message] = []
    end = time.monotonic() + timeout
    while len(out) < n:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"got {len(out)} of {n} messages in {timeout} s")
        for it in m.recv_batch(256, timeout=min(left, 0.5)):
            if isinstance(it, msgr.Message):
                out.append(it)
    return out


class Echo(msgr.Dispatcher):
    """Sends every message back as it is; counts events."""

    def __init__(self) -> None:
        self.echoed = 0
        self.accepts = 0
        self.resets = 0

    def dispatch(self, conn: msgr.Connection, msg: msgr.Message) -> bool:
        try:
            conn.send(msg)
            self.echoed += 1
        except (msgr.NotConnected, msgr.BadHandle):
            pass
        return True

    def handle_accept(self, conn: msgr.Connection) -> None:
        self.accepts += 1

    def handle_reset(self, conn: msgr.Connection) -> bool:
        self.resets += 1
        return True


class EchoServer:
    """A Python messenger (osd.0, nonce 0) echoing on its own thread."""

    def __init__(self, options: Optional[dict] = None) -> None:
        self.m = msgr.Messenger("osd.0", nonce=0, options=options or {"ms_async_op_threads": 2})
        self.m.set_policy(msgr.EntityType.CLIENT, msgr.Policy.stateless_server())
        self.echo = Echo()
        self.m.add_dispatcher(self.echo)
        self.m.bind("127.0.0.1:0")
        self.m.start()
        self.addr = self.m.addrs
        self.stop = threading.Event()
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.m.run(self.stop, poll_interval=0.05)
        except BaseException as e:  # reported by close()
            self.error = e

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "echo server thread did not stop"
        self.m.close()
        if self.error is not None:
            raise self.error


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    s = EchoServer()
    yield s
    s.close()


@pytest.fixture
def client() -> Iterator[msgr.Messenger]:
    m = msgr.Messenger("client.77", options={"ms_async_op_threads": 2})
    m.set_policy(msgr.EntityType.OSD, msgr.Policy.lossless_client())
    m.start()
    yield m
    m.close()


@pytest.fixture(scope="session")
def c_examples() -> str:
    """build/examples with the C example programs, built with `make
    examples` if absent (skipped only when there is no C compiler)."""
    if ROOT is None:
        pytest.skip("not inside the repository checkout: no C examples")
    d = os.path.join(ROOT, "build", "examples")
    need = ["echo_server", "echo_client", "msgr_bench"]
    if not all(os.access(os.path.join(d, n), os.X_OK) for n in need):
        if not (shutil.which("cc") or shutil.which("gcc")):
            pytest.skip("no C compiler: cannot build the C examples")
        r = subprocess.run(["make", "examples"], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"make examples failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return d


@pytest.fixture
def live_baseline() -> Iterator[dict]:
    """Fails the test if it leaves library objects (messengers, connection
    handles, messages) alive."""
    import gc

    gc.collect()
    before = msgr.live_counts()
    yield before
    gc.collect()
    end = time.monotonic() + 5
    while True:
        after = msgr.live_counts()
        if all(after[k] <= before[k] for k in ("messengers", "conns", "msgs")):
            break
        if time.monotonic() > end:
            raise AssertionError(f"library objects left: before {before}, after {after}")
        time.sleep(0.02)
        gc.collect()


PY = sys.executable
