#!/usr/bin/env bash
# Builds libmsgr.so into OUTDIR: the one recipe shared by `make lib`, CMake
# and capi_test.go.
#   capi/build.sh OUTDIR [normal|asan|cgocheck2|race]
# Produces OUTDIR/libmsgr.so.MAJOR.MINOR.PATCH (soname libmsgr.so.MAJOR)
# and the links libmsgr.so.MAJOR and libmsgr.so. The version comes from
# include/msgr.h, the single source of truth. Variants:
#   asan       shim and Go runtime built for AddressSanitizer + UBSan (go -asan)
#   cgocheck2  GOEXPERIMENT=cgocheck2: every Go pointer written to C memory is checked
#   race       the Go side under the race detector
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=${1:?usage: capi/build.sh OUTDIR [normal|asan|cgocheck2|race]}
variant=${2:-normal}
export PATH="$PATH:/usr/local/go/bin"
GO=${GO:-go}

hdr="$root/include/msgr.h"
ver() { sed -n "s/^#define MSGR_VERSION_$1 \([0-9][0-9]*\).*/\1/p" "$hdr"; }
major=$(ver MAJOR) minor=$(ver MINOR) patch=$(ver PATCH)
[ -n "$major" ] && [ -n "$minor" ] && [ -n "$patch" ] || { echo "build.sh: no version in $hdr" >&2; exit 1; }
real="libmsgr.so.$major.$minor.$patch"
soname="libmsgr.so.$major"

flags=(-buildmode=c-shared)
case "$variant" in
normal) ;;
asan)
	export CGO_CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
	export CGO_LDFLAGS="-fsanitize=address,undefined"
	flags+=(-asan)
	;;
cgocheck2) export GOEXPERIMENT=cgocheck2 ;;
race) flags+=(-race) ;;
*) echo "build.sh: unknown variant $variant" >&2; exit 2 ;;
esac

mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"
"$GO" build "${flags[@]}" -o "$out/$real" \
	-ldflags "-extldflags '-Wl,-soname,$soname -Wl,--version-script=$here/exports.map'" ./capi
# cgo's generated header is an internal detail (GoInt, _GoString_): never
# ship it. include/msgr.h is the contract.
rm -f "$out/${real%.*}.h"
ln -sfn "$real" "$out/$soname"
ln -sfn "$soname" "$out/libmsgr.so"
