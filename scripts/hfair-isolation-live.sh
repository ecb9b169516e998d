#!/usr/bin/env bash
# Live latency isolation of hfair: reference workers, the gateway (1 or 2 replicas; 2 share state through a real
# redis-server) and LoadGen's noisy-neighbour scenario, all on loopback. Two runs on a fresh system each:
#   alone      the quiet tenants' requests with nothing else running, gateway under fcfs (LoadGen --noisy-factor 0);
#   contended  the same quiet requests beside a flooding tenant, gateway under hfair.
#   fcfs       (with --fcfs-reference) the contended load under fcfs, for reference.
# Prints and writes (OUT/summary.md) each quiet tenant's TTFT p50 and p99 over the same alone, and the flood's
# throughput. Timings on a shared machine: compare only within one run of this script.
#
#   scripts/hfair-isolation-live.sh --workers 1 --gateways 1 --noisy-factor 14
#   scripts/hfair-isolation-live.sh --workers 2 --gateways 2 --noisy-factor 28
#
# Options [defaults]: --workers N [1]; --gateways 1|2 [1] (2: tenants flood + quiet-1 enter through gateway 1,
# quiet-2 + quiet-3 through gateway 2, Redis shared); --duration D [90s]; --rate R quiet requests/s per tenant [0.5];
# --noisy-factor F flood rate over a quiet tenant's [14]; --prompt-tokens N [2048]; --max-tokens N [64];
# --time-scale X worker wall seconds per modelled second [2]; --out-dir DIR [bench-results/hfair-live-<UTC time>];
# --base-port P [18480]; --repeat N alone/contended pairs, each on a fresh system [1]; --fcfs-reference; --no-build.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
workers=1 gateways=1 duration=90s rate=0.5 factor=14 prompt=2048 max_tokens=64 time_scale=2 out_dir="" base_port=18480 build=1 fcfs_ref=0 repeat=1
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=$2; shift 2 ;;
    --gateways) gateways=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --noisy-factor) factor=$2; shift 2 ;;
    --prompt-tokens) prompt=$2; shift 2 ;;
    --max-tokens) max_tokens=$2; shift 2 ;;
    --time-scale) time_scale=$2; shift 2 ;;
    --out-dir) out_dir=$2; shift 2 ;;
    --base-port) base_port=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --repeat) repeat=$2; shift 2 ;;
    --fcfs-reference) fcfs_ref=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$gateways" in 1|2) ;; *) echo "--gateways must be 1 or 2" >&2; exit 2 ;; esac
out_dir=${out_dir:-bench-results/hfair-live-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out_dir"
log() { printf '[hfair-live] %s\n' "$*" >&2; }

pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  pids=()
}
trap 'rc=$?; stop_all; exit $rc' EXIT INT TERM

wait_http() { # URL NAME PID
  for _ in $(seq 300); do
    curl -fs -o /dev/null --max-time 1 "$1" && return 0
    kill -0 "$3" 2>/dev/null || { log "$2 exited during start-up"; tail -20 "$out_dir/$2.log" >&2; return 1; }
    sleep 0.2
  done
  log "$2 did not become ready at $1"; return 1
}

if [ $build = 1 ]; then
  for p in src/Worker src/Gateway loadtests/LoadGen; do dotnet build "$p" -c Release -nologo -clp:ErrorsOnly -v q >/dev/null; done
fi
worker_dll=src/Worker/bin/Release/net10.0/Worker.dll
gateway_dll=src/Gateway/bin/Release/net10.0/Gateway.dll
loadgen_dll=loadtests/LoadGen/bin/Release/net10.0/LoadGen.dll
[ "$gateways" = 2 ] && { command -v redis-server >/dev/null || { log "redis-server not installed"; exit 1; }; }

secret="live-secret-$$"
tenants=(flood quiet-1 quiet-2 quiet-3)
# Which gateway each tenant enters through, and the LoadGen keys files (the first tenant of a file is LoadGen's
# "noisy" flow: the flood in file 1; with two gateways file 2 holds two quiet tenants and runs at --noisy-factor 1).
: > "$out_dir/keys1.txt"; : > "$out_dir/keys2.txt"
for k in "${!tenants[@]}"; do
  file=1; [ "$gateways" = 2 ] && [ "$k" -ge 2 ] && file=2
  echo "${tenants[$k]} sk-live-$k" >> "$out_dir/keys$file.txt"
done

start_system() { # start_system POLICY LABEL
  local policy=$1 label=$2 urls=()
  if [ "$gateways" = 2 ]; then
    redis-server --port $((base_port + 100)) --bind 127.0.0.1 --save '' --appendonly no > "$out_dir/$label-redis.log" 2>&1 &
    pids+=($!)
  fi
  for i in $(seq 1 "$workers"); do
    local url="http://127.0.0.1:$((base_port + i))"
    dotnet "$worker_dll" --urls "$url" --time-scale "$time_scale" --seed "$i" --log-level Warning > "$out_dir/$label-worker$i.log" 2>&1 &
    pids+=($!); urls+=("$url")
    wait_http "$url/healthz" "$label-worker$i" "$!"
  done
  for g in $(seq 1 "$gateways"); do
    local env_args=("Gateway__Listen=http://127.0.0.1:$((base_port + 50 + g))" "Gateway__Workers__Mode=Static"
      "Gateway__Routing__Policy=least-load" "Gateway__Auth__ServerSecret=$secret" "Logging__LogLevel__Default=Warning"
      "Gateway__Scheduling__Policy=$policy")
    [ "$gateways" = 2 ] && env_args+=("Gateway__State__Redis=127.0.0.1:$((base_port + 100))" "Gateway__State__ReplicaId=gw$g")
    for i in "${!urls[@]}"; do env_args+=("Gateway__Workers__Urls__$i=${urls[$i]}"); done
    for k in "${!tenants[@]}"; do
      local digest
      digest=$(printf '%s' "sk-live-$k" | openssl dgst -sha256 -hmac "$secret" | awk '{print $NF}')
      env_args+=("Gateway__Auth__Keys__${k}__Hash=$digest" "Gateway__Auth__Keys__${k}__Tenant=live/${tenants[$k]}/key")
    done
    env "${env_args[@]}" dotnet "$gateway_dll" > "$out_dir/$label-gateway$g.log" 2>&1 &
    pids+=($!)
    wait_http "http://127.0.0.1:$((base_port + 50 + g))/readyz" "$label-gateway$g" "$!"
    # Ready is not enough on a loaded machine: wait until the gateway lists the workers' model (else 404 model_not_found).
    for _ in $(seq 150); do
      curl -fs --max-time 1 -H "Authorization: Bearer sk-live-1" "http://127.0.0.1:$((base_port + 50 + g))/v1/models" | grep -q '"id"' && break
      sleep 0.2
    done
  done
  log "$label: $workers worker(s), $gateways gateway(s) under $policy"
}

run() { # run LABEL POLICY FLOOD_FACTOR
  local label=$1 policy=$2 f=$3 lg=()
  start_system "$policy" "$label"
  for g in $(seq 1 "$gateways"); do
    local gf=$f; [ "$g" = 2 ] && gf=1
    dotnet "$loadgen_dll" --scenario noisy-neighbour --target "http://127.0.0.1:$((base_port + 50 + g))" \
      --keys-file "$out_dir/keys$g.txt" --duration "$duration" --rate "$rate" --noisy-factor "$gf" \
      --prompt-tokens "$prompt" --max-tokens "$max_tokens" --ignore-eos --seed $((41 + g)) --warmup 4 --plain \
      --out "$out_dir/$label-gw$g.json" > "$out_dir/$label-gw$g.log" 2>&1 &
    lg+=($!)
  done
  local rc=0
  for p in "${lg[@]}"; do wait "$p" || rc=$?; done
  cut -d' ' -f1-3 /proc/loadavg > "$out_dir/$label-loadavg.txt" 2>/dev/null || true
  # Each gateway's metrics (queue wait and TTFT per tenant, reserve counters): where a slow quiet request waited.
  for g in $(seq 1 "$gateways"); do
    curl -fs --max-time 5 "http://127.0.0.1:$((base_port + 50 + g))/metrics" > "$out_dir/$label-gw$g-metrics.txt" 2>/dev/null || true
  done
  stop_all
  [ $rc = 0 ] || { log "LoadGen failed in $label (see $out_dir/$label-gw*.log)"; exit 1; }
}

log "out: $out_dir (machine shared with other jobs: compare within this run only)"
for r in $(seq 1 "$repeat"); do
  run "alone-r$r" fcfs 0
  run "contended-r$r" hfair "$factor"
  if [ $fcfs_ref = 1 ]; then run "fcfs-r$r" fcfs "$factor"; fi
done
python3 - "$out_dir" "$gateways" "$workers" "$factor" "$rate" "$prompt" "$max_tokens" "$time_scale" "$duration" "$repeat" <<'EOF'
import json, sys, os, statistics
out, gateways, workers, factor, rate, prompt, max_tokens, ts, duration, repeat = sys.argv[1:]
def groups(label):
    g = {}
    for k in range(1, int(gateways) + 1):
        with open(os.path.join(out, f"{label}-gw{k}.json")) as f:
            rep = json.load(f)
        for name, s in rep["tenants"].items():
            g[name] = s
    return g
def table(r):
    alone, cont = groups(f"alone-r{r}"), groups(f"contended-r{r}")
    fcfs = groups(f"fcfs-r{r}") if os.path.exists(os.path.join(out, f"fcfs-r{r}-gw1.json")) else None
    quiet = sorted(n for n in cont if "quiet" in n)
    flood = [n for n in cont if "flood" in n]
    rows = []
    for q in quiet:
        a, c = alone[q]["ttft_ms"], cont[q]["ttft_ms"]
        f99 = f" | {fcfs[q]['ttft_ms']['p99'] / a['p99']:.1f}" if fcfs else ""
        rows.append((q, alone[q]["ok"], cont[q]["ok"], a["p50"], a["p99"], c["p50"], c["p99"], c["p50"] / a["p50"], c["p99"] / a["p99"], f99))
    lines = ["| tenant | requests ok alone / contended | TTFT p50 alone -> contended ms | TTFT p99 alone -> contended ms | p50 / alone | p99 / alone |"
             + (" fcfs p99 / alone |" if fcfs else ""),
             "|---|---|---|---|---:|---:|" + ("---:|" if fcfs else "")]
    for q, na, nc, a50, a99, c50, c99, r50, r99, f99 in rows:
        lines.append(f"| {q} | {na} / {nc} | {a50:.0f} -> {c50:.0f} | {a99:.0f} -> {c99:.0f} | {r50:.2f} | {r99:.2f}{f99} |")
    for fl in flood:
        st = cont[fl]
        ref = f"; fcfs {fcfs[fl]['output_token_throughput']:.0f}" if fcfs else ""
        lines.append(f"| {fl} (flood) | {st['ok']} ok, {st['error']} refused or failed of {st['requests']} | p50 {st['ttft_ms']['p50']:.0f} | p99 {st['ttft_ms']['p99']:.0f} | out tok/s {st['output_token_throughput']:.0f}{ref} | |" + (" |" if fcfs else ""))
    return lines, max(x[-2] for x in rows), max(x[-3] for x in rows)
def load(label):
    f = os.path.join(out, f"{label}-loadavg.txt")
    return open(f).read().strip() if os.path.exists(f) else "not recorded"
lines = [f"Live: {workers} worker(s) (roofline h100-llama3-8b, --time-scale {ts}), {gateways} gateway replica(s)"
         + (" over one redis-server" if gateways == "2" else "") + f"; noisy-neighbour, quiet tenants at {rate}/s, flood at {factor}x, "
         f"{prompt}-token prompts, {max_tokens} output tokens, {duration}; {repeat} repetition(s), each on a fresh system. Alone = fcfs, flood silent; contended = hfair.", ""]
worst99, worst50 = [], []
for r in range(1, int(repeat) + 1):
    t, w99, w50 = table(r)
    worst99.append(w99)
    worst50.append(w50)
    lines += [f"Repetition {r} (load average 1/5/15 min at the end of its contended run: {load(f'contended-r{r}')}; {os.cpu_count()} cores):", ""] + t + [""]
def spread(v):
    return f"{statistics.median(v):.2f} (range {min(v):.2f}-{max(v):.2f}; runs: {', '.join(f'{x:.2f}' for x in v)})"
lines += [f"worst quiet p99 / alone, median over repetitions: {spread(worst99)}",
          f"worst quiet p50 / alone, median over repetitions: {spread(worst50)}"]
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
