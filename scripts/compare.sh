#!/usr/bin/env bash
# Regenerates every routing comparison table and chart the docs quote (docs/results/NAME.md, NAME-ttft.svg) from
# the suites in bench/compare/*-suite.json (routing-suite.json first), then the isolation table. Traces: ../shared/traces (beside the
# repository), or TRACES=/path. Extra arguments go to every `simulator compare` run (e.g. --parallel 2).
set -euo pipefail
cd "$(dirname "$0")/.."
traces="${TRACES:-../shared/traces}"
if [ ! -d "$traces" ]; then
  echo "error: trace folder '$traces' not found (set TRACES=/path/to/shared/traces)" >&2
  exit 1
fi
start=$(date +%s)
dotnet build src/Simulator -c Release -nologo -clp:ErrorsOnly >&2
for suite in bench/compare/routing-suite.json $(ls bench/compare/*-suite.json | grep -v '/routing-suite.json$'); do
  dotnet src/Simulator/bin/Release/net10.0/Simulator.dll compare --suite "$suite" --traces "$traces" "$@"
done
# isolation: hfair's latency isolation against the same quiet tenants alone (synthetic flood + quiet traces, 5 seeds)
# -> docs/results/hfair-isolation.md
python3 scripts/hfair-isolation.py --sim "dotnet src/Simulator/bin/Release/net10.0/Simulator.dll" --seeds 1-5 >/dev/null
echo "compare.sh: done in $(( $(date +%s) - start )) s (build included)" >&2
