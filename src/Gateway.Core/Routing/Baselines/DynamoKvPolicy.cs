namespace Gateway.Core.Routing.Baselines;

/// <summary>
/// Baseline: NVIDIA Dynamo's KV router in its no-KV-events mode, reimplemented over our block hashes.
/// <para>Sources followed: ai-dynamo/dynamo <c>lib/kv-router/src/scheduling/selector.rs</c>
/// (<c>DefaultWorkerSelector::select_worker</c>: <c>logit = overlap_score_weight * potential_prefill_block +
/// decode_block</c>, lowest logit wins at router_temperature 0, ties broken by tree size), <c>sequence.rs</c>
/// (<c>potential_blocks_and_tokens</c>: prefill tokens = worker's active prefill tokens + isl - overlap*block_size;
/// decode blocks = worker's active blocks + the request's blocks not already active there) and the
/// <c>ApproxKvIndexer</c> (docs/router "--no-kv-events": a routed prefix is assumed cached on its worker for 120 s).</para>
/// <para>So: cost(w) = prefill_scale * (pending_prefill_tokens(w) + max(isl - overlap(w) * B, 0)) / B
///   + (active_blocks(w) + new_blocks(w)). prefill_scale (overlap_score_weight) defaults to 1.0.</para>
/// <para>Differences: pending prefill tokens come from the host's <see cref="WorkerInfo.PendingPrefillTokens"/>
/// (charged at dispatch, moved to decode at first token), which is what Dynamo's slot manager tracks; active
/// blocks are counted from prompts only (Dynamo also grows them as output tokens are generated); ties after
/// tree size go to the lowest index instead of a random pick, so runs are reproducible.</para>
/// </summary>
public sealed class DynamoKvPolicy : IRoutingPolicy
{
    /// <summary>Policy name.</summary>
    public const string PolicyName = "dynamo-kv";

    private readonly TimeProvider _time;
    private readonly double _prefillScale;
    private readonly long _ttlTicks;
    private readonly Lock _lock = new();
    private readonly List<Dictionary<ulong, long>> _approx = [];         // per worker: block hash → expiry timestamp
    private readonly Queue<(long Expiry, int Worker, ulong Hash)> _expiry = new();
    private readonly List<Dictionary<ulong, int>> _active = [];          // per worker: block hash → refcount of active requests
    private readonly Dictionary<long, ulong[]> _routed = [];             // request id → hashes charged as active

    /// <summary>Creates the policy (Dynamo defaults: prefill scale 1.0, approximate lifetime 120 s).</summary>
    public DynamoKvPolicy(TimeProvider time, double prefillScale = 1.0, TimeSpan? assumedLifetime = null)
    {
        _time = time;
        _prefillScale = prefillScale;
        var ttl = assumedLifetime ?? TimeSpan.FromSeconds(120);
        _ttlTicks = (long)(ttl.TotalSeconds * time.TimestampFrequency);
    }

    /// <inheritdoc />
    public string Name => PolicyName;

    /// <summary>Blocks the approximate index holds for a worker (tests, diagnostics).</summary>
    public int IndexedBlocks(int workerIndex)
    {
        lock (_lock)
        {
            Expire(_time.GetTimestamp());
            return workerIndex < _approx.Count ? _approx[workerIndex].Count : 0;
        }
    }

    /// <inheritdoc />
    public RouteDecision Route(RouteRequest request, IReadOnlyList<WorkerInfo> workers)
    {
        lock (_lock)
        {
            Ensure(workers.Count);
            Expire(_time.GetTimestamp());
            ReadOnlySpan<ulong> hashes = request.BlockHashes;
            int bs = Math.Max(1, request.BlockSize);
            int totalBlocks = (request.PromptTokens + bs - 1) / bs;

            int best = -1, bestOverlap = 0, secondOverlap = 0;
            double bestCost = double.MaxValue;
            int bestTree = int.MaxValue;
            for (int i = 0; i < workers.Count; i++)
            {
                var w = workers[i];
                if (!w.Eligible)
                {
                    continue;
                }

                var index = _approx[i];
                int overlap = 0;
                while (overlap < hashes.Length && index.ContainsKey(hashes[overlap]))
                {
                    overlap++;
                }

                double prefillTokens = w.PendingPrefillTokens + Math.Max(request.PromptTokens - overlap * bs, 0);
                var active = _active[i];
                int newBlocks = totalBlocks - hashes.Length; // the partial tail block is always new
                for (int b = 0; b < hashes.Length; b++)
                {
                    if (!active.ContainsKey(hashes[b]))
                    {
                        newBlocks++;
                    }
                }

                double cost = _prefillScale * prefillTokens / bs + active.Count + newBlocks;
                int tree = index.Count;
                if (cost < bestCost || (cost == bestCost && tree < bestTree))
                {
                    if (best >= 0)
                    {
                        secondOverlap = Math.Max(secondOverlap, bestOverlap);
                    }

                    best = i;
                    bestCost = cost;
                    bestTree = tree;
                    bestOverlap = overlap;
                }
                else
                {
                    secondOverlap = Math.Max(secondOverlap, overlap);
                }
            }

            return best < 0
                ? RouteDecision.None
                : new RouteDecision(best, bestOverlap * bs, secondOverlap * bs, bestOverlap > 0 ? "kv-cost-overlap" : "kv-cost");
        }
    }

    /// <inheritdoc />
    public void OnRouted(RouteRequest request, WorkerInfo worker)
    {
        lock (_lock)
        {
            Ensure(worker.Index + 1);
            long expiry = _time.GetTimestamp() + _ttlTicks;
            var index = _approx[worker.Index];
            var active = _active[worker.Index];
            foreach (ulong h in request.BlockHashes)
            {
                index[h] = expiry; // predict on route: refresh lifetime
                _expiry.Enqueue((expiry, worker.Index, h));
                active[h] = active.TryGetValue(h, out int c) ? c + 1 : 1;
            }

            _routed[request.RequestId] = request.BlockHashes;
        }
    }

    /// <inheritdoc />
    public void OnCompleted(RouteRequest request, WorkerInfo worker, int actualCachedTokens)
    {
        lock (_lock)
        {
            if (!_routed.Remove(request.RequestId, out var hashes) || worker.Index >= _active.Count)
            {
                return;
            }

            var active = _active[worker.Index];
            foreach (ulong h in hashes)
            {
                if (active.TryGetValue(h, out int c))
                {
                    if (c <= 1)
                    {
                        active.Remove(h);
                    }
                    else
                    {
                        active[h] = c - 1;
                    }
                }
            }
        }
    }

    private void Ensure(int count)
    {
        while (_approx.Count < count)
        {
            _approx.Add([]);
            _active.Add([]);
        }
    }

    private void Expire(long now)
    {
        // Expiries are enqueued in non-decreasing order (constant TTL, monotonic clock).
        while (_expiry.Count > 0 && _expiry.Peek().Expiry <= now)
        {
            var (expiry, worker, hash) = _expiry.Dequeue();
            var index = _approx[worker];
            if (index.TryGetValue(hash, out long current) && current <= expiry)
            {
                index.Remove(hash);
            }
        }
    }
}
