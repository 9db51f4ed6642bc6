#!/usr/bin/env bash
# run.sh [-r REPEATS] [-c COUNT]: W5 (100 connections, 64-byte ping-pong)
# with five implementations, interleaved in one run, so the noise of a
# shared VM hits them alike:
#   rawc    the anchor (2 threads a side, epoll, epoll_ctl per message)
#   epoll1  one thread a side, epoll, one read and one write per message
#   uring   one thread a side, io_uring: a side's sends and receives of one
#           loop pass go to the kernel in one io_uring_enter
#   msgr    cmd/msgr-bench (one worker a side, epoll)
#   msgr-u  cmd/msgr-bench --ms-type async+io_uring (one worker a side)
# Prints each run and the medians. Needs gcc and liburing-dev (installed
# with apt-get if missing), the anchors (shared/bench/build.sh) and Go.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
reps=5 count=3000
while getopts r:c: o; do
  case $o in r) reps=$OPTARG ;; c) count=$OPTARG ;; *) exit 2 ;; esac
done
out=${BUILD:-$top/build}/w5-floor
mkdir -p "$out"
if [ ! -f /usr/include/liburing.h ]; then
  echo "run.sh: installing liburing-dev with apt-get (for the io_uring probe)" >&2
  ${SUDO:-$([ "$(id -u)" = 0 ] || echo sudo)} apt-get install -y liburing-dev >&2
fi
for f in epoll1 uring_server uring_client; do
  gcc -O2 -Wall -Wextra -Werror -o "$out/$f" "$here/$f.c" -luring
done
(cd "$top" && go build -o "$out/msgr-bench" ./cmd/msgr-bench)
anchors=${BENCH_BIN:-${TMPDIR:-/tmp}/msgr-anchors-bin}
[ -x "$anchors/rawc" ] || BENCH_BIN=$anchors "$top/../shared/bench/build.sh" >&2

declare -A got
for ((i = 1; i <= reps; i++)); do
  for im in rawc epoll1 uring msgr msgr-u; do
    case $im in
      rawc) srv="$anchors/rawc server"; cli="$anchors/rawc client --workload W5" ;;
      epoll1) srv="$out/epoll1 server"; cli="$out/epoll1 client" ;;
      uring) srv="$out/uring_server server"; cli="$out/uring_client client" ;;
      msgr) srv="$out/msgr-bench server"; cli="$out/msgr-bench client --workload W5" ;;
      msgr-u) srv="$out/msgr-bench server --ms-type async+io_uring"; cli="$out/msgr-bench client --ms-type async+io_uring --workload W5" ;;
    esac
    # Ports below the ephemeral range (32768+), so no client socket holds one.
    port=$((20000 + RANDOM % 10000))
    $srv --addr 127.0.0.1:$port >/dev/null 2>&1 &
    sp=$!
    sleep 0.3
    r=$(timeout 60 $cli --addr 127.0.0.1:$port --count "$count" 2>/dev/null | grep -o '"msgs_per_s":[0-9.]*' | cut -d: -f2 | cut -d. -f1 || true)
    kill $sp 2>/dev/null || true
    wait $sp 2>/dev/null || true
    printf '%-7s %8s rt/s   ' "$im" "${r:-FAILED}"
    got[$im]="${got[$im]:-} ${r:-}"
  done
  echo
done
echo "medians of $reps (round trips/s):"
for im in rawc epoll1 uring msgr msgr-u; do
  # shellcheck disable=SC2086
  printf '  %-7s %s\n' "$im" "$(printf '%s\n' ${got[$im]} | sort -n | awk '{a[NR]=$1} END {print NR ? a[int((NR+1)/2)] : "none"}')"
done
