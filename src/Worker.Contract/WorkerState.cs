using System.Text.Json.Serialization;

namespace Worker.Contract;

/// <summary>
/// <c>GET /worker/state</c>. Rates are wall-clock rates of the worker process, so a router's cost model can use them as
/// they are. The reference worker fills every field; a reader treats an absent (null) one as "not reported".
/// </summary>
public sealed record WorkerStateBody
{
    private double? _kvEvictionAgeSeconds;

    [JsonPropertyName("model")] public string? Model { get; init; }
    [JsonPropertyName("profile")] public string? Profile { get; init; }
    [JsonPropertyName("block_size")] public int? BlockSize { get; init; }
    [JsonPropertyName("kv_blocks_total")] public int? KvBlocksTotal { get; init; }
    /// <summary>Blocks referenced by a live sequence.</summary>
    [JsonPropertyName("kv_blocks_used")] public int? KvBlocksUsed { get; init; }
    /// <summary>Blocks held by at least one pin.</summary>
    [JsonPropertyName("kv_blocks_pinned")] public int? KvBlocksPinned { get; init; }
    /// <summary>Blocks registered in the prefix cache (in use or not).</summary>
    [JsonPropertyName("kv_blocks_cached")] public int? KvBlocksCached { get; init; }
    [JsonPropertyName("waiting_requests")] public int? WaitingRequests { get; init; }
    [JsonPropertyName("running_requests")] public int? RunningRequests { get; init; }
    /// <summary>Tokens still to prefill for waiting requests.</summary>
    [JsonPropertyName("waiting_tokens")] public long? WaitingTokens { get; init; }
    [JsonPropertyName("tokens_per_second")] public double? TokensPerSecond { get; init; }
    [JsonPropertyName("prefill_tokens_per_second")] public double? PrefillTokensPerSecond { get; init; }
    [JsonPropertyName("decode_step_seconds")] public double? DecodeStepSeconds { get; init; }
    [JsonPropertyName("prefix_cache_query_tokens")] public long? PrefixCacheQueryTokens { get; init; }
    [JsonPropertyName("prefix_cache_hit_tokens")] public long? PrefixCacheHitTokens { get; init; }
    [JsonPropertyName("pins_dropped_total")] public long? PinsDroppedTotal { get; init; }
    [JsonPropertyName("pins_expired_total")] public long? PinsExpiredTotal { get; init; }
    /// <summary>Blocks recomputed because retention pins had pushed them out of the LRU (they would have been cached without pins).</summary>
    [JsonPropertyName("pin_cost_blocks_total")] public long? PinCostBlocksTotal { get; init; }
    /// <summary>Blocks hit that were cached only because a retention pin kept them past their LRU eviction.</summary>
    [JsonPropertyName("pin_saved_blocks_total")] public long? PinSavedBlocksTotal { get; init; }
    /// <summary>Seq of the last KV event; present only on a worker that publishes KV events.</summary>
    [JsonPropertyName("kv_event_seq")] public long? KvEventSeq { get; init; }
    [JsonPropertyName("time_scale")] public double? TimeScale { get; init; }
    [JsonPropertyName("max_model_len")] public int? MaxModelLength { get; init; }
    /// <summary>Blocks allocatable now without dropping pins (free + evictable cached).</summary>
    [JsonPropertyName("kv_blocks_free")] public int? KvBlocksFree { get; init; }

    /// <summary>
    /// Eviction age of the prefix cache's LRU in wall seconds; null while nothing was evicted yet (on the wire too: the
    /// field is present with a null value), see <see cref="ReportsKvEvictionAge"/> for an absent field. A setter, not
    /// init: the serializer calls it only for a field on the wire (it passes every init property, present or not).
    /// </summary>
    [JsonPropertyName("kv_eviction_age_s")]
    public double? KvEvictionAgeSeconds
    {
        get => _kvEvictionAgeSeconds;
        set
        {
            _kvEvictionAgeSeconds = value;
            ReportsKvEvictionAge = true;
        }
    }

    /// <summary>Whether the body carried <c>kv_eviction_age_s</c> at all (null included).</summary>
    [JsonIgnore] public bool ReportsKvEvictionAge { get; private set; }

    [JsonPropertyName("pins_active")] public int? PinsActive { get; init; }
    [JsonPropertyName("prefix_cache_host_hit_tokens")] public long? PrefixCacheHostHitTokens { get; init; }
    [JsonPropertyName("host_kv_blocks_total")] public int? HostKvBlocksTotal { get; init; }
    [JsonPropertyName("host_kv_blocks_cached")] public int? HostKvBlocksCached { get; init; }
    [JsonPropertyName("host_kv_blocks_pinned")] public int? HostKvBlocksPinned { get; init; }
    [JsonPropertyName("host_kv_stores_total")] public long? HostKvStoresTotal { get; init; }
    [JsonPropertyName("host_kv_evictions_total")] public long? HostKvEvictionsTotal { get; init; }
    [JsonPropertyName("host_kv_reloaded_blocks_total")] public long? HostKvReloadedBlocksTotal { get; init; }
    /// <summary>Wall seconds to reload one token's KV from the host tier (0 without one).</summary>
    [JsonPropertyName("host_reload_seconds_per_token")] public double? HostReloadSecondsPerToken { get; init; }
    [JsonPropertyName("preemptions_total")] public long? PreemptionsTotal { get; init; }
    [JsonPropertyName("prompt_tokens_total")] public long? PromptTokensTotal { get; init; }
    [JsonPropertyName("generated_tokens_total")] public long? GeneratedTokensTotal { get; init; }
    [JsonPropertyName("engine_steps_total")] public long? EngineStepsTotal { get; init; }
    [JsonPropertyName("engine_busy_seconds")] public double? EngineBusySeconds { get; init; }
    /// <summary>The worker takes no new generation requests (503 with <see cref="WorkerHeaders.WorkerDraining"/>).</summary>
    [JsonPropertyName("draining")] public bool? Draining { get; init; }
}

/// <summary><c>POST /worker/drain</c>'s reply.</summary>
public sealed record DrainReply(
    [property: JsonPropertyName("draining")] bool Draining,
    [property: JsonPropertyName("running_requests")] int RunningRequests,
    [property: JsonPropertyName("waiting_requests")] int WaitingRequests);
