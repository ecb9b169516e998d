#!/usr/bin/env bash
# Brings up the live system on loopback (N reference worker processes, the gateway in Static mode over them,
# optionally redis-server), runs one load-generator scenario against it, writes the reports, and tears
# everything down on exit (trap), whatever happens.
#
#   scripts/bench-live.sh --scenario overhead --workers 1 --mode both --duration 30s --rate 20
#   scripts/bench-live.sh --scenario overhead --workers 1 --mode direct,yarp,nginx,gateway --duration 30s --rate 20
#   scripts/bench-live.sh --scenario shared-prefix --workers 4 --policy kv-aware --tenants 4 -- --prefixes 16
#   scripts/bench-live.sh --scenario failover --workers 3 --mode gateway --duration 30s --rate 10
#
# Options (defaults in brackets):
#   --scenario NAME      LoadGen scenario [overhead]
#   --workers N          worker processes [4]
#   --mode M             gateway | direct | both, or a comma list of direct, yarp, nginx, gateway run in that order:
#                        through the gateway, straight to worker 1, through a plain YARP route (bench/PlainYarp) or
#                        nginx (installed with apt-get when missing) to worker 1; both = direct,gateway [gateway]
#   --policy NAME        gateway routing policy (round-robin, least-load, kv-aware) [least-load]
#   --profile NAME       worker roofline profile [h100-llama3-8b]
#   --time-scale X       worker wall seconds per modelled second [1]
#   --kv-blocks N        KV blocks per worker [profile default]
#   --tenants N          tenants, each with its own API key sk-bench-K (configured in the gateway) [2]
#   --duration D         LoadGen --duration [30s]
#   --warmup N           LoadGen --warmup: unmeasured requests first, 0 for none [20]
#   --rate R             LoadGen --rate [scenario default]
#   --concurrency C      LoadGen --concurrency
#   --max-requests N     LoadGen --max-requests
#   --out-dir DIR        where reports and logs go [bench-results/<scenario>-<UTC time>]
#   --base-port P        first port: gateway P, workers P+1..P+N [18080]
#   --redis              also start redis-server on port P+100 and pass its address as Gateway__State__Redis
#   --gateway-env K=V    extra environment for the gateway (repeatable)
#   --no-build           use the existing Release builds
#   -- ARGS              everything after -- goes to LoadGen unchanged
# For failover, the script passes LoadGen a --kill-cmd that SIGKILLs worker 1 (at 40 % of the duration unless
# --kill-at is given after --).
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

scenario=overhead workers=4 mode=gateway policy=least-load profile=h100-llama3-8b time_scale=1 kv_blocks=""
tenants=2 duration=30s warmup=20 rate="" concurrency="" max_requests="" out_dir="" base_port=18080 redis=0 build=1
gateway_env=() loadgen_extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --scenario) scenario=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --policy) policy=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --time-scale) time_scale=$2; shift 2 ;;
    --kv-blocks) kv_blocks=$2; shift 2 ;;
    --tenants) tenants=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --max-requests) max_requests=$2; shift 2 ;;
    --out-dir) out_dir=$2; shift 2 ;;
    --base-port) base_port=$2; shift 2 ;;
    --redis) redis=1; shift ;;
    --gateway-env) gateway_env+=("$2"); shift 2 ;;
    --no-build) build=0; shift ;;
    --) shift; loadgen_extra=("$@"); break ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$mode" = both ] && mode=direct,gateway
IFS=, read -r -a modes <<< "$mode"
for m in "${modes[@]}"; do
  case "$m" in gateway|direct|yarp|nginx) ;; *) echo "--mode: '$m' is not gateway, direct, yarp, nginx or both" >&2; exit 2 ;; esac
done
has_mode() { [[ ",$mode," == *",$1,"* ]]; }

out_dir=${out_dir:-bench-results/${scenario}-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out_dir"
log() { printf '[bench-live] %s\n' "$*" >&2; }

pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  log "stopped ${#pids[@]} process(es); logs and reports in $out_dir"
  exit $rc
}
trap cleanup EXIT INT TERM

wait_http() { # wait_http URL NAME PID
  for _ in $(seq 300); do
    if curl -fs -o /dev/null --max-time 1 "$1"; then return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then log "$2 exited during start-up:"; tail -20 "$out_dir/$2.log" >&2; return 1; fi
    sleep 0.2
  done
  log "$2 did not become ready at $1"; return 1
}

if [ $build = 1 ]; then
  log "building Release (Worker, Gateway, LoadGen, PlainYarp)"
  for p in src/Worker src/Gateway loadtests/LoadGen bench/PlainYarp; do dotnet build "$p" -c Release -nologo -clp:ErrorsOnly -v q >/dev/null; done
fi
worker_dll=src/Worker/bin/Release/net10.0/Worker.dll
gateway_dll=src/Gateway/bin/Release/net10.0/Gateway.dll
loadgen_dll=loadtests/LoadGen/bin/Release/net10.0/LoadGen.dll
yarp_dll=bench/PlainYarp/bin/Release/net10.0/PlainYarp.dll

# The noisy-neighbour "alone" baseline (--noisy-factor 0) is work-conserving: the quiet tenants' same requests with
# nothing else running, under fcfs, never under the scheduler being compared (docs/policies/hfair.md).
for ((k = 0; k < ${#loadgen_extra[@]}; k++)); do
  if [ "${loadgen_extra[k]}" = --noisy-factor ] && [[ "${loadgen_extra[k + 1]:-}" =~ ^0(\.0*)?$ ]]; then
    gateway_env+=("Gateway__Scheduling__Policy=fcfs")
    log "alone baseline (--noisy-factor 0): gateway runs fcfs"
  fi
done

if [ $redis = 1 ]; then
  command -v redis-server >/dev/null || { log "redis-server not installed (apt-get install -y redis-server)"; exit 1; }
  redis-server --port $((base_port + 100)) --bind 127.0.0.1 --save '' --appendonly no > "$out_dir/redis.log" 2>&1 &
  pids+=($!)
  gateway_env+=("Gateway__State__Redis=127.0.0.1:$((base_port + 100))")
fi

worker_urls=() worker_pids=()
for i in $(seq 1 "$workers"); do
  url="http://127.0.0.1:$((base_port + i))"
  args=(--urls "$url" --profile "$profile" --time-scale "$time_scale" --seed "$i" --log-level Warning)
  [ -n "$kv_blocks" ] && args+=(--kv-blocks "$kv_blocks")
  dotnet "$worker_dll" "${args[@]}" > "$out_dir/worker$i.log" 2>&1 &
  pids+=($!) worker_pids+=($!) worker_urls+=("$url")
done
for i in $(seq 1 "$workers"); do wait_http "${worker_urls[$((i-1))]}/healthz" "worker$i" "${worker_pids[$((i-1))]}"; done
log "$workers worker(s) up: ${worker_urls[*]}"

secret="bench-secret-$$"
keys=()
for k in $(seq 1 "$tenants"); do keys+=("sk-bench-$k"); done
if has_mode gateway; then
  env_args=(
    "Gateway__Listen=http://127.0.0.1:$base_port"
    "Gateway__Workers__Mode=Static"
    "Gateway__Routing__Policy=$policy"
    "Gateway__Routing__BlockSize=16"
    "Gateway__Auth__ServerSecret=$secret"
    "Logging__LogLevel__Default=Warning"
  )
  for i in "${!worker_urls[@]}"; do env_args+=("Gateway__Workers__Urls__$i=${worker_urls[$i]}"); done
  for k in "${!keys[@]}"; do
    digest=$(printf '%s' "${keys[$k]}" | openssl dgst -sha256 -hmac "$secret" | awk '{print $NF}')
    env_args+=("Gateway__Auth__Keys__${k}__Hash=$digest" "Gateway__Auth__Keys__${k}__Tenant=bench/team/tenant-$((k+1))")
  done
  env "${env_args[@]}" "${gateway_env[@]}" dotnet "$gateway_dll" > "$out_dir/gateway.log" 2>&1 &
  gateway_pid=$!
  pids+=($gateway_pid)
  wait_http "http://127.0.0.1:$base_port/readyz" gateway "$gateway_pid"
  log "gateway up on http://127.0.0.1:$base_port (policy $policy, $tenants tenant keys)"
fi

yarp_url="http://127.0.0.1:$((base_port + 200))" nginx_url="http://127.0.0.1:$((base_port + 201))"
if has_mode yarp; then
  # The baseline of docs/benchmarks.md: one config-only YARP route to worker 1, nothing else.
  dotnet "$yarp_dll" --urls "$yarp_url" --destination "${worker_urls[0]}" > "$out_dir/yarp.log" 2>&1 &
  yarp_pid=$!
  pids+=($yarp_pid)
  wait_http "$yarp_url/healthz" yarp "$yarp_pid"
  log "plain YARP up on $yarp_url -> ${worker_urls[0]}"
fi
if has_mode nginx; then
  bench/nginx/nginx.sh "$((base_port + 201))" "${worker_urls[0]#http://}" "$(realpath "$out_dir")/nginx" > "$out_dir/nginx.log" 2>&1 &
  nginx_pid=$!
  pids+=($nginx_pid)
  wait_http "$nginx_url/healthz" nginx "$nginx_pid"
  log "nginx up on $nginx_url -> ${worker_urls[0]}"
fi

keys_file="$out_dir/keys.txt" # tenant labels + keys for LoadGen (local bench keys only)
: > "$keys_file"
for k in "${!keys[@]}"; do echo "tenant-$((k+1)) ${keys[$k]}" >> "$keys_file"; done

run_loadgen() { # run_loadgen LABEL TARGET [extra...]
  local label=$1 target=$2; shift 2
  local args=(--scenario "$scenario" --target "$target" --duration "$duration" --out "$out_dir/$label.json" --plain)
  [ "$warmup" -gt 0 ] && args+=(--warmup "$warmup")
  [ -n "$rate" ] && args+=(--rate "$rate")
  [ -n "$concurrency" ] && args+=(--concurrency "$concurrency")
  [ -n "$max_requests" ] && args+=(--max-requests "$max_requests")
  if [ "$scenario" = failover ]; then args+=(--kill-cmd "kill -9 ${worker_pids[0]}"); fi
  log "LoadGen $label -> $target"
  local rc=0
  dotnet "$loadgen_dll" "${args[@]}" "$@" "${loadgen_extra[@]}" | tee "$out_dir/$label.log" || rc=$?
  if command -v chromium >/dev/null && [ -f "$out_dir/$label.svg" ]; then
    timeout 60 chromium --headless --no-sandbox --disable-gpu --screenshot="$out_dir/$label.png" --window-size=1000,700 \
      "file://$(realpath "$out_dir/$label.svg")" >/dev/null 2>&1 || log "PNG rendering failed (SVG is still there)"
  fi
  return $rc
}

rc=0
for m in "${modes[@]}"; do
  case "$m" in
    # Straight to worker 1 (or through a plain proxy to it): no auth, the tenants are labels only.
    direct) run_loadgen direct "${worker_urls[0]}" --tenants "$tenants" || rc=$? ;;
    yarp) run_loadgen yarp "$yarp_url" --tenants "$tenants" || rc=$? ;;
    nginx) run_loadgen nginx "$nginx_url" --tenants "$tenants" || rc=$? ;;
    gateway)
      run_loadgen gateway "http://127.0.0.1:$base_port" --keys-file "$keys_file" || rc=$?
      curl -fsS --max-time 2 "http://127.0.0.1:$base_port/metrics" > "$out_dir/gateway-metrics.txt" 2>/dev/null || true
      for i in "${!worker_urls[@]}"; do # engine counters (prefix-cache hits, pins dropped / expired, preemptions)
        curl -fsS --max-time 2 "${worker_urls[$i]}/worker/state" > "$out_dir/worker$((i+1))-state.json" 2>/dev/null || true
      done
      ;;
  esac
done
exit $rc
