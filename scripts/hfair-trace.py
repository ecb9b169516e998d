#!/usr/bin/env python3
"""Writes a canonical JSONL trace for the simulator's isolation runs (scripts/hfair-isolation.sh).

One flooding tenant and N quiet tenants, each an independent Poisson process seeded from --seed; prompts of
512-4096 tokens and 32-256 output tokens drawn per request; no shared prefixes (every prompt is unique).
"""
import argparse
import json
import random

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=1)
p.add_argument("--duration", type=float, default=120.0, help="seconds of arrivals")
p.add_argument("--flood-rate", type=float, required=True, help="requests/s of tenant 'flood' (0: none)")
p.add_argument("--quiet-rate", type=float, default=1.0, help="requests/s of each quiet tenant")
p.add_argument("--quiet", type=int, default=3, help="quiet tenants (quiet-1 ...)")
p.add_argument("--out", required=True)
a = p.parse_args()

rows = []
flows = [("flood", a.flood_rate)] + [(f"quiet-{i}", a.quiet_rate) for i in range(1, a.quiet + 1)]
for k, (tenant, rate) in enumerate(flows):
    if rate <= 0:
        continue
    rng = random.Random(a.seed * 1000 + k)  # one stream per tenant: the quiet requests do not depend on the flood
    t = rng.expovariate(rate)
    while t < a.duration:
        rows.append({"t": round(t, 6), "tenant": tenant, "in": rng.choice([512, 1024, 2048, 4096]), "out": rng.randint(32, 256)})
        t += rng.expovariate(rate)

rows.sort(key=lambda r: r["t"])
with open(a.out, "w", encoding="utf-8") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
