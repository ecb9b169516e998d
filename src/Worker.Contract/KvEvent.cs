using System.Text.Json.Serialization;

namespace Worker.Contract;

/// <summary>Kinds of KV events a worker publishes on <c>/worker/kv/events</c> (vLLM's KV event semantics).</summary>
[JsonConverter(typeof(WireEnumConverter<KvEventType>))]
public enum KvEventType
{
    /// <summary>Blocks entered the prefix cache (chained hashes, with the parent of the first one).</summary>
    [JsonStringEnumMemberName("stored")]
    Stored,

    /// <summary>Blocks left the prefix cache.</summary>
    [JsonStringEnumMemberName("removed")]
    Removed,

    /// <summary>The whole cache was cleared (reset or restart).</summary>
    [JsonStringEnumMemberName("cleared")]
    Cleared,

    /// <summary>A retention pin was dropped under pressure; the blocks may still be cached (ignored by indexes).</summary>
    [JsonStringEnumMemberName("pin_dropped")]
    PinDropped,
}

/// <summary>Which memory tier a KV event is about (the wire field <c>medium</c>, as vLLM's KV events name it).</summary>
[JsonConverter(typeof(WireEnumConverter<KvMedium>))]
public enum KvMedium
{
    /// <summary>GPU HBM (<c>gpu</c>; the default when a worker sends no medium).</summary>
    [JsonStringEnumMemberName("gpu")]
    Gpu,

    /// <summary>The worker's host-memory tier (<c>cpu</c>): a hit there is reloaded over PCIe, not recomputed.</summary>
    [JsonStringEnumMemberName("cpu")]
    Cpu,
}

/// <summary>One <c>kv</c> event of <c>GET /worker/kv/events</c>.</summary>
/// <param name="Seq">Monotonic sequence number (per worker incarnation, first event is 1).</param>
/// <param name="Type">Event kind.</param>
/// <param name="BlockHashes">Block hashes the event names (empty for cleared).</param>
/// <param name="ParentBlockHash">Parent of the first stored block (null for a chain root or other kinds).</param>
/// <param name="Medium">The tier the blocks entered or left (absent on the wire: gpu).</param>
/// <param name="BlockSize">Tokens per block (0 when the publisher did not say).</param>
public sealed record KvEvent(
    [property: JsonPropertyName("seq")] long Seq,
    [property: JsonPropertyName("type")] KvEventType Type,
    [property: JsonPropertyName("block_hashes")] ulong[]? BlockHashes = null,
    [property: JsonPropertyName("parent_block_hash")] ulong? ParentBlockHash = null,
    [property: JsonPropertyName("medium")] KvMedium Medium = KvMedium.Gpu,
    [property: JsonPropertyName("block_size")] int BlockSize = 0)
{
    /// <summary>Wire name of a medium ("gpu", "cpu").</summary>
    public static string MediumName(KvMedium medium) => medium == KvMedium.Cpu ? "cpu" : "gpu";

    /// <summary>Parses the wire medium ("gpu", "cpu"; absent = gpu).</summary>
    public static bool TryParseMedium(string? name, out KvMedium medium)
    {
        switch (name)
        {
            case null or "gpu" or "GPU": medium = KvMedium.Gpu; return true;
            case "cpu" or "CPU": medium = KvMedium.Cpu; return true;
            default: medium = default; return false;
        }
    }
}

/// <summary>
/// <c>GET /worker/kv/snapshot</c>: the cached block hashes as of event <see cref="Seq"/> (consumers continue after it),
/// those in HBM and those held by the host tier (empty without one).
/// </summary>
public sealed record KvSnapshotBody(
    [property: JsonPropertyName("seq")] long Seq,
    [property: JsonPropertyName("block_size")] int BlockSize = 0,
    [property: JsonPropertyName("block_hashes")] ulong[]? BlockHashes = null,
    [property: JsonPropertyName("host_block_hashes")] ulong[]? HostBlockHashes = null);

/// <summary>A <c>resync</c> event of the KV stream: events up to <see cref="Seq"/> are gone; fetch the snapshot.</summary>
public sealed record KvResyncBody([property: JsonPropertyName("seq")] long Seq);
