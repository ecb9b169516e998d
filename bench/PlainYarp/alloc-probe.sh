#!/usr/bin/env bash
# Where a proxy's allocations come from: one `--time-scale 0` worker and one target (the gateway, or plain YARP),
# a wrk warm-up, then D seconds of wrk (1 thread, C connections, bench/PlainYarp/post.lua) with bench/AllocProbe
# attached, sampling GCAllocationTick events. Prints the requests served, the sampled bytes per request (and for the
# gateway the exact figure from its /metrics), then the top allocations by type (MODE=types) or by type and
# allocating frame (MODE=stacks; FRAMES=n shows the n innermost frames of each allocation). Allocation does not depend on the machine's other load.
# Needs Release builds of src/Gateway, src/Worker, bench/PlainYarp and bench/AllocProbe.
# usage: [MODE=types|stacks] [TOP=40] bench/PlainYarp/alloc-probe.sh gateway|yarp [DURATION_S=8] [CONNECTIONS=16] [K=V gateway settings...]
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET=${1:?gateway or yarp}; SEC=${2:-8}; CONN=${3:-16}; shift $(( $# < 3 ? $# : 3 ))
W=19201; P=19202
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
export DOTNET_gcServer=0 DOTNET_TieredPGO=1
dotnet src/Worker/bin/Release/net10.0/Worker.dll --urls http://127.0.0.1:$W --time-scale 0 --log-level Warning >/tmp/alloc-probe-worker.log 2>&1 & pids+=($!)
if [[ $TARGET == gateway ]]; then
  env Gateway__Listen=http://127.0.0.1:$P Gateway__Workers__Mode=Static Gateway__Workers__Urls__0=http://127.0.0.1:$W \
    Logging__LogLevel__Default=Warning Logging__LogLevel__Gateway=Warning "$@" \
    dotnet src/Gateway/bin/Release/net10.0/Gateway.dll >/tmp/alloc-probe-target.log 2>&1 & pids+=($!)
  ready=/readyz
else
  dotnet bench/PlainYarp/bin/Release/net10.0/PlainYarp.dll --urls http://127.0.0.1:$P --destination http://127.0.0.1:$W >/tmp/alloc-probe-target.log 2>&1 & pids+=($!)
  ready=/healthz
fi
target=${pids[1]}
for i in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$P$ready" && break; sleep 0.2; done
url=http://127.0.0.1:$P/v1/chat/completions
wrk -t1 -c"$CONN" -d5s -s bench/PlainYarp/post.lua "$url" >/dev/null
allocated() { { curl -sf "http://127.0.0.1:$P/metrics" 2>/dev/null || true; } | awk '/^dotnet_gc_heap_total_allocated_bytes_total/ {print $2; f=1} END {if (!f) print 0}'; }
a0=$(allocated)
dotnet bench/AllocProbe/bin/Release/net10.0/AllocProbe.dll "$target" $((SEC + 1)) "${TOP:-40}" "${MODE:-types}" >/tmp/alloc-probe.txt 2>&1 & probe=$!
sleep 0.5
out=$(wrk -t1 -c"$CONN" -d"${SEC}s" -s bench/PlainYarp/post.lua "$url")
a1=$(allocated)
wait $probe
reqs=$(echo "$out" | awk '/requests in/ {print $1}')
awk -v n="$reqs" -v a="$a0" -v b="$a1" '/^total/ {printf "target='"$TARGET"' requests=%d sampled_b_per_request=%.0f metrics_b_per_request=%s\n", n, $2 / n, (b > a ? sprintf("%.0f", (b - a) / n) : "-")}' /tmp/alloc-probe.txt
tail -n +2 /tmp/alloc-probe.txt
