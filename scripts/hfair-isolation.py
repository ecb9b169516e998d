#!/usr/bin/env python3
"""Latency isolation of hfair in the simulator; writes docs/results/hfair-isolation.md.

One h100-llama3-8b worker; a tenant flooding at --flood-rate requests/s (16/s is about 1.7x what the worker serves)
next to three quiet tenants at 1 request/s each (about 11 % of the worker each, far under a quarter share). Per seed
(its own trace, scripts/hfair-trace.py) and engine step budget (--max-batch-tokens 8192, the default, and 2048):

  * contended: fcfs and hfair over the whole trace;
  * alone: the quiet tenants' requests only, under fcfs (work-conserving, never the scheduler under test), and under
    hfair (the no-contention comparison: hfair must serve them as fcfs does).

Capacity rule for every run: --max-waiting 1 (the gateway holds the queue). Usage:
  dotnet build src/Simulator
  python3 scripts/hfair-isolation.py --sim "dotnet src/Simulator/bin/Debug/net10.0/Simulator.dll" --seeds 1-5
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = [
    ("hfair, reserve off (`--reserve 0`)", ["--reserve", "0"]),
    ("hfair, no worker hint (`--under-share-priority 0`)", ["--under-share-priority", "0"]),
    ("hfair, urgent prefill shares the step (`--exclusive-priority-prefill off`)", ["--exclusive-priority-prefill", "off"]),
]


def seeds_of(text):
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += range(int(a), int(b) + 1)
        else:
            out.append(int(part))
    return out


def run(sim, trace, out, scheduling, extra):
    cmd = sim + ["--trace", trace, "--format", "canonical", "--workers", "1", "--max-waiting", "1", "--parallel", "1",
           "--scheduling", scheduling, "--out", out] + extra
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out, encoding="utf-8") as f:
        return {r["scheduling"]: r for r in json.load(f)["runs"]}


def tenants(r):
    return {t["tenant"]: t for t in r["tenants"]}


def spread(values, fmt="{:.2f}"):
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sim", required=True, help="Simulator executable (or 'dotnet path/Simulator.dll')")
    p.add_argument("--seeds", default="1-5")
    p.add_argument("--flood-rate", type=float, default=16.0)
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--out", default=os.path.join(HERE, "..", "docs", "results", "hfair-isolation.md"))
    a = p.parse_args()
    sim = a.sim.split()
    quiet = ["quiet-1", "quiet-2", "quiet-3"]
    rows = {}  # (budget) -> list of per-seed dicts
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds_of(a.seeds):
            trace = os.path.join(tmp, f"s{seed}.jsonl")
            subprocess.run([sys.executable, os.path.join(HERE, "hfair-trace.py"), "--seed", str(seed), "--flood-rate",
                            str(a.flood_rate), "--duration", str(a.duration), "--out", trace], check=True)
            for budget in (8192, 2048):
                extra = ["--max-batch-tokens", str(budget)]
                both = run(sim, trace, os.path.join(tmp, "c.json"), "fcfs,hfair", extra)
                alone = run(sim, trace, os.path.join(tmp, "a.json"), "fcfs,hfair", extra + ["--exclude-tenants", "flood"])
                fc, hf, al, alh = tenants(both["fcfs"]), tenants(both["hfair"]), tenants(alone["fcfs"]), tenants(alone["hfair"])
                variants = {}
                for name, flags in VARIANTS:
                    v = run(sim, trace, os.path.join(tmp, "v.json"), "hfair", extra + flags)["hfair"]
                    vt = tenants(v)
                    variants[name] = (max(vt[q]["ttft_ms"]["p99"] / al[q]["ttft_ms"]["p99"] for q in quiet),
                                      v["throughput_tokens_per_s"] / both["fcfs"]["throughput_tokens_per_s"])
                rows.setdefault(budget, []).append({
                    "seed": seed,
                    "alone_p99": [al[q]["ttft_ms"]["p99"] for q in quiet],
                    "hfair_p99": [hf[q]["ttft_ms"]["p99"] for q in quiet],
                    "fcfs_p99": [fc[q]["ttft_ms"]["p99"] for q in quiet],
                    "ratio": max(hf[q]["ttft_ms"]["p99"] / al[q]["ttft_ms"]["p99"] for q in quiet),
                    "fcfs_ratio": max(fc[q]["ttft_ms"]["p99"] / al[q]["ttft_ms"]["p99"] for q in quiet),
                    "tput": both["hfair"]["throughput_tokens_per_s"] / both["fcfs"]["throughput_tokens_per_s"],
                    "tput_hfair": both["hfair"]["throughput_tokens_per_s"], "tput_fcfs": both["fcfs"]["throughput_tokens_per_s"],
                    "lent": both["hfair"]["reserve_lent"], "reclaimed": both["hfair"]["reserve_reclaimed"],
                    "preempt": (both["hfair"]["preemptions"], both["fcfs"]["preemptions"]),
                    "nc_p50": alone["hfair"]["ttft_ms"]["p50"] / alone["fcfs"]["ttft_ms"]["p50"],
                    "nc_p99": alone["hfair"]["ttft_ms"]["p99"] / alone["fcfs"]["ttft_ms"]["p99"],
                    "variants": variants,
                    "nc_abs": (alone["fcfs"]["ttft_ms"]["p50"], alone["fcfs"]["ttft_ms"]["p99"], alone["hfair"]["ttft_ms"]["p50"], alone["hfair"]["ttft_ms"]["p99"]),
                })

    cmd = f"python3 scripts/hfair-isolation.py --sim \"dotnet src/Simulator/bin/Debug/net10.0/Simulator.dll\" --seeds {a.seeds} --flood-rate {a.flood_rate:g} --duration {a.duration:g}"
    lines = [
        "# hfair latency isolation (simulator)",
        "",
        "Generated by `" + cmd + "` (after `dotnet build src/Simulator`; virtual time, deterministic",
        "per seed). One `h100-llama3-8b` worker, `--max-waiting 1`; tenant `flood` at "
        f"{a.flood_rate:g} requests/s (about 1.7x what the worker serves) and three quiet tenants at 1 request/s each, "
        f"{a.duration:g} s of Poisson arrivals, prompts 512–4,096 tokens, outputs 32–256 (`scripts/hfair-trace.py`, one trace per seed).",
        "*Alone* = the quiet tenants' same requests with nothing else running, under `fcfs`. Ratios are TTFT p99 over the",
        "same tenant's p99 alone, worst of the three quiet tenants; medians over the seeds with the range in brackets.",
        "",
        "| engine step budget | quiet p99 / alone, hfair (target ≤ 1.25) | quiet p99 / alone, fcfs | hfair / fcfs output tok/s (target ≥ 0.95) | no contention: hfair / fcfs TTFT p50 ; p99 (target 0.95–1.05) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for budget, rs in rows.items():
        lines.append(f"| {budget} | {spread([r['ratio'] for r in rs])} | {spread([r['fcfs_ratio'] for r in rs], '{:.0f}')} | "
                     f"{spread([r['tput'] for r in rs], '{:.3f}')} | "
                     f"{spread([r['nc_p50'] for r in rs], '{:.3f}')} ; {spread([r['nc_p99'] for r in rs], '{:.3f}')} |")
    lines += ["", "Variants (same runs, one knob changed; quiet p99 / alone, and output tok/s over fcfs's):", "",
              "| engine step budget | variant | quiet p99 / alone | output tok/s / fcfs |", "|---:|---|---:|---:|"]
    for budget, rs in rows.items():
        for name, _ in VARIANTS:
            lines.append(f"| {budget} | {name} | {spread([r['variants'][name][0] for r in rs])} | {spread([r['variants'][name][1] for r in rs], '{:.3f}')} |")
    lines += ["", "Per seed (TTFT p99 in ms of quiet-1 / quiet-2 / quiet-3):", "",
              "| budget | seed | alone (fcfs) | hfair | ratio | fcfs | output tok/s hfair / fcfs | reserve lent / reclaimed | preemptions hfair / fcfs | no contention TTFT p50 / p99 fcfs ; hfair |",
              "|---:|---:|---|---|---:|---|---|---|---|---|"]
    for budget, rs in rows.items():
        for r in rs:
            f = lambda v: " / ".join(f"{x:,.0f}" for x in v)
            nc = r["nc_abs"]
            lines.append(f"| {budget} | {r['seed']} | {f(r['alone_p99'])} | {f(r['hfair_p99'])} | {r['ratio']:.2f} | {f(r['fcfs_p99'])} | "
                         f"{r['tput_hfair']:,.0f} / {r['tput_fcfs']:,.0f} | {r['lent']} / {r['reclaimed']} | {r['preempt'][0]} / {r['preempt'][1]} | "
                         f"{nc[0]:,.0f} / {nc[1]:,.0f} ; {nc[2]:,.0f} / {nc[3]:,.0f} |")
    lines.append("")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
