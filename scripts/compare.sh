#!/usr/bin/env bash
# Regenerates every routing comparison table and chart the docs quote (docs/results/routing.md, routing-ttft.svg)
# from bench/compare/routing-suite.json. Traces: ../shared/traces (beside the repository), or TRACES=/path.
# Extra arguments go to `simulator compare` (e.g. --parallel 2, --suite other.json).
set -euo pipefail
cd "$(dirname "$0")/.."
traces="${TRACES:-../shared/traces}"
if [ ! -d "$traces" ]; then
  echo "error: trace folder '$traces' not found (set TRACES=/path/to/shared/traces)" >&2
  exit 1
fi
start=$(date +%s)
dotnet build src/Simulator -c Release -nologo -clp:ErrorsOnly >&2
dotnet src/Simulator/bin/Release/net10.0/Simulator.dll compare --suite bench/compare/routing-suite.json --traces "$traces" "$@"
echo "compare.sh: done in $(( $(date +%s) - start )) s (build included)" >&2
