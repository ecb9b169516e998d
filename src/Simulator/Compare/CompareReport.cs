using System.Globalization;
using System.Text;
using Simulator.Simulation;

namespace Simulator.Compare;

/// <summary>Writes a suite's routing comparison as markdown: the reference policy's verdicts, then one table per scenario and load.</summary>
public static class CompareReport
{
    /// <summary>Largest ratio of the reference's TTFT percentile to the best other policy's that still counts as "no worse".</summary>
    public const double Tolerance = 1.02;

    /// <summary>Least share of the ideal prefix-hit ratio the reference must reach at the lowest load.</summary>
    public const double IdealShare = 0.9;

    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>Median / min / max of one metric over a policy's seeds.</summary>
    public readonly record struct Spread(double Median, double Min, double Max)
    {
        /// <summary>Of the values (NaN when empty).</summary>
        public static Spread Of(IEnumerable<double> values)
        {
            var v = values.Where(x => !double.IsNaN(x)).OrderBy(x => x).ToArray();
            if (v.Length == 0)
            {
                return new Spread(double.NaN, double.NaN, double.NaN);
            }

            double median = v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
            return new Spread(median, v[0], v[^1]);
        }
    }

    /// <summary>The runs of <paramref name="routing"/> in a cell.</summary>
    public static IEnumerable<RunResult> Of(CompareCell cell, string routing) => cell.Runs.Where(r => r.Routing == routing);

    /// <summary>Median (and spread) of <paramref name="metric"/> over the seeds of <paramref name="routing"/>.</summary>
    public static Spread Metric(CompareCell cell, string routing, Func<RunResult, double> metric) => Spread.Of(Of(cell, routing).Select(metric));

    /// <summary>The markdown report.</summary>
    public static string Markdown(Suite suite, IReadOnlyList<CompareCell> cells, CompareTiming timing, string commandLine)
    {
        var sb = new StringBuilder();
        sb.Append(C, $"# Routing comparison: {suite.Name}\n\n");
        sb.Append(C, $"Written by `scripts/compare.sh` (`{commandLine}`, suite `{suite.Path.Replace('\\', '/')}`); do not edit by hand. ");
        sb.Append(C, $"{suite.Scenarios.Count} scenarios × {suite.Loads.Count} load levels ({string.Join(", ", suite.Loads.Select(SuiteScenario.LoadLabel))} the trace's own rate) × ");
        sb.Append(C, $"{suite.Routing.Count} routing policies × seeds {string.Join(", ", suite.Seeds)} (unless a scenario names its own) = {timing.Runs} simulator runs, ");
        sb.Append(C, $"{timing.SimulatedRequests:N0} simulated requests, {timing.WallSeconds:F0} s wall / {timing.CpuSeconds:F0} s CPU on {timing.Cores} cores");
        sb.Append(timing.LoadAverage.Length > 0 ? $" (1-minute load average {timing.LoadAverage}).\n\n" : ".\n\n");
        sb.Append("Each cell is the median over the seeds, with the lowest and highest seed in brackets. TTFT includes the ");
        sb.Append("gateway queue. Prefix hit = engine-reported cached tokens / prompt tokens. Two ideals, both one cache fed the whole ");
        sb.Append("stream in arrival order: *unbounded* never evicts (it ignores the fleet's KV capacity, so no router can reach it when the ");
        sb.Append("working set does not fit), *pooled* holds the fleet's total KV blocks and evicts by Belady's MIN (furthest next use first): ");
        sb.Append("no fleet of separate caches of that total size can hit more, so hit / ideal is judged against it.\n\n");

        sb.Append(C, $"## `{suite.Reference}` against the best other policy\n\n");
        sb.Append(C, $"Ratio of `{suite.Reference}`'s median TTFT percentile to the lowest median of any other policy (which one in brackets); ");
        sb.Append(C, $"**bold** where it is more than {Tolerance:0.00}× (a baseline is better). Hit / ideal is `{suite.Reference}`'s prefix-hit ratio over the pooled ideal; **bold** at the lowest load where it is under {IdealShare:0.0}.\n\n");
        sb.Append("| scenario | load | TTFT p50 | TTFT p90 | TTFT p99 | hit / ideal |\n|---|---|---|---|---|---:|\n");
        int misses = 0, checks = 0;
        double lowest = suite.Loads.Min();
        foreach (var cell in cells)
        {
            sb.Append(C, $"| {cell.Scenario.Name} | {SuiteScenario.LoadLabel(cell.Load)} |");
            foreach (var pick in new Func<RunResult, double>[] { r => r.TtftMs.P50, r => r.TtftMs.P90, r => r.TtftMs.P99 })
            {
                double mine = Metric(cell, suite.Reference, pick).Median;
                var (best, bestName) = suite.Routing.Where(n => n != suite.Reference)
                    .Select(n => (Metric(cell, n, pick).Median, n)).Where(x => !double.IsNaN(x.Median)).MinBy(x => x.Median);
                double ratio = mine / best;
                checks++;
                bool miss = ratio > Tolerance;
                misses += miss ? 1 : 0;
                sb.Append(miss ? string.Create(C, $" **{ratio:F2}** ({bestName}) |") : string.Create(C, $" {ratio:F2} ({bestName}) |"));
            }

            double hit = Metric(cell, suite.Reference, r => r.PrefixHitRatio).Median;
            string share = cell.PooledIdealHit > 0 ? (hit / cell.PooledIdealHit).ToString("F2", C) : "–";
            bool hitMiss = cell.Load == lowest && cell.PooledIdealHit > 0 && hit / cell.PooledIdealHit < IdealShare;
            sb.Append(hitMiss ? $" **{share}** |\n" : $" {share} |\n");
        }

        sb.Append(C, $"\n{checks - misses} of {checks} TTFT percentiles within {Tolerance:0.00}× of the best other policy.\n\n");
        sb.Append(CompareRegret.Markdown(suite, cells));

        foreach (var group in cells.GroupBy(c => c.Scenario.Name))
        {
            var sc = group.First().Scenario;
            var set = sc.Settings;
            sb.Append(C, $"\n## {sc.Name}: {sc.Title}\n\n");
            sb.Append(C, $"Trace `{Path.GetFileName(Path.TrimEndingDirectorySeparator(set.Trace))}` ({set.Format.ToString().ToLowerInvariant()}), {set.Workers} workers ({set.Profile}");
            sb.Append(set.KvBlocks > 0 ? string.Create(C, $", {set.KvBlocks:N0} KV blocks each") : ", the profile's KV pool");
            sb.Append(C, $"), {string.Join(",", set.Scheduling)}, load by {sc.LoadBy} ");
            sb.Append(sc.LoadBy == "session_rate" ? string.Create(C, $"(1x = {set.SessionRate:0.###} root sessions/s)") : string.Create(C, $"(1x = time scale {set.TimeScale:0.###})"));
            sb.Append(C, $", seeds {string.Join(", ", group.First().Runs.Select(r => r.Seed).Distinct())}.\n");
            foreach (var cell in group)
            {
                sb.Append(C, $"\n### {sc.Name} at {SuiteScenario.LoadLabel(cell.Load)}: {cell.Requests:N0} requests, ideal prefix hit {cell.PooledIdealHit:F3} pooled ({cell.IdealHit:F3} unbounded)\n\n");
                sb.Append("| routing | TTFT p50 ms | TTFT p90 ms | TTFT p99 ms | E2E p99 ms | prefix hit | done | rejected | load max/min |\n");
                sb.Append("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
                foreach (string routing in suite.Routing)
                {
                    string name = routing == suite.Reference ? $"**{routing}**" : routing;
                    sb.Append(C, $"| {name} | {Cell(Metric(cell, routing, r => r.TtftMs.P50), "F0")} | {Cell(Metric(cell, routing, r => r.TtftMs.P90), "F0")} | ");
                    sb.Append(C, $"{Cell(Metric(cell, routing, r => r.TtftMs.P99), "F0")} | {Cell(Metric(cell, routing, r => r.E2eMs.P99), "F0")} | ");
                    sb.Append(C, $"{Cell(Metric(cell, routing, r => r.PrefixHitRatio), "F3")} | {Metric(cell, routing, r => r.Completed).Median:F0} | ");
                    sb.Append(C, $"{Metric(cell, routing, r => r.Rejected).Median:F0} | {Metric(cell, routing, r => r.WorkerLoadMaxOverMin).Median:F2} |\n");
                }
            }
        }

        return sb.ToString();
    }

    private static string Cell(Spread s, string format) =>
        double.IsNaN(s.Median) ? "–"
        : s.Min == s.Max ? s.Median.ToString(format, C)
        : $"{s.Median.ToString(format, C)} ({s.Min.ToString(format, C)}–{s.Max.ToString(format, C)})";
}
