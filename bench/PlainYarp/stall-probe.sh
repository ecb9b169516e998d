#!/usr/bin/env bash
# Where does the gateway's p99 at one connection come from? One --time-scale 0 worker, one gateway (extra settings as
# arguments, e.g. Gateway__Scheduling__Enabled=false), wrk 1 thread 1 connection: two 8 s runs with wrk's p50/p99, the
# gateway's gateway_queue_wait_seconds histogram over both runs (time between entering the fair queue and release), and
# its gen0 collections. Needs the Release builds of run-overhead.sh and wrk.
# usage: bench/PlainYarp/stall-probe.sh [Gateway__X=Y ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
W=19101; G=19103
pids=(); cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }; trap cleanup EXIT
export DOTNET_gcServer=0
metric() { curl -s "http://127.0.0.1:$G/metrics" | grep -E "$1" || true; }
dotnet src/Worker/bin/Release/net10.0/Worker.dll --urls http://127.0.0.1:$W --time-scale 0 --log-level Warning >/tmp/stall-worker.log 2>&1 & pids+=($!)
env Gateway__Listen=http://127.0.0.1:$G Gateway__Workers__Mode=Static Gateway__Workers__Urls__0=http://127.0.0.1:$W Logging__LogLevel__Default=Warning "$@" \
  dotnet src/Gateway/bin/Release/net10.0/Gateway.dll >/tmp/stall-gateway.log 2>&1 & pids+=($!)
for _ in $(seq 1 300); do curl -sf -o /dev/null http://127.0.0.1:$G/readyz && break; sleep 0.2; done
wrk -t1 -c1 -d3s -s bench/PlainYarp/post.lua http://127.0.0.1:$G/v1/chat/completions >/dev/null # warm-up
g0=$(metric '^dotnet_collection_count_total\{generation="0"\}' | awk '{print $2}')
for _ in 1 2; do
  wrk -t1 -c1 -d8s --latency -s bench/PlainYarp/post.lua http://127.0.0.1:$G/v1/chat/completions | grep -E 'Requests/sec|  50%|  99%'
done
g1=$(metric '^dotnet_collection_count_total\{generation="0"\}' | awk '{print $2}')
metric '^gateway_queue_wait_seconds_(count|sum|bucket\{[^}]*le="0.001")'
echo "gen0 collections during both runs: $((${g1%.*} - ${g0%.*}))"
