using System.Text.Json;
using System.Xml.Linq;
using LoadGen.Client;
using LoadGen.Load;
using LoadGen.Metrics;
using LoadGen.Reporting;

namespace LoadGen.Tests.Reporting;

public sealed class ReportTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("loadgen-report-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static RequestResult Ok(string tenant, double start, double ttft, double e2e, int tokens, params double[] itl)
    {
        var r = new RequestResult { Tenant = tenant, StartSeconds = start, Outcome = Outcome.Ok, TtftMs = ttft, E2eMs = e2e, OutputTokens = tokens, PromptTokens = 100, CachedTokens = 40 };
        r.ItlMs.AddRange(itl);
        r.TpotMs = (e2e - ttft) / Math.Max(1, tokens - 1);
        return r;
    }

    private static RunReport Sample(out List<RequestResult> results)
    {
        results =
        [
            Ok("a", 0.1, 100, 400, 4, 100, 100, 100),
            Ok("a", 1.2, 200, 500, 4, 100, 100, 100),
            Ok("b", 0.5, 300, 900, 4, 200, 200, 200),
            new RequestResult { Tenant = "b", StartSeconds = 2.0, Outcome = Outcome.Error, ErrorReason = "http_503", E2eMs = 5 },
        ];
        var run = new RunResult(results, Issued: 5, Recorded: 4, ElapsedSeconds: 4, Events: [new RunEvent("kill-worker", 1.5, null)]);
        return RunReport.Build("overhead", "test", "http://127.0.0.1:1/", "m", DateTimeOffset.UnixEpoch,
            new SortedDictionary<string, string> { ["rate"] = "1" }, run, new Dictionary<string, long> { ["a"] = 2, ["b"] = 3 });
    }

    [Fact]
    public void Build_CountsPercentilesAndThroughputPerTenantAndOverall()
    {
        var r = Sample(out _);
        Assert.Equal(5, r.Overall.Requests);
        Assert.Equal(3, r.Overall.Ok);
        Assert.Equal(1, r.Overall.Error);
        Assert.Equal(1, r.Overall.NoAnswer);                 // issued 5, recorded 4
        Assert.Equal(1, r.Overall.ErrorReasons["http_503"]);
        Assert.InRange(r.Overall.TtftMs.P50, 200, 200 * (1 + LatencySummary.RelativePrecision));
        Assert.Equal(200, r.Tenants["a"].TtftMs.Max);           // exact
        Assert.InRange(r.Tenants["a"].TtftMs.P50, 100, 100 * (1 + LatencySummary.RelativePrecision)); // nearest rank of {100, 200}
        Assert.Equal(0, r.Tenants["a"].NoAnswer);
        Assert.Equal(1, r.Tenants["b"].NoAnswer);
        Assert.InRange(r.Tenants["a"].ItlMs.P50, 100, 100 * (1 + LatencySummary.RelativePrecision));
        Assert.Equal(0.4, r.Overall.CacheHitRatio);
        Assert.Equal(8 / 4.0, r.Tenants["a"].OutputTokenThroughput);
        Assert.Equal(0.75, r.Overall.RequestThroughput);
        // a produced 8 tokens (2/s), b 4 (1/s): Jain = (2+1)² / (2 · (4+1)) = 0.9
        Assert.Equal(0.9, r.JainFairness!.Value, 3);
    }

    [Fact]
    public void WriteAll_WritesJsonMarkdownAndWellFormedSvg()
    {
        var report = Sample(out var results);
        var paths = ReportWriter.WriteAll(report, results, Path.Combine(_dir, "sub", "report.json"));
        Assert.Equal(3, paths.Count);
        Assert.All(paths, p => Assert.True(File.Exists(p), p));

        using var doc = JsonDocument.Parse(File.ReadAllText(paths[0]));
        var overall = doc.RootElement.GetProperty("overall");
        Assert.Equal(3, overall.GetProperty("ok").GetInt64());
        Assert.Equal(1, overall.GetProperty("no_answer").GetInt64());
        Assert.InRange(overall.GetProperty("ttft_ms").GetProperty("p50").GetDouble(), 200, 200 * (1 + LatencySummary.RelativePrecision));
        Assert.Equal(LatencySummary.PrecisionNote, doc.RootElement.GetProperty("latency_precision").GetString());
        Assert.True(doc.RootElement.GetProperty("tenants").TryGetProperty("a", out var a));
        Assert.True(a.GetProperty("e2e_ms").TryGetProperty("p99", out _));
        Assert.True(a.GetProperty("tpot_ms").TryGetProperty("p90", out _));
        Assert.True(a.GetProperty("itl_ms").TryGetProperty("p50", out _));

        string md = File.ReadAllText(paths[1]);
        Assert.Contains("| **all** | 5 | 3 | 1 | 1 |", md, StringComparison.Ordinal);
        Assert.Contains("kill-worker", md, StringComparison.Ordinal);
        Assert.Contains(LatencySummary.PrecisionNote, md, StringComparison.Ordinal); // the report states its percentiles' precision

        var svg = XDocument.Load(paths[2]);
        XNamespace ns = "http://www.w3.org/2000/svg";
        Assert.Equal(ns + "svg", svg.Root!.Name);
        Assert.True(svg.Descendants(ns + "polyline").Count() >= 4); // 2 CDFs × 2 tenants + throughput lines
    }

    [Fact]
    public void LatencySummary_SmallSet_NearestRankPercentiles_ExactMeanAndMax()
    {
        var s = LatencySummary.Of([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        Assert.InRange(s.P50, 5, 5 * (1 + LatencySummary.RelativePrecision));
        Assert.InRange(s.P90, 9, 9 * (1 + LatencySummary.RelativePrecision));
        Assert.InRange(s.P99, 10, 10 * (1 + LatencySummary.RelativePrecision));
        Assert.Equal(5.5, s.Mean, 9);
        Assert.Equal(10, s.Max);
        Assert.Equal(10, s.Count);
    }

    [Fact]
    public void LatencySummary_HdrHistogram_EveryPercentileWithinItsStatedPrecisionOfTheExactOne()
    {
        // 100k latencies spread log-uniformly from 0.05 ms to 120 s (seeded): ITL-sized to stalled-request-sized.
        var rng = new Random(7);
        var values = Enumerable.Range(0, 100_000).Select(_ => 0.05 * Math.Pow(2_400_000, rng.NextDouble())).ToList();
        var s = LatencySummary.Of(values);
        var sorted = values.Order().ToList();
        double Exact(double p) => sorted[(int)Math.Ceiling(p / 100 * sorted.Count) - 1]; // nearest rank
        foreach (var (got, p) in new[] { (s.P50, 50.0), (s.P90, 90.0), (s.P99, 99.0) })
        {
            double exact = Exact(p);
            // Recorded in whole microseconds (half a µs of rounding), then at most 0.1% above.
            Assert.InRange(got, exact - 0.0005, (exact + 0.0005) * (1 + LatencySummary.RelativePrecision));
        }

        Assert.Equal(sorted[^1], s.Max);
        Assert.Equal(values.Average(), s.Mean, 6);
        Assert.Contains("3 significant digits", LatencySummary.PrecisionNote, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_ResumedAfter_SplitsByGap_ReprefilledIsThePreviousPromptNotServedFromCache()
    {
        RequestResult Turn(string? gap, int prompt, int cached, int? reusable, Outcome outcome = Outcome.Ok) =>
            new() { Tenant = "a", Outcome = outcome, GapBefore = gap, PromptTokens = prompt, CachedTokens = cached, ReusablePrefixTokens = reusable, E2eMs = 1, TtftMs = 1 };
        var results = new List<RequestResult>
        {
            Turn(null, 1000, 0, null),                      // first turn: not a resumed one
            Turn(Gap.Tool, 1200, 992, 1000),                // 8 tokens of the previous prompt's partial block again
            Turn(Gap.Tool, 1400, 0, 1200),                  // evicted: all 1,200 again
            Turn(Gap.Tool, 900, 512, null),                 // a new conversation: nothing counted as re-prefilled
            Turn(Gap.Human, 1500, 1392, 1400),
            Turn(Gap.Tool, 1600, 0, 1500, Outcome.Error),   // errors count as requests, not tokens
        };
        var run = new RunResult(results, Issued: 6, Recorded: 6, ElapsedSeconds: 1, Events: []);
        var report = RunReport.Build("agent", "t", "http://127.0.0.1:1/", "m", DateTimeOffset.UnixEpoch, [], run, new Dictionary<string, long> { ["a"] = 6 });

        Assert.Equal(["human", "tool"], report.ResumedAfter.Keys);
        var tool = report.ResumedAfter["tool"];
        Assert.Equal(4, tool.Requests);
        Assert.Equal(3, tool.Ok);
        Assert.Equal(3500 - 1504, tool.UncachedTokens);
        Assert.Equal(8 + 1200, tool.ReprefilledTokens);
        Assert.Equal(8, report.ResumedAfter["human"].ReprefilledTokens);
        Assert.Equal(8 + 1200 + 8, report.Overall.ReprefilledTokens);
        Assert.Contains("| tool gap | 4 | 3 | 3500 | 1504 | 1996 | 1208 |", ReportWriter.Markdown(report), StringComparison.Ordinal);
    }
}
