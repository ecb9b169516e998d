using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using LoadGen.Metrics;

namespace LoadGen.Reporting;

/// <summary>Writes a run's report as JSON, Markdown and an SVG chart.</summary>
public static class ReportWriter
{
    /// <summary>The JSON options of the report (snake_case, indented).</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>Writes <c>X.json</c>, <c>X.md</c> and <c>X.svg</c> for <paramref name="jsonPath"/> = <c>X.json</c>; returns the paths.</summary>
    public static IReadOnlyList<string> WriteAll(RunReport report, IReadOnlyList<RequestResult> results, string jsonPath)
    {
        ArgumentNullException.ThrowIfNull(report);
        string full = Path.GetFullPath(jsonPath);
        string? dir = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        string stem = full.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? full[..^5] : full;
        string json = stem + ".json", md = stem + ".md", svg = stem + ".svg";
        File.WriteAllText(json, JsonSerializer.Serialize(report, JsonOptions));
        File.WriteAllText(md, Markdown(report, Path.GetFileName(svg)));
        File.WriteAllText(svg, SvgChart.Render(report, results));
        return [json, md, svg];
    }

    /// <summary>The Markdown summary.</summary>
    public static string Markdown(RunReport r, string? svgName = null)
    {
        ArgumentNullException.ThrowIfNull(r);
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append(c, $"# Load test: {r.Scenario}\n\n");
        sb.Append(c, $"- target: `{r.Target}`, model `{r.Model}`, started {r.StartedAt:yyyy-MM-dd HH:mm:ss}Z, ran {r.ElapsedSeconds:0.0} s\n");
        sb.Append(c, $"- load: {r.Description}\n");
        sb.Append("- settings: ").Append(string.Join(", ", r.Settings.Select(kv => $"{kv.Key}={kv.Value}"))).Append('\n');
        foreach (var e in r.Events)
        {
            sb.Append(c, $"- event: {e.Name} at {e.AtSeconds:0.0} s{(e.Error is null ? "" : " (failed: " + e.Error + ")")}\n");
        }

        if (r.JainFairness is double j)
        {
            sb.Append(c, $"- Jain's fairness index over tenants' output tokens/s: {j:0.000}\n");
        }

        if (r.ArrivalLagMs is { } lag)
        {
            sb.Append(c, $"- arrival lag (open-loop starts behind schedule): p50 {lag.P50:0.0} ms, p99 {lag.P99:0.0} ms, max {lag.Max:0.0} ms over {lag.Count} arrivals\n");
        }

        sb.Append(c, $"- latency: {LatencySummary.PrecisionNote}\n");
        sb.Append("\n| group | requests | ok | error | no answer | TTFT p50 / p90 / p99 ms | ITL p50 / p99 ms | TPOT p50 / p99 ms | E2E p50 / p99 ms | req/s | out tok/s | cache hit |\n");
        sb.Append("|---|---:|---:|---:|---:|---|---|---|---|---:|---:|---:|\n");
        Row(sb, "**all**", r.Overall);
        foreach (var (name, s) in r.Tenants)
        {
            Row(sb, name, s);
        }

        if (r.ResumedAfter.Count > 0)
        {
            sb.Append("\n| resumed after | requests | ok | prompt tokens | cached | uncached | re-prefilled (of the previous prompt) | cache hit | TTFT p50 / p99 ms |\n");
            sb.Append("|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
            foreach (var (gap, s) in r.ResumedAfter)
            {
                sb.Append(c, $"| {gap} gap | {s.Requests} | {s.Ok} | {s.PromptTokens} | {s.CachedTokens} | {s.UncachedTokens} | {s.ReprefilledTokens} | {s.CacheHitRatio:0.000} | {s.TtftMs.P50:0.0} / {s.TtftMs.P99:0.0} |\n");
            }
        }

        if (r.Overall.ErrorReasons.Count > 0)
        {
            sb.Append("\nErrors by reason: ").Append(string.Join(", ", r.Overall.ErrorReasons.Select(kv => $"`{kv.Key}` {kv.Value}"))).Append('\n');
        }

        if (svgName is not null)
        {
            sb.Append(c, $"\n![latency CDFs and throughput]({svgName})\n");
        }

        return sb.ToString();
    }

    private static void Row(StringBuilder sb, string name, GroupStats s)
    {
        var c = CultureInfo.InvariantCulture;
        sb.Append(c, $"| {name} | {s.Requests} | {s.Ok} | {s.Error} | {s.NoAnswer} | {s.TtftMs.P50:0.0} / {s.TtftMs.P90:0.0} / {s.TtftMs.P99:0.0} | {s.ItlMs.P50:0.0} / {s.ItlMs.P99:0.0} | {s.TpotMs.P50:0.0} / {s.TpotMs.P99:0.0} | {s.E2eMs.P50:0.0} / {s.E2eMs.P99:0.0} | {s.RequestThroughput:0.00} | {s.OutputTokenThroughput:0.0} | {s.CacheHitRatio:0.000} |\n");
    }
}
