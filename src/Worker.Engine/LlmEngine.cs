namespace Worker.Engine;

/// <summary>
/// The engine model: a paged KV cache with prefix caching and pins (<see cref="KvBlockManager"/>) under a continuous
/// batching scheduler in the style of vLLM V1 (Orca's iteration-level scheduling + Sarathi's chunked prefill):
/// <list type="number">
/// <item>Sequences are planned in priority order (<see cref="EngineRequest.Priority"/>, the gateway's urgency hint; vLLM's
/// <c>--scheduling-policy priority</c>): running sequences, kept sorted by priority then admission, each take
/// min(tokens left to compute, budget left) from the per-step budget <see cref="EngineOptions.MaxBatchTokens"/> (1 for a
/// decoding sequence, a chunk for a prefill). When its KV blocks cannot be allocated, the lowest-priority, most recently
/// admitted running sequence is preempted by recompute (blocks freed, back to the waiting queue; it later re-prefills
/// prompt + generated tokens, mostly from the prefix cache).</item>
/// <item>Waiting sequences (priority, then FCFS) are admitted in the same merge: the waiting head goes before running
/// sequences of lower priority (after those of equal priority), while budget, the running cap and KV blocks (for its
/// prefix hit plus the next chunk) allow, preempting running sequences of lower priority to make room (unlike vLLM V1,
/// which never preempts for a waiting request); the head blocks the rest (no skipping). After a preemption only
/// priorities above the preempted ones are admitted (vLLM: none). With <see cref="EngineOptions.ExclusivePriorityPrefill"/>
/// a step's prefill tokens go only to its highest prefilling priority (decodes of all priorities still run); with
/// <see cref="EngineOptions.SerialUrgentPrefill"/> to one urgent (priority above 0) prompt at a time; and for
/// <see cref="EngineOptions.UrgentMemorySeconds"/> after an urgent submission lower priorities share at most
/// <see cref="EngineOptions.LowPriorityPrefillTokens"/> prefill tokens a step, so the step an urgent arrival waits for is short.</item>
/// <item>With <see cref="EngineOptions.LongPrefillTokenThreshold"/> (vLLM's <c>long_prefill_token_threshold</c>, Sarathi's
/// fairness between prefills) every prefill chunk in steps 1–2 is capped at the threshold, so a 100k-token prefill no
/// longer takes the whole budget for seconds while short requests wait behind it; budget left after admission is then
/// handed back to the capped chunks in order (work-conserving: alone, a long prefill runs at the full budget).</item>
/// <item>The plan goes to an <see cref="IStepExecutor"/> (the roofline by default) that returns the step's duration, or to an
/// <see cref="ITokenStepExecutor"/> (a real backend) that also returns the sampled token of each chunk that wants logits.</item>
/// <item>Progress is committed: newly complete prompt blocks enter the prefix cache only now, after their KV has been
/// computed, so another sequence never reads a block that is still being filled; a sequence that has computed all its
/// tokens samples one (FirstToken at index 0, then Token; with a token executor the id is appended to the sequence and is
/// the next step's input), and Finished follows its last token (max output: Length) or the model's end-of-sequence
/// token (Stop).</item>
/// </list>
/// Deterministic: no wall clock, no randomness; time (pin TTLs only) comes from the <see cref="TimeProvider"/>.
/// Not thread-safe: the host serialises calls (the KV event log is thread-safe for readers).
/// </summary>
public sealed partial class LlmEngine
{
    private readonly KvBlockManager _blocks;
    private readonly IStepExecutor? _executor;
    private readonly ITokenStepExecutor? _tokenExecutor;
    private int[] _nextTokens = new int[16];
    private readonly SortedSet<Sequence> _waiting = new(WaitingOrder.Instance);
    private readonly List<Sequence> _running = [];
    private readonly Dictionary<string, Sequence> _live = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ulong[]> _sessions = new(StringComparer.Ordinal);
    private readonly Queue<string> _sessionOrder = new();
    private readonly StepPlan _plan = new();
    private readonly int _blockSize;
    private long _arrivals;
    private long _waitingTokens;
    private long _queryTokens;
    private long _hitTokens;
    private long _preemptions;
    private long _promptTokens;
    private long _generatedTokens;
    private long _steps;
    private double _busySeconds;
    private long _hostHitTokens;
    private int _stepReloadTokens;
    private long _stepReadyAt;
    private long _linkFreeAt; // UTC ticks: when the host-to-device link has finished the copies queued so far
    private int _urgentPriority = int.MinValue; // highest priority submitted within UrgentMemorySeconds
    private long _urgentUntil; // UTC ticks when that memory lapses

    public LlmEngine(EngineOptions options, TimeProvider time)
        : this(options, time, new RooflineStepExecutor(options?.Profile ?? throw new ArgumentNullException(nameof(options))))
    {
    }

    public LlmEngine(EngineOptions options, TimeProvider time, IStepExecutor executor)
        : this(options, time, executor ?? throw new ArgumentNullException(nameof(executor)), null)
    {
    }

    /// <summary>
    /// An engine over a backend that computes tokens: every request must carry <see cref="EngineRequest.PromptTokenIds"/>.
    /// A host KV tier (<see cref="EngineOptions.HostKvBlocks"/>) needs <paramref name="hostCopier"/>, the backend's copier of
    /// K/V blocks between its pool and host memory.
    /// </summary>
    public LlmEngine(EngineOptions options, TimeProvider time, ITokenStepExecutor executor, IKvBlockCopier? hostCopier = null)
        : this(options, time, null, executor ?? throw new ArgumentNullException(nameof(executor)), hostCopier)
    {
    }

    private LlmEngine(EngineOptions options, TimeProvider time, IStepExecutor? executor, ITokenStepExecutor? tokenExecutor, IKvBlockCopier? hostCopier = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.Profile);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BlockSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxBatchTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxRunningSequences, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxModelLength, 2);
        Options = options;
        Time = time;
        _executor = executor;
        _tokenExecutor = tokenExecutor;
        _blockSize = options.BlockSize;
        KvEvents = new KvEventLog(options.BlockSize, options.KvEventCapacity, expectedCachedBlocks: options.EffectiveKvBlocks);
        int hostBlocks = options.EffectiveHostKvBlocks;
        if (hostBlocks > 0 && tokenExecutor is not null && hostCopier is null)
        {
            throw new ArgumentException("a host KV tier on a backend that computes tokens needs its K/V copier; this backend keeps no host copy of its K/V", nameof(options));
        }

        _blocks = new KvBlockManager(options.EffectiveKvBlocks, options.BlockSize, options.MaxPinnedFraction, time, KvEvents, hostBlocks: hostBlocks);
        if (hostBlocks > 0 && tokenExecutor is not null)
        {
            _blocks.Copier = hostCopier;
        }
    }

    public EngineOptions Options { get; }

    public TimeProvider Time { get; }

    /// <summary>Seq-numbered stored/removed/cleared/pin_dropped events (thread-safe for readers).</summary>
    public KvEventLog KvEvents { get; }

    /// <summary>True when the backend computes tokens (requests need prompt ids; events carry token ids).</summary>
    public bool ProducesTokens => _tokenExecutor is not null;

    /// <summary>Total KV blocks in the pool.</summary>
    public int KvBlocksTotal => _blocks.TotalBlocks;

    /// <summary>Blocks of the host tier (0 = none).</summary>
    public int HostKvBlocksTotal => _blocks.Host?.CapacityBlocks ?? 0;

    /// <summary>True while any request is waiting or running.</summary>
    public bool HasWork => _waiting.Count > 0 || _running.Count > 0;

    public int WaitingCount => _waiting.Count;

    /// <summary>Blocks referenced by live sequences (cheap; no snapshot allocated).</summary>
    public int KvBlocksUsed => _blocks.UsedBlocks;

    /// <summary>Blocks held by pins, as of the last expiry check (every step, retain, release and state read).</summary>
    public int KvBlocksPinned => _blocks.PinnedBlocks;

    /// <summary>Blocks registered in the prefix cache.</summary>
    public int KvBlocksCached => _blocks.CachedBlocks;

    /// <summary>Blocks allocatable now without dropping pins (free + evictable cached; pins as of the last expiry check).</summary>
    public int KvBlocksFree => _blocks.AvailableBlocks;

    /// <summary>
    /// Che's characteristic time of the prefix cache's LRU, measured as the eviction age (<see cref="KvBlockManager.EvictionAgeSeconds"/>):
    /// roughly how long an unreferenced, unpinned cached block survives; +∞ until the first eviction.
    /// </summary>
    public double KvEvictionAgeSeconds => _blocks.EvictionAgeSeconds;

    /// <summary>What pins cost and save against plain LRU, in blocks (<see cref="KvBlockManager.PinCostBlocksTotal"/>, <see cref="KvBlockManager.PinSavedBlocksTotal"/>).</summary>
    public (long CostBlocks, long SavedBlocks) PinOutcomeBlocks => (_blocks.PinCostBlocksTotal, _blocks.PinSavedBlocksTotal);

    public int RunningCount => _running.Count;

    internal KvBlockManager Blocks => _blocks;

    /// <summary>What the last <see cref="Step"/> scheduled (reused: valid until the next step).</summary>
    public StepPlan LastPlan => _plan;

    /// <summary>
    /// Queues a request. Returns false with a reason, changing nothing, when it can never run: bad counts, duplicate id,
    /// prompt + output over <see cref="EngineOptions.MaxModelLength"/>, or more KV blocks than the pool holds.
    /// </summary>
    public bool Submit(EngineRequest r, out string? error)
    {
        error = Validate(r);
        if (error is not null)
        {
            return false;
        }

        var seq = new Sequence(r, _arrivals++);
        RememberUrgency(r.Priority);
        _live.Add(r.Id, seq);
        _waiting.Add(seq);
        _waitingTokens += seq.Tokens;
        _promptTokens += r.PromptTokens;
        if (r.SessionId is not null)
        {
            RememberSession(r.SessionId, r.BlockHashes);
        }

        return true;
    }

    /// <summary>Removes a waiting or running request and frees its blocks at once. False if unknown or already finished.</summary>
    public bool Abort(string requestId)
    {
        if (requestId is null || !_live.Remove(requestId, out var seq))
        {
            return false;
        }

        if (seq.Running)
        {
            _running.Remove(seq);
        }
        else
        {
            _waiting.Remove(seq);
            _waitingTokens -= seq.Tokens - seq.Computed;
        }

        seq.Done = true;
        _blocks.Free(seq.BlockTable);
        return true;
    }

    /// <summary>Plans and executes one iteration. Returns its modelled duration and the per-sequence events.</summary>
    public StepResult Step()
    {
        _blocks.ExpirePins();
        if (!HasWork)
        {
            return StepResult.Idle;
        }

        _stepReloadTokens = 0;
        _stepReadyAt = 0;
        int preempted = Plan();
        if (_plan.Chunks.Count == 0)
        {
            return new StepResult { Preempted = preempted };
        }

        TimeSpan duration;
        if (_tokenExecutor is not null)
        {
            if (_nextTokens.Length < _plan.Chunks.Count)
            {
                _nextTokens = new int[Math.Max(_plan.Chunks.Count, _nextTokens.Length * 2)];
            }

            duration = _tokenExecutor.Execute(_plan, _nextTokens.AsSpan(0, _plan.Chunks.Count));
        }
        else
        {
            duration = _executor!.Execute(_plan);
            if (_stepReloadTokens > 0 || _stepReadyAt > 0)
            {
                duration = WithReloads(duration);
            }
        }

        var events = Commit();
        _steps++;
        _busySeconds += duration.TotalSeconds;
        return new StepResult
        {
            Duration = duration,
            PrefillTokens = _plan.PrefillTokens,
            DecodeTokens = _plan.DecodeTokens,
            BatchSize = _plan.Chunks.Count,
            ReloadedTokens = _stepReloadTokens,
            Preempted = preempted,
            Events = events,
        };
    }

    private string? Validate(EngineRequest? r)
    {
        if (r is null)
        {
            return "request is null";
        }

        if (string.IsNullOrEmpty(r.Id))
        {
            return "request id is empty";
        }

        if (_live.ContainsKey(r.Id))
        {
            return $"request id '{r.Id}' is already in flight";
        }

        if (r.PromptTokens < 1)
        {
            return "prompt must have at least 1 token";
        }

        if (r.OutputTokens < 1)
        {
            return "output must be at least 1 token";
        }

        if (r.BlockHashes is null)
        {
            return "block hashes are missing";
        }

        if (r.PromptTokenIds is null)
        {
            if (_tokenExecutor is not null)
            {
                return "prompt token ids are required by this backend";
            }
        }
        else if (r.PromptTokenIds.Length != r.PromptTokens)
        {
            return $"{r.PromptTokenIds.Length} prompt token ids for a {r.PromptTokens}-token prompt";
        }
        else if (r.PromptTokenIds.AsSpan().IndexOfAnyExceptInRange(0, int.MaxValue) >= 0)
        {
            return "prompt token ids must be non-negative";
        }

        if (r.BlockHashes.Length > r.PromptTokens / _blockSize)
        {
            return $"{r.BlockHashes.Length} block hashes for a {r.PromptTokens}-token prompt (at most {r.PromptTokens / _blockSize} full blocks of {_blockSize})";
        }

        long total = (long)r.PromptTokens + r.OutputTokens;
        if (total > Options.MaxModelLength)
        {
            return $"prompt ({r.PromptTokens}) + output ({r.OutputTokens}) = {total} tokens exceeds the maximum model length {Options.MaxModelLength}";
        }

        long blocks = BlocksFor(total - 1);
        if (blocks > _blocks.TotalBlocks)
        {
            return $"needs {blocks} KV blocks of {_blockSize} tokens but the pool has {_blocks.TotalBlocks}";
        }

        return null;
    }

    private long BlocksFor(long tokens) => (tokens + _blockSize - 1) / _blockSize;

    private void RememberSession(string session, ulong[] hashes)
    {
        if (!_sessions.ContainsKey(session))
        {
            _sessionOrder.Enqueue(session);
            while (_sessionOrder.Count > Options.MaxRememberedSessions)
            {
                _sessions.Remove(_sessionOrder.Dequeue());
            }
        }

        _sessions[session] = hashes;
    }

    private List<SequenceEvent> Commit()
    {
        var chunks = _plan.Chunks;
        var events = new List<SequenceEvent>(chunks.Count + 4);
        bool anyFinished = false;
        int eos = _tokenExecutor?.EosTokenId ?? -1;
        for (int i = 0; i < chunks.Count; i++)
        {
            var seq = _plan.SequenceAt(i);
            int old = seq.Computed;
            seq.Computed += chunks[i].NewTokens;
            _blocks.MarkComputed(seq.BlockTable, seq.Request.BlockHashes, old, seq.Computed);
            if (seq.Computed < seq.Tokens)
            {
                continue;
            }

            int index = seq.Emitted;
            int token = -1;
            if (_tokenExecutor is not null)
            {
                token = _nextTokens[i];
                seq.TokenIds![seq.Request.PromptTokens + index] = token;
            }

            seq.Emitted++;
            _generatedTokens++;
            events.Add(new SequenceEvent(seq.Request.Id, index == 0 ? SequenceEventKind.FirstToken : SequenceEventKind.Token, index, seq.CachedTokens, token, ReloadedTokens: seq.FirstReloadedTokens));
            bool stop = token >= 0 && token == eos;
            if (stop || seq.Emitted >= seq.Request.OutputTokens)
            {
                var reason = stop ? FinishReason.Stop : FinishReason.Length;
                events.Add(new SequenceEvent(seq.Request.Id, SequenceEventKind.Finished, seq.Emitted, seq.CachedTokens, -1, reason, seq.FirstReloadedTokens));
                Finish(seq);
                anyFinished = true;
            }
        }

        if (anyFinished)
        {
            _running.RemoveAll(static s => s.Done);
        }

        return events;
    }

    private void Finish(Sequence seq)
    {
        var r = seq.Request;
        if (r.RetentionTtlMs > 0)
        {
            // Pin before freeing so the prompt's blocks never pass through the LRU list.
            _blocks.Pin(r.SessionId, r.BlockHashes, TimeSpan.FromMilliseconds(r.RetentionTtlMs), r.Priority, 0);
        }

        seq.Done = true;
        seq.Running = false;
        _live.Remove(r.Id);
        _blocks.Free(seq.BlockTable);
    }
}
