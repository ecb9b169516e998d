using System.Text.Json.Serialization;

namespace Worker.Contract;

/// <summary>Which tier a retain keeps the blocks in.</summary>
[JsonConverter(typeof(WireEnumConverter<KvPinTier>))]
public enum KvPinTier
{
    /// <summary>Pin the blocks in the GPU pool.</summary>
    [JsonStringEnumMemberName("hbm")]
    Hbm,

    /// <summary>Write the blocks to the host tier, pin them there and let their HBM copies go first (demote).</summary>
    [JsonStringEnumMemberName("host")]
    Host,
}

/// <summary>
/// <c>POST /worker/kv/retain</c>: pin a session's blocks (its most recent request) or explicit block hashes for
/// <see cref="TtlMs"/>. Give <see cref="SessionId"/> or <see cref="BlockHashes"/>.
/// </summary>
public sealed record RetainBody
{
    [JsonPropertyName("session_id")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? SessionId { get; init; }
    [JsonPropertyName("block_hashes")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public ulong[]? BlockHashes { get; init; }
    /// <summary>Pin lifetime in milliseconds, 1 to 86,400,000 (required).</summary>
    [JsonPropertyName("ttl_ms")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public long? TtlMs { get; init; }
    [JsonPropertyName("priority")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public int? Priority { get; init; }
    /// <summary>Value of keeping the blocks (e.g. expected saved prefill seconds); lowest value is dropped first.</summary>
    [JsonPropertyName("value")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double? Value { get; init; }
    /// <summary>Where to keep the blocks (absent: hbm).</summary>
    [JsonPropertyName("tier")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public KvPinTier? Tier { get; init; }
}

/// <summary><c>POST /worker/kv/release</c>: drop a session's pin or pinned block hashes.</summary>
public sealed record ReleaseBody
{
    [JsonPropertyName("session_id")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? SessionId { get; init; }
    [JsonPropertyName("block_hashes")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public ulong[]? BlockHashes { get; init; }
}

/// <summary>
/// <c>POST /worker/kv/prefetch</c>: copy a session's (or the given hashes') host-resident blocks into HBM ahead of its
/// next request, within the engine's budget.
/// </summary>
public sealed record PrefetchBody
{
    [JsonPropertyName("session_id")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? SessionId { get; init; }
    [JsonPropertyName("block_hashes")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public ulong[]? BlockHashes { get; init; }
    /// <summary>Most blocks to copy (0 or absent: no limit besides the engine's budget).</summary>
    [JsonPropertyName("max_blocks")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public int? MaxBlocks { get; init; }
    /// <summary>If &gt; 0, the prefix is pinned in HBM for this long once copied.</summary>
    [JsonPropertyName("ttl_ms")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public long? TtlMs { get; init; }
    [JsonPropertyName("priority")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public int? Priority { get; init; }
    [JsonPropertyName("value")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double? Value { get; init; }
}

/// <summary>Reply to a retain: blocks now held by the pin, pins dropped to make room, and the tier.</summary>
public sealed record RetainReply(
    [property: JsonPropertyName("pinned_blocks")] int PinnedBlocks,
    [property: JsonPropertyName("dropped_pins")] int DroppedPins,
    [property: JsonPropertyName("tier")] KvPinTier Tier);

/// <summary>Reply to a release.</summary>
public sealed record ReleaseReply([property: JsonPropertyName("released_blocks")] int ReleasedBlocks);

/// <summary>Reply to a prefetch: blocks copied, blocks already in HBM, the budget, and wall milliseconds until the copy is done.</summary>
public sealed record PrefetchReply(
    [property: JsonPropertyName("loaded_blocks")] int LoadedBlocks,
    [property: JsonPropertyName("resident_blocks")] int ResidentBlocks,
    [property: JsonPropertyName("budget_blocks")] int BudgetBlocks,
    [property: JsonPropertyName("ready_ms")] double ReadyMs);
