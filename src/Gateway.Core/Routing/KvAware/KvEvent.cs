namespace Gateway.Core.Routing.KvAware;

/// <summary>Kinds of KV events a worker publishes on <c>/worker/kv/events</c> (vLLM's KV event semantics).</summary>
public enum KvEventType
{
    /// <summary>Blocks entered the prefix cache (chained hashes, with the parent of the first one).</summary>
    Stored,

    /// <summary>Blocks left the prefix cache.</summary>
    Removed,

    /// <summary>The whole cache was cleared (reset or restart).</summary>
    Cleared,

    /// <summary>A retention pin was dropped under pressure; the blocks may still be cached (ignored by the index).</summary>
    PinDropped,
}

/// <summary>Which memory tier a KV event is about (the wire field <c>medium</c>, as vLLM's KV events name it).</summary>
public enum KvMedium
{
    /// <summary>GPU HBM (<c>gpu</c>; the default when a worker sends no medium).</summary>
    Gpu,

    /// <summary>The worker's host-memory tier (<c>cpu</c>): a hit there is reloaded over PCIe, not recomputed.</summary>
    Cpu,
}

/// <summary>One KV event as parsed from the worker's stream.</summary>
/// <param name="Seq">Monotonic sequence number (per worker incarnation, first event is 1).</param>
/// <param name="Type">Event kind.</param>
/// <param name="BlockHashes">Block hashes the event names (empty for cleared).</param>
/// <param name="ParentBlockHash">Parent of the first stored block (null for a chain root or other kinds).</param>
/// <param name="Medium">The tier the blocks entered or left.</param>
public readonly record struct KvEvent(long Seq, KvEventType Type, ulong[]? BlockHashes, ulong? ParentBlockHash = null, KvMedium Medium = KvMedium.Gpu)
{
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

    /// <summary>Parses the wire name ("stored", "removed", "cleared", "pin_dropped").</summary>
    public static bool TryParseType(string? name, out KvEventType type)
    {
        switch (name)
        {
            case "stored": type = KvEventType.Stored; return true;
            case "removed": type = KvEventType.Removed; return true;
            case "cleared": type = KvEventType.Cleared; return true;
            case "pin_dropped": type = KvEventType.PinDropped; return true;
            default: type = default; return false;
        }
    }
}

/// <summary>What <see cref="PreciseIndex.Apply"/> did with an event.</summary>
public enum KvApplyResult
{
    /// <summary>Applied in order.</summary>
    Applied,

    /// <summary>Already seen (seq equal to the last applied one): ignored.</summary>
    Duplicate,

    /// <summary>A sequence gap (events were missed): the worker's set is stale until a snapshot is applied.</summary>
    GapNeedsResync,

    /// <summary>The worker is waiting for a snapshot; the event was not applied.</summary>
    AwaitingResync,

    /// <summary>The sequence went backwards or a cleared event arrived: the worker restarted and its set was reset.</summary>
    Reset,
}
