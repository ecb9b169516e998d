using Gateway.Core.Routing.KvAware;

namespace Gateway.Core.Routing.Baselines;

/// <summary>
/// Baseline: llm-d's EndpointPicker (llm-d/llm-d-inference-scheduler), reimplemented over our block hashes: each
/// scorer gives every candidate a score in 0..1, the weighted sum is taken and <c>max-score-picker</c> picks the highest
/// (random among equals: it shuffles, then sorts stably). Presets and their sources: <see cref="LlmdOptions"/>
/// (<c>llm-d</c>, <c>llm-d-precise</c>); <c>name:knob=value+…</c> overrides any knob.
/// <para>Scorers, as upstream (<c>pkg/epp/framework/plugins/scheduling/scorer/…</c>):
/// <c>queuedepth/queue.go</c>: (max − q) / (max − min) over the candidates' waiting queues (<see cref="WorkerInfo.ReportedWaiting"/>),
/// 1 when all are equal; <c>kvcacheutilization/kvcache_utilization.go</c>: 1 − <see cref="WorkerInfo.KvUsage"/>;
/// <c>prefix/plugin.go</c> over <c>approximateprefix</c>: matched / total blocks of the first <c>maxPrefixBlocksToMatch</c>,
/// where the index is what was routed where (insert after the pick, one LRU per worker of its KV capacity, a block
/// touched in prompt order so a prompt's tail is its most recent entry) and matching walks the prompt's blocks while
/// <em>any</em> worker holds the block, counting one for every worker that does (<c>matchLongestPrefix</c>);
/// <c>preciseprefixcache</c>: the worker's consecutive leading blocks confirmed by its KV events / total blocks.</para>
/// <para>Differences: upstream's approximate scorer hashes request text in blocks of block_size × 4 characters; ours
/// uses the engine's own block hashes (its token blocks), i.e. the 4-characters-per-token assumption made exact. Ties
/// are drawn with the seeded random source so runs are reproducible.</para>
/// </summary>
public sealed class LlmdPolicy : IRoutingPolicy, IKvEventConsumer
{
    /// <summary>Name of the default (approximate prefix) preset.</summary>
    public const string PolicyName = "llm-d";

    /// <summary>Name of the precise prefix-cache preset.</summary>
    public const string PrecisePolicyName = "llm-d-precise";

    private readonly LlmdOptions _options;
    private readonly Random _random;
    private readonly Lock _lock = new();
    private readonly List<WorkerLru?> _lru = [];

    /// <summary>Creates the policy (default: the chart's default profile).</summary>
    public LlmdPolicy(TimeProvider time, Random random, LlmdOptions? options = null, string name = PolicyName)
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(random);
        _options = options ?? LlmdOptions.Default;
        var errors = _options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid llm-d options: " + string.Join("; ", errors), nameof(options));
        }

        _random = random;
        Name = name;
        Precise = _options.Precise ? new PreciseIndex(time, TimeSpan.FromSeconds(2)) : null;
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>The knobs.</summary>
    public LlmdOptions Options => _options;

    /// <inheritdoc />
    public PreciseIndex? Precise { get; }

    /// <summary>Entries in worker <paramref name="workerIndex"/>'s approximate LRU (tests, diagnostics).</summary>
    public int IndexedBlocks(int workerIndex)
    {
        lock (_lock)
        {
            return workerIndex < _lru.Count && _lru[workerIndex] is { } l ? l.Count : 0;
        }
    }

    /// <summary>
    /// Every scorer's score and the weighted total per worker (ineligible workers: NaN total), as the picker sees them;
    /// <paramref name="matchedBlocks"/> gets each worker's prefix match in blocks.
    /// </summary>
    public LlmdScore[] Score(RouteRequest request, IReadOnlyList<WorkerInfo> workers, Span<int> matchedBlocks)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(workers);
        int n = workers.Count;
        int total;
        matchedBlocks.Clear();
        lock (_lock)
        {
            total = PrefixMatch(request, workers, matchedBlocks);
        }

        int minQ = int.MaxValue, maxQ = int.MinValue;
        for (int i = 0; i < n; i++)
        {
            if (workers[i].Eligible)
            {
                minQ = Math.Min(minQ, workers[i].ReportedWaiting);
                maxQ = Math.Max(maxQ, workers[i].ReportedWaiting);
            }
        }

        var scores = new LlmdScore[n];
        for (int i = 0; i < n; i++)
        {
            var w = workers[i];
            if (!w.Eligible)
            {
                scores[i] = new LlmdScore(0, 0, 0, double.NaN);
                continue;
            }

            double prefix = total > 0 ? Math.Min(1.0, (double)matchedBlocks[i] / total) : 0;
            double queue = maxQ == minQ ? 1.0 : (double)(maxQ - w.ReportedWaiting) / (maxQ - minQ);
            double kv = 1 - w.KvUsage;
            scores[i] = new LlmdScore(prefix, queue, kv, _options.PrefixWeight * prefix + _options.QueueWeight * queue + _options.KvCacheUtilizationWeight * kv);
        }

        return scores;
    }

    /// <inheritdoc />
    public RouteDecision Route(RouteRequest request, IReadOnlyList<WorkerInfo> workers)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(workers);
        int n = workers.Count;
        var matched = new int[n];
        var scores = Score(request, workers, matched);
        int best = -1, ties = 0;
        for (int i = 0; i < n; i++)
        {
            double score = scores[i].Total;
            if (double.IsNaN(score))
            {
                continue;
            }

            if (best < 0 || score > scores[best].Total)
            {
                best = i;
                ties = 1;
            }
            else if (score == scores[best].Total)
            {
                lock (_lock)
                {
                    if (_random.Next(++ties) == 0)
                    {
                        best = i;
                    }
                }
            }
        }

        if (best < 0)
        {
            return RouteDecision.None;
        }

        int bs = Math.Max(1, request.BlockSize);
        int other = 0;
        for (int i = 0; i < n; i++)
        {
            if (i != best && workers[i].Eligible)
            {
                other = Math.Max(other, matched[i]);
            }
        }

        int cached = (int)Math.Min((long)matched[best] * bs, request.PromptTokens);
        return new RouteDecision(best, cached, (int)Math.Min((long)other * bs, request.PromptTokens), matched[best] > 0 ? "prefix" : "load");
    }

    /// <inheritdoc />
    public void OnRouted(RouteRequest request, WorkerInfo worker)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(worker);
        if (Precise is not null)
        {
            return; // the worker's events tell the index (speculative indexing is off by default upstream)
        }

        lock (_lock)
        {
            while (_lru.Count <= worker.Index)
            {
                _lru.Add(null);
            }

            // autoTune: the LRU is sized once, at the worker's first insert, from its reported KV blocks.
            var lru = _lru[worker.Index] ??= new WorkerLru(worker.KvBlocksTotal > 0 ? worker.KvBlocksTotal : _options.LruCapacityPerServer);
            int blocks = Math.Min(request.BlockHashes.Length, _options.MaxPrefixBlocks);
            for (int b = 0; b < blocks; b++)
            {
                lru.Add(request.BlockHashes[b]);
            }
        }
    }

    /// <inheritdoc />
    public void OnCompleted(RouteRequest request, WorkerInfo worker, int actualCachedTokens)
    {
    }

    // Fills matched[i] (blocks) for every candidate and returns the score's denominator.
    private int PrefixMatch(RouteRequest request, IReadOnlyList<WorkerInfo> workers, Span<int> matched)
    {
        ReadOnlySpan<ulong> hashes = request.BlockHashes;
        int bs = Math.Max(1, request.BlockSize);
        if (Precise is not null)
        {
            int span = 1;
            foreach (var w in workers)
            {
                span = Math.Max(span, w.Index + 1);
            }

            var byIndex = new int[span];
            Precise.Match(hashes, byIndex);
            for (int i = 0; i < workers.Count; i++)
            {
                matched[i] = byIndex[workers[i].Index];
            }

            return hashes.Length;
        }

        // approximateprefix: the first MaxPrefixBlocks blocks (a partial tail block counts in the total, never matches).
        int total = (int)Math.Min(((long)request.PromptTokens + bs - 1) / bs, _options.MaxPrefixBlocks);
        int limit = Math.Min(hashes.Length, _options.MaxPrefixBlocks);
        for (int b = 0; b < limit; b++)
        {
            bool any = false;
            for (int i = 0; i < workers.Count; i++)
            {
                int idx = workers[i].Index;
                if (idx < _lru.Count && _lru[idx] is { } lru && lru.Contains(hashes[b]))
                {
                    matched[i]++;
                    any = true;
                }
            }

            if (!any)
            {
                break;
            }
        }

        return total;
    }

    /// <summary>One worker's LRU of block hashes (hashicorp/golang-lru semantics: Add moves an entry to the front).</summary>
    private sealed class WorkerLru(int capacity)
    {
        private readonly Dictionary<ulong, LinkedListNode<ulong>> _map = [];
        private readonly LinkedList<ulong> _order = new();

        public int Count => _map.Count;

        public bool Contains(ulong hash) => _map.ContainsKey(hash);

        public void Add(ulong hash)
        {
            if (_map.TryGetValue(hash, out var node))
            {
                _order.Remove(node);
                _order.AddFirst(node);
                return;
            }

            _map[hash] = _order.AddFirst(hash);
            if (_map.Count > capacity)
            {
                var last = _order.Last!;
                _order.RemoveLast();
                _map.Remove(last.Value);
            }
        }
    }
}

/// <summary>One worker's scores in <see cref="LlmdPolicy"/> (each 0..1) and their weighted sum.</summary>
/// <param name="Prefix">Prefix-cache scorer: matched / total blocks.</param>
/// <param name="Queue">Queue scorer: (max − waiting) / (max − min), 1 when all are equal.</param>
/// <param name="KvUtilization">KV-cache utilisation scorer: 1 − usage.</param>
/// <param name="Total">Weighted sum the max-score picker compares (NaN for an ineligible worker).</param>
public readonly record struct LlmdScore(double Prefix, double Queue, double KvUtilization, double Total);
