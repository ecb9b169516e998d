#!/usr/bin/env bash
# Soak: mixed traffic through one gateway process and its 4 embedded reference workers for DURATION, sampling the
# process every SAMPLE seconds, and reporting growth between the end of the warm-up and the end.
#
#   scripts/soak.sh 1h            # warm-up 10m, samples every 60 s
#   scripts/soak.sh 5m 1m         # the short run: warm-up 1m
#
# Traffic (loadtests/LoadGen, three flows at once, demo key):
#   multi-turn  chat sessions that re-send their history (agent-like sessions, streamed), 1 session/s
#   overhead    short streams, 10/s
#   cancels     long streams (2000 tokens, --ignore-eos) cut by the client's 1 s --timeout: cancels mid-stream, 3/s
# Samples: RSS, threads and open file descriptors from /proc/PID, the managed heap from the gateway's
# gateway_process_gc_heap_bytes gauge (/metrics). Report: soak-report.md (SOAK_OUT to change), also printed.
# Environment: SAMPLE (60), PORT (18480), TIME_SCALE (0.05, worker wall seconds per modelled second), NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

secs() { # 90s, 5m, 1h, 300 -> seconds
  local v=$1
  case "$v" in
    *h) echo $(( ${v%h} * 3600 )) ;; *m) echo $(( ${v%m} * 60 )) ;; *s) echo "${v%s}" ;; *) echo "$v" ;;
  esac
}
duration=$(secs "${1:-1h}")
warmup=$(secs "${2:-10m}")
sample=${SAMPLE:-60}
port=${PORT:-18480}
scale=${TIME_SCALE:-0.05}
out=${SOAK_OUT:-$PWD/soak-report.md}
work=$(mktemp -d)
key=sk-demo-local-0000
url=http://127.0.0.1:$port

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

if [ "${NO_BUILD:-0}" != 1 ]; then
  dotnet build src/Gateway -c Release -nologo -clp:ErrorsOnly >&2
  dotnet build loadtests/LoadGen -c Release -nologo -clp:ErrorsOnly >&2
fi
gateway_dll=$(ls src/Gateway/bin/Release/net*/Gateway.dll | head -1)
loadgen_dll=$(ls loadtests/LoadGen/bin/Release/net*/LoadGen.dll | head -1)

Gateway__Listen=$url Gateway__Workers__Embedded__TimeScale=$scale Logging__LogLevel__Default=Warning \
  dotnet "$gateway_dll" > "$work/gateway.log" 2>&1 &
gw=$!; pids+=("$gw")
for _ in $(seq 1 120); do curl -sf "$url/readyz" >/dev/null 2>&1 && break; sleep 1; done
curl -sf "$url/readyz" >/dev/null || { echo "gateway did not become ready" >&2; tail -20 "$work/gateway.log" >&2; exit 1; }
echo "soak: gateway pid $gw on $url, ${duration}s, warm-up ${warmup}s, sample every ${sample}s" >&2

lg() { dotnet "$loadgen_dll" --target "$url" --key "$key" --duration "${duration}s" --warmup 1 --plain "$@"; }
lg --scenario multi-turn --rate 1 --out "$work/multi-turn.json" > "$work/multi-turn.log" 2>&1 & pids+=("$!")
lg --scenario overhead --rate 10 --out "$work/overhead.json" > "$work/overhead.log" 2>&1 & pids+=("$!")
lg --scenario overhead --rate 3 --max-tokens 2000 --ignore-eos --timeout 1s --out "$work/cancels.json" > "$work/cancels.log" 2>&1 & pids+=("$!")

echo "minute,rss_kb,gc_heap_bytes,threads,fds" > "$work/samples.csv"
snap() {
  local rss threads fds heap
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$gw/status" || true)
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$gw/status" || true)
  fds=$(ls "/proc/$gw/fd" 2>/dev/null | wc -l || true)
  heap=$(curl -sf --max-time 10 "$url/metrics" 2>/dev/null | awk '/^gateway_process_gc_heap_bytes/ {print $2; exit}' || true)
  echo "$1,$rss,${heap:-NA},$threads,$fds" >> "$work/samples.csv"
}
start=$(date +%s)
snap 0
while [ $(( $(date +%s) - start )) -lt "$duration" ]; do
  sleep "$sample"
  kill -0 "$gw" 2>/dev/null || { echo "gateway died; its log:" >&2; tail -20 "$work/gateway.log" >&2; exit 1; }
  snap "$(awk -v s="$(( $(date +%s) - start ))" 'BEGIN { printf "%.1f", s / 60 }')"
done
wait "${pids[@]:1}" 2>/dev/null || true

python3 - "$work" "$warmup" "$duration" "$out" <<'PY'
import csv, sys, os
work, warmup, duration, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = list(csv.DictReader(open(os.path.join(work, "samples.csv"))))
base = next((r for r in rows if float(r["minute"]) * 60 >= warmup), rows[0])
last = rows[-1]
def growth(k):
    try:
        a, b = float(base[k]), float(last[k])
        return f"{(b - a) / a * 100:+.1f} %"
    except (ValueError, ZeroDivisionError):
        return "n/a"
lines = [f"### soak: {duration // 60} min, warm-up {warmup // 60} min, {len(rows)} samples", "",
         "| minute | RSS (MiB) | GC heap (MiB) | threads | fds |", "|---|---|---|---|---|"]
for r in rows:
    heap = f"{float(r['gc_heap_bytes']) / 2**20:.1f}" if r["gc_heap_bytes"] not in ("", "NA") else "n/a"
    lines.append(f"| {r['minute']} | {int(r['rss_kb']) / 1024:.1f} | {heap} | {r['threads']} | {r['fds']} |")
lines += ["", f"Growth from minute {base['minute']} to minute {last['minute']}: RSS {growth('rss_kb')}, GC heap {growth('gc_heap_bytes')}, "
          f"threads {growth('threads')}, fds {growth('fds')}.", "", "| flow | requests | ok | errors | no answer |", "|---|---|---|---|---|"]
import re
for flow in ("multi-turn", "overhead", "cancels"):
    text = open(os.path.join(work, flow + ".log")).read() if os.path.exists(os.path.join(work, flow + ".log")) else ""
    m = re.search(r"(\d+) requests, ok (\d+), error (\d+), no answer (\d+)", text)
    reasons = re.search(r"[Ee]rrors by reason: (.*)", text)
    if m:
        lines.append(f"| {flow} | {m.group(1)} | {m.group(2)} | {m.group(3)}{' (' + reasons.group(1).strip() + ')' if reasons else ''} | {m.group(4)} |")
    else:
        lines.append(f"| {flow} | (no summary: {text.strip().splitlines()[-1] if text.strip() else 'empty log'}) | | | |")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
