#!/usr/bin/env bash
# Installs libmsgr for C and C++ users (what `make install` runs):
#   bindings/c/install.sh LIBBUILDDIR [PREFIX] [LIBDIR] [INCLUDEDIR]
# DESTDIR (environment) is prepended to every path, as packagers expect.
# LIBDIR and INCLUDEDIR are relative to PREFIX (defaults lib, include).
# Installs: the header msgr.h and the C++ wrapper msgr.hpp; the library
# libmsgr.so.X.Y.Z with its soname link libmsgr.so.X and the dev link
# libmsgr.so; pkg-config's msgr.pc; CMake's msgrConfig.cmake and
# msgrConfigVersion.cmake. The two package files are relocatable.
# CMakeLists.txt installs the same files from the same templates.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:?usage: install.sh LIBBUILDDIR [PREFIX] [LIBDIR] [INCLUDEDIR]}
prefix=${2:-/usr/local}
libdir=${3:-lib}
incdir=${4:-include}
dest=${DESTDIR:-}

case "$libdir$incdir" in /*) echo "install.sh: LIBDIR and INCLUDEDIR are relative to PREFIX" >&2; exit 2 ;; esac
hdr="$root/include/msgr.h"
ver() { sed -n "s/^#define MSGR_VERSION_$1 \([0-9][0-9]*\).*/\1/p" "$hdr"; }
major=$(ver MAJOR) minor=$(ver MINOR) patch=$(ver PATCH)
version="$major.$minor.$patch"
real="libmsgr.so.$version"
[ -f "$build/$real" ] || { echo "install.sh: $build/$real missing: run make lib" >&2; exit 1; }

# ../ for each component of a relative path.
ups() { local p=$1 out=""; IFS=/ read -ra parts <<<"$p"; for x in "${parts[@]}"; do [ -n "$x" ] && out="$out../"; done; echo "${out%/}"; }
pc_up=$(ups "$libdir/pkgconfig")
cmake_up=$(ups "$libdir/cmake/msgr")

subst() {
	sed -e "s|@MSGR_VERSION@|$version|g" -e "s|@MSGR_VERSION_MAJOR@|$major|g" \
		-e "s|@MSGR_LIBDIR@|$libdir|g" -e "s|@MSGR_INCLUDEDIR@|$incdir|g" \
		-e "s|@MSGR_PC_UP@|$pc_up|g" -e "s|@MSGR_CMAKE_UP@|$cmake_up|g" "$1"
}

L="$dest$prefix/$libdir"
I="$dest$prefix/$incdir"
install -d "$L" "$I" "$L/pkgconfig" "$L/cmake/msgr"
install -m 0644 "$hdr" "$I/msgr.h"
install -m 0644 "$here/msgr.hpp" "$I/msgr.hpp"
install -m 0755 "$build/$real" "$L/$real"
ln -sfn "$real" "$L/libmsgr.so.$major"
ln -sfn "libmsgr.so.$major" "$L/libmsgr.so"
subst "$here/msgr.pc.in" >"$L/pkgconfig/msgr.pc"
subst "$here/msgrConfig.cmake.in" >"$L/cmake/msgr/msgrConfig.cmake"
subst "$here/msgrConfigVersion.cmake.in" >"$L/cmake/msgr/msgrConfigVersion.cmake"
chmod 0644 "$L/pkgconfig/msgr.pc" "$L/cmake/msgr/"*.cmake
echo "installed libmsgr $version under $dest$prefix"
