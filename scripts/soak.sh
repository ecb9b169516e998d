#!/usr/bin/env bash
# Soak: mixed traffic through one gateway process and its 4 embedded reference workers for DURATION, sampling the
# process every SAMPLE seconds, and reporting growth between the end of the warm-up and the end.
#
#   scripts/soak.sh 1h            # warm-up 10m, samples every 60 s
#   SAMPLE=30 WINDOW=120 SPIKE_EVERY=720 scripts/soak.sh 60m 10m   # the hour with a load spike every 12 minutes
#   SAMPLE=20 MAX_GROWTH=5 scripts/soak.sh 5m 2m   # the short run ./test.sh makes: fails unless memory is flat
#
# Traffic (loadtests/LoadGen, three flows at once on the demo key; the spikes on a key of their own, tenant soak/spike/spike-key,
# so a burst queues under its own tenant and the steady flows keep their fair share instead of being refused 429):
#   multi-turn  chat sessions that re-send their history (agent-like sessions, streamed), 1 session/s
#   overhead    short streams, 10/s
#   cancels     long streams (4000 tokens, --ignore-eos, about 1.6 s at time scale 0.05) cut by the client's 0.5 s
#               --timeout: every one is cancelled mid-stream (the report counts them as timeout_total), 3/s
#   spikes      (SPIKE_EVERY=S) every S seconds from S/2 on, SPIKE_USERS (200) closed-loop users of short streams for
#               SPIKE_SECS (30): hundreds of connections at once. A period that divides the time between the two
#               windows compared (48 min for the hour: 12 min) puts both at the same point after a spike.
# Samples: RSS (and its parts from /proc/PID/status: anonymous, file-backed, shared, the last being the runtime's
# double-mapped JIT code and stubs), the GC's committed memory (gateway_process_gc_committed_bytes: anonymous minus it is
# native memory: thread stacks, the runtime's and native libraries' allocations), threads and open file descriptors, the managed heap after the last collection from the
# gateway's gateway_process_gc_heap_bytes gauge (/metrics), and the live heap: what survives a full collection, from
# dotnet-gcdump (installed under .tools/dotnet-tools when missing; LIVE_HEAP=0 skips it). The gcdumps of the end of the
# warm-up and of the end give the types that grew. After the load: requests in flight and KV blocks used on the
# workers (both must be back to 0: every cancel released its worker).
# The embedded workers get KV_BLOCKS blocks each (1024: 16k tokens), not a modelled H100's ~27k: every structure
# bounded by the KV pools (the workers' prefix caches, the gateway's precise and approximate prefix indexes, the
# workers' cached-hash mirrors) then reaches its bound during the warm-up instead of filling for hours, so what the
# run measures after the warm-up is what a long run holds (KV_BLOCKS=0: the profile's pool).
# Growth is given twice: point to point (the sample at the end of the warm-up against the last), and window to window
# (the median of the samples in the WINDOW seconds after the warm-up against the median of the last WINDOW seconds),
# which a single sample taken during a load spike (threads, sockets) cannot move.
# RSS is read twice a sample: before the gcdump, and right after the full collection it makes. The second is taken at the
# same point of the collector's cycle every time, so it does not swing with the garbage allocated since the last
# collection (tens of MiB): it is the one MAX_GROWTH checks.
# MAX_GROWTH=P: exit 3 unless RSS after a full GC and the live heap (window to window) grew less than P % (both need dotnet-gcdump).
# REPORT_FROM=DIR: no run, only the report again from the samples and gcdumps an earlier run left in DIR (its last line
# names it), for another warm-up (the second argument) or WINDOW; give the same KV_BLOCKS and AGENTS for its header.
# Report: soak-report.md (SOAK_OUT to change), also printed.
# Environment: SAMPLE (60), WINDOW (60), SPIKE_EVERY (0: none), SPIKE_USERS, SPIKE_SECS, PORT (18480), TIME_SCALE (0.05, worker wall seconds per modelled second),
# KV_BLOCKS (1024), AGENTS (Gateway:Agents:Mode; unset: the gateway's default), MALLOC_ARENA_MAX (2, as the image), CONFIG (Release; Debug uses the build ./test.sh made), NO_BUILD=1, LIVE_HEAP, MAX_GROWTH.
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
window=${WINDOW:-60}
kv_blocks=${KV_BLOCKS:-1024}
agents=${AGENTS:-}
config=${CONFIG:-Release}
max_growth=${MAX_GROWTH:-}
port=${PORT:-18480}
scale=${TIME_SCALE:-0.05}
out=${SOAK_OUT:-$PWD/soak-report.md}
work=${REPORT_FROM:-$(mktemp -d)}
key=sk-demo-local-0000
spike_key=sk-soak-spike-0000
# A per-run server secret and the spike key's digest under it (Gateway:Auth:Keys holds digests, not keys).
secret=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
spike_hash=$(python3 -c 'import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())' "$secret" "$spike_key")
url=http://127.0.0.1:$port

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

if [ -z "${REPORT_FROM:-}" ]; then # (not indented: the whole run)
if [ "${NO_BUILD:-0}" != 1 ]; then
  dotnet build src/Gateway -c "$config" -nologo -clp:ErrorsOnly >&2
  dotnet build loadtests/LoadGen -c "$config" -nologo -clp:ErrorsOnly >&2
fi
gateway_dll=$(ls src/Gateway/bin/"$config"/net*/Gateway.dll | head -1)
loadgen_dll=$(ls loadtests/LoadGen/bin/"$config"/net*/LoadGen.dll | head -1)

# MALLOC_ARENA_MAX=2 as the gateway's image sets it (glibc's default, 8 arenas a core, each keeping its peak: see docs/reliability.md)
env MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}" ${agents:+Gateway__Agents__Mode=$agents} Gateway__Listen=$url \
  Gateway__Auth__ServerSecret="$secret" Gateway__Auth__Keys__0__Hash="$spike_hash" Gateway__Auth__Keys__0__Tenant=soak/spike/spike-key Gateway__Workers__Embedded__TimeScale=$scale Gateway__Workers__Embedded__KvBlocks=$kv_blocks \
  Logging__LogLevel__Default=Warning dotnet "$gateway_dll" > "$work/gateway.log" 2>&1 &
gw=$!; pids+=("$gw")
for _ in $(seq 1 120); do curl -sf "$url/readyz" >/dev/null 2>&1 && break; sleep 1; done
curl -sf "$url/readyz" >/dev/null || { echo "gateway did not become ready" >&2; tail -20 "$work/gateway.log" >&2; exit 1; }
echo "soak: gateway pid $gw on $url, ${duration}s, warm-up ${warmup}s, sample every ${sample}s, ${kv_blocks} KV blocks a worker${agents:+, agents $agents}" >&2

lg() { dotnet "$loadgen_dll" --target "$url" --key "${lg_key:-$key}" --duration "${duration}s" --warmup 1 --plain "$@"; }
lg --scenario multi-turn --rate 1 --out "$work/multi-turn.json" > "$work/multi-turn.log" 2>&1 & pids+=("$!")
lg --scenario overhead --rate 10 --out "$work/overhead.json" > "$work/overhead.log" 2>&1 & pids+=("$!")
lg --scenario overhead --rate 3 --max-tokens 4000 --ignore-eos --timeout 500ms --out "$work/cancels.json" > "$work/cancels.log" 2>&1 & pids+=("$!")
# Load spikes (SPIKE_EVERY=S): every S seconds from S/2 on, SPIKE_USERS closed-loop users sending short streams for
# SPIKE_SECS on top of the three flows: hundreds of connections and the thread-pool threads they bring, as a real gateway sees
# when a client fleet bursts. The report marks the samples taken in one or in the minute after it.
spike_every=${SPIKE_EVERY:-0}; spike_users=${SPIKE_USERS:-200}; spike_secs=${SPIKE_SECS:-30}
if [ "$spike_every" -gt 0 ]; then
  (t0=$(date +%s); at=$(( spike_every / 2 )); n=0
   while [ $(( at + spike_secs )) -le "$duration" ]; do
     now=$(( $(date +%s) - t0 )); [ "$now" -lt "$at" ] && sleep $(( at - now ))
     echo "$at" >> "$work/spikes.txt"
     lg_key=$spike_key lg --scenario overhead --concurrency "$spike_users" --duration "${spike_secs}s" --out "$work/spike-$n.json" > "$work/spike-$n.log" 2>&1 || true
     n=$(( n + 1 )); at=$(( at + spike_every ))
   done) & pids+=("$!")
fi

# The live heap: dotnet-gcdump forces a full collection in the gateway and counts what survives (a pause of a fraction
# of a second each sample: latency figures of a run with it are not representative; memory figures are).
gcdump=""
if [ "${LIVE_HEAP:-1}" = 1 ]; then
  gcdump=$(command -v dotnet-gcdump || true)
  if [ -z "$gcdump" ]; then
    [ -x .tools/dotnet-tools/dotnet-gcdump ] || dotnet tool install --tool-path .tools/dotnet-tools dotnet-gcdump >/dev/null 2>&1 || true
    [ -x .tools/dotnet-tools/dotnet-gcdump ] && gcdump=.tools/dotnet-tools/dotnet-gcdump
  fi
  [ -n "$gcdump" ] || echo "soak: dotnet-gcdump unavailable, no live-heap column" >&2
fi

echo "minute,rss_kb,gc_heap_bytes,live_heap_bytes,rss_gc_kb,threads,fds,anon_kb,file_kb,shmem_kb,gc_committed_bytes" > "$work/samples.csv"
snap() {
  local rss threads fds heap live=NA rss_gc=NA anon file shmem committed prom
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$gw/status" || true)
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$gw/status" || true)
  fds=$(ls "/proc/$gw/fd" 2>/dev/null | wc -l || true)
  # RSS = anonymous (GC heaps, thread stacks, native allocations) + file-backed (mapped assemblies and libraries) +
  # shared memory (with W^X on, the default, the runtime double-maps its executable memory, JIT code and stubs, from a memfd)
  anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$gw/status" || true)
  file=$(awk '/^RssFile:/ {print $2}' "/proc/$gw/status" || true)
  shmem=$(awk '/^RssShmem:/ {print $2}' "/proc/$gw/status" || true)
  prom=$(curl -sf --max-time 10 "$url/metrics" 2>/dev/null || true)
  heap=$(awk '/^gateway_process_gc_heap_bytes/ {print $2; exit}' <<<"$prom" || true)
  committed=$(awk '/^gateway_process_gc_committed_bytes/ {print $2; exit}' <<<"$prom" || true)
  if [ -n "$gcdump" ] && timeout 120 "$gcdump" collect -p "$gw" -o "$work/heap-$1.gcdump" >/dev/null 2>&1; then
    timeout 120 "$gcdump" report "$work/heap-$1.gcdump" > "$work/heap-$1.txt" 2>/dev/null || true
    live=$(awk '/GC Heap bytes/ {gsub(",", "", $1); print $1; exit}' "$work/heap-$1.txt" 2>/dev/null)
    rss_gc=$(awk '/^VmRSS:/ {print $2}' "/proc/$gw/status" || true) # right after the dump's full collection
  fi
  echo "$1,$rss,${heap:-NA},${live:-NA},${rss_gc:-NA},$threads,$fds,${anon:-NA},${file:-NA},${shmem:-NA},${committed:-NA}" >> "$work/samples.csv"
}
start=$(date +%s)
snap 0
while [ $(( $(date +%s) - start )) -lt "$duration" ]; do
  sleep "$sample"
  kill -0 "$gw" 2>/dev/null || { echo "gateway died; its log:" >&2; tail -20 "$work/gateway.log" >&2; exit 1; }
  snap "$(awk -v s="$(( $(date +%s) - start ))" 'BEGIN { printf "%.1f", s / 60 }')"
done
wait "${pids[@]:1}" 2>/dev/null || true
sleep 3 # the last cancels reach the workers
curl -sf --max-time 10 "$url/metrics" > "$work/after.prom" 2>/dev/null || true
fi

python3 - "$work" "$warmup" "$duration" "$out" "$window" "$kv_blocks" "$max_growth" "${agents:-default}" <<'PY'
import csv, sys, os, re, statistics
work, warmup, duration, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
window, kv_blocks, max_growth, agents = int(sys.argv[5]), sys.argv[6], sys.argv[7], sys.argv[8]
rows = list(csv.DictReader(open(os.path.join(work, "samples.csv"))))
base = next((r for r in rows if float(r["minute"]) * 60 >= warmup), rows[0])
last = rows[-1]
# A gcdump can fail under load: the live heap (and the types that grew) start from the first sample that has one.
base_live = next((r for r in rows if float(r["minute"]) >= float(base["minute"]) and r["live_heap_bytes"] not in ("", "NA")), base)
def growth(k):
    b0 = base_live if k in ("live_heap_bytes", "rss_gc_kb") else base
    try:
        a, b = float(b0[k]), float(last[k])
        return f"{(b - a) / a * 100:+.1f} %"
    except (ValueError, ZeroDivisionError, TypeError, KeyError):
        return "n/a"
def mib(v):
    return f"{float(v) / 2**20:.1f}" if v not in ("", "NA", None) else "n/a"
# native: anonymous memory the GC did not commit (thread stacks, the runtime's and native libraries' allocations, JIT code).
for r in rows:
    try:
        r["native_kb"] = str(float(r["anon_kb"]) - float(r["gc_committed_bytes"]) / 1024)
    except (ValueError, TypeError, KeyError):
        r["native_kb"] = "NA"
spikes = [int(l) for l in open(os.path.join(work, "spikes.txt"))] if os.path.exists(os.path.join(work, "spikes.txt")) else []
spike_secs = int(os.environ.get("SPIKE_SECS", "30"))
def in_spike(r):  # a sample taken during a spike or within a minute after its end
    t = float(r["minute"]) * 60
    return any(a <= t <= a + spike_secs + 60 for a in spikes)
lines = [f"### soak: {duration // 60} min, warm-up {warmup // 60} min, {len(rows)} samples, {kv_blocks} KV blocks a worker, agent sessions {'off' if agents == 'off' else 'tracked (' + agents + ')'}"
         + (f", load spikes of {spike_secs} s at minutes {', '.join(f'{a / 60:g}' for a in spikes)} (samples marked *)" if spikes else ""), "",
         "| minute | RSS (MiB) | RSS after a full GC (MiB) | anonymous (MiB) | GC committed (MiB) | native: anonymous − GC committed (MiB) | JIT code, stubs: shared (MiB) | file-backed (MiB) | GC heap after last GC (MiB) | live heap (MiB) | threads | fds |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
def kib(v):
    return f"{float(v) / 1024:.1f}" if v not in ("", "NA", None) else "n/a"
for r in rows:
    lines.append(f"| {r['minute']}{' *' if in_spike(r) else ''} | {kib(r['rss_kb'])} | {kib(r.get('rss_gc_kb'))} | {kib(r.get('anon_kb'))} | {mib(r.get('gc_committed_bytes'))} | {kib(r.get('native_kb'))} | {kib(r.get('shmem_kb'))} | {kib(r.get('file_kb'))} | {mib(r['gc_heap_bytes'])} | {mib(r['live_heap_bytes'])} | {r['threads']} | {r['fds']} |")
lines += ["", f"Growth from minute {base['minute']} to minute {last['minute']}: RSS {growth('rss_kb')}, RSS after a full GC {growth('rss_gc_kb')} (from minute {base_live['minute']}), "
          f"anonymous {growth('anon_kb')}, GC committed {growth('gc_committed_bytes')}, native {growth('native_kb')}, shared {growth('shmem_kb')}, file-backed {growth('file_kb')}, GC heap after last GC "
          f"{growth('gc_heap_bytes')}, live heap {growth('live_heap_bytes')} (from minute {base_live['minute']}), threads {growth('threads')}, fds {growth('fds')}."]

# Window to window: medians of the samples in the first WINDOW seconds from the end of the warm-up and in the last WINDOW seconds.
def window_growth(k):
    t0, t1 = float(base["minute"]), float(last["minute"])
    def vals(lo, hi):
        return [float(r[k]) for r in rows if lo - 1e-9 <= float(r["minute"]) <= hi + 1e-9 and r.get(k) not in ("", "NA", None)]
    first, end = vals(t0, t0 + window / 60), vals(t1 - window / 60, t1)
    if not first or not end or t1 - window / 60 <= t0 + window / 60:
        return None, len(first), len(end)
    a, b = statistics.median(first), statistics.median(end)
    return (b - a) / a * 100, len(first), len(end)
wg = {k: window_growth(k) for k in ("rss_kb", "rss_gc_kb", "anon_kb", "gc_committed_bytes", "native_kb", "shmem_kb", "file_kb", "gc_heap_bytes", "live_heap_bytes")}
def wtext(k):
    g, n0, n1 = wg[k]
    return "n/a" if g is None else f"{g:+.1f} %"
lines += ["", f"Window to window (median of the {wg['rss_kb'][1]} samples from minute {base['minute']} over {window} s, against the median of the "
          f"{wg['rss_kb'][2]} samples of the last {window} s): RSS {wtext('rss_kb')}, RSS after a full GC {wtext('rss_gc_kb')}, anonymous {wtext('anon_kb')}, "
          f"GC committed {wtext('gc_committed_bytes')}, native {wtext('native_kb')}, shared {wtext('shmem_kb')}, file-backed {wtext('file_kb')}, GC heap after last GC {wtext('gc_heap_bytes')}, "
          f"live heap {wtext('live_heap_bytes')}."]
# Where the RSS goes after the warm-up: what the GC holds committed per byte of live heap, and the native part's range.
post = [r for r in rows if float(r["minute"]) >= float(base["minute"])]
def num(r, k):
    try:
        return float(r[k])
    except (ValueError, TypeError, KeyError):
        return None
ratios = sorted(num(r, "gc_committed_bytes") / num(r, "live_heap_bytes") for r in post if num(r, "gc_committed_bytes") and num(r, "live_heap_bytes"))
natives = sorted(num(r, "native_kb") / 1024 for r in post if num(r, "native_kb") is not None)
if ratios:
    lines += ["", f"After the warm-up ({len(ratios)} samples): GC committed {statistics.median(ratios):.2f}x the live heap (median; {ratios[0]:.2f}–{ratios[-1]:.2f}x)"
              + (f", native memory {natives[0]:.1f}–{natives[-1]:.1f} MiB" if natives else "")
              + f", threads {min(int(r['threads']) for r in post)}–{max(int(r['threads']) for r in post)}."]
verdict = None
if max_growth:
    limit = float(max_growth)
    checked = {"RSS after a full GC": wg["rss_gc_kb"][0], "live heap": wg["live_heap_bytes"][0]}
    missing = [k for k, v in checked.items() if v is None]
    over = [f"{k} {v:+.1f} %" for k, v in checked.items() if v is not None and v >= limit]
    verdict = "failed" if missing or over else "passed"
    lines += ["", f"Check (growth under {limit:g} %, window to window): **{verdict}**"
              + (f" ({', '.join(over + [k + ' not measured' for k in missing])})" if verdict == "failed" else "") + "."]

# Types whose live bytes grew most between the two gcdumps (dotnet-gcdump report: bytes, count, type).
def types(minute):
    path = os.path.join(work, f"heap-{minute}.txt")
    d = {}
    if not os.path.exists(path):
        return None
    for line in open(path):
        m = re.match(r"\s*([\d,]+)\s+([\d,]+)\s+(.*?)\s+\[", line)
        if m:
            size, n, name = int(m.group(1).replace(",", "")), int(m.group(2).replace(",", "")), m.group(3)
            total = size * n  # every row gives the size of one object (bucketed rows: their mean), the count, the type
            name = re.sub(r" \(Bytes > \d+K\)", "", name)
            t, c = d.get(name, (0, 0))
            d[name] = (t + total, c + n)
    return d
a, b = types(base_live["minute"]), types(last["minute"])
if a is not None and b is not None:
    diff = sorted(((b.get(k, (0, 0))[0] - a.get(k, (0, 0))[0], b.get(k, (0, 0))[1] - a.get(k, (0, 0))[1], k) for k in set(a) | set(b)), reverse=True)
    lines += ["", f"Live types that grew most from minute {base_live['minute']} to minute {last['minute']}:", "", "| type | bytes | objects |", "|---|---|---|"]
    for db, dn, k in diff[:8]:
        lines.append(f"| `{k[:100]}` | {db:+,} | {dn:+,} |")

lines += ["", "| flow | requests | ok | errors | no answer |", "|---|---|---|---|---|"]
for flow in ("multi-turn", "overhead", "cancels"):
    text = open(os.path.join(work, flow + ".log")).read() if os.path.exists(os.path.join(work, flow + ".log")) else ""
    m = re.search(r"(\d+) requests, ok (\d+), error (\d+), no answer (\d+)", text)
    reasons = re.search(r"[Ee]rrors by reason: (.*)", text)
    if not reasons and os.path.exists(os.path.join(work, flow + ".json")):
        import json
        er = json.load(open(os.path.join(work, flow + ".json"))).get("overall", {}).get("error_reasons", {})
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(er.items())) or None
    else:
        reasons = reasons.group(1).strip() if reasons else None
    if m:
        lines.append(f"| {flow} | {m.group(1)} | {m.group(2)} | {m.group(3)}{' (' + reasons + ')' if reasons else ''} | {m.group(4)} |")
    else:
        lines.append(f"| {flow} | (no summary: {text.strip().splitlines()[-1] if text.strip() else 'empty log'}) | | | |")

# After the load stopped: nothing in flight, no KV block held for a request (cancelled ones included).
prom = open(os.path.join(work, "after.prom")).read() if os.path.exists(os.path.join(work, "after.prom")) else ""
def series(name):
    return [float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", prom, re.M)]
cancelled = sum(float(v) for v in re.findall(r'^gateway_requests_total{[^}]*status="499"[^}]*} (\S+)$', prom, re.M))
inflight, kv = series("gateway_worker_in_flight"), series("gateway_worker_kv_usage_ratio")
if prom:
    lines += ["", f"After the load: {int(cancelled)} requests the client cancelled (HTTP 499 in gateway_requests_total), "
              f"{int(sum(inflight))} in flight on the workers, KV usage {max(kv, default=0):.4f} at most (prefix-cache blocks "
              "a request no longer holds are not counted)."]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"\nSamples and gcdumps: {work} (dotnet-gcdump report FILE lists a dump's types).")
sys.exit(3 if verdict == "failed" else 0)
PY
