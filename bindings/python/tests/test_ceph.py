"""Talking to a real Ceph monitor (ceph-mon 16.2.x on loopback, auth none)
with examples/python/mon_versions.py's client: monmap, MMonGetVersion and
the `mon versions` command. Skipped, with the reason, only if the Ceph
binaries are missing and cannot be installed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

import msgr

import cephmon
from conftest import ROOT

EXAMPLE = os.path.join(ROOT or "", "examples", "python", "mon_versions.py")


@pytest.fixture(scope="module")
def mon(tmp_path_factory):
    if cephmon.missing():
        why = cephmon.try_install(ROOT)
        if cephmon.missing():
            pytest.skip(f"Ceph binaries {cephmon.missing()} not installed and could not be installed: {why}")
    m = cephmon.Mon(str(tmp_path_factory.mktemp("mon")))
    try:
        m.start()
    except BaseException:
        print(m.tail())
        m.stop()
        raise
    yield m
    m.stop()


@pytest.fixture(scope="module")
def mon_versions():
    if ROOT is None:
        pytest.skip("examples/python not found")
    spec = importlib.util.spec_from_file_location("mon_versions", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_monmap_version_and_command(live_baseline, mon, mon_versions):
    with mon_versions.MonClient(mon.addr, timeout=20) as mc:
        fsid, epoch = mc.get_monmap()
        assert str(fsid) == mon.fsid and epoch >= 1
        latest, oldest = mc.get_version("osdmap")
        assert latest >= 1 and oldest <= latest
        assert mc.conn.peer_name.startswith("mon.")
        info = mc.conn.info()
        assert info.lossy and info.peer_type == msgr.EntityType.MON
        rc, rs, out = mc.command({"prefix": "mon versions", "format": "json"})
        assert rc == 0, rs
        got = json.loads(out)
        assert got == cephmon.versions_json(mon)  # what the real CLI prints
        assert any("ceph version 16." in k for k in got)
        rc, rs, out = mc.command({"prefix": "no such command"})
        assert rc < 0 and rs  # the monitor's refusal comes back as an answer


def test_example_script(mon):
    r = subprocess.run([sys.executable, EXAMPLE, mon.addr], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"fsid {mon.fsid}" in r.stdout and "ceph version 16." in r.stdout


def test_unreachable_monitor_fails_cleanly(live_baseline, mon_versions):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with mon_versions.MonClient(f"v2:127.0.0.1:{port}", timeout=2) as mc:
        with pytest.raises(mon_versions.MonError):
            mc.get_monmap()
