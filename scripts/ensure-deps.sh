#!/usr/bin/env bash
# Installs what this machine lacks for building and testing msgr, and says
# what it installs. Safe to run again: it only acts on what is missing.
#   scripts/ensure-deps.sh [base]   Go toolchain check, C compiler, make
# Later layers (python, ceph) add their own groups here.
set -euo pipefail

say() { printf 'ensure-deps: %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
	if ! command -v apt-get >/dev/null 2>&1; then
		say "missing $*, and no apt-get here: install it by hand"
		return 1
	fi
	if [ "$apt_updated" = 0 ]; then
		say "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		apt_updated=1
	fi
	say "installing Debian packages: $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

need_cmd() { # need_cmd COMMAND DEBIAN-PACKAGE
	command -v "$1" >/dev/null 2>&1 || apt_install "$2"
}

base() {
	if ! command -v go >/dev/null 2>&1; then
		if [ -x /usr/local/go/bin/go ]; then
			say "go is at /usr/local/go/bin; add it to PATH"
		else
			say "no Go toolchain: msgr needs Go >= 1.26 (https://go.dev/dl); Debian's golang is too old"
			exit 1
		fi
	fi
	need_cmd gcc gcc
	need_cmd make make
	need_cmd g++ g++
	need_cmd cmake cmake
	need_cmd pkg-config pkg-config
}

ceph() { # real Ceph daemons and CLI, the peers of the interop tests
	local missing=()
	# type -P: this function is itself named ceph, so command -v would find it.
	# monmaptool comes with ceph-base, a dependency of ceph-mon.
	type -P ceph-mon >/dev/null && type -P monmaptool >/dev/null || missing+=(ceph-mon)
	type -P ceph >/dev/null || missing+=(ceph-common)
	/usr/bin/python3 -c 'import rados' >/dev/null 2>&1 || missing+=(python3-rados)
	if [ "${#missing[@]}" = 0 ]; then
		return 0
	fi
	say "ceph: missing ${missing[*]}"
	apt_install "${missing[@]}"
}

for group in "${@:-base}"; do
	"$group"
done
