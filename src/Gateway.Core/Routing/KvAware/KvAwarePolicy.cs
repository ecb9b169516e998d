namespace Gateway.Core.Routing.KvAware;

/// <summary>
/// <c>kv-aware</c>: sends each request to the worker where it is estimated to finish soonest, counting the KV
/// cache that worker already holds. Sources: SGLang's cache-aware router (approximate per-worker prefix index,
/// insert-on-route), NVIDIA Dynamo's KV router (cost = prefill of the uncached blocks + active decode; KV events;
/// 120 s assumed residency without events), llm-d's precise prefix scorer (KV events + 2 s speculative entries;
/// weigh absolute matched tokens, llm-d #1095), Preble E2 (exploit a held prefix unless its holder is loaded,
/// replicate hot prefixes onto a second worker), Mooncake's Conductor (minimum estimated TTFT per candidate).
/// <para>
/// Cost of worker w, in seconds (so affinity and load share one unit, no tuned thresholds between them):
/// <code>
/// queue   = pending prefill tokens charged at dispatch / prefill tok/s + foreign waiting requests x ForeignWaitingRequestSeconds
///           (foreign = reported waiting − this host's requests finished since the report − this host's in flight)
/// prefill = uncached(w) x (1 + (cached(w) + uncached(w) / 2) / AttentionTokensPerDoubling) / prefill tok/s
/// decode  = expected output x decode step s x (1 + (active decode context + prompt) / DecodeContextTokensPerDoubling)
/// </code>
/// The cost counts absolute cached <em>tokens</em>: a ratio alone rates a 100-token prompt fully matched above a
/// 50k-token prompt half matched and piles short prompts onto one worker (llm-d #1095). Workers within
/// TieRelativeEpsilon/TieAbsoluteSeconds of the minimum are near-least-cost; among them the longest cached match
/// wins and remaining ties are broken by a seeded random draw (or, with TieByRecentWork, by the least recent work
/// first), so cache misses spread by load over all near-idle workers instead of piling onto one "emptiest" worker
/// (sglang #14305). Hot-spot guard (off by default): when the chosen holder of a prefix already has more than
/// SpillQueueSeconds of queued prefill, the request spills to the cheapest worker without the prefix (replicating it)
/// if its time to first token is at most SpillMaxCostRatio times the holder's. Session affinity: a session
/// seen within SessionTtl (or bound in shared state by another gateway replica: <see cref="RouteRequest.SharedBinding"/>)
/// returns to its worker unless that worker is overloaded: on a worker with a host tier, its time-to-first-token
/// estimate exceeds SessionOverloadFactor times the best one (decode is not compared); on an HBM-only worker, its cost
/// exceeds the best by more than (SessionOverloadFactor − 1) times the best worker's time-to-first-token estimate; and
/// is rebound when the worker is ineligible (failover). Load-spread guard (Preble): a worker whose recent work
/// (decayed over LoadWindow) exceeds BalanceFactor x the least-loaded worker's (+ BalanceSlackTokens) is charged the
/// excess, in seconds at its prefill rate, on top of its cost; it loses a request only when that charge outweighs the
/// re-prefill the request would pay elsewhere, which replicates hot short prefixes but keeps long contexts (agent
/// sessions) where they are cached. Memory-aware placement (off by default): the KV blocks a request needs on w beyond
/// the blocks w reports free (not held by running requests or retention pins) evict a context w holds, so
/// <code>
/// pressure = MemoryPressureWeight x max(0, uncached + expected output blocks - KvBlocksFree(w)) x block size / prefill tok/s
/// </code>
/// is added to the placement cost (not to the time to first token): the re-prefill the placement forces on the
/// contexts it displaces. Pins are how the retention layer tells the router where hot memory is; with
/// MemoryHotWindow &gt; 0 the contexts of sessions whose turn finished on w within the window (<see cref="IdleContextBook"/>)
/// count as claimed too, pinned or not (free = min(reported free, total − in use − idle contexts)); on workers whose
/// KV events feed <see cref="Precise"/>, only the idle contexts whose last prompt block the worker still holds count
/// (an evicted context is free memory; kept event by event, O(1) per worker per decision). Among
/// near-least-cost workers with the same cached match the least pressure wins before the random draw.
/// </para>
/// Knobs: <see cref="KvAwareOptions"/>. Indexes: <see cref="ApproximatePrefixIndex"/> for workers without KV events,
/// <see cref="PreciseIndex"/> (fed by the host) for workers with them. Thread-safe (one lock per decision).
/// </summary>
public sealed partial class KvAwarePolicy : IRoutingPolicy, IPrefixAffinity, IKvEventConsumer
{
    /// <summary>Policy name.</summary>
    public const string PolicyName = "kv-aware";

    private const int StackLimit = 256;

    private readonly Lock _lock = new();
    private readonly Random _random;
    private readonly KvAwareOptions _options;
    private readonly SessionAffinityTable _sessions;
    private readonly IdleContextBook _idle;
    private readonly TimeProvider _time;
    private readonly double[] _work;       // recent work per worker index (tokens, decayed)
    private readonly long[] _workTicks;    // when _work was last decayed

    /// <summary>Creates the policy.</summary>
    public KvAwarePolicy(TimeProvider time, Random random, KvAwareOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(random);
        _options = options ?? new KvAwareOptions();
        var errors = _options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid kv-aware options: " + string.Join("; ", errors), nameof(options));
        }

        _random = random;
        _time = time;
        _work = new double[_options.MaxWorkers];
        _workTicks = new long[_options.MaxWorkers];
        Approximate = new ApproximatePrefixIndex(time, _options.ApproximateTtl, _options.MaxIndexEntries, _options.MaxWorkers);
        Precise = new PreciseIndex(time, _options.SpeculativeTtl, _options.PreciseMaxBlocksPerWorker, _options.SpeculativeBudget, _options.MaxWorkers);
        _sessions = new SessionAffinityTable(time, _options.SessionTtl, _options.MaxSessions);
        _idle = new IdleContextBook(time, _options.MemoryHotWindow, _options.MaxSessions, _options.MaxWorkers, Precise);
    }

    /// <inheritdoc />
    public string Name => PolicyName;

    /// <summary>The knobs.</summary>
    public KvAwareOptions Options => _options;

    /// <summary>Index of what this host routed to workers without KV events.</summary>
    public ApproximatePrefixIndex Approximate { get; }

    /// <summary>Index fed by workers' KV events (the host's subscriber calls Apply / ApplySnapshot).</summary>
    public PreciseIndex Precise { get; }

    /// <summary>Predicted vs actual cached tokens.</summary>
    public RoutingRegret Regret { get; } = new();

    /// <summary>Sessions currently bound.</summary>
    public int SessionCount
    {
        get
        {
            lock (_lock)
            {
                return _sessions.Count;
            }
        }
    }

    /// <inheritdoc />
    public RouteDecision Route(RouteRequest request, IReadOnlyList<WorkerInfo> workers)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(workers);
        int n = workers.Count;
        if (n == 0)
        {
            return RouteDecision.None;
        }

        int span = 0;
        for (int i = 0; i < n; i++)
        {
            span = Math.Max(span, workers[i].Index + 1);
        }

        span = Math.Clamp(span, 1, _options.MaxWorkers);
        Span<int> matched = span <= StackLimit ? stackalloc int[span] : new int[span];
        Span<double> cost = n <= StackLimit ? stackalloc double[n] : new double[n];
        Span<double> firstToken = n <= StackLimit ? stackalloc double[n] : new double[n];
        Span<double> load = n <= StackLimit ? stackalloc double[n] : new double[n];
        Span<double> pressure = n <= StackLimit ? stackalloc double[n] : new double[n];
        Span<int> hostBlocks = span <= StackLimit ? stackalloc int[span] : new int[span];

        RouteDecision decision;
        lock (_lock)
        {
            MatchAll(request.BlockHashes, workers, matched);
            ExtendThroughHost(request.BlockHashes, workers, matched, hostBlocks);
            decision = Decide(request, workers, matched, cost, firstToken, load, pressure, hostBlocks);
        }

        request.Decision = decision;
        Regret.RecordDecision(decision);
        return decision;
    }

    /// <inheritdoc />
    public void OnRouted(RouteRequest request, WorkerInfo worker)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(worker);
        lock (_lock)
        {
            // The approximate record is kept for every worker, so a worker whose event stream is not (yet)
            // subscribed, or was forgotten, still has affinity; event workers also get a speculative entry.
            Approximate.Insert(worker.Index, request.BlockHashes, CapacityOf(worker));
            if (worker.PublishesKvEvents)
            {
                Precise.InsertSpeculative(worker.Index, request.BlockHashes);
            }

            if (request.SessionId is { Length: > 0 } session)
            {
                _sessions.Bind(session, worker.Id, worker.Index);
                _idle.Busy(session);
            }

            // Recent work: the uncached prompt this worker will prefill plus the tokens it will decode.
            int predicted = request.Decision is { } d && d.WorkerIndex == worker.Index ? d.PredictedCachedTokens : 0;
            AddWork(worker.Index, Math.Max(0, request.PromptTokens - predicted) + Math.Max(0, request.ExpectedOutputTokens));
        }
    }

    /// <inheritdoc />
    public void OnCompleted(RouteRequest request, WorkerInfo worker, int actualCachedTokens)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(worker);
        if (request.SessionId is { Length: > 0 } session && _options.MemoryHotWindow > TimeSpan.Zero)
        {
            int bs = Math.Max(1, request.BlockSize);
            long tokens = (long)Math.Max(0, request.PromptTokens) + Math.Max(0, request.ExpectedOutputTokens);
            lock (_lock)
            {
                ulong? last = request.BlockHashes.Length > 0 ? request.BlockHashes[^1] : null;
                _idle.Idle(session, worker.Index, (int)Math.Min(int.MaxValue, (tokens + bs - 1) / bs), last);
            }
        }

        if (request.Decision is not { } d || d.WorkerIndex < 0)
        {
            return;
        }

        if (d.WorkerIndex != worker.Index)
        {
            Regret.RecordRerouted();
            return;
        }

        Regret.RecordOutcome(d.PredictedCachedTokens, actualCachedTokens, _options.RegretToleranceTokens);
    }

    /// <inheritdoc />
    public int PredictCachedTokens(RouteRequest request, WorkerInfo worker)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(worker);
        if (request.BlockHashes.Length == 0 || (uint)worker.Index >= (uint)_options.MaxWorkers)
        {
            return 0;
        }

        // The same walk as a routing decision (precise index for event workers, approximate otherwise), one worker.
        int span = worker.Index + 1;
        Span<int> matched = span <= StackLimit ? stackalloc int[span] : new int[span];
        Span<int> hostBlocks = span <= StackLimit ? stackalloc int[span] : new int[span];
        lock (_lock)
        {
            MatchAll(request.BlockHashes, [worker], matched);
            ExtendThroughHost(request.BlockHashes, [worker], matched, hostBlocks);
        }

        return CachedTokens(matched[worker.Index], request);
    }

    /// <summary>Forgets a session (the client ended it).</summary>
    public bool EndSession(string sessionId)
    {
        lock (_lock)
        {
            _idle.Busy(sessionId);
            return _sessions.Forget(sessionId);
        }
    }

    // One walk over the request's blocks for every worker: approximate presence for workers without events,
    // precise (confirmed | speculative) for workers with them; stops at the first block no worker holds.
    private void MatchAll(ReadOnlySpan<ulong> blocks, IReadOnlyList<WorkerInfo> workers, Span<int> matched)
    {
        // Only the bitset words the current fleet uses (one word up to 64 workers).
        int words = Math.Min(Approximate.MaskWords, (matched.Length + 63) / 64);
        Span<ulong> eventMask = stackalloc ulong[words];
        Span<ulong> plainMask = stackalloc ulong[words];
        Span<ulong> running = stackalloc ulong[words];
        Span<ulong> tmp = stackalloc ulong[words];
        Span<ulong> present = stackalloc ulong[words];
        eventMask.Clear();
        plainMask.Clear();
        bool anyEvents = false, anyPlain = false;
        matched.Clear();
        lock (Precise.SyncRoot)
        {
            // Precise only where events are actually applied (a subscriber feeds the index); otherwise approximate.
            for (int j = 0; j < workers.Count; j++)
            {
                var w = workers[j];
                if ((uint)w.Index >= (uint)matched.Length)
                {
                    continue;
                }

                ulong bit = 1UL << (w.Index & 63);
                if (w.PublishesKvEvents && Precise.IsTrackingUnlocked(w.Index))
                {
                    eventMask[w.Index >> 6] |= bit;
                    anyEvents = true;
                }
                else
                {
                    plainMask[w.Index >> 6] |= bit;
                    anyPlain = true;
                }
            }

            for (int k = 0; k < words; k++)
            {
                running[k] = eventMask[k] | plainMask[k];
            }

            Approximate.ExpireNow();
            if (anyEvents)
            {
                Precise.Speculative.ExpireNow();
            }

            int i = 0;
            for (; i < blocks.Length; i++)
            {
                present.Clear();
                if (anyPlain)
                {
                    tmp.Clear();
                    Approximate.OrPresence(blocks[i], tmp);
                    for (int k = 0; k < words; k++)
                    {
                        present[k] = tmp[k] & plainMask[k];
                    }
                }

                if (anyEvents)
                {
                    tmp.Clear();
                    Precise.OrPresence(blocks[i], tmp);
                    for (int k = 0; k < words; k++)
                    {
                        present[k] |= tmp[k] & eventMask[k];
                    }
                }

                bool any = false;
                for (int k = 0; k < words; k++)
                {
                    ulong next = running[k] & present[k];
                    ApproximatePrefixIndex.RecordDropped(running[k] & ~next, k, i, matched);
                    running[k] = next;
                    any |= next != 0;
                }

                if (!any)
                {
                    return;
                }
            }

            for (int k = 0; k < words; k++)
            {
                ApproximatePrefixIndex.RecordDropped(running[k], k, blocks.Length, matched);
            }
        }
    }

    private int MatchedOf(WorkerInfo w, ReadOnlySpan<int> matched) => (uint)w.Index < (uint)matched.Length ? matched[w.Index] : 0;

    /// <summary>Recent work (tokens, decayed over <see cref="KvAwareOptions.LoadWindow"/>) charged to a worker.</summary>
    public double RecentWork(int workerIndex)
    {
        lock (_lock)
        {
            return (uint)workerIndex < (uint)_work.Length ? DecayedWork(workerIndex, _time.GetUtcNow().UtcTicks) : 0;
        }
    }

    private double DecayedWork(int index, long now)
    {
        double v = _work[index];
        if (v == 0)
        {
            return 0;
        }

        long dt = now - _workTicks[index];
        if (dt > 0)
        {
            v *= Math.Exp(-(double)dt / _options.LoadWindow.Ticks);
            _work[index] = v;
            _workTicks[index] = now;
        }

        return v;
    }

    private double RecentWorkOf(WorkerInfo w, long now) => (uint)w.Index < (uint)_work.Length ? DecayedWork(w.Index, now) : 0;

    private void AddWork(int index, double tokens)
    {
        if ((uint)index >= (uint)_work.Length)
        {
            return;
        }

        long now = _time.GetUtcNow().UtcTicks;
        _work[index] = DecayedWork(index, now) + tokens;
        _workTicks[index] = now;
    }

    /// <summary>
    /// Tiered match: on event-fed workers with a host tier, the HBM match continues through blocks the worker holds in
    /// host memory (<see cref="PreciseIndex.TieredRun"/>); those count as cached (reloaded, not recomputed) and
    /// <paramref name="hostBlocks"/> records how many of them each worker would reload, charged at its
    /// <see cref="WorkerInfo.HostReloadSecondsPerToken"/>.
    /// </summary>
    private void ExtendThroughHost(ReadOnlySpan<ulong> blocks, IReadOnlyList<WorkerInfo> workers, Span<int> matched, Span<int> hostBlocks)
    {
        hostBlocks.Clear();
        lock (Precise.SyncRoot)
        {
            foreach (var w in workers)
            {
                if ((uint)w.Index >= (uint)matched.Length || !w.PublishesKvEvents || !Precise.IsTrackingUnlocked(w.Index))
                {
                    continue;
                }

                matched[w.Index] += Precise.TieredRunUnlocked(w.Index, blocks, matched[w.Index], out int host);
                hostBlocks[w.Index] = host;
            }
        }
    }
}
