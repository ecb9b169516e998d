namespace Gateway.Proxy;

/// <summary>One completed routing decision: where it went, what the policy predicted and what the worker reported.</summary>
/// <param name="At">Completion time.</param>
/// <param name="Worker">Worker base URL.</param>
/// <param name="Tenant">Tenant label (org/team, never the key).</param>
/// <param name="PromptTokens">Prompt tokens reported by the worker.</param>
/// <param name="PredictedCachedTokens">Cached tokens the routing policy predicted on the chosen worker.</param>
/// <param name="BestOtherCachedTokens">Best predicted cached tokens on any other worker.</param>
/// <param name="ActualCachedTokens">Cached tokens the worker reported (<c>usage.prompt_tokens_details.cached_tokens</c>).</param>
public readonly record struct RegretEntry(DateTimeOffset At, string Worker, string Tenant, int PromptTokens, int PredictedCachedTokens, int BestOtherCachedTokens, int ActualCachedTokens);

/// <summary>The last <see cref="Capacity"/> routing decisions with their regret, for the <c>/status</c> page. Thread-safe.</summary>
public sealed class RecentRegret
{
    /// <summary>Entries kept.</summary>
    public const int Capacity = 64;

    private readonly RegretEntry[] _ring = new RegretEntry[Capacity];
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private long _count;

    /// <summary>Creates an empty ring.</summary>
    public RecentRegret(TimeProvider? time = null) => _time = time ?? TimeProvider.System;

    /// <summary>Records a completed decision.</summary>
    public void Record(string? worker, string tenant, int promptTokens, int predicted, int bestOther, int actual)
    {
        var e = new RegretEntry(_time.GetUtcNow(), worker ?? "?", tenant, promptTokens, predicted, bestOther, actual);
        lock (_lock)
        {
            _ring[_count % Capacity] = e;
            _count++;
        }
    }

    /// <summary>Most recent first.</summary>
    public IReadOnlyList<RegretEntry> Snapshot()
    {
        lock (_lock)
        {
            int n = (int)Math.Min(_count, Capacity);
            var list = new List<RegretEntry>(n);
            for (long i = _count - 1; i >= _count - n; i--)
            {
                list.Add(_ring[i % Capacity]);
            }

            return list;
        }
    }
}
