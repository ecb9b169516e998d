namespace Gateway.Core.Routing.KvAware;

/// <summary>
/// Knobs of <see cref="KvAwarePolicy"/> and its indexes. Defaults are documented per knob; docs/policies/kv-aware.md
/// explains how they were chosen (and which were tuned in the simulator).
/// </summary>
public sealed record KvAwareOptions
{
    /// <summary>Width of the indexes' worker bitsets; workers with <see cref="WorkerInfo.Index"/> at or above it are routed cache-blind. Default 256.</summary>
    public int MaxWorkers { get; init; } = 256;

    /// <summary>
    /// How long a routed chain is assumed cached on a worker that publishes no KV events, at most. The per-worker
    /// capacity mirror (LRU at the worker's KV size) is the main eviction model; the TTL is a backstop. Dynamo assumes
    /// 120 s, but a third of the Mooncake trace's prefix reuses come more than 120 s after the prefix was last used
    /// (median 65 s, p90 295 s), and a worker with free KV still holds them. Default 1 hour.
    /// </summary>
    public TimeSpan ApproximateTtl { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Global memory budget of the approximate index: most (block, worker) entries across all workers (~100 B each). Default 2,097,152 (~200 MB at most).</summary>
    public int MaxIndexEntries { get; init; } = 1 << 21;

    /// <summary>Capacity assumed for a worker that has not reported <see cref="WorkerInfo.KvBlocksTotal"/>. Default 65,536 blocks.</summary>
    public int DefaultWorkerCapacityBlocks { get; init; } = 1 << 16;

    /// <summary>Approximate entries kept per worker as a multiple of its KV blocks (1.0 mirrors its capacity). Default 1.0.</summary>
    public double CapacityFactor { get; init; } = 1.0;

    /// <summary>TTL of speculative insert-on-route entries for workers that publish events. Default 2 s (llm-d).</summary>
    public TimeSpan SpeculativeTtl { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Most confirmed blocks the precise index keeps per worker. Default 1,048,576.</summary>
    public int PreciseMaxBlocksPerWorker { get; init; } = 1 << 20;

    /// <summary>Budget of speculative entries. Default 262,144.</summary>
    public int SpeculativeBudget { get; init; } = 1 << 18;

    /// <summary>Workers whose cost exceeds the minimum by at most this fraction of the best worker's time-to-first-token estimate are "near-least-cost" (randomised tie-break). Default 0.05.</summary>
    public double TieRelativeEpsilon { get; init; } = 0.05;

    /// <summary>
    /// Among near-least-cost workers with the same cached match and memory pressure, the one with the least recent
    /// work (decayed over <see cref="LoadWindow"/>) wins; exact ties are drawn at random. Off: every such tie is drawn at
    /// random. Default off.
    /// </summary>
    public bool TieByRecentWork { get; init; }

    /// <summary>Absolute slack added to the tie window, in seconds. Default 0.005 s.</summary>
    public double TieAbsoluteSeconds { get; init; } = 0.005;

    /// <summary>
    /// Hot-prefix spill bound (Preble's replication): when the worker chosen for its cached prefix already has more
    /// than this many seconds of queued prefill, the request goes to the cheapest worker <em>without</em> the prefix
    /// instead (replicating it there), provided its time-to-first-token estimate is at most <see cref="SpillMaxCostRatio"/>
    /// times the holder's. Default: infinity (off). With 1 s (the earlier default) the routing suite lost 11 % TTFT p50
    /// to <c>sglang-cache-aware-v0</c> on the big-KV Mooncake scenario at twice its rate (the spill re-prefills what the
    /// holder would have served from cache) and gained at most 4 % (Mooncake at its own rate, p50), where kv-aware leads
    /// the baselines either way (docs/results/kv-aware-variants.md).
    /// </summary>
    public double SpillQueueSeconds { get; init; } = double.PositiveInfinity;

    /// <summary>Most a spill may cost (time to first token) relative to the cached choice. Default 1.5.</summary>
    public double SpillMaxCostRatio { get; init; } = 1.5;

    /// <summary>
    /// Load-spread guard (Preble rebalances when max load &gt; 1.5 x min over a window): recent work above this factor
    /// times the least-loaded eligible worker's (plus <see cref="BalanceSlackTokens"/>) is charged to the worker as
    /// seconds (excess tokens / its prefill rate) on top of its cost, so it loses a request only when that charge
    /// outweighs the re-prefill the request would pay elsewhere: a hot short prefix is replicated, a long cached
    /// context (an agent session) stays. Queues alone do not catch this: a holder serving a hot
    /// prefix cheaply can stay ahead of its queue while doing far more work than its peers. Default 1.5 (Preble's
    /// bound); 0 turns the guard off. Tighter settings (1.2, 16k slack) bound the spread harder but cost locality:
    /// on the Mooncake trace they cut the prefix-hit ratio from 0.64 to 0.56 (docs/policies/kv-aware.md).
    /// </summary>
    public double BalanceFactor { get; init; } = 1.5;

    /// <summary>Window of the recent-work meter (exponential decay time constant). Default 60 s.</summary>
    public TimeSpan LoadWindow { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Work (tokens) a worker may exceed the guard by, so a fleet that has just started, or one long prompt, does not
    /// trip it. Default 131,072 (a few long-context prompts).
    /// </summary>
    public double BalanceSlackTokens { get; init; } = 131_072;

    /// <summary>A returning session within this time goes back to its last worker. Default 300 s.</summary>
    public TimeSpan SessionTtl { get; init; } = TimeSpan.FromSeconds(300);

    /// <summary>Most sessions remembered (least recently seen are forgotten first). Default 100,000.</summary>
    public int MaxSessions { get; init; } = 100_000;

    /// <summary>
    /// A session leaves its worker when its time-to-first-token estimate there exceeds the best one by this factor (a
    /// worker with a host tier; decode is not compared) or its cost exceeds the best by this factor less one times the
    /// best worker's time-to-first-token estimate (an HBM-only worker; decode is compared). Default 8.0: the best worker's estimate already includes
    /// re-prefilling the session's context there, but not what that re-prefill costs the sessions already queued on it
    /// nor the cache the session leaves behind, and the holder's queue is estimated pessimistically (it drains while a
    /// re-prefill elsewhere runs). At 2.0 agent sessions moved often enough to lose TTFT p90 on the WEKA agent trace.
    /// </summary>
    public double SessionOverloadFactor { get; init; } = 8.0;

    /// <summary>Context tokens in a decode batch that double a decode step's time (KV reads vs weight reads). Default 128,000.</summary>
    public double DecodeContextTokensPerDoubling { get; init; } = 128_000;

    /// <summary>Seconds charged per request the worker reports waiting beyond those this host dispatched (other replicas' work). Default 0.25 s.</summary>
    public double ForeignWaitingRequestSeconds { get; init; } = 0.25;

    /// <summary>
    /// Attention over context in prefill: a new token at context length c costs (1 + c / this) times a token at
    /// context 0, so the uncached suffix of a long prompt costs more than its length and a long cached prefix still
    /// costs attention (not linear work). 2·params / (4·layers·hidden): ~30,500 for Llama-3-8B, ~53,000 for 70B.
    /// Default 30,000; 0 turns the term off (linear prefill).
    /// </summary>
    public double AttentionTokensPerDoubling { get; init; } = 30_000;

    /// <summary>
    /// Delay a placement adds to the prompts already waiting on a worker: the engine packs waiting prompts into one
    /// prefill step (chunked prefill), so a prompt sent to a worker where others wait for their first token lengthens
    /// their step by its own prefill time. That delay, times the number of such requests
    /// (<see cref="WorkerInfo.PendingPrefillRequests"/>) and this weight, is added to the worker's placement cost (not
    /// to the request's own time to first token): the fleet's total time to first token, not only this request's, is
    /// what placement minimises. Default 1 (the delay counted once); 0 = off.
    /// </summary>
    public double QueuedPrefillDelayWeight { get; init; } = 1;

    /// <summary>
    /// Memory-aware placement: the KV blocks a request needs on a worker (its uncached prompt blocks + expected output
    /// blocks) beyond what the worker reports free (<see cref="WorkerInfo.KvBlocksFree"/>: total − live sequences' blocks
    /// − pinned idle blocks) must be taken from contexts the worker holds: retained (pinned) agent contexts or running
    /// requests. Those tokens are charged, times this weight, as seconds of re-prefill at the worker's prefill rate on
    /// top of its cost, so a new context goes to a worker with room rather than evicting someone else's hot context
    /// on an equally loaded one. 1 charges the evicted blocks once (the re-prefill they force if their owner returns).
    /// Default 0 (off); workers that do not report free blocks are never charged.
    /// </summary>
    public double MemoryPressureWeight { get; init; }

    /// <summary>
    /// Memory-aware placement, hot contexts: a session whose turn finished on a worker within this window counts its
    /// context (prompt + expected output blocks) as claimed there, pinned or not, so free blocks are
    /// min(reported free, total − in use − these idle contexts). On workers whose KV events feed the precise index only
    /// the idle contexts the worker still holds count (their last prompt block not yet reported removed); workers
    /// without events have no eviction signal and count every idle context. Default 0 (only running requests and pins
    /// count): on the 60-session / 8-worker WEKA scenario the window costs +21 % re-prefill (docs/policies/agent-retention.md).
    /// </summary>
    public TimeSpan MemoryHotWindow { get; init; }

    /// <summary>Predicted and actual cached tokens within this many tokens count as a correct prediction. Default 0 (exact, in whole blocks).</summary>
    public int RegretToleranceTokens { get; init; }

    /// <summary>
    /// Applies overrides written as <c>key=value</c> pairs separated by <c>+</c> (e.g. <c>balance_factor=0+spill_queue_seconds=2</c>),
    /// as used in a policy name <c>kv-aware:…</c> for side-by-side tuning runs. Every unknown key or bad value is reported.
    /// </summary>
    public static KvAwareOptions Parse(string overrides, KvAwareOptions? start = null)
    {
        ArgumentNullException.ThrowIfNull(overrides);
        var o = start ?? new KvAwareOptions();
        var errors = new List<string>();
        foreach (string pair in overrides.Split('+', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = pair.IndexOf('=', StringComparison.Ordinal);
            string key = eq < 0 ? pair : pair[..eq];
            if (eq < 0 || !double.TryParse(pair[(eq + 1)..], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double v))
            {
                errors.Add($"'{pair}': expected key=number");
                continue;
            }

            switch (key)
            {
                case "balance_factor": o = o with { BalanceFactor = v }; break;
                case "balance_slack_tokens": o = o with { BalanceSlackTokens = v }; break;
                case "load_window_s": o = o with { LoadWindow = TimeSpan.FromSeconds(v) }; break;
                case "spill_queue_seconds": o = o with { SpillQueueSeconds = v }; break; // "Infinity" = off
                case "spill_max_cost_ratio": o = o with { SpillMaxCostRatio = v }; break;
                case "tie_relative_epsilon": o = o with { TieRelativeEpsilon = v }; break;
                case "tie_absolute_seconds": o = o with { TieAbsoluteSeconds = v }; break;
                case "tie_by_recent_work" when v is 0 or 1: o = o with { TieByRecentWork = v == 1 }; break;
                case "tie_by_recent_work": errors.Add($"'{pair}': expected 0 or 1"); break;
                case "approximate_ttl_s": o = o with { ApproximateTtl = TimeSpan.FromSeconds(v) }; break;
                case "capacity_factor": o = o with { CapacityFactor = v }; break;
                case "attention_tokens_per_doubling": o = o with { AttentionTokensPerDoubling = v }; break;
                case "decode_context_tokens_per_doubling": o = o with { DecodeContextTokensPerDoubling = v }; break;
                case "session_overload_factor": o = o with { SessionOverloadFactor = v }; break;
                case "session_ttl_s": o = o with { SessionTtl = TimeSpan.FromSeconds(v) }; break;
                case "memory_pressure_weight": o = o with { MemoryPressureWeight = v }; break;
                case "queued_prefill_delay_weight": o = o with { QueuedPrefillDelayWeight = v }; break;
                case "memory_hot_window_s": o = o with { MemoryHotWindow = TimeSpan.FromSeconds(v) }; break;
                default: errors.Add($"unknown kv-aware knob '{key}'"); break;
            }
        }

        errors.AddRange(o.Validate());
        return errors.Count == 0 ? o : throw new ArgumentException("kv-aware options: " + string.Join("; ", errors), nameof(overrides));
    }

    /// <summary>Collects every configuration error (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (MaxWorkers < 1)
        {
            errors.Add("MaxWorkers must be >= 1");
        }

        if (ApproximateTtl <= TimeSpan.Zero)
        {
            errors.Add("ApproximateTtl must be positive");
        }

        if (SpeculativeTtl <= TimeSpan.Zero)
        {
            errors.Add("SpeculativeTtl must be positive");
        }

        if (MaxIndexEntries < 1 || SpeculativeBudget < 1 || PreciseMaxBlocksPerWorker < 1)
        {
            errors.Add("index budgets must be >= 1");
        }

        if (DefaultWorkerCapacityBlocks < 1 || CapacityFactor <= 0)
        {
            errors.Add("worker capacity must be positive");
        }

        if (TieRelativeEpsilon < 0 || TieAbsoluteSeconds < 0)
        {
            errors.Add("tie epsilons must be >= 0");
        }

        if (!(SpillQueueSeconds > 0) || SpillMaxCostRatio < 1)
        {
            errors.Add("SpillQueueSeconds must be > 0 (Infinity: never spill) and SpillMaxCostRatio >= 1");
        }

        if (BalanceFactor != 0 && BalanceFactor < 1)
        {
            errors.Add("BalanceFactor must be 0 (off) or >= 1");
        }

        if (LoadWindow <= TimeSpan.Zero || BalanceSlackTokens < 0)
        {
            errors.Add("LoadWindow must be positive and BalanceSlackTokens >= 0");
        }

        if (SessionTtl < TimeSpan.Zero || MaxSessions < 0 || SessionOverloadFactor < 1)
        {
            errors.Add("session knobs: SessionTtl >= 0, MaxSessions >= 0, SessionOverloadFactor >= 1");
        }

        if (DecodeContextTokensPerDoubling <= 0 || ForeignWaitingRequestSeconds < 0 || AttentionTokensPerDoubling < 0)
        {
            errors.Add("cost knobs must be non-negative (DecodeContextTokensPerDoubling > 0)");
        }

        if (!(MemoryPressureWeight >= 0) || double.IsInfinity(MemoryPressureWeight))
        {
            errors.Add("MemoryPressureWeight must be a finite number >= 0 (0 = off)");
        }

        if (!(QueuedPrefillDelayWeight >= 0) || double.IsInfinity(QueuedPrefillDelayWeight))
        {
            errors.Add("QueuedPrefillDelayWeight must be a finite number >= 0 (0 = off)");
        }

        if (MemoryHotWindow < TimeSpan.Zero)
        {
            errors.Add("MemoryHotWindow must be >= 0 (0 = off)");
        }

        return errors;
    }
}
