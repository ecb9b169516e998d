namespace Gateway.Core.Routing;

/// <summary>A request as routing policies see it: no HTTP, no body, only what decides where it runs.</summary>
public sealed class RouteRequest
{
    /// <summary>Gateway-unique id (for tracing and tie-breaking).</summary>
    public long RequestId { get; init; }

    /// <summary>Tenant path, e.g. "acme/search/key-1".</summary>
    public required string TenantPath { get; init; }

    /// <summary>Session id when the client sent one (or the agent layer inferred one).</summary>
    public string? SessionId { get; init; }

    /// <summary>
    /// The worker id the session is bound to in shared state (another gateway replica may have made the binding), or
    /// null. Policies with session affinity treat it as the session's binding when it names a candidate.
    /// </summary>
    public string? SharedBinding { get; set; }

    /// <summary>Chained, tenant-salted hashes of the prompt's full blocks (see <see cref="Llm.Prompt.Hashing.BlockHasher"/>).</summary>
    public required ulong[] BlockHashes { get; init; }

    /// <summary>Block size the hashes were cut with.</summary>
    public int BlockSize { get; init; } = Llm.Prompt.Hashing.BlockHasher.DefaultBlockSize;

    /// <summary>Prompt length in tokens.</summary>
    public required int PromptTokens { get; init; }

    /// <summary>Expected output tokens (max_tokens or a predictor's estimate).</summary>
    public int ExpectedOutputTokens { get; init; } = 256;

    /// <summary>
    /// The decision the policy made for this request (set by policies that account routing regret, read back at
    /// completion); null before routing or for policies that do not set it.
    /// </summary>
    public RouteDecision? Decision { get; set; }
}

/// <summary>The outcome of a routing decision, kept for routing-regret accounting.</summary>
/// <param name="WorkerIndex">Index into the candidate list; -1 when no worker is eligible.</param>
/// <param name="PredictedCachedTokens">Tokens the policy expects the chosen worker to have cached.</param>
/// <param name="BestOtherCachedTokens">Best predicted cached tokens on any other worker.</param>
/// <param name="Reason">Short machine-readable reason ("affinity", "load", "spill", "round-robin", ...).</param>
public readonly record struct RouteDecision(int WorkerIndex, int PredictedCachedTokens, int BestOtherCachedTokens, string Reason)
{
    /// <summary>No eligible worker.</summary>
    public static RouteDecision None { get; } = new(-1, 0, 0, "no-eligible-worker");
}
