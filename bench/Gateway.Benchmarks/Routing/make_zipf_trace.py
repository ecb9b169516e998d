#!/usr/bin/env python3
"""Zipf shared-prefix workload for the kv-aware routing comparison (docs/policies/kv-aware.md).

Writes a canonical-format trace (src/Simulator/Traces/CanonicalFormat.cs): each request is one of N shared
prefixes (system prompt / few-shot document) drawn Zipf(s), followed by a unique question, Poisson arrivals.
Deterministic for a given seed. Stdlib only.

usage: make_zipf_trace.py OUT.jsonl [--requests 4800] [--rate 40] [--prefixes 64] [--zipf 1.1]
                          [--prefix-tokens 4096] [--seed 1]
"""
import argparse
import json
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--requests", type=int, default=4800)
    ap.add_argument("--rate", type=float, default=40.0, help="arrivals per second (Poisson)")
    ap.add_argument("--prefixes", type=int, default=64)
    ap.add_argument("--zipf", type=float, default=1.1)
    ap.add_argument("--prefix-tokens", type=int, default=4096)
    ap.add_argument("--block", type=int, default=256, help="trace block size (tokens per hash id)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    weights = [1.0 / (k + 1) ** a.zipf for k in range(a.prefixes)]
    prefix_blocks = a.prefix_tokens // a.block
    next_id = a.prefixes * prefix_blocks  # ids below this name prefix blocks
    t = 0.0
    with open(a.out, "w") as f:
        for _ in range(a.requests):
            t += rng.expovariate(a.rate)
            k = rng.choices(range(a.prefixes), weights)[0]
            suffix = rng.randint(256, 1024)
            n_in = a.prefix_tokens + suffix
            ids = list(range(k * prefix_blocks, (k + 1) * prefix_blocks))
            extra = (n_in + a.block - 1) // a.block - prefix_blocks
            ids += list(range(next_id, next_id + extra))
            next_id += extra
            f.write(json.dumps({"t": round(t, 4), "in": n_in, "out": rng.randint(32, 256),
                                "block_size": a.block, "hash_ids": ids}) + "\n")


if __name__ == "__main__":
    main()
