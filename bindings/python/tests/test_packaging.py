"""Packaging: an sdist that carries the Go sources, and a wheel built from
that sdist alone that carries libmsgr.so (py3-none-<platform>)."""

from __future__ import annotations

import glob
import importlib.util
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

from conftest import ROOT


@pytest.mark.skipif(ROOT is None, reason="not inside the repository checkout")
def test_sdist_then_wheel_from_it(tmp_path):
    if importlib.util.find_spec("build") is None or importlib.util.find_spec("wheel") is None:
        pytest.skip("the 'build' and 'wheel' packages are not installed (run-tests.sh installs them)")
    src = os.path.join(ROOT, "bindings", "python")
    r = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path), src],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (sdist,) = glob.glob(str(tmp_path / "msgr-*.tar.gz"))
    with tarfile.open(sdist) as t:
        names = t.getnames()
    assert any(n.endswith("/gosrc/capi/build.sh") for n in names)
    assert any(n.endswith("/gosrc/include/msgr.h") for n in names)
    assert any(n.endswith("/gosrc/go.mod") for n in names)
    assert not any(n.endswith("_test.go") for n in names)
    # The wheel is built from the unpacked sdist only: its gosrc/ is what builds the library.
    env = dict(os.environ)
    env.pop("MSGR_SOURCE_DIR", None)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps",
                        "-w", str(tmp_path), sdist], capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (whl,) = glob.glob(str(tmp_path / "msgr-*.whl"))
    assert os.path.basename(whl).startswith("msgr-0.2.0-py3-none-linux_")
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        assert "msgr/libmsgr.so.0" in names and "msgr/py.typed" in names and "msgr/_lib.py" in names
        assert z.getinfo("msgr/libmsgr.so.0").file_size > 1_000_000
        assert "Root-Is-Purelib: false" in z.read(next(n for n in names if n.endswith("/WHEEL"))).decode()
