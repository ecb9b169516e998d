using System.Diagnostics;
using System.Globalization;
using System.Text;
using Simulator.Simulation;

namespace Simulator.Compare;

/// <summary>The runs of one scenario at one load level (every routing policy × seed).</summary>
/// <param name="Scenario">The suite scenario.</param>
/// <param name="Load">Load factor relative to the trace's own rate.</param>
/// <param name="Requests">Requests in the workload.</param>
/// <param name="IdealHit">Ideal prefix-hit ratio of the workload (one infinite cache).</param>
/// <param name="Runs">Every run (routing × seed).</param>
public sealed record CompareCell(SuiteScenario Scenario, double Load, int Requests, double IdealHit, IReadOnlyList<RunResult> Runs);

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
                cells.Add(new CompareCell(sc, load, o.Workload.RequestCount, o.Workload.IdealPrefixHitRatio, o.Runs));
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
        var timing = new CompareTiming(seconds, cpuSeconds, Environment.ProcessorCount, parallel, runs, cells.Sum(c => (long)c.Requests * c.Runs.Count));
        File.WriteAllText(Path.Combine(suite.Out, suite.Name + ".md"), CompareReport.Markdown(suite, cells, timing, commandLine), new UTF8Encoding(false));
        File.WriteAllText(Path.Combine(suite.Out, suite.Name + "-ttft.svg"), CompareChart.Render(suite, cells), new UTF8Encoding(false));
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"compare: {runs} runs, {timing.SimulatedRequests:N0} simulated requests in {seconds:F0} s wall, {cpuSeconds:F0} s CPU on {timing.Cores} cores (parallel {parallel}); wrote {Path.Combine(suite.Out, suite.Name + ".md")} and {suite.Name}-ttft.svg"));
        return cells;
    }

    private static void Check(Scenario s, string name)
    {
        var errors = s.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException($"scenario {name}: " + string.Join("; ", errors));
        }
    }
}

/// <summary>How long a suite took.</summary>
public sealed record CompareTiming(double WallSeconds, double CpuSeconds, int Cores, int Parallel, int Runs, long SimulatedRequests);
