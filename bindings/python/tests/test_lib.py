"""The loader: where the library comes from, the version check, and the
declarations (every function of msgr.h has argtypes and restype)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

import msgr
from msgr import _lib

from conftest import ROOT


def test_loaded_and_version():
    assert msgr.library_version == _lib.lib.msgr_version_string().decode()
    major = _lib.lib.msgr_version() >> 16
    assert major == _lib.MAJOR
    assert os.path.exists(msgr.library_path)


def test_loader_prefers_the_bundled_library():
    # The loader's order: the copy inside the package, then $MSGR_LIBRARY,
    # then the system path. Whatever the environment, the copy in the
    # package wins when there is one.
    pkg = os.path.dirname(os.path.abspath(msgr.__file__))
    loaded = os.path.dirname(os.path.abspath(msgr.library_path))
    bundled = [f for f in os.listdir(pkg) if f.startswith("libmsgr.so")]
    if bundled:
        assert loaded == pkg, f"{msgr.library_path} loaded although the package carries {bundled}"
    else:
        assert loaded != pkg
    if os.environ.get("MSGR_TEST_EXPECT_BUNDLED"):
        # run-tests.sh: pip built the library into the installed package.
        assert bundled, f"no library inside {pkg}"
        assert "site-packages" in pkg or "dist-packages" in pkg, f"msgr imported from {pkg}, not the installed package"


def header_functions():
    with open(os.path.join(ROOT, "include", "msgr.h")) as f:
        text = f.read()
    return set(re.findall(r"MSGR_API\s+[^;(]*?\b(msgr_\w+)\s*\(", text))


@pytest.mark.skipif(ROOT is None, reason="include/msgr.h not found (not in the repository)")
def test_every_header_function_is_declared():
    declared = set(_lib.SIGNATURES)
    in_header = header_functions()
    assert len(in_header) >= 49
    assert in_header == declared, f"missing {in_header - declared}, extra {declared - in_header}"
    for name in declared:
        fn = getattr(_lib.lib, name)
        assert fn.argtypes is not None, name
        assert fn.restype is not None or _lib.SIGNATURES[name][0] is None, name


@pytest.mark.skipif(ROOT is None, reason="include/msgr.h not found")
def test_constants_match_header():
    with open(os.path.join(ROOT, "include", "msgr.h")) as f:
        text = f.read()
    for name, value, desc in _lib.ERRNO_MAP:
        assert f"X({name}, {value}, \"{desc}\")" in text, name
        assert _lib.strerror(value) == desc
        assert _lib.err_name(value) == "MSGR_" + name
    assert int(re.search(r"#define MSGR_VERSION_MAJOR (\d+)", text).group(1)) == _lib.MAJOR
    for name, member in msgr.EntityType.__members__.items():
        assert re.search(rf"MSGR_ENTITY_{name} = {member.value:#04x}", text, re.I), name
    assert "MSGR_SEGMENT_MAX 0xFFFFFFFFu" in text and msgr.SEGMENT_MAX == 0xFFFFFFFF


def run_py(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def bare_package(tmp_path):
    """A copy of the installed package without its library."""
    src = os.path.dirname(os.path.abspath(msgr.__file__))
    dst = tmp_path / "msgr"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("libmsgr.so*", "__pycache__"))
    return tmp_path


def test_env_var_is_used_when_the_package_has_no_library(bare_package):
    env = dict(os.environ, PYTHONPATH=str(bare_package), MSGR_LIBRARY=msgr.library_path)
    r = run_py("import msgr; print(msgr.library_path)", env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == msgr.library_path


def test_missing_library_is_a_clear_error(bare_package):
    env = dict(os.environ, PYTHONPATH=str(bare_package), MSGR_LIBRARY=str(bare_package / "nope.so"))
    env.pop("LD_LIBRARY_PATH", None)
    r = run_py("import msgr; print('LOADED', msgr.library_path)", env)
    if r.returncode == 0:
        # A system-wide libmsgr (make install) is the third place looked at.
        assert "LOADED" in r.stdout and "nope.so" not in r.stdout
    else:
        assert "libmsgr.so not found" in r.stderr and "nope.so: not there" in r.stderr


def test_wrong_major_version_is_refused(bare_package):
    # The binding claims another major version: the real library must be refused.
    env = dict(os.environ, PYTHONPATH=str(bare_package), MSGR_LIBRARY=msgr.library_path)
    code = (
        "import msgr._lib as L\n"
        "L.MAJOR = 99\n"
        "try:\n"
        "    L.load()\n"
        "except L.LibraryError as e:\n"
        "    print('REFUSED', e)\n"
    )
    # _lib loads at import (MAJOR 0 matches); load() again with MAJOR 99.
    r = run_py(code, env)
    assert r.returncode == 0, r.stderr
    assert "REFUSED" in r.stdout and "needs 99." in r.stdout


def test_bytes_offset_probe():
    # The fast path for bytes payloads addresses the bytes in place.
    assert _lib.BYTES_OFFSET is None or isinstance(_lib.BYTES_OFFSET, int)
