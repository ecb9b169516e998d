using System.Globalization;
using System.Text;
using Simulator.Simulation;

namespace Simulator.Compare;

/// <summary>
/// Per-request regret of the reference policy in a compare cell: the same request (session, turn) replayed under a
/// baseline with the same seed, counted where the baseline <em>placed it better</em>: more cached prompt tokens on a
/// worker with no more queued prefill at dispatch than the reference's. Each cell names the baseline with the most
/// such requests (median over the seeds), the cached tokens the reference missed on them, the time to first token
/// they cost it, and the reference's routing reasons for them. On closed-loop traces the runs diverge after the first
/// different decision, so this is where the outcomes differ, not a counterfactual of one decision.
/// </summary>
public static class CompareRegret
{
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>Regret of <paramref name="reference"/> against <paramref name="baseline"/> on one seed's pair of runs.</summary>
    /// <param name="Joined">Requests both runs completed.</param>
    /// <param name="PlacedBetter">Of them, those the baseline served with more cached tokens at no more queued prefill.</param>
    /// <param name="MissedCachedTokens">Cached tokens the baseline had beyond the reference on those requests.</param>
    /// <param name="TtftCostSeconds">Time to first token those requests took longer under the reference (positive differences only).</param>
    /// <param name="Reasons">The reference's routing reason for each of those requests.</param>
    public sealed record Pair(int Joined, int PlacedBetter, long MissedCachedTokens, double TtftCostSeconds, IReadOnlyList<string> Reasons);

    /// <summary>Compares two runs of the same workload request by request.</summary>
    public static Pair Of(IReadOnlyList<RequestRecord> reference, IReadOnlyList<RequestRecord> baseline)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(baseline);
        var theirs = new Dictionary<(string, int), RequestRecord>(baseline.Count);
        foreach (var b in baseline)
        {
            if (!b.Rejected)
            {
                theirs[(b.Session, b.Turn)] = b;
            }
        }

        int joined = 0, better = 0;
        long missed = 0;
        double cost = 0;
        var reasons = new List<string>();
        foreach (var r in reference)
        {
            if (r.Rejected || !theirs.TryGetValue((r.Session, r.Turn), out var b))
            {
                continue;
            }

            joined++;
            if (b.CachedTokens > r.CachedTokens && b.QueuedPrefillAtDispatch <= r.QueuedPrefillAtDispatch)
            {
                better++;
                missed += b.CachedTokens - r.CachedTokens;
                cost += Math.Max(0, (r.FirstToken - r.Arrival) - (b.FirstToken - b.Arrival));
                reasons.Add(r.Reason);
            }
        }

        return new Pair(joined, better, missed, cost, reasons);
    }

    /// <summary>The markdown section: one row per cell, the baseline with the most requests placed better.</summary>
    public static string Markdown(Suite suite, IReadOnlyList<CompareCell> cells)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(cells);
        var sb = new StringBuilder();
        sb.Append(C, $"## Where a baseline placed requests better than `{suite.Reference}`\n\n");
        sb.Append(C, $"Per request (session, turn) and seed: a baseline *placed it better* when it served it with more cached prompt tokens on a worker ");
        sb.Append(C, $"with no more queued prefill at dispatch than `{suite.Reference}`'s. Per cell the baseline with the most such requests (median over the seeds): ");
        sb.Append("how many, the cached tokens missed on them, the time to first token they cost (sum of positive differences) and ");
        sb.Append(C, $"`{suite.Reference}`'s routing reasons for them (all seeds). On closed-loop traces the runs diverge after the first different decision, ");
        sb.Append("so these are outcomes, not a counterfactual of single decisions.\n\n");
        sb.Append("| scenario | load | baseline | requests placed better | share | cached tokens missed | TTFT cost s | reasons |\n");
        sb.Append("|---|---|---|---:|---:|---:|---:|---|\n");
        foreach (var cell in cells)
        {
            var mine = CompareReport.Of(cell, suite.Reference).ToDictionary(r => r.Seed);
            (string Name, double Count, double Share, double Missed, double Cost, List<string> Reasons)? worst = null;
            foreach (string routing in suite.Routing.Where(n => n != suite.Reference))
            {
                var pairs = CompareReport.Of(cell, routing).Where(r => mine.ContainsKey(r.Seed))
                    .Select(r => Of(mine[r.Seed].Requests, r.Requests)).ToList();
                if (pairs.Count == 0)
                {
                    continue;
                }

                double count = CompareReport.Spread.Of(pairs.Select(p => (double)p.PlacedBetter)).Median;
                if (worst is null || count > worst.Value.Count)
                {
                    worst = (routing, count, CompareReport.Spread.Of(pairs.Select(p => p.Joined == 0 ? 0 : (double)p.PlacedBetter / p.Joined)).Median,
                        CompareReport.Spread.Of(pairs.Select(p => (double)p.MissedCachedTokens)).Median,
                        CompareReport.Spread.Of(pairs.Select(p => p.TtftCostSeconds)).Median, [.. pairs.SelectMany(p => p.Reasons)]);
                }
            }

            sb.Append(C, $"| {cell.Scenario.Name} | {SuiteScenario.LoadLabel(cell.Load)} | ");
            if (worst is not { } w || w.Count == 0)
            {
                sb.Append("– | 0 | 0 % | 0 | 0 | – |\n");
                continue;
            }

            string reasons = string.Join(", ", w.Reasons.GroupBy(x => x.Length == 0 ? "?" : x).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal)
                .Take(3).Select(g => string.Create(C, $"{g.Key} {100.0 * g.Count() / w.Reasons.Count:F0} %")));
            sb.Append(C, $"{w.Name} | {w.Count:F0} | {100 * w.Share:F1} % | {w.Missed:N0} | {w.Cost:F1} | {reasons} |\n");
        }

        return sb.ToString();
    }
}
