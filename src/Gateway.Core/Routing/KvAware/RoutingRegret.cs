namespace Gateway.Core.Routing.KvAware;

/// <summary>
/// Routing regret: per decision, the cached tokens the policy predicted on the chosen worker, the best prediction
/// on any other worker, and what the worker actually reported (<c>usage.prompt_tokens_details.cached_tokens</c>).
/// A hit-rate drop is then diagnosable: over-prediction means the index is stale (the worker evicted what we think
/// it holds); under-prediction means we missed overlap (events lost, TTL too short); a large best-other means load
/// pushed requests away from their cache. Lock-free counters: the gateway's metrics and the simulator read them.
/// </summary>
public sealed class RoutingRegret
{
    private long _decisions;
    private long _completed;
    private long _predicted;
    private long _actual;
    private long _bestOther;
    private long _under;
    private long _over;
    private long _exact;
    private long _rerouted;

    /// <summary>Decisions made.</summary>
    public long Decisions => Volatile.Read(ref _decisions);

    /// <summary>Completions compared with their decision.</summary>
    public long Completed => Volatile.Read(ref _completed);

    /// <summary>Sum of predicted cached tokens over completed decisions.</summary>
    public long SumPredictedCachedTokens => Volatile.Read(ref _predicted);

    /// <summary>Sum of actual (worker-reported) cached tokens over completed decisions.</summary>
    public long SumActualCachedTokens => Volatile.Read(ref _actual);

    /// <summary>Sum over decisions of the best predicted cached tokens on a worker other than the chosen one.</summary>
    public long SumBestOtherCachedTokens => Volatile.Read(ref _bestOther);

    /// <summary>Completions where the worker had more cached than predicted (beyond the tolerance).</summary>
    public long UnderPredicted => Volatile.Read(ref _under);

    /// <summary>Completions where the worker had less cached than predicted (beyond the tolerance).</summary>
    public long OverPredicted => Volatile.Read(ref _over);

    /// <summary>Completions predicted within the tolerance.</summary>
    public long Exact => Volatile.Read(ref _exact);

    /// <summary>Completions on a worker other than the decided one (not compared).</summary>
    public long Rerouted => Volatile.Read(ref _rerouted);

    /// <summary>Records a decision.</summary>
    public void RecordDecision(in RouteDecision decision)
    {
        Interlocked.Increment(ref _decisions);
        Interlocked.Add(ref _bestOther, decision.BestOtherCachedTokens);
    }

    /// <summary>Records a completion against its prediction.</summary>
    public void RecordOutcome(int predictedCachedTokens, int actualCachedTokens, int toleranceTokens)
    {
        Interlocked.Increment(ref _completed);
        Interlocked.Add(ref _predicted, predictedCachedTokens);
        Interlocked.Add(ref _actual, actualCachedTokens);
        int diff = actualCachedTokens - predictedCachedTokens;
        if (diff > toleranceTokens)
        {
            Interlocked.Increment(ref _under);
        }
        else if (-diff > toleranceTokens)
        {
            Interlocked.Increment(ref _over);
        }
        else
        {
            Interlocked.Increment(ref _exact);
        }
    }

    /// <summary>Records a completion on a different worker than decided.</summary>
    public void RecordRerouted() => Interlocked.Increment(ref _rerouted);

    /// <summary>Actual / predicted cached tokens (1 = calibrated; NaN before any completion with a prediction).</summary>
    public double ActualOverPredicted => SumPredictedCachedTokens == 0 ? double.NaN : (double)SumActualCachedTokens / SumPredictedCachedTokens;
}
