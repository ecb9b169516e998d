using Worker.Contract;

namespace Worker.Engine;

/// <summary>Engine configuration. Every size is in blocks or tokens; 0 for <see cref="KvBlocks"/> means "derive from the profile".</summary>
public sealed class EngineOptions
{
    /// <summary>Roofline profile of the GPU + model being modelled.</summary>
    public required ModelProfile Profile { get; init; }

    /// <summary>KV blocks in the pool; 0 ⇒ <see cref="ModelProfile.DefaultKvBlocks"/>.</summary>
    public int KvBlocks { get; init; }

    /// <summary>Tokens per KV block (vLLM default 16).</summary>
    public int BlockSize { get; init; } = 16;

    /// <summary>Per-step token budget shared by decode (1 per running sequence) and chunked prefill (vLLM max_num_batched_tokens).</summary>
    public int MaxBatchTokens { get; init; } = 8192;

    /// <summary>
    /// Long-prefill cap (vLLM <c>long_prefill_token_threshold</c>); 0 = off. A prefill chunk is first limited to this many
    /// tokens so the sequences behind it (decodes, other prefills, waiting admissions) get their share of the step; budget
    /// still left at the end of planning is given back to the capped prefills, so a long prefill alone is not slowed.
    /// </summary>
    public int LongPrefillTokenThreshold { get; init; }

    /// <summary>
    /// Priority isolation of prefills (on by default; the engine's own addition to vLLM's priority policy): a step that
    /// carries prefill tokens of some priority gives no prefill tokens to sequences of lower priority (their decodes still
    /// run), so an urgent prompt is prefilled as fast as it would be alone instead of sharing the step's budget (and
    /// duration) with a flood of long prefills. Without priorities (all 0) it changes nothing.
    /// </summary>
    public bool ExclusivePriorityPrefill { get; init; } = true;

    /// <summary>
    /// Short steps while urgent work is about (the engine's own addition to vLLM's priority policy; 0 = off): while a request
    /// of higher priority has been submitted within the last <see cref="UrgentMemorySeconds"/>, a step gives at most this
    /// many prefill tokens, all chunks together, to the sequences of lower priority (decodes are not limited). An urgent
    /// request cannot interrupt the step that is running when it arrives; this keeps that step short, so it waits about
    /// this many tokens of prefill instead of up to <see cref="MaxBatchTokens"/>. Without priorities (all 0), or once no
    /// urgent request has come for that long, steps take the whole budget as before.
    /// </summary>
    public int LowPriorityPrefillTokens { get; init; } = DefaultLowPriorityPrefillTokens;

    /// <summary>Default <see cref="LowPriorityPrefillTokens"/>: 1,024 (about 0.05 s of prefill on an H100 with Llama-3-8B).</summary>
    public const int DefaultLowPriorityPrefillTokens = 1024;

    /// <summary>
    /// One urgent prefill per step (on by default; the engine's own addition): a step gives prefill tokens to at most one
    /// sequence of priority above 0 (the highest priority, then the earliest admitted); other urgent prompts of that priority
    /// wait for the next step instead of being batched into this one. Urgent requests that queued together behind a step
    /// then get their first tokens one after another, as they would arriving apart, instead of all at the end of one long
    /// step. Priority-0 work is batched as before.
    /// </summary>
    public bool SerialUrgentPrefill { get; init; } = true;

    /// <summary>How long after an urgent (higher-priority) submission <see cref="LowPriorityPrefillTokens"/> keeps applying.</summary>
    public double UrgentMemorySeconds { get; init; } = 10;

    /// <summary>Most sequences running at once (vLLM max_num_seqs).</summary>
    public int MaxRunningSequences { get; init; } = 256;

    /// <summary>Longest prompt + output accepted (vLLM max_model_len).</summary>
    public int MaxModelLength { get; init; } = 131072;

    /// <summary>
    /// Blocks of the host-memory tier (<see cref="HostKvTier"/>): 0 = none; −1 = the profile default,
    /// <see cref="ModelProfile.DefaultHostKvRatio"/> × the HBM pool. Needs a timing executor (the roofline): a token-producing
    /// backend has no host copy of its K/V.
    /// </summary>
    public int HostKvBlocks { get; init; }

    /// <summary>Pins never hold more than this share of the pool.</summary>
    public double MaxPinnedFraction { get; init; } = 0.5;

    /// <summary>Sessions remembered for retain-by-session (oldest forgotten first).</summary>
    public int MaxRememberedSessions { get; init; } = 65536;

    /// <summary>Capacity of the KV event ring.</summary>
    public int KvEventCapacity { get; init; } = 100_000;

    /// <summary>The pool size actually used.</summary>
    public int EffectiveKvBlocks => KvBlocks > 0 ? KvBlocks : Profile.DefaultKvBlocks(BlockSize);

    /// <summary>The host tier's size actually used (0 = none).</summary>
    public int EffectiveHostKvBlocks => HostKvBlocks >= 0 ? HostKvBlocks : (int)Math.Min(int.MaxValue, Math.Floor(EffectiveKvBlocks * Profile.DefaultHostKvRatio));
}

/// <summary>
/// One generation request as the engine sees it: token counts and block hashes, never text. A token-producing backend
/// (<see cref="ITokenStepExecutor"/>) also needs <see cref="PromptTokenIds"/>; the host must then derive
/// <see cref="BlockHashes"/> from those same ids, since cached KV is shared by hash.
/// </summary>
public sealed class EngineRequest
{
    /// <summary>Unique id (duplicates of a live request are rejected).</summary>
    public required string Id { get; init; }

    /// <summary>Prompt length in tokens (≥ 1).</summary>
    public required int PromptTokens { get; init; }

    /// <summary>Chained salted hashes of the prompt's full blocks (<c>BlockHasher.ComputeChain</c>).</summary>
    public required ulong[] BlockHashes { get; init; }

    /// <summary>
    /// Prompt token ids (length <see cref="PromptTokens"/>). Optional for timing-only executors (the roofline); required by a
    /// token-producing one, which computes the KV of these ids.
    /// </summary>
    public int[]? PromptTokenIds { get; init; }

    /// <summary>
    /// Tokens to generate (≥ 1; the host decides, e.g. from max_tokens). Exact for a timing-only executor; with a
    /// token-producing one it is the maximum (finish reason length) and the model's end-of-sequence token stops earlier.
    /// </summary>
    public required int OutputTokens { get; init; }

    /// <summary>Sampling temperature for a token-producing executor: 0 = greedy (argmax), else softmax(logits / T).</summary>
    public float Temperature { get; init; }

    /// <summary>
    /// Seed of a token-producing executor's sampling. The draw for a position depends only on (seed, position), so a
    /// recompute after preemption or a prefix-cache hit samples the same token again.
    /// </summary>
    public ulong SamplingSeed { get; init; }

    /// <summary>Session id: retain-by-session pins the blocks of the session's most recent request.</summary>
    public string? SessionId { get; init; }

    /// <summary>
    /// Urgency (the <c>x-request-priority</c> hint; higher first, equal priorities FCFS): admitted before lower priorities,
    /// planned before them in each step (prefill budget first, <see cref="EngineOptions.ExclusivePriorityPrefill"/>), and
    /// may preempt running sequences of lower priority by recompute when KV blocks or running slots are short.
    /// </summary>
    public int Priority { get; init; }

    /// <summary>If &gt; 0, the prompt's cached blocks are pinned for this long when the request finishes (x-retention-ttl-ms).</summary>
    public int RetentionTtlMs { get; init; }
}

/// <summary>What happened to a sequence during a step.</summary>
public enum SequenceEventKind
{
    /// <summary>Prefill completed and token 0 was sampled.</summary>
    FirstToken,

    /// <summary>A decode step sampled token <see cref="SequenceEvent.TokenIndex"/>.</summary>
    Token,

    /// <summary>The last token has been emitted; TokenIndex is the number of tokens generated.</summary>
    Finished,

    /// <summary>Reserved: the engine never aborts on its own (Abort is synchronous and emits no event).</summary>
    Aborted,

    /// <summary>Reserved: impossible requests are refused by Submit returning false.</summary>
    Rejected,
}

/// <summary>Why a sequence finished.</summary>
public enum FinishReason
{
    /// <summary>Not a Finished event.</summary>
    None,

    /// <summary>The requested number of output tokens was generated (OpenAI "length" when it came from max_tokens).</summary>
    Length,

    /// <summary>The model produced its end-of-sequence token (OpenAI "stop"); that token is the last one counted.</summary>
    Stop,
}

/// <summary>
/// One per-sequence event of a step. <paramref name="CachedTokens"/> is the request's prefix-cache hit (blocks reused × block size).
/// <paramref name="TokenId"/> is the sampled token of a FirstToken/Token event when the executor produces tokens (else -1);
/// <paramref name="Reason"/> says why a Finished event finished.
/// </summary>
/// <paramref name="ReloadedTokens"/> is the part of <paramref name="CachedTokens"/> reloaded from the host tier (the rest was in HBM).
public readonly record struct SequenceEvent(string RequestId, SequenceEventKind Kind, int TokenIndex, int CachedTokens, int TokenId = -1, FinishReason Reason = FinishReason.None, int ReloadedTokens = 0);

/// <summary>The outcome of one engine iteration. The host waits <see cref="Duration"/> and then delivers <see cref="Events"/>.</summary>
public sealed class StepResult
{
    /// <summary>Modelled duration of the iteration (returned, never slept).</summary>
    public TimeSpan Duration { get; init; }

    /// <summary>Prefill (and recompute) tokens processed.</summary>
    public int PrefillTokens { get; init; }

    /// <summary>Decode tokens processed (one per decoding sequence).</summary>
    public int DecodeTokens { get; init; }

    /// <summary>Sequences that took part in the step.</summary>
    public int BatchSize { get; init; }

    /// <summary>Tokens of KV reloaded from the host tier for requests admitted in this step.</summary>
    public int ReloadedTokens { get; init; }

    /// <summary>Sequences preempted (recompute) while planning this step.</summary>
    public int Preempted { get; init; }

    /// <summary>Events in sequence order.</summary>
    public IReadOnlyList<SequenceEvent> Events { get; init; } = [];

    /// <summary>An idle step (nothing to do).</summary>
    public static StepResult Idle { get; } = new();
}

/// <summary>Snapshot of the engine for /worker/state and routers.</summary>
public sealed record EngineState
{
    public required string Model { get; init; }
    public required string Profile { get; init; }
    public required int BlockSize { get; init; }
    public required int KvBlocksTotal { get; init; }
    /// <summary>Blocks referenced by a live sequence.</summary>
    public required int KvBlocksUsed { get; init; }
    /// <summary>Blocks held by at least one pin.</summary>
    public required int KvBlocksPinned { get; init; }
    /// <summary>Blocks registered in the prefix cache (in use or not).</summary>
    public required int KvBlocksCached { get; init; }
    /// <summary>Blocks allocatable now without dropping pins (free + evictable cached).</summary>
    public required int KvBlocksFree { get; init; }
    /// <summary>
    /// Eviction age of the prefix cache's LRU in seconds (Che's characteristic time: the time-decayed mean age of the cached
    /// blocks it evicted, at least the age of the oldest idle one); +∞ until the first eviction.
    /// </summary>
    public double KvEvictionAgeSeconds { get; init; } = double.PositiveInfinity;
    public required int WaitingRequests { get; init; }
    public required int RunningRequests { get; init; }
    /// <summary>Tokens still to prefill for waiting requests.</summary>
    public required long WaitingTokens { get; init; }
    /// <summary>Prompt tokens looked up in the prefix cache (first admission of each request).</summary>
    public required long PrefixCacheQueryTokens { get; init; }
    /// <summary>Of those, tokens served from the cache (HBM hits plus host-tier hits; the rest were recomputed).</summary>
    public required long PrefixCacheHitTokens { get; init; }
    /// <summary>Of the hits, tokens reloaded from the host tier.</summary>
    public long PrefixCacheHostHitTokens { get; init; }
    /// <summary>Blocks of the host tier (0 = none).</summary>
    public int HostKvBlocksTotal { get; init; }
    /// <summary>Blocks held by the host tier.</summary>
    public int HostKvBlocksCached { get; init; }
    /// <summary>Host-tier blocks held by host pins (retain hints naming the host tier).</summary>
    public int HostKvBlocksPinned { get; init; }
    /// <summary>Blocks written to the host tier (demotions and host retains).</summary>
    public long HostKvStoresTotal { get; init; }
    /// <summary>Blocks the host tier's LRU evicted.</summary>
    public long HostKvEvictionsTotal { get; init; }
    /// <summary>Blocks copied from the host tier into HBM (reloads on admission and prefetches).</summary>
    public long HostKvReloadedBlocksTotal { get; init; }
    /// <summary>Host-to-device bandwidth the engine models, bytes/s (routers price a host hit with it).</summary>
    public double HostToDeviceBytesPerSecond { get; init; }
    /// <summary>KV bytes per token on one GPU (with <see cref="HostToDeviceBytesPerSecond"/>: the reload time of a token).</summary>
    public double KvBytesPerToken { get; init; }
    public required long PinsDroppedTotal { get; init; }
    /// <summary>Pins that reached their TTL.</summary>
    public long PinsExpiredTotal { get; init; }
    /// <summary>Blocks recomputed because pins displaced them (cached without pins).</summary>
    public long PinCostBlocksTotal { get; init; }
    /// <summary>Blocks hit that were cached only because a pin kept them past their LRU eviction.</summary>
    public long PinSavedBlocksTotal { get; init; }
    public required int PinsActive { get; init; }
    public required long PreemptionsTotal { get; init; }
    public required long PromptTokensTotal { get; init; }
    public required long GeneratedTokensTotal { get; init; }
    public required long StepsTotal { get; init; }
    /// <summary>Sum of modelled step durations.</summary>
    public required double BusySeconds { get; init; }
    /// <summary>Nominal prefill throughput of the profile.</summary>
    public required double PrefillTokensPerSecond { get; init; }
    /// <summary>Modelled decode step time for the current running batch (batch 1 when idle).</summary>
    public required double DecodeStepSeconds { get; init; }
    public required long KvEventSeq { get; init; }
}

/// <summary>Pin a session's blocks (its most recent request) or explicit block hashes, in HBM or in the host tier.</summary>
public sealed record RetainRequest
{
    public string? SessionId { get; init; }
    /// <summary>
    /// Where to keep the blocks: <see cref="KvPinTier.Hbm"/> pins them in the GPU pool; <see cref="KvPinTier.Host"/> writes them to
    /// the host tier, pins them there and lets their HBM copies go first (demote).
    /// </summary>
    public KvPinTier Tier { get; init; }
    public IReadOnlyList<ulong>? BlockHashes { get; init; }
    /// <summary>Pin lifetime in milliseconds (&gt; 0).</summary>
    public long TtlMs { get; init; }
    public int Priority { get; init; }
    /// <summary>Value of keeping the blocks (e.g. expected saved prefill seconds); lowest value is dropped first under pressure.</summary>
    public double Value { get; init; }
}

/// <summary>Result of a retain: blocks now held by the pin and pins dropped to make room under the pinned-share cap.</summary>
public readonly record struct RetainResult(int PinnedBlocks, int DroppedPins);

/// <summary>Release a session's pin or pinned block hashes.</summary>
public sealed record ReleaseRequest
{
    public string? SessionId { get; init; }
    public IReadOnlyList<ulong>? BlockHashes { get; init; }
}

/// <summary>Bring a session's blocks (its most recent request) or explicit block hashes from the host tier into HBM.</summary>
public sealed record PrefetchRequest
{
    public string? SessionId { get; init; }
    public IReadOnlyList<ulong>? BlockHashes { get; init; }
    /// <summary>Most blocks to copy (0 = no limit besides the engine's budget).</summary>
    public int MaxBlocks { get; init; }
    /// <summary>If &gt; 0, the prefix is pinned in HBM for this long once copied (as a retain naming the hbm tier).</summary>
    public long TtlMs { get; init; }
    public int Priority { get; init; }
    public double Value { get; init; }
}

/// <summary>
/// Result of a prefetch: blocks copied from host, blocks of the prefix already in HBM, and seconds until the copy is done
/// (the link is shared with on-demand reloads; a request that arrives earlier waits for the rest).
/// </summary>
public readonly record struct PrefetchResult(int LoadedBlocks, int ResidentBlocks, double ReadySeconds, int BudgetBlocks);
