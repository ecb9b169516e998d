using System.Diagnostics;
using System.Globalization;
using System.Text;
using Simulator.Reports;
using Simulator.Simulation;

namespace Simulator.Compare;

/// <summary>The runs of one scenario at one load level (every routing policy × seed).</summary>
/// <param name="Scenario">The suite scenario.</param>
/// <param name="Load">Load factor relative to the trace's own rate.</param>
/// <param name="Requests">Requests in the workload.</param>
/// <param name="IdealHit">Prefix-hit ratio of one infinite cache fed the workload (ignores the fleet's KV capacity).</param>
/// <param name="PooledIdealHit">Prefix-hit ratio of one cache of the fleet's total KV blocks with optimal eviction (the reachable ideal).</param>
/// <param name="Runs">Every run (routing × seed).</param>
public sealed record CompareCell(SuiteScenario Scenario, double Load, int Requests, double IdealHit, double PooledIdealHit, IReadOnlyList<RunResult> Runs);

/// <summary>Runs a <see cref="Suite"/> and writes its reports.</summary>
public static class CompareRunner
{
    /// <summary>Runs every scenario × load (each with every routing policy and seed), then writes the reports.</summary>
    /// <param name="suite">The suite.</param>
    /// <param name="rawDir">Where each cell's result.json / .md / .svg go (not quoted by the docs).</param>
    /// <param name="parallel">Runs at once.</param>
    /// <param name="log">Progress.</param>
    /// <param name="commandLine">Shown in the reports.</param>
    public static IReadOnlyList<CompareCell> Run(Suite suite, string rawDir, int parallel, TextWriter log, string commandLine)
    {
        var wall = Stopwatch.StartNew();
        string loadBefore = LoadAverage();
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var cells = new List<CompareCell>();
        Directory.CreateDirectory(rawDir);
        foreach (var sc in suite.Scenarios)
        {
            foreach (double load in suite.Loads)
            {
                var s = sc.At(load);
                s.Routing = [.. suite.Routing];
                s.Seeds = s.Seeds.Count > 0 ? s.Seeds : [.. suite.Seeds]; // a scenario's own "seeds" win
                s.Parallelism = parallel;
                s.Out = Path.Combine(rawDir, $"{suite.Name}-{sc.Name}-{SuiteScenario.LoadLabel(load)}.json");
                Check(s, sc.Name);
                log.WriteLine($"== {sc.Name} at {SuiteScenario.LoadLabel(load)} ({suite.Routing.Count} policies x {suite.Seeds.Count} seeds)");
                var o = SimulatorApp.Run(s, log, commandLine);
                foreach (var run in o.Runs)
                {
                    RequestLog.WriteCsv(Path.Combine(rawDir, RequestsCsvName(suite.Name, sc.Name, load, run)), run.Requests);
                }

                cells.Add(new CompareCell(sc, load, o.Workload.RequestCount, o.Workload.IdealPrefixHitRatio, o.Workload.PooledIdealPrefixHitRatio, o.Runs));
            }
        }

        foreach (var sc in suite.Isolation)
        {
            var s = sc.At(1.0);
            s.Seeds = [.. suite.Seeds];
            s.Parallelism = parallel;
            s.Out = Path.Combine(suite.Out, $"isolation-{sc.Name}.json");
            Check(s, sc.Name);
            log.WriteLine($"== isolation {sc.Name}");
            SimulatorApp.Run(s, log, commandLine);
        }

        double seconds = wall.Elapsed.TotalSeconds;
        double cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
        int runs = cells.Sum(c => c.Runs.Count);
        Directory.CreateDirectory(suite.Out);
        var timing = new CompareTiming(seconds, cpuSeconds, Environment.ProcessorCount, parallel, runs, cells.Sum(c => (long)c.Requests * c.Runs.Count))
        {
            LoadAverage = loadBefore.Length > 0 ? $"{loadBefore} at the start, {LoadAverage()} at the end" : "",
        };
        File.WriteAllText(Path.Combine(suite.Out, suite.Name + ".md"), CompareReport.Markdown(suite, cells, timing, commandLine), new UTF8Encoding(false));
        File.WriteAllText(Path.Combine(suite.Out, suite.Name + "-ttft.svg"), CompareChart.Render(suite, cells), new UTF8Encoding(false));
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"compare: {runs} runs, {timing.SimulatedRequests:N0} simulated requests in {seconds:F0} s wall, {cpuSeconds:F0} s CPU on {timing.Cores} cores (parallel {parallel}, load average {timing.LoadAverage}); wrote {Path.Combine(suite.Out, suite.Name + ".md")} and {suite.Name}-ttft.svg"));
        return cells;
    }

    /// <summary>The machine's 1-minute load average (Linux /proc/loadavg; empty elsewhere).</summary>
    private static string LoadAverage()
    {
        try
        {
            return File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "";
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static void Check(Scenario s, string name)
    {
        var errors = s.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException($"scenario {name}: " + string.Join("; ", errors));
        }
    }

    /// <summary>The file name of a run's records: suite, scenario, load, routing (knobs kept, unsafe characters replaced) and seed.</summary>
    private static string RequestsCsvName(string suite, string scenario, double load, RunResult run)
    {
        var routing = new StringBuilder(run.Routing.Length);
        foreach (char c in run.Routing)
        {
            routing.Append(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_');
        }

        return string.Create(CultureInfo.InvariantCulture, $"{suite}-{scenario}-{SuiteScenario.LoadLabel(load)}-{routing}-seed{run.Seed}.requests.csv");
    }
}

/// <summary>How long a suite took.</summary>
public sealed record CompareTiming(double WallSeconds, double CpuSeconds, int Cores, int Parallel, int Runs, long SimulatedRequests)
{
    /// <summary>The machine's 1-minute load average at the start and end (empty where unknown): wall time on a shared machine depends on it.</summary>
    public string LoadAverage { get; init; } = "";
}
