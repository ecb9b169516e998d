#!/usr/bin/env python3
"""Markdown table of a run-overhead.sh log: per target the medians over rounds of CPU us/request, alloc B/request, req/s
and p99, and per round the CPU ratio of each gateway target to plain YARP and (with BASELINE=) to the old build.

usage: bench/PlainYarp/run-overhead.sh ... | tee LOG; bench/PlainYarp/overhead-table.py LOG
"""
import re
import statistics
import sys


def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)] if m else float("nan")


def main():
    rows = {}
    for line in open(sys.argv[1]):
        if not line.startswith("run="):
            continue
        f = dict(kv.split("=", 1) for kv in line.split())
        rows.setdefault(f["target"], {})[int(f["run"])] = f
    order = [t for t in ("direct", "yarp", "nginx", "gateway", "gateway-notrace", "gateway-variant", "gateway-baseline") if t in rows]
    med = lambda t, k, conv=float: statistics.median(conv(r[k]) for r in rows[t].values())
    print("| target | CPU µs/request per round (median) | CPU vs YARP, per round median | CPU vs old build, per round median | alloc B/request (median) | req/s (median) | p99 ms (median) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for t in order:
        runs = sorted(rows[t])
        cpu = " / ".join(rows[t][r]["cpu_us"] for r in runs)

        def ratio(base):
            if base not in rows or t in ("direct", base):
                return ""
            rs = [float(rows[t][r]["cpu_us"]) / float(rows[base][r]["cpu_us"]) for r in runs if r in rows[base]]
            return f"{statistics.median(rs):.2f}x" if rs else ""

        alloc = med(t, "alloc_b")
        print(f"| {t} | {cpu} ({med(t, 'cpu_us'):.1f}) | {ratio('yarp')} | {ratio('gateway-baseline') if t.startswith('gateway') and t != 'gateway-baseline' else ''} "
              f"| {alloc:,.0f} | {med(t, 'rps'):,.0f} | {med(t, 'p99', ms):.2f} |".replace("| 0 |", "| — |"))


if __name__ == "__main__":
    main()
