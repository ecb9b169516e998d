#!/usr/bin/env python3
"""CPU per request by binary, and the inclusive share of named frames, from `perf script` output of a proxy under load.

usage: perf-shares.py PERF_SCRIPT_TXT REQUESTS_PER_SECOND SECONDS [FREQUENCY=999] [FRAME_REGEX]
Each sample is one 1/FREQUENCY s of CPU; requests = rps x seconds. A frame's inclusive share counts every sample with
that frame anywhere on its stack (async continuations resume from the thread pool, so callers are often cut off).
"""
import collections
import re
import sys

DEFAULT_FRAMES = (r"^Gateway\.|^Llm\.|Polly\..*ExecuteCore$|^Prometheus\.HttpMetrics|^OpenTelemetry\.|HttpForwarder\+<SendAsync>"
                  r"|HostingApplicationDiagnostics::StartActivity|JsonDocument::Parse$")


def frame_name(text):
    text = re.sub(r"\[(OptimizedTier1|Optimized|Tier0|Tier1|QuickJitted|PreJIT|OptimizedTier1OSR|InstrumentedTier\w*)\]", "", text)
    text = re.sub(r"\+0x[0-9a-f]+$", "", text.strip())
    text = re.sub(r"valuetype |class |instance |\[[\w.]+\] ", "", text)
    m = re.search(r"([\w.`<>+|\[\],]+::[\w.`<>|]+)\(", text)
    return (m.group(1) if m else text)[:150]


def main():
    path, rps, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    freq = float(sys.argv[4]) if len(sys.argv) > 4 else 999
    pattern = re.compile(sys.argv[5] if len(sys.argv) > 5 else DEFAULT_FRAMES)
    by_binary, inclusive, total = collections.Counter(), collections.Counter(), 0
    frames, binary = [], None

    def flush():
        nonlocal total, frames, binary
        if frames:
            total += 1
            by_binary[binary] += 1
            for f in set(frames):
                inclusive[f] += 1
        frames, binary = [], None

    for line in open(path, errors="replace"):
        if not line.strip() or line[0] not in " \t":
            flush()
            continue
        parts = line.strip().split(" ", 1)
        if len(parts) < 2:
            continue
        m = re.search(r"\(([^)]*)\)$", parts[1])
        if binary is None:
            dso = m.group(1) if m else "?"
            binary = "JIT-compiled .NET code" if "perf-" in dso or dso.startswith("[JIT]") else dso.split("/")[-1]
        frames.append(frame_name(re.sub(r" \(\S+\)$", "", parts[1])))
    flush()
    us = 1e6 / freq / (rps * secs)
    print(f"samples={total} cpu_us_per_request={total * us:.1f}")
    for k, v in by_binary.most_common(8):
        print(f"  {100 * v / total:5.1f}%  {v * us:6.1f} us  {k}")
    print("inclusive share of named frames:")
    for k, v in inclusive.most_common():
        if pattern.search(k) and "AsyncStateMachineBox" not in k:
            print(f"  {100 * v / total:5.1f}%  {v * us:6.1f} us  {k}")


if __name__ == "__main__":
    main()
