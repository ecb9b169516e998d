#!/usr/bin/env python3
"""Latency isolation of hfair in the simulator; writes docs/results/hfair-isolation.md.

One h100-llama3-8b worker; a tenant flooding at --flood-rate requests/s (16/s is about 1.7x what the worker serves)
next to three quiet tenants at 1 request/s each (about 11 % of the worker each, far under a quarter share). Per seed
(its own trace, scripts/hfair-trace.py) and engine step budget (--max-batch-tokens 8192, the default, and 2048):

  * contended: fcfs and hfair over the whole trace;
  * alone: the quiet tenants' requests only, under fcfs (work-conserving, never the scheduler under test), and under
    hfair (the no-contention comparison: hfair must serve them as fcfs does);
  * variants of hfair with one mechanism switched off (8192 only).

Every run writes its per-request records (--requests-out); TTFT percentiles, shares and the flood's throughput are
computed from them. Capacity rule for every run: --max-waiting 1 (the gateway holds the queue). Usage:
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
QUIET = ["quiet-1", "quiet-2", "quiet-3"]
VARIANTS = [
    ("reserve off (`--reserve 0`)", ["--reserve", "0"]),
    ("no worker hint (`--under-share-priority 0`)", ["--under-share-priority", "0"]),
    ("urgent prefill shares the step (`--exclusive-priority-prefill off`)", ["--exclusive-priority-prefill", "off"]),
    ("urgent prompts batched together (`--serial-urgent-prefill off`)", ["--serial-urgent-prefill", "off"]),
    ("2,048-token low-priority steps (`--low-priority-prefill 2048`)", ["--low-priority-prefill", "2048"]),
    ("full-budget low-priority steps (`--low-priority-prefill 0`)", ["--low-priority-prefill", "0"]),
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
    """Runs the simulator; returns {scheduling: (run summary, [request records])}."""
    cmd = sim + ["--trace", trace, "--format", "canonical", "--workers", "1", "--max-waiting", "1", "--parallel", "1",
                 "--scheduling", scheduling, "--out", out, "--requests-out"] + extra
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"simulator failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr}")
    with open(out, encoding="utf-8") as f:
        runs = {r["scheduling"]: r for r in json.load(f)["runs"]}
    records = {k: [] for k in runs}
    with open(out[:-len(".json")] + ".requests.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            records[r["scheduling"]].append(r)
    return {k: (runs[k], records[k]) for k in runs}


def p99(values):
    """Nearest-rank p99 (the simulator's own percentile is interpolated; this one is reproducible by hand)."""
    v = sorted(values)
    return v[max(0, -(-99 * len(v) // 100) - 1)] * 1000.0


def ttfts(records, tenants, warmup):
    return [r["first_token"] - r["arrival"] for r in records
            if r["tenant"] in tenants and not r["rejected"] and r["arrival"] >= warmup]


def isolation(contended, alone, warmup):
    """(worst quiet tenant's p99 / its p99 alone, pooled quiet p99 / pooled alone)."""
    worst = max(p99(ttfts(contended, [q], warmup)) / p99(ttfts(alone, [q], warmup)) for q in QUIET)
    pooled = p99(ttfts(contended, QUIET, warmup)) / p99(ttfts(alone, QUIET, warmup))
    return worst, pooled


def service_in(records, t0, t1):
    """Cost units (uncached prompt x 1 + output x 2, the scheduler's cost) delivered per tenant in [t0, t1): the prompt
    at its first token, the output spread evenly from first token to finish."""
    out = {}
    for r in records:
        if r["rejected"]:
            continue
        s = 0.0
        if t0 <= r["first_token"] < t1:
            s += r["prompt_tokens"] - r["cached_tokens"]
        span = r["finish"] - r["first_token"]
        if span > 0:
            overlap = max(0.0, min(t1, r["finish"]) - max(t0, r["first_token"]))
            s += 2 * r["output_tokens"] * overlap / span
        elif t0 <= r["finish"] < t1:
            s += 2 * r["output_tokens"]
        out[r["tenant"]] = out.get(r["tenant"], 0.0) + s
    return out


def shares(contended, alone, t0, t1):
    """Worst |share / entitlement - 1| over the tenants in [t0, t1). Entitlement is max-min fair: a quiet tenant is
    entitled to its demand (what it receives alone in that window, far under a quarter), the flood to the rest."""
    got = service_in(contended, t0, t1)
    demand = service_in(alone, t0, t1)
    total = sum(got.values())
    entitled = {q: demand.get(q, 0.0) / total for q in QUIET}
    entitled["flood"] = 1 - sum(entitled.values())
    return max(abs(got.get(t, 0.0) / total / e - 1) for t, e in entitled.items() if e > 0)


def flood_throughput(records):
    """The flood's output tokens per second from its first arrival to its last finish."""
    f = [r for r in records if r["tenant"] == "flood" and not r["rejected"]]
    return sum(r["output_tokens"] for r in f) / (max(r["finish"] for r in f) - min(r["arrival"] for r in f))


def spread(values, fmt="{:.2f}"):
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sim", required=True, help="Simulator executable (or 'dotnet path/Simulator.dll')")
    p.add_argument("--seeds", default="1-5")
    p.add_argument("--flood-rate", type=float, default=16.0)
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--warmup", type=float, default=10.0, help="seconds of arrivals left out of the 'after warm-up' columns")
    p.add_argument("--out", default=os.path.join(HERE, "..", "docs", "results", "hfair-isolation.md"))
    a = p.parse_args()
    sim = a.sim.split()
    rows = {}  # budget -> list of per-seed dicts
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds_of(a.seeds):
            trace = os.path.join(tmp, f"s{seed}.jsonl")
            subprocess.run([sys.executable, os.path.join(HERE, "hfair-trace.py"), "--seed", str(seed), "--flood-rate",
                            str(a.flood_rate), "--duration", str(a.duration), "--out", trace], check=True)
            for budget in (8192, 2048):
                extra = ["--max-batch-tokens", str(budget)]
                both = run(sim, trace, os.path.join(tmp, "c.json"), "fcfs,hfair", extra)
                alone = run(sim, trace, os.path.join(tmp, "a.json"), "fcfs,hfair", extra + ["--exclude-tenants", "flood"])
                hf, fc, al, alh = both["hfair"][1], both["fcfs"][1], alone["fcfs"][1], alone["hfair"][1]
                row = {
                    "seed": seed,
                    "all": isolation(hf, al, 0), "warm": isolation(hf, al, a.warmup),
                    "fcfs": isolation(fc, al, a.warmup),
                    "alone_p99": [p99(ttfts(al, [q], a.warmup)) for q in QUIET],
                    "hfair_p99": [p99(ttfts(hf, [q], a.warmup)) for q in QUIET],
                    "shares": shares(hf, al, a.warmup, a.duration), "shares_fcfs": shares(fc, al, a.warmup, a.duration),
                    "flood": flood_throughput(hf) / flood_throughput(fc),
                    "tput": both["hfair"][0]["throughput_tokens_per_s"] / both["fcfs"][0]["throughput_tokens_per_s"],
                    "nc_p50": statistics.median(ttfts(alh, QUIET, 0)) / statistics.median(ttfts(al, QUIET, 0)),
                    "nc_p99": p99(ttfts(alh, QUIET, 0)) / p99(ttfts(al, QUIET, 0)),
                    "lent": both["hfair"][0]["reserve_lent"], "reclaimed": both["hfair"][0]["reserve_reclaimed"],
                    "urgent": both["hfair"][0]["urgent_dispatches"], "preempt": both["hfair"][0]["preemptions"],
                    "variants": {},
                }
                if budget == 8192:
                    for name, flags in VARIANTS:
                        v = run(sim, trace, os.path.join(tmp, "v.json"), "hfair", extra + flags)["hfair"]
                        row["variants"][name] = (isolation(v[1], al, a.warmup), flood_throughput(v[1]) / flood_throughput(fc))
                rows.setdefault(budget, []).append(row)
                print(f"seed {seed} budget {budget}: worst quiet p99/alone {row['all'][0]:.2f} (after warm-up {row['warm'][0]:.2f}), "
                      f"flood {row['flood']:.3f}, shares {row['shares']:.3f}, no contention {row['nc_p50']:.3f}/{row['nc_p99']:.3f}", file=sys.stderr)

    cmd = (f"python3 scripts/hfair-isolation.py --sim \"{a.sim}\" --seeds {a.seeds} "
           f"--flood-rate {a.flood_rate:g} --duration {a.duration:g} --warmup {a.warmup:g}")
    w = f"{a.warmup:g}"
    lines = [
        "# hfair latency isolation (simulator)",
        "",
        "Generated by `" + cmd + "` (after building src/Simulator; `scripts/compare.sh` runs it too; virtual time, "
        "deterministic per seed).",
        f"One `h100-llama3-8b` worker, `--max-waiting 1`; tenant `flood` at {a.flood_rate:g} requests/s (about 1.7x what the "
        f"worker serves) and three quiet tenants at 1 request/s each, {a.duration:g} s of Poisson arrivals, prompts "
        "512–4,096 tokens, outputs 32–256 (`scripts/hfair-trace.py`, one trace per seed). All figures come from the runs' "
        "per-request records (`--requests-out`).",
        "",
        "* *Alone* = the quiet tenants' same requests with nothing else running, under `fcfs`.",
        "* *Quiet p99 / alone*: TTFT p99 (nearest rank) of a quiet tenant over its own p99 alone, the worst of the three "
        "(about 120 requests each, so the p99 is the second-slowest); *pooled*: the three quiet tenants' requests together "
        f"(about 360). *After warm-up* leaves out the requests that arrived in the first {w} s, in every run alike (alone "
        "too; at 0 s the flood starts on an empty worker together with the quiet tenants); the target is on all requests.",
        f"* *Shares*: worst |share / entitlement − 1| over the four tenants, service (uncached prompt + 2 x output) "
        f"delivered from {w} s to {a.duration:g} s; a quiet tenant is entitled to its demand (what it gets alone), the "
        "flood to the rest (max-min fair).",
        "* *Flood throughput*: the flood's output tokens per second from its first arrival to its last token, over the "
        "same under `fcfs`.",
        "* *No contention*: the quiet tenants alone, `hfair` over `fcfs`, TTFT p50 and p99 of all their requests.",
        "* Medians over the seeds, range in brackets.",
        "",
        "| engine step budget | worst quiet p99 / alone, all requests (target ≤ 1.25) | after warm-up | pooled quiet, after warm-up | "
        "`fcfs`: worst quiet p99 / alone | shares: worst deviation (target ≤ 0.05) | `fcfs` shares | flood throughput / `fcfs` (target ≥ 0.95) | "
        "no contention: p50 ; p99 / `fcfs` (target 0.95–1.05) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for budget, rs in rows.items():
        lines.append(f"| {budget} | {spread([r['all'][0] for r in rs])} | {spread([r['warm'][0] for r in rs])} | "
                     f"{spread([r['warm'][1] for r in rs])} | {spread([r['fcfs'][0] for r in rs], '{:.0f}')} | "
                     f"{spread([r['shares'] for r in rs], '{:.3f}')} | {spread([r['shares_fcfs'] for r in rs], '{:.2f}')} | "
                     f"{spread([r['flood'] for r in rs], '{:.3f}')} | "
                     f"{spread([r['nc_p50'] for r in rs], '{:.3f}')} ; {spread([r['nc_p99'] for r in rs], '{:.3f}')} |")
    lines += ["", "Variants at 8,192 (same traces, one mechanism of `hfair` switched off):", "",
              "| variant | worst quiet p99 / alone, after warm-up | pooled | flood throughput / `fcfs` |", "|---|---:|---:|---:|",
              f"| `hfair` as shipped | {spread([r['warm'][0] for r in rows[8192]])} | {spread([r['warm'][1] for r in rows[8192]])} | "
              f"{spread([r['flood'] for r in rows[8192]], '{:.3f}')} |"]
    for name, _ in VARIANTS:
        rs = rows[8192]
        lines.append(f"| {name} | {spread([r['variants'][name][0][0] for r in rs])} | {spread([r['variants'][name][0][1] for r in rs])} | "
                     f"{spread([r['variants'][name][1] for r in rs], '{:.3f}')} |")
    lines += ["", f"Per seed (quiet-1 / quiet-2 / quiet-3 TTFT p99 in ms, after warm-up):", "",
              "| budget | seed | alone (`fcfs`) | `hfair` | worst ratio, all ; after warm-up | flood throughput / `fcfs` | output tok/s / `fcfs` | shares | urgent dispatches | reserve lent / reclaimed | preemptions | no contention p50 ; p99 |",
              "|---:|---:|---|---|---|---:|---:|---:|---:|---|---:|---|"]
    for budget, rs in rows.items():
        for r in rs:
            f = lambda v: " / ".join(f"{x:,.0f}" for x in v)
            lines.append(f"| {budget} | {r['seed']} | {f(r['alone_p99'])} | {f(r['hfair_p99'])} | {r['all'][0]:.2f} ; {r['warm'][0]:.2f} | "
                         f"{r['flood']:.3f} | {r['tput']:.3f} | {r['shares']:.3f} | {r['urgent']} | {r['lent']} / {r['reclaimed']} | {r['preempt']} | "
                         f"{r['nc_p50']:.3f} ; {r['nc_p99']:.3f} |")
    lines.append("")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
