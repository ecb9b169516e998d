namespace Simulator.Simulation;

/// <summary>One tenant's TTFT p99 across seeds: the spread of the per-seed p99s and the p99 of all samples pooled.</summary>
public sealed record TenantSeedAggregate(string Tenant, double TtftP99Median, double TtftP99Min, double TtftP99Max, double TtftP99Pooled);

/// <summary>
/// One policy combination summed over its seeds (<c>--seeds</c>). Closed-loop agent replays are chaotic — one shifted
/// eviction changes every later turn's timing — so a single seed can rank policies either way; token counts are summed
/// (the total re-prefill a fleet would pay over all the runs) and tail latencies are given as the median, range and
/// pooled p99 of the per-seed values.
/// </summary>
public sealed record SeedAggregate(
    string Routing,
    string Scheduling,
    string Retention,
    IReadOnlyList<int> Seeds,
    double ReprefillTokensResumed,
    double ReprefillTokensAfterTool,
    double ReprefillTokensAfterHuman,
    double PinnedBlockSeconds,
    double PinnedUnusedBlockSeconds,
    double PrefixHitRatioMean,
    double TtftP99Median,
    IReadOnlyList<TenantSeedAggregate> Tenants)
{
    /// <summary>Unused share of pinned block-seconds (NaN without pins).</summary>
    public double UnusedShare => PinnedBlockSeconds > 0 ? PinnedUnusedBlockSeconds / PinnedBlockSeconds : double.NaN;

    /// <summary>Groups <paramref name="runs"/> by (routing, scheduling, retention) in first-seen order; empty unless several seeds ran.</summary>
    public static List<SeedAggregate> Of(IReadOnlyList<RunResult> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var result = new List<SeedAggregate>();
        if (runs.Select(r => r.Seed).Distinct().Count() < 2)
        {
            return result;
        }

        foreach (var group in runs.GroupBy(r => (r.Routing, r.Scheduling, r.Retention)))
        {
            var g = group.ToList();
            var tenants = new List<TenantSeedAggregate>();
            foreach (var name in g.SelectMany(r => r.Tenants).Select(t => t.Tenant).Distinct().Order(StringComparer.Ordinal))
            {
                var p99s = g.SelectMany(r => r.Tenants).Where(t => t.Tenant == name).Select(t => t.TtftMs.P99).Where(v => !double.IsNaN(v)).ToList();
                var pooled = g.SelectMany(r => r.Requests)
                    .Where(q => q.Tenant == name && !q.Rejected && !double.IsNaN(q.FirstToken))
                    .Select(q => (q.FirstToken - q.Arrival) * 1000.0).ToList();
                tenants.Add(new TenantSeedAggregate(name, Stats.Percentile(p99s, 50), p99s.Count > 0 ? p99s.Min() : double.NaN,
                    p99s.Count > 0 ? p99s.Max() : double.NaN, Stats.Percentile(pooled, 99)));
            }

            result.Add(new SeedAggregate(
                group.Key.Routing, group.Key.Scheduling, group.Key.Retention, [.. g.Select(r => r.Seed)],
                g.Sum(r => r.ReprefillTokensResumed),
                g.Sum(r => (double)r.ResumedAfterTool.ReprefillTokens),
                g.Sum(r => (double)r.ResumedAfterHuman.ReprefillTokens),
                g.Sum(r => r.PinnedBlockSeconds),
                g.Sum(r => r.PinnedUnusedBlockSeconds),
                g.Average(r => r.PrefixHitRatio),
                Stats.Percentile([.. g.Select(r => r.TtftMs.P99)], 50),
                tenants));
        }

        return result;
    }
}
