using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Gateway.Telemetry;
using YamlDotNet.Serialization;

namespace Gateway.Tests.Deploy;

/// <summary>The Grafana dashboard and the alert rules reference only metrics GatewayMetrics defines, and parse as PromQL.</summary>
public partial class MonitoringAssetsTests
{
    private static readonly string Dashboard = RepoTools.InRepo("deploy", "grafana", "llm-gateway.json");
    private static readonly string Alerts = RepoTools.InRepo("deploy", "prometheus", "alerts.yaml");

    /// <summary>Metrics the assets may use besides GatewayMetrics': Prometheus' own.</summary>
    private static readonly HashSet<string> Allowed = new(GatewayMetrics.Names.All.Append("up"), StringComparer.Ordinal);

    [GeneratedRegex(@"\b((?:gateway|telemetry)_[a-z0-9_]+)\b")]
    private static partial Regex MetricRegex();

    private static string BaseName(string series)
    {
        foreach (var suffix in new[] { "_bucket", "_sum", "_count" })
            if (series.EndsWith(suffix, StringComparison.Ordinal) && Allowed.Contains(series[..^suffix.Length])) return series[..^suffix.Length];
        return series;
    }

    private static List<string> DashboardExpressions()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Dashboard));
        var exprs = new List<string>();
        void Walk(JsonElement e)
        {
            switch (e.ValueKind)
            {
                case JsonValueKind.Object:
                    foreach (var p in e.EnumerateObject())
                    {
                        if (p.Name == "expr" && p.Value.ValueKind == JsonValueKind.String) exprs.Add(p.Value.GetString()!);
                        else Walk(p.Value);
                    }
                    break;
                case JsonValueKind.Array:
                    foreach (var x in e.EnumerateArray()) Walk(x);
                    break;
            }
        }
        Walk(doc.RootElement);
        return exprs;
    }

    [Fact]
    public void Dashboard_ParsesWithUniquePanelIdsAndTemplating()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Dashboard));
        var root = doc.RootElement;
        Assert.Equal("llm-gateway", root.GetProperty("uid").GetString());
        var ids = root.GetProperty("panels").EnumerateArray().Select(p => p.GetProperty("id").GetInt32()).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        var vars = root.GetProperty("templating").GetProperty("list").EnumerateArray().Select(v => v.GetProperty("name").GetString()).ToList();
        Assert.Equal(["datasource", "job", "tenant"], vars);
        foreach (var p in root.GetProperty("panels").EnumerateArray().Where(p => p.GetProperty("type").GetString() != "row"))
            Assert.True(p.GetProperty("targets").GetArrayLength() > 0, p.GetProperty("title").GetString());
    }

    [Fact]
    public void Dashboard_EveryExpression_ReferencesOnlyDefinedMetrics()
    {
        var exprs = DashboardExpressions();
        Assert.True(exprs.Count >= 20, $"only {exprs.Count} expressions");
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (string e in exprs)
        {
            var names = MetricRegex().Matches(e).Select(m => BaseName(m.Groups[1].Value)).ToList();
            Assert.True(names.Count > 0, "expression references no gateway metric: " + e);
            foreach (string n in names)
            {
                Assert.True(Allowed.Contains(n), $"'{n}' is not defined by GatewayMetrics (expression: {e})");
                used.Add(n);
            }
            if (e.Contains("histogram_quantile", StringComparison.Ordinal)) Assert.Contains("_bucket", e, StringComparison.Ordinal);
        }
        // The issue's list: TTFT/ITL/E2E, rate by status and tenant, queue wait, routing, predicted vs actual cache,
        // worker in-flight + KV, retention pins, circuit state, Redis health.
        foreach (string required in new[]
                 {
                     GatewayMetrics.Names.TimeToFirstToken, GatewayMetrics.Names.InterTokenLatency, GatewayMetrics.Names.RequestDuration,
                     GatewayMetrics.Names.Requests, GatewayMetrics.Names.QueueWait, GatewayMetrics.Names.RoutingDecision,
                     GatewayMetrics.Names.PredictedCachedTokens, GatewayMetrics.Names.ActualCachedTokens, GatewayMetrics.Names.WorkerInFlight,
                     GatewayMetrics.Names.WorkerKvUsage, GatewayMetrics.Names.RetentionPinsActive, GatewayMetrics.Names.RetentionPinsDropped,
                     GatewayMetrics.Names.RetentionPinsExpired, GatewayMetrics.Names.WorkerCircuitState, GatewayMetrics.Names.RedisUp,
                 })
            Assert.Contains(required, used);
    }

    [Fact]
    public void Dashboard_Expressions_AreValidPromQL()
    {
        // promtool parses each expression as a recording rule (Grafana variables replaced by values).
        string promtool = RepoTools.Require("promtool");
        var sb = new StringBuilder("groups:\n  - name: dashboard\n    rules:\n");
        int i = 0;
        foreach (string e in DashboardExpressions())
        {
            string expr = e.Replace("$__rate_interval", "5m", StringComparison.Ordinal)
                .Replace("$job", ".*", StringComparison.Ordinal).Replace("$tenant", ".*", StringComparison.Ordinal);
            if (expr.StartsWith("label_values(", StringComparison.Ordinal)) continue; // Grafana function, not PromQL
            sb.Append("      - record: dashboard:expr_").Append(i++).Append('\n');
            sb.Append("        expr: ").Append(JsonSerializer.Serialize(expr)).Append('\n');
        }
        string dir = RepoTools.TempDir("dash-rules");
        try
        {
            string file = Path.Combine(dir, "dashboard.rules.yaml");
            File.WriteAllText(file, sb.ToString());
            var r = RepoTools.Run(promtool, ["check", "rules", file]);
            Assert.True(r.ExitCode == 0, RepoTools.Describe(r));
            Assert.Contains($"SUCCESS: {i} rules found", r.All, StringComparison.Ordinal);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Alerts_PromtoolCheckRules_Pass()
    {
        var r = RepoTools.Run(RepoTools.Require("promtool"), ["check", "rules", Alerts]);
        Assert.True(r.ExitCode == 0, RepoTools.Describe(r));
    }

    [Fact]
    public void Alerts_PromtoolUnitTests_FireWhenExpected()
    {
        var r = RepoTools.Run(RepoTools.Require("promtool"), ["test", "rules", "alerts.test.yaml"],
            workDir: RepoTools.InRepo("deploy", "prometheus"));
        Assert.True(r.ExitCode == 0, RepoTools.Describe(r));
    }

    [Fact]
    public void Alerts_ReferenceDefinedMetricsWithSeverityAndRunbook()
    {
        var doc = new DeserializerBuilder().Build().Deserialize<Dictionary<string, List<Dictionary<string, object>>>>(File.ReadAllText(Alerts));
        string operations = File.ReadAllText(RepoTools.InRepo("docs", "operations.md"));
        int n = 0;
        foreach (var group in doc["groups"])
        {
            foreach (var rule in (List<object>)group["rules"])
            {
                var r = (Dictionary<object, object>)rule;
                string name = r["alert"].ToString()!;
                string expr = r["expr"].ToString()!;
                foreach (Match m in MetricRegex().Matches(expr))
                    Assert.True(Allowed.Contains(BaseName(m.Groups[1].Value)), $"{name}: unknown metric {m.Value}");
                var labels = (Dictionary<object, object>)r["labels"];
                Assert.Contains(labels["severity"].ToString(), new[] { "critical", "warning", "info" });
                var ann = (Dictionary<object, object>)r["annotations"];
                string runbook = ann["runbook"].ToString()!;
                string anchor = runbook[(runbook.IndexOf('#') + 1)..];
                Assert.True(operations.Split('\n').Any(l => l.StartsWith('#') && Slug(l) == anchor),
                    $"{name}: runbook anchor #{anchor} is not a heading of docs/operations.md");
                n++;
            }
        }
        Assert.True(n >= 8, $"{n} alerts");
    }

    /// <summary>GitHub-style heading anchor.</summary>
    private static string Slug(string heading)
    {
        string t = heading.TrimStart('#').Trim().ToLowerInvariant();
        var sb = new StringBuilder();
        foreach (char c in t)
        {
            if (char.IsLetterOrDigit(c) || c == '-' || c == '_') sb.Append(c);
            else if (c == ' ') sb.Append('-');
        }
        return sb.ToString();
    }
}
