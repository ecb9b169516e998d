using Simulator.Compare;

namespace Simulator.Tests.Compare;

public class CompareTests
{
    private static string Trace(TestFiles f)
    {
        var lines = Enumerable.Range(0, 40).Select(i =>
            $"{{\"timestamp\": {i * 200}, \"input_length\": {900 + i * 37}, \"output_length\": {3 + i % 7}, \"hash_ids\": [{i % 4}, {100 + i}]}}");
        Directory.CreateDirectory(Path.Combine(f.Dir, "traces"));
        return f.Write(Path.Combine("traces", "m.jsonl"), string.Join('\n', lines) + "\n");
    }

    private static string Suite(TestFiles f, string extra = "") => f.Write("suite.json", $$"""
        // comment lines are allowed
        {
          "traces": "{{Path.Combine(f.Dir, "traces").Replace("\\", "/", StringComparison.Ordinal)}}",
          "out": "{{Path.Combine(f.Dir, "results").Replace("\\", "/", StringComparison.Ordinal)}}",
          "seeds": [1, 2], "loads": [0.5, 2],
          "routing": ["round-robin", "dynamo-kv", "kv-aware"],
          "scenarios": [{"name": "tiny", "title": "40 requests", "trace": "m.jsonl", "format": "mooncake", "workers": 2}],
          "isolation": []{{extra}}
        }
        """);

    [Fact]
    public void Run_WritesVerdictsPerLoadAndTablesWithSeedSpread()
    {
        using var f = new TestFiles();
        Trace(f);
        var suite = Simulator.Compare.Suite.Load(Suite(f));
        var log = new StringWriter();
        var cells = CompareRunner.Run(suite, Path.Combine(f.Dir, "raw"), 2, log, "simulator compare --suite suite.json");

        Assert.Equal([0.5, 2.0], cells.Select(c => c.Load));
        Assert.All(cells, c => Assert.Equal(3 * 2, c.Runs.Count));
        // Load by time scale: twice the rate halves the span of the arrivals.
        Assert.True(cells[1].Runs[0].MakespanSeconds < cells[0].Runs[0].MakespanSeconds);
        string md = File.ReadAllText(Path.Combine(f.Dir, "results", "routing.md"));
        Assert.Contains("| tiny | 0.5x |", md, StringComparison.Ordinal);
        Assert.Contains("| tiny | 2x |", md, StringComparison.Ordinal);
        Assert.Contains("### tiny at 2x: 40 requests", md, StringComparison.Ordinal);
        Assert.Contains("| **kv-aware** |", md, StringComparison.Ordinal);
        Assert.Contains("of 6 TTFT percentiles within 1.02×", md, StringComparison.Ordinal);
        Assert.StartsWith("<svg", File.ReadAllText(Path.Combine(f.Dir, "results", "routing-ttft.svg")), StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(f.Dir, "raw", "routing-tiny-2x.json")));
        Assert.Contains("compare: 12 runs", log.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_ReportsEveryProblemAtOnce()
    {
        using var f = new TestFiles();
        Trace(f);
        var path = f.Write("bad.json", """
            {"seeds": [], "loads": [0], "routing": ["round-robin"], "reference": "kv-aware", "colour": "red",
             "scenarios": [{"name": "a", "trace": "m.jsonl", "format": "mooncake", "wrkers": 2},
                           {"trace": "m.jsonl"}]}
            """);
        var e = Assert.Throws<FormatException>(() => Simulator.Compare.Suite.Load(path, Path.Combine(f.Dir, "traces")));
        foreach (var part in new[] { "unknown key 'colour'", "unknown key 'wrkers'", "'name' is required", "seeds and loads", "reference 'kv-aware' is not in routing" })
        {
            Assert.Contains(part, e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Load_RejectsASuiteWithNothingToCompareTheReferenceWith()
    {
        using var f = new TestFiles();
        Trace(f);
        var path = f.Write("alone.json", """
            {"name": "alone", "seeds": [1], "loads": [1], "routing": ["kv-aware"],
             "scenarios": [{"name": "a", "trace": "m.jsonl", "format": "mooncake", "workers": 2}]}
            """);
        var e = Assert.Throws<FormatException>(() => Simulator.Compare.Suite.Load(path, Path.Combine(f.Dir, "traces")));
        Assert.Contains("routing needs a policy besides the reference 'kv-aware'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void At_ScalesSessionRateForSessionTracesAndTimeScaleOtherwise()
    {
        var open = new SuiteScenario { Name = "o", Title = "o", LoadBy = "time_scale", Settings = new Scenario { TimeScale = 1.5 } };
        var closed = new SuiteScenario { Name = "c", Title = "c", LoadBy = "session_rate", Settings = new Scenario { SessionRate = 0.5 } };
        Assert.Equal(3.0, open.At(2).TimeScale);
        Assert.Equal(0.25, closed.At(0.5).SessionRate);
        Assert.Equal(1.0, closed.At(0.5).TimeScale);
        Assert.Equal(1.5, open.Settings.TimeScale); // the suite's settings are not changed
        var own = new SuiteScenario { Name = "s", Title = "s", LoadBy = "time_scale", Settings = new Scenario { Seeds = [4, 5] } };
        Assert.Equal([4, 5], own.At(2).Seeds); // a scenario's own seeds survive
    }

    [Fact]
    public void Cli_Compare_BadSuiteIsAUsageError_ExitCode2()
    {
        using var f = new TestFiles();
        var path = f.Write("s.json", "{\"nonsense\": 1}");
        var entry = typeof(Scenario).Assembly.EntryPoint!;
        Assert.Equal(2, (int)entry.Invoke(null, [new[] { "compare", "--suite", path }])!); // reported with the other argument errors
    }
}
