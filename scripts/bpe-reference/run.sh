#!/usr/bin/env bash
# Cross-checks Llm.Prompt's BPE loader against js-tiktoken (npm) on cl100k_base and r50k_base (GPT-2):
# dumps both vocabularies as .tiktoken files plus js-tiktoken's ids for a set of texts, then encodes the same
# texts with Tokenizers.Load and compares id by id (and Decode round trip). Needs node + npm registry access.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${1:-$(mktemp -d)}"
cd "$work"
[ -d node_modules/js-tiktoken ] || npm install --silent js-tiktoken@1.0.21 >/dev/null
cp "$here/dump.cjs" . && node dump.cjs
dotnet run -c Release --project "$here/BpeReference.csproj" -- "$work"
