"""The example programs run and check themselves."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from conftest import ROOT

EX = os.path.join(ROOT or "", "examples", "python")
pytestmark = pytest.mark.skipif(ROOT is None, reason="examples/python not found")


def test_echo_server_and_client_scripts():
    srv = subprocess.Popen([sys.executable, os.path.join(EX, "echo_server.py"), "127.0.0.1:0"],
                           stderr=subprocess.PIPE, text=True)
    try:
        line = srv.stderr.readline()
        addr = re.search(r"listening on (\S+)", line).group(1)
        r = subprocess.run([sys.executable, os.path.join(EX, "echo_client.py"), addr, "3000"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "3000 of 3000 echoes (0 bad)" in r.stdout
    finally:
        srv.send_signal(signal.SIGTERM)
        _, err = srv.communicate(timeout=10)
    assert srv.returncode == 0
    assert "echoed 3000 messages" in err


def test_aio_echo_script():
    r = subprocess.run([sys.executable, os.path.join(EX, "aio_echo.py"), "--conns", "100", "--count", "5"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "500 of 500 echoes good, 100 connections" in r.stdout
