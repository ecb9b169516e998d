#!/usr/bin/env bash
# Where a proxy's CPU goes, in the run-overhead.sh set-up: one --time-scale 0 worker, the gateway (or plain YARP with
# TARGET=yarp), wrk with 1 thread and 16 connections on the small non-streaming request of post.lua. After WARM seconds
# of warm-up, `perf record -g` samples the proxy process (JIT frames named through DOTNET_PerfMapEnabled) for REC seconds
# while wrk keeps the load on, then bench/PlainYarp/perf-shares.py prints CPU per request by binary and the inclusive
# share of the named frames. Sample shares hold on a loaded machine; the absolute µs do not. Needs perf, wrk and the
# Release builds of run-overhead.sh. Extra arguments are gateway settings (K=V).
# usage: [TARGET=gateway|yarp] [WARM=30] [REC=20] [OUT=/tmp/proxy-profile] bench/PlainYarp/profile.sh [Gateway__X=Y ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/proxy-profile}; WARM=${WARM:-30}; REC=${REC:-20}
mkdir -p "$OUT"
W=19301; P=19303
pids=(); cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }; trap cleanup EXIT
export DOTNET_gcServer=0 DOTNET_TieredPGO=1 DOTNET_EnableWriteXorExecute=0 # W^X off: perf then finds the JIT-compiled code
dotnet src/Worker/bin/Release/net10.0/Worker.dll --urls http://127.0.0.1:$W --time-scale 0 --log-level Warning >"$OUT/worker.log" 2>&1 & pids+=($!)
if [[ "${TARGET:-gateway}" == yarp ]]; then
  DOTNET_PerfMapEnabled=1 dotnet bench/PlainYarp/bin/Release/net10.0/PlainYarp.dll --urls http://127.0.0.1:$P \
    --destination http://127.0.0.1:$W >"$OUT/proxy.log" 2>&1 & proxy=$!; pids+=($proxy)
  ready=/healthz # proxied to the worker's
else
  env DOTNET_PerfMapEnabled=1 Gateway__Listen=http://127.0.0.1:$P Gateway__Workers__Mode=Static Gateway__Workers__Urls__0=http://127.0.0.1:$W \
    Logging__LogLevel__Default=Warning "$@" dotnet src/Gateway/bin/Release/net10.0/Gateway.dll >"$OUT/proxy.log" 2>&1 & proxy=$!; pids+=($proxy)
  ready=/readyz
fi
for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$P$ready" && break; sleep 0.2; done
wrk -t1 -c16 -d"${WARM}s" -s bench/PlainYarp/post.lua http://127.0.0.1:$P/v1/chat/completions >/dev/null
wrk -t1 -c16 -d"$((REC + 2))s" -s bench/PlainYarp/post.lua http://127.0.0.1:$P/v1/chat/completions >"$OUT/wrk.txt" & load=$!
sleep 1
perf record -F 999 -g -p "$proxy" -o "$OUT/perf.data" -- sleep "$REC" 2>"$OUT/perf-record.log"
wait "$load" || true
rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk.txt")
perf script -i "$OUT/perf.data" 2>/dev/null >"$OUT/perf.txt"
echo "target=${TARGET:-gateway} rps=$rps load=$(cut -d' ' -f1 /proc/loadavg)"
python3 bench/PlainYarp/perf-shares.py "$OUT/perf.txt" "$rps" "$REC"
