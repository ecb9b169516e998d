namespace Simulator.Traces;

/// <summary>
/// One request in the canonical form every reader produces (and <c>convert</c> writes as jsonl):
/// <c>{"t","tenant","session","in","out","block_size","hash_ids","think","stop","tool"}</c> plus, for sub-agents,
/// <c>"parent"</c> (parent session id) and <c>"parent_turn"</c> (index of the parent's turn after whose completion
/// the child session starts).
/// </summary>
public sealed class TraceRequest
{
    /// <summary>Recorded arrival, seconds from trace start. For the first turn of a root session this is its start.</summary>
    public double T { get; set; }

    /// <summary>Tenant path ("org/team/key"), or null when the trace has none.</summary>
    public string? Tenant { get; set; }

    /// <summary>Session id, or null for a one-shot request (open loop).</summary>
    public string? Session { get; set; }

    /// <summary>Prompt tokens.</summary>
    public int In { get; set; }

    /// <summary>Output tokens.</summary>
    public int Out { get; set; }

    /// <summary>Tokens per trace block (512 Mooncake, 64 WEKA, 16 synthetic).</summary>
    public int BlockSize { get; set; } = 16;

    /// <summary>Trace block ids of the prompt (chained prefix ids: equal ids at equal positions = shared prefix).</summary>
    public HashIds HashIds { get; set; } = HashIds.Empty;

    /// <summary>Seconds after the previous turn of the session completed (closed loop); 0 for first turns.</summary>
    public double Think { get; set; }

    /// <summary>"tool_use", "end_turn" or null.</summary>
    public string? Stop { get; set; }

    /// <summary>Tool name the turn ended with, when known.</summary>
    public string? Tool { get; set; }

    /// <summary>Parent session of a sub-agent session.</summary>
    public string? Parent { get; set; }

    /// <summary>Parent turn index after which this sub-agent session starts (-1: before the parent's first turn).</summary>
    public int ParentTurn { get; set; } = -1;

    /// <summary>Where it came from ("file:line"), for error messages.</summary>
    public string Source { get; set; } = "";
}
