namespace Gateway.Core.Routing.Baselines;

/// <summary>
/// Baseline: SGLang's cache-aware router, reimplemented over our block hashes. Presets (knobs and upstream sources in
/// <see cref="SglangCacheAwareOptions"/>): <c>sglang-cache-aware</c> = the current model gateway's CLI defaults,
/// <c>sglang-cache-aware-v0</c> = the older sglang-router's; <c>name:knob=value+…</c> overrides any knob.
/// <para>Source followed: sgl-project/sglang <c>sgl-model-gateway/src/policies/cache_aware.rs</c> (<c>select_worker</c>,
/// <c>select_worker_min_load</c>) and <c>policies/tree.rs</c> (<c>prefix_match</c>, <c>evict_tenant_by_size</c>).</para>
/// <para>Algorithm (as upstream): load = requests in flight per worker (charged at dispatch).
/// If <c>max - min &gt; abs</c> and <c>max &gt; rel * min</c> the system is imbalanced: pick the least-loaded worker
/// (and still insert the prompt into its tree). Otherwise match the prompt against every worker's approximate
/// prefix tree of previously routed prompts; if matched/length &gt; cache_threshold route to the best-matching
/// worker, else to the least-loaded worker (current gateway) or the worker with the smallest tree (older router).
/// The chosen worker's tree gets the prompt inserted. Every eviction interval (here: checked lazily on the injected
/// clock, upstream: a background thread) each tree is cut back to its budget by evicting least-recently-used leaves.</para>
/// <para>Differences, on purpose: upstream's tree holds raw characters of the request text; ours holds the
/// prompt's chained block hashes, so one node is one block (16 tokens by default) and the character budget is
/// converted to blocks (<see cref="SglangCacheAwareOptions.MaxTreeBlocks"/>). Match rate is matched tokens / prompt
/// tokens (a partial last block never matches). Ties between equally matching workers go to the most recently used
/// (upstream returns a tenant of the deepest matched node), ties on load or tree size to the lowest index (upstream:
/// first in iteration order, <c>min_by_key</c>).</para>
/// </summary>
public sealed class SglangCacheAwarePolicy : IRoutingPolicy
{
    /// <summary>Name of the current model gateway preset.</summary>
    public const string PolicyName = "sglang-cache-aware";

    /// <summary>Name of the older sglang-router preset.</summary>
    public const string V0PolicyName = "sglang-cache-aware-v0";

    private readonly TimeProvider _time;
    private readonly SglangCacheAwareOptions _options;
    private readonly Lock _lock = new();
    private readonly List<WorkerTree> _trees = [];
    private long _lastEviction;
    private long _tick;
    private int _blockSize = Llm.Prompt.Hashing.BlockHasher.DefaultBlockSize;

    /// <summary>Creates the policy (default: the current model gateway preset).</summary>
    public SglangCacheAwarePolicy(TimeProvider time, SglangCacheAwareOptions? options = null, string name = PolicyName)
    {
        ArgumentNullException.ThrowIfNull(time);
        _time = time;
        _options = options ?? SglangCacheAwareOptions.Current;
        var errors = _options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid sglang-cache-aware options: " + string.Join("; ", errors), nameof(options));
        }

        Name = name;
        _lastEviction = time.GetTimestamp();
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>The knobs.</summary>
    public SglangCacheAwareOptions Options => _options;

    /// <summary>Nodes (blocks) in worker <paramref name="workerIndex"/>'s tree (for tests and diagnostics).</summary>
    public int TreeSize(int workerIndex)
    {
        lock (_lock)
        {
            return workerIndex < _trees.Count ? _trees[workerIndex].Count : 0;
        }
    }

    /// <inheritdoc />
    public RouteDecision Route(RouteRequest request, IReadOnlyList<WorkerInfo> workers)
    {
        lock (_lock)
        {
            EnsureTrees(workers.Count);
            MaybeEvict();

            int maxLoad = int.MinValue, minLoad = int.MaxValue, minIdx = -1;
            for (int i = 0; i < workers.Count; i++)
            {
                var w = workers[i];
                if (!w.Eligible)
                {
                    continue;
                }

                int load = w.InFlight;
                maxLoad = Math.Max(maxLoad, load);
                if (load < minLoad)
                {
                    minLoad = load;
                    minIdx = i;
                }
            }

            if (minIdx < 0)
            {
                return RouteDecision.None;
            }

            ReadOnlySpan<ulong> hashes = request.BlockHashes;
            _blockSize = Math.Max(1, request.BlockSize);
            bool imbalanced = maxLoad - minLoad > _options.BalanceAbsThreshold && maxLoad > _options.BalanceRelThreshold * minLoad;
            if (imbalanced)
            {
                int cached = _trees[minIdx].Match(hashes) * request.BlockSize;
                return new RouteDecision(minIdx, cached, BestOther(hashes, workers, minIdx) * request.BlockSize, "load");
            }

            int best = -1, bestMatch = 0;
            long bestAccess = long.MinValue;
            for (int i = 0; i < workers.Count; i++)
            {
                if (!workers[i].Eligible)
                {
                    continue;
                }

                int m = _trees[i].Match(hashes);
                long access = m > 0 ? _trees[i].LastAccess(hashes[m - 1]) : long.MinValue;
                if (m > bestMatch || (m == bestMatch && m > 0 && access > bestAccess))
                {
                    best = i;
                    bestMatch = m;
                    bestAccess = access;
                }
            }

            double rate = request.PromptTokens <= 0 ? 0 : (double)bestMatch * request.BlockSize / request.PromptTokens;
            if (best >= 0 && rate > _options.CacheThreshold)
            {
                return new RouteDecision(best, bestMatch * request.BlockSize, BestOther(hashes, workers, best) * request.BlockSize, "affinity");
            }

            if (!_options.MissToSmallestTree)
            {
                return new RouteDecision(minIdx, _trees[minIdx].Match(hashes) * request.BlockSize, BestOther(hashes, workers, minIdx) * request.BlockSize, "least-load");
            }

            int smallest = -1, smallestSize = int.MaxValue;
            for (int i = 0; i < workers.Count; i++)
            {
                if (workers[i].Eligible && _trees[i].Count < smallestSize)
                {
                    smallest = i;
                    smallestSize = _trees[i].Count;
                }
            }

            return new RouteDecision(smallest, _trees[smallest].Match(hashes) * request.BlockSize, BestOther(hashes, workers, smallest) * request.BlockSize, "smallest-tree");
        }
    }

    /// <inheritdoc />
    public void OnRouted(RouteRequest request, WorkerInfo worker)
    {
        lock (_lock)
        {
            EnsureTrees(worker.Index + 1);
            _trees[worker.Index].Insert(request.BlockHashes, ++_tick);
        }
    }

    /// <inheritdoc />
    public void OnCompleted(RouteRequest request, WorkerInfo worker, int actualCachedTokens)
    {
        // Upstream ignores completions (on_request_complete only logs failures).
    }

    private int BestOther(ReadOnlySpan<ulong> hashes, IReadOnlyList<WorkerInfo> workers, int chosen)
    {
        int best = 0;
        for (int i = 0; i < workers.Count; i++)
        {
            if (i != chosen && workers[i].Eligible)
            {
                best = Math.Max(best, _trees[i].Match(hashes));
            }
        }

        return best;
    }

    private void EnsureTrees(int count)
    {
        while (_trees.Count < count)
        {
            _trees.Add(new WorkerTree());
        }
    }

    private void MaybeEvict()
    {
        long now = _time.GetTimestamp();
        if (_time.GetElapsedTime(_lastEviction, now) < _options.EvictionInterval)
        {
            return;
        }

        _lastEviction = now;
        int max = _options.MaxTreeBlocks(_blockSize);
        foreach (var tree in _trees)
        {
            tree.EvictTo(max);
        }
    }

    /// <summary>
    /// One worker's approximate prefix tree. Block hashes are chained (a hash names its whole prefix), so the
    /// tree is a map hash → node {parent, children, last access}; a prompt matches while its hashes are present.
    /// </summary>
    private sealed class WorkerTree
    {
        private readonly Dictionary<ulong, Node> _nodes = [];

        public int Count => _nodes.Count;

        public int Match(ReadOnlySpan<ulong> hashes)
        {
            int m = 0;
            while (m < hashes.Length && _nodes.ContainsKey(hashes[m]))
            {
                m++;
            }

            return m;
        }

        public long LastAccess(ulong hash) => _nodes.TryGetValue(hash, out var n) ? n.LastAccess : long.MinValue;

        public void Insert(ReadOnlySpan<ulong> hashes, long tick)
        {
            ulong parent = 0;
            bool hasParent = false;
            for (int i = 0; i < hashes.Length; i++)
            {
                ulong h = hashes[i];
                if (_nodes.TryGetValue(h, out var node))
                {
                    node.LastAccess = tick;
                }
                else
                {
                    _nodes[h] = new Node { Parent = parent, HasParent = hasParent, LastAccess = tick };
                    if (hasParent && _nodes.TryGetValue(parent, out var p))
                    {
                        p.Children++;
                    }
                }

                parent = h;
                hasParent = true;
            }
        }

        /// <summary>Evicts least-recently-used leaves until at most <paramref name="max"/> nodes remain.</summary>
        public void EvictTo(int max)
        {
            if (_nodes.Count <= max)
            {
                return;
            }

            var leaves = new PriorityQueue<ulong, (long, ulong)>();
            foreach (var (hash, node) in _nodes)
            {
                if (node.Children == 0)
                {
                    leaves.Enqueue(hash, (node.LastAccess, hash));
                }
            }

            while (_nodes.Count > max && leaves.TryDequeue(out ulong hash, out _))
            {
                var node = _nodes[hash];
                _nodes.Remove(hash);
                if (node.HasParent && _nodes.TryGetValue(node.Parent, out var parent))
                {
                    parent.Children--;
                    if (parent.Children == 0)
                    {
                        leaves.Enqueue(node.Parent, (parent.LastAccess, node.Parent));
                    }
                }
            }
        }

        private sealed class Node
        {
            public ulong Parent;
            public bool HasParent;
            public int Children;
            public long LastAccess;
        }
    }
}
