"""Build step of the msgr Python package (configuration is in pyproject.toml).

Building the package (``pip install ./bindings/python``, ``python -m build``)
builds libmsgr.so from the repository's Go sources with capi/build.sh, the
one recipe shared with ``make lib`` and CMake, and puts it inside the package
as ``msgr/libmsgr.so.MAJOR``; the wheel is then platform-specific
(``py3-none-<platform>``: the library is not tied to a Python version).

Where the Go sources are found, first match:
  1. $MSGR_SOURCE_DIR (a checkout of the repository);
  2. ./gosrc, the copy an sdist carries (made by `sdist` below);
  3. ../.. (building from a checkout: bindings/python inside the repo).

Needs the Go toolchain (go.mod's version; `go` on PATH or in
/usr/local/go/bin, or $GO) and a C compiler (cgo). MSGR_PYTHON_NO_LIB=1 skips
the library: the package then loads it from $MSGR_LIBRARY or the system.
"""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
SDIST_SRC = "gosrc"
# What capi/build.sh needs: the module, the C API and everything it imports.
SOURCES = ["go.mod", "go.sum", "capi", "core", "include"]


def source_root():
    cands = []
    if os.environ.get("MSGR_SOURCE_DIR"):
        cands.append(os.environ["MSGR_SOURCE_DIR"])
    cands += [os.path.join(HERE, SDIST_SRC), os.path.normpath(os.path.join(HERE, "..", ".."))]
    for c in cands:
        if os.path.isfile(os.path.join(c, "capi", "build.sh")) and os.path.isfile(os.path.join(c, "go.mod")):
            return os.path.abspath(c)
    return None


def header_major(root):
    with open(os.path.join(root, "include", "msgr.h")) as f:
        m = re.search(r"^#define MSGR_VERSION_MAJOR (\d+)", f.read(), re.M)
    if not m:
        raise SystemExit("msgr: no MSGR_VERSION_MAJOR in include/msgr.h")
    return int(m.group(1))


def build_library(root, pkg_dir):
    """capi/build.sh into a temporary dir; copies the real file into the
    package as libmsgr.so.MAJOR (the soname, so the loader's name matches)."""
    env = dict(os.environ)
    env["PATH"] = env.get("PATH", "") + os.pathsep + "/usr/local/go/bin"
    go = env.get("GO") or shutil.which("go", path=env["PATH"])
    if not go:
        raise SystemExit(
            "msgr: building libmsgr.so needs the Go toolchain (see go.mod for the version) and a C "
            "compiler; install Go (https://go.dev/dl) or set GO=/path/to/go. To install without "
            "building it, set MSGR_PYTHON_NO_LIB=1 and point MSGR_LIBRARY at a built libmsgr.so."
        )
    env["GO"] = go
    major = header_major(root)
    with tempfile.TemporaryDirectory(prefix="msgr-lib-") as tmp:
        print(f"msgr: building libmsgr.so from {root} with {go}", file=sys.stderr)
        r = subprocess.run(["bash", os.path.join(root, "capi", "build.sh"), tmp], env=env)
        if r.returncode != 0:
            raise SystemExit(f"msgr: capi/build.sh failed (exit {r.returncode}); see its output above")
        real = [f for f in os.listdir(tmp) if re.fullmatch(r"libmsgr\.so\.\d+\.\d+\.\d+", f)]
        if len(real) != 1:
            raise SystemExit(f"msgr: capi/build.sh left {os.listdir(tmp)}, expected one libmsgr.so.X.Y.Z")
        os.makedirs(pkg_dir, exist_ok=True)
        dst = os.path.join(pkg_dir, f"libmsgr.so.{major}")
        shutil.copyfile(os.path.join(tmp, real[0]), dst)
        os.chmod(dst, 0o755)
    return dst


class BuildPy(build_py):
    def run(self):
        super().run()
        if os.environ.get("MSGR_PYTHON_NO_LIB"):
            print("msgr: MSGR_PYTHON_NO_LIB set: not building libmsgr.so", file=sys.stderr)
            return
        root = source_root()
        if root is None:
            raise SystemExit(
                "msgr: the Go sources of libmsgr were not found (looked at $MSGR_SOURCE_DIR, ./gosrc "
                "and ../..); build from a checkout of the repository or from its sdist"
            )
        build_library(root, os.path.join(self.build_lib, "msgr"))


def _skip(name):
    return name == "testdata" or name.endswith("_test.go") or name in ("__pycache__",)


class Sdist(sdist):
    """An sdist that can build the library on its own: it carries the Go
    sources (without tests) under gosrc/."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        root = source_root()
        if root is None:
            raise SystemExit("msgr: sdist needs the repository's Go sources (../.. or $MSGR_SOURCE_DIR)")
        dst = os.path.join(base_dir, SDIST_SRC)
        for item in SOURCES:
            src = os.path.join(root, item)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(dst, item), ignore=lambda d, names: [n for n in names if _skip(n)])
            else:
                os.makedirs(dst, exist_ok=True)
                shutil.copy2(src, os.path.join(dst, item))


class BinaryDistribution(Distribution):
    """The package carries a native library: platform wheel, platlib."""

    def has_ext_modules(self):
        return True


cmdclass = {"build_py": BuildPy, "sdist": Sdist}

try:
    try:
        from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel
    except ImportError:
        from wheel.bdist_wheel import bdist_wheel as _bdist_wheel

    class BdistWheel(_bdist_wheel):
        """py3-none-PLATFORM: the library does not depend on the Python
        version (it is loaded with ctypes), only on the platform."""

        def finalize_options(self):
            super().finalize_options()
            self.root_is_pure = False

        def get_tag(self):
            plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
            return "py3", "none", plat

    cmdclass["bdist_wheel"] = BdistWheel
except ImportError:  # no wheel support: sdist / install still work
    pass

setup(cmdclass=cmdclass, distclass=BinaryDistribution)
