#!/usr/bin/env bash
# Agent sessions on tiered KV (docs/results/agent-tiers.md, quoted by docs/policies/agent-retention.md): the WEKA v8
# agent sessions plus Azure one-shot traffic on 2 workers under KV pressure, with no host tier, a host tier of 2x and
# of 4x the HBM pool; retention off / fixed:2 / predictive / the clairvoyant oracle on the identical stream per seed.
# Traces: ../shared/traces (beside the repository), or TRACES=/path. SEEDS (default 1-3), KV (HBM blocks per worker,
# default 16000) and SESSIONS (default 16) override the setup; HOSTS (host-tier sizes as multiples of KV, default
# "0 2 4") and RETENTION (default off,fixed:2,predictive,oracle:3600) pick a subset of the runs; KEEP=/dir keeps each
# tier's result.json there and tabulates every host-*.json in it (so subsets run separately make one table). HBM_PINS=on
# runs `predictive` with HBM pins on workers without a host tier (--retention-hbm-pins on; its rows are labelled
# predictive+hbm-pins) and GUARD=off without their guard (predictive+hbm-pins-unguarded); each writes its own
# host-N-*.json beside the others. Runs at nice 15.
set -euo pipefail
cd "$(dirname "$0")/.."
traces="${TRACES:-../shared/traces}"
seeds="${SEEDS:-1-3}"
kv="${KV:-16000}"
sessions="${SESSIONS:-16}"
hosts="${HOSTS:-0 2 4}"
retention="${RETENTION:-off,fixed:2,predictive,oracle:3600}"
out="${OUT:-docs/results}"
hbm_pins="${HBM_PINS:-off}"
guard="${GUARD:-on}"
suffix=""
if [ "$hbm_pins" = on ]; then
  suffix="-hbm-pins"
  [ "$guard" = off ] && suffix="-hbm-pins-unguarded"
fi
if [ ! -d "$traces" ]; then
  echo "error: trace folder '$traces' not found (set TRACES=/path/to/shared/traces)" >&2
  exit 1
fi
start=$(date +%s)
dotnet build src/Simulator -c Release -nologo -clp:ErrorsOnly >&2
tmp="${KEEP:-$(mktemp -d)}"
mkdir -p "$tmp"
pids=()
for m in $hosts; do
  host=$((m * kv))
  nice -n 15 dotnet src/Simulator/bin/Release/net10.0/Simulator.dll \
    --trace "$traces/weka_agentic_coding_v8/traces" --format weka --max-sessions "$sessions" --session-rate 0.5 \
    --workers 2 --kv-blocks "$kv" --host-kv-blocks "$host" --routing kv-aware \
    --mix-trace "$traces/azure_llm_2023/AzureLLMInferenceTrace_conv.csv" --mix-rate 0.5 --mix-max-requests 1800 \
    --retention-hbm-pins "$hbm_pins" --retention-guard "$guard" \
    --seeds "$seeds" --retention "$retention" --out "$tmp/host-$host$suffix.json" > "$tmp/host-$host$suffix.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
mkdir -p "$out"
python3 scripts/agent-tiers-table.py --kv "$kv" --sessions "$sessions" --seeds "$seeds" "$tmp"/host-*.json > "$out/agent-tiers.md"
echo "agent-tiers.sh: wrote $out/agent-tiers.md in $(( $(date +%s) - start )) s (build included)" >&2
