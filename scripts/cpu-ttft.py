#!/usr/bin/env python3
"""Cold vs warm time to first token of one long prompt on a cpu-backend worker (stdlib only).

usage: scripts/cpu-ttft.py PORT MODEL [SENTENCES] [TAG]
Sends the same streamed /v1/completions request twice (a fresh document per TAG, so the first run is cold) and prints
both TTFTs (request sent -> first text chunk), their ratio and the second run's cached_tokens.
"""
import http.client
import json
import sys
import time

port, model = int(sys.argv[1]), sys.argv[2]
sentences = int(sys.argv[3]) if len(sys.argv) > 3 else 25
tag = sys.argv[4] if len(sys.argv) > 4 else str(time.time_ns())
prompt = " ".join(f"{tag} sentence {i} of a long shared document about paged KV caches." for i in range(sentences))


def ttft():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": 4, "stream": True,
                       "stream_options": {"include_usage": True}})
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    first, usage = None, None
    for line in c.getresponse():
        line = line.decode().strip()
        if not line.startswith("data: {"):
            continue
        d = json.loads(line[6:])
        if first is None and d["choices"]:
            first = time.perf_counter() - t0
        usage = d.get("usage") or usage
    return first, usage


cold, u1 = ttft()
warm, u2 = ttft()
print(f"prompt_tokens={u1['prompt_tokens']} cold_ttft={cold * 1000:.1f}ms warm_ttft={warm * 1000:.1f}ms "
      f"ratio={cold / warm:.1f}x cached={u2['prompt_tokens_details']['cached_tokens']}")
