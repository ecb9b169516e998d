namespace Gateway.Core.Agents;

/// <summary>Which memory tier a retain hint asks the worker to keep a context in (the worker protocol's <c>tier</c>).</summary>
public enum RetentionTier
{
    /// <summary>Pin in the GPU's HBM pool (the default; competes with running work).</summary>
    Hbm,

    /// <summary>Keep in the worker's host-memory tier (demote from HBM, pin against the host LRU); reloaded over PCIe.</summary>
    Host,
}

/// <summary>
/// What the predictive policy does with an idle context on a worker with a host tier
/// (<see cref="TurnCompletion.WorkerHostKvBlocks"/> &gt; 0): no pin in either tier. The engine's LRU demotes the context
/// to host memory when HBM needs the room and keeps it there longer than HBM could (HiCache's behaviour, what `off`
/// gets); prediction decides <em>when to bring it back</em>: a prefetch (<c>POST /worker/kv/prefetch</c>) at the gap's
/// <see cref="PrefetchQuantile"/> quantile less the reload time (KVFlow's workflow-aware prefetch), so a return at or
/// after that point finds the context in HBM and pays no reload on its first token; an earlier return reloads on demand.
/// The prefetch uses only memory that running and queued work does not need (the engine's budget). Pins were measured
/// against this and lost on the agent traces (docs/policies/agent-retention.md, "Alternatives tried").
/// </summary>
public sealed class TierPlacement
{
    /// <summary>Quantile of the predicted gap at which the prefetch should land.</summary>
    public const double PrefetchQuantile = 0.4;

    /// <summary>Longest wait before a prefetch (a longer predicted gap is left to on-demand reload).</summary>
    public const double MaxPrefetchDelaySeconds = 3600;

    /// <summary>
    /// The prefetch hint for the context of <paramref name="turn"/>, or null (no host tier, or reloading would not be
    /// cheaper than recomputing).
    /// </summary>
    public static RetentionAction? Decide(TurnCompletion turn, GapDistribution gap)
    {
        ArgumentNullException.ThrowIfNull(turn);
        if (turn.WorkerHostKvBlocks <= 0 || turn.Blocks <= 0 || turn.ReloadSeconds >= turn.PrefillSeconds)
        {
            return null;
        }

        double at = Math.Max(0, gap.Quantile(PrefetchQuantile) - turn.ReloadSeconds);
        if (at > MaxPrefetchDelaySeconds)
        {
            return null;
        }

        return new RetentionAction(RetentionActionKind.Prefetch, turn.SessionId, turn.Worker, 0, 0, 0, turn.Blocks)
        {
            Tier = RetentionTier.Host,
            PrefetchAfterMs = Math.Max(1, (long)Math.Round(at * 1000)),
        };
    }
}
