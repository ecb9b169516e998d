using Gateway.Core.Routing.KvAware;

namespace Gateway.Core.Routing.Baselines;

/// <summary>
/// Baseline: NVIDIA Dynamo's KV router, reimplemented over our block hashes. Presets (defaults and sources in
/// <see cref="DynamoKvOptions"/>): <c>dynamo-kv</c> = Dynamo's default, overlap from the workers' KV events (the same
/// events the gateway's subscriber and the simulator relay to <c>kv-aware</c>); <c>dynamo-kv-approx</c> = its
/// <c>--no-kv-events</c> mode. <c>name:knob=value+…</c> overrides any knob.
/// <para>Sources followed: ai-dynamo/dynamo <c>lib/kv-router/src/scheduling/selector.rs</c>
/// (<c>DefaultWorkerSelector::select_worker</c>: <c>logit = overlap_score_weight * potential_prefill_block +
/// decode_block</c>, lowest logit wins at router_temperature 0, ties broken by tree size; softmax over the min-max
/// normalised logits otherwise), <c>sequence.rs</c> (<c>potential_blocks_and_tokens</c>: prefill tokens = worker's active
/// prefill tokens + isl - overlap*block_size; decode blocks = worker's active blocks + the request's blocks not already
/// active there) and <c>lib/llm/src/kv_router/approx.rs</c> (no events: a routed prefix is assumed cached for the TTL;
/// above max_tree_size entries the index is pruned to prune_target_ratio of it, soonest-expiring first).</para>
/// <para>So: cost(w) = overlap_score_weight * (pending_prefill_tokens(w) + max(isl - overlap(w) * B, 0)) / B
///   + (active_blocks(w) + new_blocks(w)).</para>
/// <para>Differences: pending prefill tokens come from the host's <see cref="WorkerInfo.PendingPrefillTokens"/>
/// (charged at dispatch, moved to decode at first token), which is what Dynamo's slot manager tracks; active
/// blocks are counted from prompts only (Dynamo's default, router_track_output_blocks false); ties after tree size go
/// to the lowest index instead of a random pick, so runs are reproducible. With events, a worker whose events the host
/// does not apply (yet) has no overlap, as in Dynamo; Dynamo's router-side queue (router_queue_threshold) is the
/// gateway's own queue here.</para>
/// </summary>
public sealed class DynamoKvPolicy : IRoutingPolicy, IKvEventConsumer
{
    /// <summary>Name of the default preset (KV events).</summary>
    public const string PolicyName = "dynamo-kv";

    /// <summary>Name of the no-events preset.</summary>
    public const string ApproxPolicyName = "dynamo-kv-approx";

    private readonly TimeProvider _time;
    private readonly DynamoKvOptions _options;
    private readonly Random _random;
    private readonly long _ttlTicks;
    private readonly Lock _lock = new();
    private readonly List<Dictionary<ulong, long>> _approx = [];         // per worker: block hash → expiry timestamp
    private readonly Queue<(long Expiry, int Worker, ulong Hash)> _expiry = new();
    private int _approxEntries;
    private readonly List<Dictionary<ulong, int>> _active = [];          // per worker: block hash → refcount of active requests
    private readonly Dictionary<long, ulong[]> _routed = [];             // request id → hashes charged as active

    /// <summary>Creates the policy (default: Dynamo's default preset, KV events).</summary>
    public DynamoKvPolicy(TimeProvider time, DynamoKvOptions? options = null, string name = PolicyName, Random? random = null)
    {
        ArgumentNullException.ThrowIfNull(time);
        _time = time;
        _options = options ?? DynamoKvOptions.Events;
        var errors = _options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid dynamo-kv options: " + string.Join("; ", errors), nameof(options));
        }

        Name = name;
        _random = random ?? new Random(1);
        _ttlTicks = (long)(_options.Ttl.TotalSeconds * time.TimestampFrequency);
        Precise = _options.UseKvEvents ? new PreciseIndex(time, TimeSpan.FromSeconds(1)) : null;
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>The knobs.</summary>
    public DynamoKvOptions Options => _options;

    /// <inheritdoc />
    public PreciseIndex? Precise { get; }

    /// <summary>Blocks the approximate index holds for a worker (tests, diagnostics; 0 with events).</summary>
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
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(workers);
        lock (_lock)
        {
            Ensure(workers.Count);
            Expire(_time.GetTimestamp());
            ReadOnlySpan<ulong> hashes = request.BlockHashes;
            int bs = Math.Max(1, request.BlockSize);
            int totalBlocks = (request.PromptTokens + bs - 1) / bs;
            int[]? precise = null;
            if (Precise is not null)
            {
                int span = 1;
                foreach (var w in workers)
                {
                    span = Math.Max(span, w.Index + 1);
                }

                precise = new int[span];
                Precise.Match(hashes, precise);
            }

            var logits = new double[workers.Count];
            var overlaps = new int[workers.Count];
            int best = -1;
            int bestTree = int.MaxValue;
            double min = double.MaxValue, max = double.MinValue;
            for (int i = 0; i < workers.Count; i++)
            {
                var w = workers[i];
                logits[i] = double.NaN;
                if (!w.Eligible)
                {
                    continue;
                }

                int overlap = Overlap(hashes, w, i, precise);
                overlaps[i] = overlap;
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

                double logit = _options.OverlapScoreWeight * prefillTokens / bs + active.Count + newBlocks;
                logits[i] = logit;
                min = Math.Min(min, logit);
                max = Math.Max(max, logit);
                int tree = Precise is not null ? Precise.CountFor(w.Index) : _approx[i].Count;
                if (best < 0 || logit < logits[best] || (logit == logits[best] && tree < bestTree))
                {
                    best = i;
                    bestTree = tree;
                }
            }

            if (best < 0)
            {
                return RouteDecision.None;
            }

            if (_options.Temperature > 0)
            {
                best = SoftmaxSample(logits, min, max);
            }

            int second = 0;
            for (int i = 0; i < workers.Count; i++)
            {
                if (i != best && !double.IsNaN(logits[i]))
                {
                    second = Math.Max(second, overlaps[i]);
                }
            }

            return new RouteDecision(best, Math.Min(overlaps[best] * bs, request.PromptTokens), Math.Min(second * bs, request.PromptTokens), overlaps[best] > 0 ? "kv-cost-overlap" : "kv-cost");
        }
    }

    /// <inheritdoc />
    public void OnRouted(RouteRequest request, WorkerInfo worker)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(worker);
        lock (_lock)
        {
            Ensure(worker.Index + 1);
            long expiry = _time.GetTimestamp() + _ttlTicks;
            var index = _approx[worker.Index];
            var active = _active[worker.Index];
            foreach (ulong h in request.BlockHashes)
            {
                if (Precise is null)
                {
                    // Predict on route (no events): refresh the lifetime.
                    if (!index.ContainsKey(h))
                    {
                        _approxEntries++;
                    }

                    index[h] = expiry;
                    _expiry.Enqueue((expiry, worker.Index, h));
                }

                active[h] = active.TryGetValue(h, out int c) ? c + 1 : 1;
            }

            _routed[request.RequestId] = request.BlockHashes;
            if (Precise is null && _approxEntries > _options.MaxTreeSize)
            {
                Prune((int)(_options.MaxTreeSize * _options.PruneTargetRatio));
            }
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

    private int Overlap(ReadOnlySpan<ulong> hashes, WorkerInfo w, int i, int[]? precise)
    {
        if (precise is not null)
        {
            return (uint)w.Index < (uint)precise.Length ? precise[w.Index] : 0;
        }

        var index = _approx[i];
        int overlap = 0;
        while (overlap < hashes.Length && index.ContainsKey(hashes[overlap]))
        {
            overlap++;
        }

        return overlap;
    }

    // Dynamo's softmax_sample: logits min-max normalised to 0..1, p ∝ exp(-normalised / temperature); all equal → uniform.
    private int SoftmaxSample(double[] logits, double min, double max)
    {
        double range = max - min;
        double sum = 0;
        var weights = new double[logits.Length];
        for (int i = 0; i < logits.Length; i++)
        {
            if (!double.IsNaN(logits[i]))
            {
                weights[i] = range > 0 ? Math.Exp(-(logits[i] - min) / range / _options.Temperature) : 1;
                sum += weights[i];
            }
        }

        double draw = _random.NextDouble() * sum;
        int last = -1;
        for (int i = 0; i < weights.Length; i++)
        {
            if (weights[i] <= 0)
            {
                continue;
            }

            last = i;
            draw -= weights[i];
            if (draw < 0)
            {
                return i;
            }
        }

        return last;
    }

    private void Expire(long now)
    {
        // Expiries are enqueued in non-decreasing order (constant TTL, monotonic clock).
        while (_expiry.Count > 0 && _expiry.Peek().Expiry <= now)
        {
            RemoveHead();
        }
    }

    // Dynamo's PruneManager: over max_tree_size, drop the soonest-expiring entries until target remain.
    private void Prune(int target)
    {
        while (_approxEntries > target && _expiry.Count > 0)
        {
            RemoveHead();
        }
    }

    private void RemoveHead()
    {
        var (expiry, worker, hash) = _expiry.Dequeue();
        var index = _approx[worker];
        if (index.TryGetValue(hash, out long current) && current <= expiry)
        {
            index.Remove(hash);
            _approxEntries--;
        }
    }
}
