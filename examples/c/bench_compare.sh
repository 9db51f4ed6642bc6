#!/usr/bin/env bash
# Compares the C API with the pure Go messenger on W1-W5: every pairing of
# the C benchmark (examples/c/msgr_bench.c) and its Go twin (cmd/msgr-bench),
# which speak the same protocol, so "Go server + C client" against "Go
# server + Go client" isolates what the C API adds on the client side, and
# "C server + Go client" the server side.
#   examples/c/bench_compare.sh [-r REPEAT] [-w "W1 W2"] [-x EXTRA_CLIENT_ARGS]
# Needs build/lib/libmsgr.so (make lib), build/examples/msgr_bench and
# build/bin/msgr-bench (make bench-c builds all three). Prints the median of
# REPEAT runs per pairing and the C/Go ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."
repeat=3
workloads="W1 W2 W3 W4 W5"
extra=""
while getopts "r:w:x:" o; do
	case $o in
	r) repeat=$OPTARG ;;
	w) workloads=$OPTARG ;;
	x) extra=$OPTARG ;;
	*) exit 2 ;;
	esac
done
export LD_LIBRARY_PATH=$PWD/build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
C=build/examples/msgr_bench
G=build/bin/msgr-bench
for b in $C $G; do [ -x $b ] || { echo "missing $b: run make bench-c" >&2; exit 1; }; done
# Below the ephemeral range (32768-60999), so no client socket of an
# earlier run holds the port.
port=$((20000 + RANDOM % 10000))
out=$(mktemp)
trap 'rm -f $out $out.srv $out.cli' EXIT

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else print a[int((NR+1)/2)]}'; }

run_pair() { # server client workload port -> prints the figure that counts
	local srv=$1 cli=$2 wl=$3 port=$4 fig
	$srv server --addr 127.0.0.1:$port --max-seconds 300 2>"$out.srv" &
	local spid=$!
	# Wait until it listens: a client refused at first may not recover.
	for _ in $(seq 100); do
		(exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
		sleep 0.05
	done
	local args="--workload $wl"
	[ "$wl" = W5 ] && args="$args --conns 100 --count 1000"
	local line
	line=$(timeout 300 $cli client --addr 127.0.0.1:$port $args $extra 2>"$out.cli" | tail -1) || line=""
	kill $spid 2>/dev/null; wait $spid 2>/dev/null || true
	if [ -z "$line" ]; then
		# Keep what the failed pairing said: the figure becomes nan.
		{
			echo "bench_compare: $srv server / $cli client, $wl, port $port failed"
			sed 's/^/  client: /' "$out.cli" | tail -20
			sed 's/^/  server: /' "$out.srv" | tail -20
		} >&2
	fi
	case $wl in
	W1) fig=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["p50_us"])' "$line" 2>/dev/null || echo nan) ;;
	W2 | W5) fig=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["msgs_per_s"])' "$line" 2>/dev/null || echo nan) ;;
	*) fig=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["mb_per_s"])' "$line" 2>/dev/null || echo nan) ;;
	esac
	echo "$fig"
}

printf "%-4s %-22s %12s %12s %12s %12s\n" wl figure "go/go" "go-srv/c-cli" "c-srv/go-cli" "c/c"
for wl in $workloads; do
	declare -A vals=()
	# Pairings interleave within each repeat, so load drifting on a shared
	# machine affects them alike.
	for i in $(seq $repeat); do
		for pair in GG GC CG CC; do
			s=$([ ${pair:0:1} = G ] && echo $G || echo $C)
			c=$([ ${pair:1:1} = G ] && echo $G || echo $C)
			port=$((port + 1))
			vals[$pair]="${vals[$pair]:-} $(run_pair $s $c $wl $port)"
		done
	done
	case $wl in W1) f="p50 us (lower=better)" ;; W2 | W5) f="msgs/s" ;; *) f="MB/s" ;; esac
	m=()
	for pair in GG GC CG CC; do m+=("$(echo ${vals[$pair]} | tr ' ' '\n' | median)"); done
	printf "%-4s %-22s %12.1f %12.1f %12.1f %12.1f\n" $wl "$f" "${m[@]}"
	# Each repeat's C/Go ratio (W1: C minus Go, in us) against the go/go run
	# next to it, then the median: load that drifts between repeats cancels.
	r=()
	for pair in GC CG CC; do
		r+=("$(paste <(echo ${vals[GG]} | tr ' ' '\n') <(echo ${vals[$pair]} | tr ' ' '\n') |
			awk -v wl=$wl '$1 != "nan" && $2 != "nan" && $1 > 0 && $2 > 0 {print (wl == "W1" ? $2 - $1 : $2 / $1)}' | median)")
	done
	label="C/Go, paired median"
	[ $wl = W1 ] && label="C-Go us, paired median"
	printf "%-4s %-22s %12s %12.3f %12.3f %12.3f\n" $wl "$label" "" "${r[@]}"
	unset vals
done
