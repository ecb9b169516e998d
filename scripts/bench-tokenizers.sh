#!/usr/bin/env bash
# Encoding cost per 100,000 tokens of each tokenizer (bench/Gateway.Benchmarks/Tokenization/TokenizerBenchmarks.cs),
# BenchmarkDotNet ShortRun with 30 measured iterations, in-process, then the interleaved A/B (tokenizers-ab); writes docs/results/tokenizers.md with the machine's
# load average before and after (timings on a loaded machine are upper bounds: read the medians and the load).
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(cut -d' ' -f1-3 /proc/loadavg)
dotnet run -c Release --project bench/Gateway.Benchmarks -- --filter '*TokenizerBenchmarks*' --job short --iterationCount 30 --inProcess >/dev/null
ab=$(dotnet run -c Release --project bench/Gateway.Benchmarks -- tokenizers-ab 41)
after=$(cut -d' ' -f1-3 /proc/loadavg)
out=docs/results/tokenizers.md
{
  echo "# Tokenizers: encoding time per 100,000 tokens"
  echo
  echo "Written by \`scripts/bench-tokenizers.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores; load average before: $before, after: $after)."
  echo "\`ml-*\`: Microsoft.ML.Tokenizers' TiktokenTokenizer (the \`o200k_base\` / \`cl100k_base\` options); \`bpe-cl100k\`: the"
  echo "project's byte-level BPE loader (\`Tokenizers.FromTiktoken\`, the tokenizer.json / .tiktoken path) over the same cl100k"
  echo "ranks; \`default\`: the default tokenizer. Each operation encodes one text that is exactly 100k tokens under that tokenizer."
  echo
  sed -e 's/\*\*//g' BenchmarkDotNet.Artifacts/results/Gateway.Benchmarks.Tokenization.TokenizerBenchmarks-report-github.md
  echo
  echo "The same encodes interleaved round by round (\`dotnet run -c Release --project bench/Gateway.Benchmarks -- tokenizers-ab 41\`),"
  echo "so that load drifting during the run slows each tokenizer alike; the ratio is the figure to compare:"
  echo
  echo "$ab"
} > "$out"
echo "wrote $out"
