using System.Diagnostics;
using System.Globalization;
using System.Text;
using Simulator.Reports;
using Simulator.Simulation;
using Simulator.Traces;
using Simulator.Workload;

namespace Simulator;

/// <summary>Loads a trace, builds the workload, runs every policy combination and writes the reports.</summary>
public static class SimulatorApp
{
    /// <summary>Outcome of <see cref="Run"/>.</summary>
    public sealed record Outcome(SimWorkload Workload, IReadOnlyList<RunResult> Runs, TraceLoadResult Load, double LoadSeconds, double SimulateSeconds);

    /// <summary>Loads the trace (reporting malformed lines to <paramref name="log"/>).</summary>
    public static TraceLoadResult LoadTrace(Scenario s, TextWriter log)
    {
        var load = TraceReader.Read(s.Trace, s.Format, s.Strict, new WekaOptions { MaxFiles = s.MaxSessions });
        foreach (var issue in load.Issues)
        {
            log.WriteLine($"skipped {issue}");
        }

        if (load.Issues.Count > 0)
        {
            log.WriteLine($"{load.Issues.Count} malformed line(s) skipped (use --strict to stop at the first)");
        }

        if (load.MergedDuplicates > 0)
        {
            log.WriteLine($"merged {load.MergedDuplicates} duplicate stream/non-stream request pair(s) (WEKA v6)");
        }

        return load;
    }

    /// <summary>Runs every combination (in parallel, results in command-line order) and writes result.json, .md and .svg.</summary>
    public static Outcome Run(Scenario s, TextWriter log, string commandLine)
    {
        var sw = Stopwatch.StartNew();
        if (s.Format == TraceFormat.Weka && s.SessionRate <= 0)
        {
            s.SessionRate = 0.1;
            log.WriteLine("weka trace without --session-rate: sessions start as a Poisson process at 0.1/s");
        }

        var load = LoadTrace(s, log);
        List<TraceRequest>? mix = null;
        if (s.MixTrace is not null)
        {
            var mixLoad = TraceReader.Read(s.MixTrace, s.MixFormat, s.Strict, new WekaOptions());
            foreach (var issue in mixLoad.Issues)
            {
                log.WriteLine($"skipped (mix) {issue}");
            }

            mix = [.. mixLoad.Requests];
            log.WriteLine($"mix: {Math.Min(mix.Count, s.MixMaxRequests > 0 ? s.MixMaxRequests : int.MaxValue)} non-agent requests from {s.MixTrace}" +
                (s.MixRate > 0 ? string.Create(CultureInfo.InvariantCulture, $" as a Poisson process of {s.MixRate}/s") : " at their recorded times"));
        }

        // One workload per seed (session starts and mix arrivals are seeded); combinations run seed-major.
        var seeds = s.EffectiveSeeds;
        var scenarios = new Scenario[seeds.Count];
        var workloads = new SimWorkload[seeds.Count];
        for (int j = 0; j < seeds.Count; j++)
        {
            scenarios[j] = s.Seeds.Count == 0 ? s : s.WithSeed(seeds[j]);
            workloads[j] = SimWorkload.Build(load.Requests, scenarios[j], mix);
            foreach (var note in workloads[j].Notes)
            {
                log.WriteLine(seeds.Count == 1 ? note : $"seed {seeds[j]}: {note}");
            }
        }

        var workload = workloads[0];
        double loadSeconds = sw.Elapsed.TotalSeconds;
        log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"workload: {workload.RequestCount} requests, {workload.Sessions.Count} sessions, {workload.Tenants.Count} tenants, ideal prefix hit {workload.IdealPrefixHitRatio:F3} unbounded, {workload.PooledIdealPrefixHitRatio:F3} in the fleet's {workload.PoolBlocks:N0} KV blocks with optimal eviction, {workload.PooledLruPrefixHitRatio:F3} with LRU{(seeds.Count > 1 ? $", {seeds.Count} seeds" : "")} (loaded in {loadSeconds:F1} s)"));

        var combos = new List<(int Seed, string Routing, string Scheduling, string Retention)>();
        for (int j = 0; j < seeds.Count; j++)
        {
            foreach (var r in s.Routing)
            {
                foreach (var q in s.Scheduling)
                {
                    foreach (var k in s.Retention)
                    {
                        combos.Add((j, r, q, k));
                    }
                }
            }
        }

        var results = new RunResult[combos.Count];
        sw.Restart();
        Parallel.For(0, combos.Count, new ParallelOptions { MaxDegreeOfParallelism = s.Parallelism }, i =>
        {
            var (j, r, q, k) = combos[i];
            results[i] = new SimulationRun(workloads[j], scenarios[j], r, q, k).Run();
            lock (log)
            {
                string seedTag = seeds.Count > 1 ? $" / seed {seeds[j]}" : "";
                log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {r} / {q} / {k}{seedTag}: {results[i].Completed} done, {results[i].Rejected} rejected, TTFT p50 {results[i].TtftMs.P50:F0} ms, hit {results[i].PrefixHitRatio:F3} ({results[i].WallSeconds:F1} s wall, {results[i].Events} events)"));
            }
        });
        double simSeconds = sw.Elapsed.TotalSeconds;
        log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"simulated {combos.Count} run(s) × {workload.RequestCount} requests in {simSeconds:F1} s = {combos.Count * workload.RequestCount / Math.Max(simSeconds, 1e-9):F0} simulated requests/s"));

        WriteReports(s, workload, results, commandLine);
        return new Outcome(workload, results, load, loadSeconds, simSeconds);
    }

    /// <summary>Writes result.json, result.md and result.svg.</summary>
    public static void WriteReports(Scenario s, SimWorkload workload, IReadOnlyList<RunResult> results, string commandLine)
    {
        string traceName = Path.GetFileName(Path.TrimEndingDirectorySeparator(s.Trace));
        string? dir = Path.GetDirectoryName(Path.GetFullPath(s.Out));
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        File.WriteAllBytes(s.Out, ResultWriter.ToJson(traceName, workload.RequestCount, workload.IdealPrefixHitRatio, results));
        string stem = Path.Combine(dir ?? ".", Path.GetFileNameWithoutExtension(s.Out));
        File.WriteAllText(stem + ".md", ResultWriter.ToMarkdown(traceName, workload.RequestCount, workload.IdealPrefixHitRatio, results, commandLine), new UTF8Encoding(false));
        if (s.RequestsOut)
        {
            RequestLog.WriteJsonl(stem + ".requests.jsonl", results);
        }

        File.WriteAllText(stem + ".svg", SvgChart.Render($"{traceName}: {workload.RequestCount} requests, {s.Workers} workers ({s.Profile})", results, workload.Tenants), new UTF8Encoding(false));
    }
}
