#!/usr/bin/env bash
# The Python package's tests, as `make test` runs them, from a fresh clone
# (run from anywhere; it works from the repository root):
#   1. a virtual environment in $BUILD/python-venv (default build/python-venv),
#      made with ${PYTHON:-python3} -m venv (Debian's PEP 668 Python refuses
#      pip installs outside one; python3-venv is installed with apt-get when
#      venv is missing and we are root);
#   2. pip installs pytest, pyzmq, build and wheel (PyPI), then the package from
#      ./bindings/python, which builds libmsgr.so with Go (capi/build.sh) and
#      puts it inside the package: the build-from-source path is what is tested;
#   3. pytest on bindings/python/tests against that installed package.
# Extra arguments go to pytest (e.g. -k echo, -x). Writes only under $BUILD
# and bindings/python/{build,*.egg-info} (setuptools' in-tree build dirs).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
BUILD=${BUILD:-build}
venv="$BUILD/python-venv"
PY=${PYTHON:-python3}
export PATH="$PATH:/usr/local/go/bin"
say() { printf 'run-tests.sh: %s\n' "$*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
	mkdir -p "$BUILD"
	if ! "$PY" -m venv "$venv" >/dev/null 2>&1; then
		rm -rf "$venv"
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
			ver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
			say "$PY -m venv failed: installing python3-venv with apt-get"
			DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >&2 ||
				DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "python$ver-venv" >&2
			"$PY" -m venv "$venv"
		else
			say "'$PY -m venv' failed and apt-get is not usable: install python3-venv (or set PYTHON)"
			exit 1
		fi
	fi
fi
py="$venv/bin/python"
say "venv $venv ($("$py" --version 2>&1))"
"$py" -m pip install -q --disable-pip-version-check pytest pyzmq build wheel
# --force-reinstall: rebuild the library from the current sources every run.
"$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps ./bindings/python
unset MSGR_LIBRARY
export MSGR_TEST_EXPECT_BUNDLED=1
# The pytest script (not `python -m pytest`) keeps the current directory off
# sys.path: tests import the installed package, never a source tree.
exec "$venv/bin/pytest" -q -p no:cacheprovider --rootdir bindings/python bindings/python/tests "$@"
