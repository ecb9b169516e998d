using System.Text.RegularExpressions;
using Gateway.Tests.Deploy;

namespace Gateway.Tests.Telemetry;

/// <summary>
/// Every metric name the operator assets use — the Grafana dashboard, the Prometheus alert rules and the Helm chart —
/// is served by a real gateway's <c>/metrics</c> (on its management listener), and that scrape passes
/// <c>promtool check metrics</c>.
/// </summary>
public partial class MetricNamesInUseTests
{
    [GeneratedRegex(@"\b((?:gateway|telemetry)_[a-z0-9_]*)")]
    private static partial Regex MetricRegex();

    /// <summary>Names (or, ending in '_', name prefixes such as <c>gateway_agent_</c>) in deploy/ and helm/.</summary>
    private static SortedSet<string> NamesInAssets()
    {
        var files = Directory.EnumerateFiles(RepoTools.InRepo("deploy"), "*", SearchOption.AllDirectories)
            .Concat(Directory.EnumerateFiles(RepoTools.InRepo("helm"), "*", SearchOption.AllDirectories))
            .Where(f => f.EndsWith(".json", StringComparison.Ordinal) || f.EndsWith(".yaml", StringComparison.Ordinal)
                || f.EndsWith(".tpl", StringComparison.Ordinal) || f.EndsWith(".txt", StringComparison.Ordinal));
        var names = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var f in files)
        {
            foreach (Match m in MetricRegex().Matches(File.ReadAllText(f)))
            {
                names.Add(m.Groups[1].Value);
            }
        }

        return names;
    }

    [Fact]
    public void Assets_NameMetrics()
    {
        // Guards the test below against a regex or path that finds nothing.
        var names = NamesInAssets();
        Assert.Contains("gateway_requests_total", names);
        Assert.Contains("gateway_time_to_first_token_seconds_bucket", names);
        Assert.Contains("telemetry_exporter_overflow_measurements_total", names);
        Assert.Contains("gateway_agent_gap_prediction_error", names);
    }

    [Fact]
    public async Task RunningGateway_ServesEveryMetricTheDashboardAlertsAndChartUse()
    {
        string promtool = RepoTools.Require("promtool");
        await using var gw = await Gateway.Hosting.GatewayHost.StartAsync(new Dictionary<string, string?>
        {
            ["Gateway:Listen"] = "http://127.0.0.1:0",
            ["Gateway:ManagementListen"] = "http://127.0.0.1:0",
            ["Gateway:Workers:Mode"] = "Embedded",
            ["Gateway:Workers:Embedded:Count"] = "2",
            ["Gateway:Workers:Embedded:TimeScale"] = "0.05",
            ["Logging:LogLevel:Default"] = "Warning",
        });
        using var api = new HttpClient { BaseAddress = gw.BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        api.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "sk-demo-local-0000");
        using (var body = new StringContent("{\"model\":\"llama3-8b\",\"max_tokens\":4,\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hello metrics\"}]}",
            System.Text.Encoding.UTF8, "application/json"))
        {
            using var res = await api.PostAsync(new Uri("v1/chat/completions", UriKind.Relative), body);
            res.EnsureSuccessStatusCode();
            await res.Content.ReadAsStringAsync();
        }

        // /metrics is an operator endpoint: only the management listener serves it.
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await api.GetAsync(new Uri("metrics", UriKind.Relative))).StatusCode);
        using var management = new HttpClient { BaseAddress = gw.ManagementAddress, Timeout = TimeSpan.FromSeconds(30) };
        string text = await management.GetStringAsync(new Uri("metrics", UriKind.Relative));
        var e = Exposition.Parse(text);

        var missing = new List<string>();
        foreach (string name in NamesInAssets())
        {
            bool found = name.EndsWith('_')
                ? e.Types.Keys.Any(k => k.StartsWith(name, StringComparison.Ordinal))
                : e.Types.ContainsKey(name) || HistogramSeries(e, name);
            if (!found)
            {
                missing.Add(name);
            }
        }

        Assert.True(missing.Count == 0, $"not in the gateway's /metrics: {string.Join(", ", missing)}");

        // The request path's series carry samples after one streamed request, not only their declarations.
        Assert.Equal(1, e.Value("gateway_requests_total", ("tenant", "demo/default"), ("status", "200")));
        Assert.Single(e.Named("gateway_time_to_first_token_seconds_count"));
        Assert.Equal(2, e.Named("gateway_worker_kv_usage_ratio").Count());

        var check = RepoTools.Run(promtool, ["check", "metrics"], stdin: text);
        Assert.True(check.ExitCode == 0 && check.All.Trim().Length == 0, "promtool check metrics: " + RepoTools.Describe(check));
    }

    private static bool HistogramSeries(Exposition e, string name)
    {
        foreach (var suffix in new[] { "_bucket", "_sum", "_count" })
        {
            if (name.EndsWith(suffix, StringComparison.Ordinal) && e.Types.TryGetValue(name[..^suffix.Length], out var type) && type == "histogram")
            {
                return true;
            }
        }

        return false;
    }
}
