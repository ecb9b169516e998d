#!/usr/bin/env bash
# Gateway overhead: the same reference worker measured directly, through a plain YARP route, through nginx
# (bench/nginx/nginx.sh; NGINX=0 leaves it out) and through the gateway (and the gateway with tracing off; optionally the gateway with VARIANT="K=V K=V" extra settings, and an older build
# BASELINE=path/to/Gateway.dll for an interleaved A/B of a code change).
# Small non-streaming chat requests (max_tokens 1), same session, wrk with 1 thread and C connections for D seconds,
# RUNS rounds (order rotated each round); prints one line per run. Besides wrk's req/s and latency, each line has
# cpu_us: CPU time (user + system, from /proc) the measured process spent per request -- the worker's for `direct`,
# the proxy's own for the others. On a shared machine this is far steadier than req/s. Gateway targets also report
# alloc_b: bytes the gateway allocated per request (dotnet_gc_heap_total_allocated_bytes_total from its /metrics).
# Needs Release builds:
#   dotnet build -c Release src/Gateway && dotnet build -c Release bench/PlainYarp && dotnet build -c Release src/Worker
# usage: [WARMUP=10] [VARIANT="Gateway__X=Y ..."] [BASELINE=dll] bench/PlainYarp/run-overhead.sh [RUNS=5] [DURATION=10s] [CONNECTIONS=16]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}; DUR=${2:-10s}; CONN=${3:-16}
if ! command -v wrk >/dev/null 2>&1; then # the load driver, from Debian where we may install it
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1 || true
  fi
  command -v wrk >/dev/null 2>&1 || { echo "run-overhead.sh needs wrk (Debian package wrk)" >&2; exit 1; }
fi
W=19001; Y=19002; G=19003; N=19004; V=19005; B=19006; X=19007
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
export DOTNET_gcServer=0 DOTNET_TieredPGO=1
gateway() { # port log extra-env... (DLL: the build to run)
  local port=$1 log=$2; shift 2
  env Gateway__Listen=http://127.0.0.1:$port Gateway__Workers__Mode=Static Gateway__Workers__Urls__0=http://127.0.0.1:$W \
    Logging__LogLevel__Default=Warning Logging__LogLevel__Gateway=Warning "$@" \
    dotnet "${DLL:-src/Gateway/bin/Release/net10.0/Gateway.dll}" >"$log" 2>&1 & pids+=($!)
}
dotnet src/Worker/bin/Release/net10.0/Worker.dll --urls http://127.0.0.1:$W --time-scale 0 --log-level Warning >/tmp/bench-worker.log 2>&1 & pids+=($!)
dotnet bench/PlainYarp/bin/Release/net10.0/PlainYarp.dll --urls http://127.0.0.1:$Y --destination http://127.0.0.1:$W >/tmp/bench-yarp.log 2>&1 & pids+=($!)
gateway $G /tmp/bench-gateway.log
# the same gateway with OpenTelemetry tracing switched off (metrics stay on)
gateway $N /tmp/bench-gateway-notrace.log Gateway__Telemetry__Tracing__Enabled=false
names=(direct yarp gateway gateway-notrace); ports=($W $Y $G $N)
if [[ "${NGINX:-1}" != 0 ]]; then
  mkdir -p /tmp/bench-nginx
  bench/nginx/nginx.sh $X 127.0.0.1:$W /tmp/bench-nginx >/tmp/bench-nginx.log 2>&1 & pids+=($!)
  names+=(nginx); ports+=($X)
fi
if [[ -n "${VARIANT:-}" ]]; then
  # shellcheck disable=SC2086 # VARIANT is a list of K=V words
  gateway $V /tmp/bench-gateway-variant.log $VARIANT
  names+=(gateway-variant); ports+=($V)
fi
if [[ -n "${BASELINE:-}" ]]; then
  DLL=$BASELINE gateway $B /tmp/bench-gateway-baseline.log
  names+=(gateway-baseline); ports+=($B)
fi
procs=("${pids[@]}") # same order as names: worker, yarp, gateway, gateway-notrace[, nginx][, variant][, baseline]
for k in "${!names[@]}"; do # gateways: ready once a worker is healthy; the rest: listening
  path=/healthz; [[ ${names[$k]} == gateway* ]] && path=/readyz
  for i in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:${ports[$k]}$path" && break; sleep 0.2; done
done
body='{"model":"llama3-8b","max_tokens":1,"messages":[{"role":"user","content":"Say hi in one word."}]}'
for port in "${ports[@]}"; do
  curl -sf -o /dev/null -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-demo-local-0000' -d "$body" http://127.0.0.1:$port/v1/chat/completions || { echo "target $port failed"; exit 1; }
done
# warm-up (JIT tiering, connection pools): WARMUP seconds per target
for port in "${ports[@]}"; do wrk -t1 -c"$CONN" -d"${WARMUP:-10}s" -s bench/PlainYarp/post.lua http://127.0.0.1:$port/v1/chat/completions >/dev/null; done
cpu_ticks() { # utime + stime of a process and its children (nginx workers), in clock ticks
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo $t
}
allocated() { # port: the gateway's allocated bytes so far (0 for targets without /metrics)
  { curl -sf "http://127.0.0.1:$1/metrics" 2>/dev/null || true; } | awk '/^dotnet_gc_heap_total_allocated_bytes_total/ {print $2; found=1} END {if (!found) print 0}'
}
tick_us=$((1000000 / $(getconf CLK_TCK)))
k_count=${#names[@]}
for r in $(seq 1 "$RUNS"); do
  for k in $(seq 0 $((k_count - 1))); do
    idx=$(( (k + r) % k_count ))
    before=$(cpu_ticks "${procs[$idx]}"); abefore=$(allocated "${ports[$idx]}")
    out=$(wrk -t1 -c"$CONN" -d"$DUR" --latency -s bench/PlainYarp/post.lua http://127.0.0.1:${ports[$idx]}/v1/chat/completions)
    after=$(cpu_ticks "${procs[$idx]}"); aafter=$(allocated "${ports[$idx]}")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    cpu_us=$(awk -v d=$((after - before)) -v n="$reqs" -v t="$tick_us" 'BEGIN { printf "%.1f", (n > 0 ? d * t / n : 0) }')
    alloc_b=$(awk -v a="$abefore" -v b="$aafter" -v n="$reqs" 'BEGIN { printf "%.0f", (n > 0 && b > a ? (b - a) / n : 0) }')
    echo "run=$r target=${names[$idx]} rps=$rps p50=$p50 p99=$p99 cpu_us=$cpu_us alloc_b=$alloc_b non2xx=${non2xx:-0}"
  done
done
