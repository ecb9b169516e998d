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

    /// <summary>Snapshot for /worker/state.</summary>
    public EngineState GetState()
    {
        _blocks.ExpirePins();
        long runningContext = 0;
        foreach (var s in _running)
        {
            runningContext += s.Computed;
        }

        var profile = Options.Profile;
        return new EngineState
        {
            Model = profile.ServedModel,
            Profile = profile.Name,
            BlockSize = _blockSize,
            KvBlocksTotal = _blocks.TotalBlocks,
            KvBlocksUsed = _blocks.UsedBlocks,
            KvBlocksPinned = _blocks.PinnedBlocks,
            KvBlocksCached = _blocks.CachedBlocks,
            KvBlocksFree = _blocks.AvailableBlocks,
            KvEvictionAgeSeconds = _blocks.EvictionAgeSeconds,
            WaitingRequests = _waiting.Count,
            RunningRequests = _running.Count,
            WaitingTokens = _waitingTokens,
            PrefixCacheQueryTokens = _queryTokens,
            PrefixCacheHitTokens = _hitTokens,
            PrefixCacheHostHitTokens = _hostHitTokens,
            HostKvBlocksTotal = _blocks.Host?.CapacityBlocks ?? 0,
            HostKvBlocksCached = _blocks.Host?.CachedBlocks ?? 0,
            HostKvBlocksPinned = _blocks.Host?.PinnedBlocks ?? 0,
            HostKvStoresTotal = _blocks.Host?.StoresTotal ?? 0,
            HostKvEvictionsTotal = _blocks.Host?.EvictionsTotal ?? 0,
            HostKvReloadedBlocksTotal = _blocks.ReloadedBlocksTotal,
            HostToDeviceBytesPerSecond = profile.HostToDeviceBytesPerSecond,
            KvBytesPerToken = profile.KvBytesPerTokenPerGpu,
            PinsDroppedTotal = _blocks.PinsDroppedTotal,
            PinsExpiredTotal = _blocks.PinsExpiredTotal,
            PinCostBlocksTotal = _blocks.PinCostBlocksTotal,
            PinSavedBlocksTotal = _blocks.PinSavedBlocksTotal,
            PinsActive = _blocks.ActivePins,
            PreemptionsTotal = _preemptions,
            PromptTokensTotal = _promptTokens,
            GeneratedTokensTotal = _generatedTokens,
            StepsTotal = _steps,
            BusySeconds = _busySeconds,
            PrefillTokensPerSecond = profile.PrefillTokensPerSecond,
            DecodeStepSeconds = profile.DecodeStepSeconds(Math.Max(1, _running.Count), runningContext),
            KvEventSeq = KvEvents.LastSeq,
        };
    }

    /// <summary>
    /// Pins the cached prefix of <see cref="RetainRequest.BlockHashes"/>, or of the session's most recent request when only
    /// <see cref="RetainRequest.SessionId"/> is given, for <see cref="RetainRequest.TtlMs"/>.
    /// </summary>
    public RetainResult Retain(RetainRequest r)
    {
        ArgumentNullException.ThrowIfNull(r);
        if (r.TtlMs <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(r), "ttl_ms must be positive");
        }

        ulong[]? hashes = null;
        if (r.BlockHashes is { Count: > 0 } given)
        {
            hashes = [.. given];
        }
        else if (r.SessionId is not null)
        {
            _sessions.TryGetValue(r.SessionId, out hashes);
        }

        if (hashes is null)
        {
            return new RetainResult(0, 0);
        }

        if (r.Tier == KvTier.Host)
        {
            string key = r.SessionId ?? (hashes.Length > 0 ? "#" + hashes[^1].ToString("x16", System.Globalization.CultureInfo.InvariantCulture) : "#");
            return _blocks.PinHost(key, hashes, TimeSpan.FromMilliseconds(r.TtlMs), r.Value);
        }

        return _blocks.Pin(r.SessionId, hashes, TimeSpan.FromMilliseconds(r.TtlMs), r.Priority, r.Value);
    }

    /// <summary>Releases a session's pin, or the given hashes from every pin. Returns the blocks released.</summary>
    public int Release(ReleaseRequest r)
    {
        ArgumentNullException.ThrowIfNull(r);
        int released = 0;
        if (r.SessionId is not null)
        {
            released += _blocks.ReleaseSession(r.SessionId);
        }

        if (r.BlockHashes is { Count: > 0 } given)
        {
            released += _blocks.ReleaseHashes([.. given]);
        }

        return released;
    }

    /// <summary>How many leading blocks of <paramref name="hashes"/> are cached in HBM now.</summary>
    public int CachedPrefixBlocks(ReadOnlySpan<ulong> hashes) => _blocks.CachedPrefixBlocks(hashes);

    /// <summary>How many leading blocks of <paramref name="hashes"/> are in HBM or the host tier; <paramref name="hostBlocks"/> of them only in host.</summary>
    public int TieredPrefixBlocks(ReadOnlySpan<ulong> hashes, out int hostBlocks) => _blocks.TieredPrefixBlocks(hashes, out hostBlocks);

    /// <summary>Clears the prefix cache and every pin (one cleared event).</summary>
    public void ClearPrefixCache() => _blocks.Clear();

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

    /// <summary>
    /// Fills <see cref="_plan"/>; returns the number of sequences preempted. Sequences are taken in priority order: running
    /// ones (kept sorted by priority, then admission) and the waiting queue's head merge, so a waiting sequence of higher
    /// priority is admitted before lower-priority running sequences take budget (equal priorities: running first).
    /// </summary>
    private int Plan()
    {
        _plan.Clear();
        int budget = Options.MaxBatchTokens;
        int preempted = 0;
        int preemptedTop = int.MinValue; // highest priority preempted this step: only higher ones may still be admitted
        int prefillFloor = int.MinValue; // with ExclusivePriorityPrefill: lower priorities get no prefill tokens
        int cap = Options.LongPrefillTokenThreshold > 0 ? Options.LongPrefillTokenThreshold : int.MaxValue;
        int urgent = UrgentPriority(); // prefills below it share LowPriorityPrefillTokens per step
        int lowPrefill = Options.LowPriorityPrefillTokens;
        bool capped = false;
        bool admitting = true;
        int serial = int.MinValue; // with SerialUrgentPrefill: the priority of the urgent prefill that has this step
        bool serialOn = Options.SerialUrgentPrefill;
        int i = 0;
        while (budget > 0)
        {
            var run = i < _running.Count ? _running[i] : null;
            var wait = admitting && _waiting.Count > 0 ? _waiting.Min : null;
            if (wait is not null && (run is null || wait.Request.Priority > run.Request.Priority))
            {
                // 2. Admission: the waiting head goes before every running sequence of lower priority.
                bool low = wait.Request.Priority < urgent;
                if ((preempted > 0 && wait.Request.Priority <= preemptedTop) || wait.Request.Priority < prefillFloor
                    || (low && lowPrefill <= 0) || (wait.Request.Priority > 0 && wait.Request.Priority <= serial)
                    || !TryAdmit(wait, i, ref budget, ref capped, ref preempted, ref preemptedTop, low ? Math.Min(cap, lowPrefill) : cap, out int admitted))
                {
                    admitting = false; // the head blocks the rest (no skipping)
                    continue;
                }

                if (low)
                {
                    lowPrefill -= admitted;
                }
                else if (serialOn && wait.Request.Priority > 0)
                {
                    serial = wait.Request.Priority;
                }

                if (Options.ExclusivePriorityPrefill)
                {
                    prefillFloor = Math.Max(prefillFloor, wait.Request.Priority);
                }

                i++;
                continue;
            }

            if (run is null)
            {
                break;
            }

            // 1. A running sequence: min(tokens left, cap, budget); a decode is one token.
            int left = run.Tokens - run.Computed;
            bool decode = run.Emitted > 0 && left == 1;
            if (!decode && run.Request.Priority < prefillFloor)
            {
                i++; // a higher-priority prefill has this step to itself (decodes still ride along)
                continue;
            }

            if (!decode && run.Request.Priority > 0 && run.Request.Priority <= serial)
            {
                i++; // another urgent prefill has this step (SerialUrgentPrefill)
                continue;
            }

            bool lowRun = !decode && run.Request.Priority < urgent;
            if (lowRun && lowPrefill <= 0)
            {
                i++; // the step's low-priority prefill tokens are used up (keeps the step short for urgent arrivals)
                continue;
            }

            int n = Math.Min(Math.Min(left, lowRun ? Math.Min(cap, lowPrefill) : cap), decode ? budget : PrefillBudget(budget, i + 1, run.Request.Priority));
            int need = (int)BlocksFor(run.Computed + n) - run.BlockTable.Count;
            bool selfPreempted = false;
            while (!_blocks.TryAllocate(need, run.BlockTable))
            {
                // KV is short: preempt by recompute the lowest-priority, most recently admitted running sequence
                // (the list's tail; vLLM's priority policy), possibly this one.
                var victim = _running[^1];
                _running.RemoveAt(_running.Count - 1);
                Preempt(victim);
                preempted++;
                preemptedTop = Math.Max(preemptedTop, victim.Request.Priority);
                if (ReferenceEquals(victim, run))
                {
                    selfPreempted = true;
                    break;
                }
            }

            if (selfPreempted)
            {
                break;
            }

            capped |= n == cap && left > cap;
            Schedule(run, n);
            budget -= n;
            if (lowRun)
            {
                lowPrefill -= n;
            }
            else if (serialOn && !decode && run.Request.Priority > 0)
            {
                serial = run.Request.Priority;
            }

            if (!decode && Options.ExclusivePriorityPrefill)
            {
                prefillFloor = Math.Max(prefillFloor, run.Request.Priority);
            }

            i++;
        }

        // 3. Budget nobody else wanted goes back to the capped prefills, in plan order (no preemption for it).
        for (int c = 0; capped && budget > 0 && c < _plan.Chunks.Count; c++)
        {
            var seq = _plan.SequenceAt(c);
            var chunk = _plan.Chunks[c];
            int extra = Math.Min(seq.Tokens - chunk.ContextTokens - chunk.NewTokens, budget);
            if (seq.Request.Priority < urgent)
            {
                extra = Math.Min(extra, lowPrefill);
            }

            if (extra <= 0 || chunk.IsDecode || seq.Request.Priority < prefillFloor)
            {
                continue;
            }

            int need = (int)BlocksFor(chunk.ContextTokens + chunk.NewTokens + extra) - seq.BlockTable.Count;
            if (_blocks.TryAllocate(need, seq.BlockTable))
            {
                _plan.Extend(c, extra, chunk.ContextTokens + chunk.NewTokens + extra == seq.Tokens);
                budget -= extra;
                if (seq.Request.Priority < urgent)
                {
                    lowPrefill -= extra;
                }
            }
        }

        return preempted;
    }

    /// <summary>
    /// Admits the waiting queue's head at running position <paramref name="at"/> (every running sequence from there on has
    /// a lower priority and is not planned yet) if the running cap and KV blocks for its prefix hit plus the next chunk
    /// allow, preempting running sequences of lower priority by recompute (lowest first) to make room. False: it stays
    /// waiting and nothing changed but the preemptions.
    /// </summary>
    private bool TryAdmit(Sequence seq, int at, ref int budget, ref bool capped, ref int preempted, ref int preemptedTop, int cap, out int scheduled)
    {
        scheduled = 0;
        int priority = seq.Request.Priority;
        bool CanEvict() => _running.Count > at && _running[^1].Request.Priority < priority;
        void Evict(ref int preempted, ref int preemptedTop)
        {
            var victim = _running[^1];
            _running.RemoveAt(_running.Count - 1);
            Preempt(victim);
            preempted++;
            preemptedTop = Math.Max(preemptedTop, victim.Request.Priority);
        }

        while (_running.Count >= Options.MaxRunningSequences)
        {
            if (!CanEvict())
            {
                return false;
            }

            Evict(ref preempted, ref preemptedTop);
        }

        int hitBlocks = 0;
        if (seq.BlockTable.Count == 0)
        {
            // At least one token must be computed to produce logits, so a fully cached prompt recomputes its last block.
            int maxHit = (seq.Tokens - 1) / _blockSize;
            hitBlocks = _blocks.AcquireTieredPrefix(seq.Request.BlockHashes, maxHit, seq.BlockTable, out int reloaded, out long readyAt);
            seq.Computed = hitBlocks * _blockSize;
            seq.PendingReloadTokens += reloaded * _blockSize;
            seq.ReloadedTokens = reloaded * _blockSize;
            seq.ReadyAtTicks = readyAt;
        }

        int left = seq.Tokens - seq.Computed;
        int n = Math.Min(Math.Min(left, cap), PrefillBudget(budget, at, priority));
        int need = (int)BlocksFor(seq.Computed + n) - seq.BlockTable.Count;
        while (!_blocks.TryAllocate(need, seq.BlockTable))
        {
            if (!CanEvict())
            {
                _blocks.Free(seq.BlockTable);
                seq.Computed = 0;
                return false;
            }

            Evict(ref preempted, ref preemptedTop);
        }

        _waiting.Remove(seq);
        _waitingTokens -= seq.Tokens;
        if (!seq.Admitted)
        {
            seq.Admitted = true;
            seq.CachedTokens = hitBlocks * _blockSize;
            seq.FirstReloadedTokens = seq.ReloadedTokens;
            _queryTokens += seq.Request.PromptTokens;
            _hitTokens += seq.CachedTokens;
            _hostHitTokens += seq.ReloadedTokens;
            _blocks.ShadowAdmitted(seq.Request.BlockHashes, (seq.Tokens - 1) / _blockSize, hitBlocks);
        }

        _stepReloadTokens += seq.PendingReloadTokens;
        seq.PendingReloadTokens = 0;
        _stepReadyAt = Math.Max(_stepReadyAt, seq.ReadyAtTicks);

        seq.Running = true;
        _running.Insert(at, seq);
        Schedule(seq, n);
        capped |= n == cap && left > cap;
        budget -= n;
        scheduled = n;
        return true;
    }

    private void RememberUrgency(int priority)
    {
        if (priority <= 0 || Options.LowPriorityPrefillTokens <= 0)
        {
            return;
        }

        long now = Time.GetUtcNow().UtcTicks;
        long until = now + (long)(Options.UrgentMemorySeconds * TimeSpan.TicksPerSecond);
        if (priority >= _urgentPriority || now >= _urgentUntil)
        {
            _urgentPriority = priority;
            _urgentUntil = until;
        }
    }

    /// <summary>
    /// Priority below which prefills share <see cref="EngineOptions.LowPriorityPrefillTokens"/> this step: the highest
    /// priority submitted within <see cref="EngineOptions.UrgentMemorySeconds"/>; <see cref="int.MinValue"/> (no limit)
    /// when none was, or the option is off.
    /// </summary>
    private int UrgentPriority()
    {
        if (_urgentPriority == int.MinValue)
        {
            return int.MinValue;
        }

        if (Time.GetUtcNow().UtcTicks >= _urgentUntil)
        {
            _urgentPriority = int.MinValue;
        }

        return _urgentPriority;
    }

    /// <summary>
    /// Budget a prefill of <paramref name="priority"/> may take: what is left minus one token for every decoding sequence of
    /// lower priority still to be planned (from running position <paramref name="from"/>), so urgent prefills never starve
    /// decodes (at least one token).
    /// </summary>
    private int PrefillBudget(int budget, int from, int priority)
    {
        if (_running.Count == 0 || _running[^1].Request.Priority >= priority)
        {
            return budget; // sorted: nothing of lower priority runs
        }

        int decodes = 0;
        for (int k = from; k < _running.Count; k++)
        {
            var r = _running[k];
            if (r.Request.Priority < priority && r.Emitted > 0 && r.Tokens - r.Computed == 1)
            {
                decodes++;
            }
        }

        return Math.Max(1, budget - decodes);
    }

    private void Schedule(Sequence seq, int n)
    {
        bool decode = seq.Emitted > 0 && seq.Tokens - seq.Computed == 1;
        bool logits = seq.Computed + n == seq.Tokens;
        _plan.Add(new ScheduledChunk(seq.Request.Id, n, seq.Computed, decode, logits), seq);
    }

    private void Preempt(Sequence seq)
    {
        _blocks.Free(seq.BlockTable);
        seq.Computed = 0;
        seq.Running = false;
        _waiting.Add(seq);
        _waitingTokens += seq.Tokens;
        _preemptions++;
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
