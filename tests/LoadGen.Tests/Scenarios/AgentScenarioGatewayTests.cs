using Xunit.Abstractions;
using System.IO.Compression;
using System.Net.Http.Headers;
using System.Text;
using Gateway.Agents;
using Gateway.Hosting;
using LoadGen.Client;
using LoadGen.Load;
using LoadGen.Metrics;
using LoadGen.Reporting;
using LoadGen.Scenarios;
using Microsoft.Extensions.DependencyInjection;
using Worker;

namespace LoadGen.Tests.Scenarios;

/// <summary>
/// The agent scenario against the real thing: a reference worker and the gateway on 127.0.0.1, retention hints on
/// (<c>fixed:30</c>, so every tool gap is pinned and the outcome does not depend on a learned prediction). The
/// scenario replays a small WEKA-format trace whose turns mostly end in <c>tool_use</c>; the gateway must see those
/// turns end with <c>tool_calls</c> and score the gaps after them as tool gaps, and the returning turns must reuse
/// the previous prompt's KV. Bounded by a request count, not by time.
/// </summary>
public sealed class AgentScenarioGatewayTests(ITestOutputHelper output) : IDisposable
{
    private const string DemoKey = "sk-demo-local-0000";
    private readonly string _dir = Directory.CreateTempSubdirectory("weka-live-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // Five turns over a growing context (64-token blocks): tool_use ×3 (tool gaps 2–6 s), end_turn (human gap 20 s),
    // tool_use. At scale 4 every block is kept: 6 → 8 → 10 → 12 → 14 engine blocks.
    private void WriteTrace(string name, int offset)
    {
        var sb = new StringBuilder($$"""{"id":"{{name}}","block_size":64,"tool_tokens":64,"system_tokens":64,"requests":[""");
        string[] stops = ["tool_use", "tool_use", "tool_use", "end_turn", "tool_use"];
        double[] think = [0, 2, 6, 4, 20];
        for (int t = 0; t < stops.Length; t++)
        {
            var ids = Enumerable.Range(1, 6 + 2 * t).Select(i => i <= 2 ? i : offset + i);
            sb.Append(t == 0 ? "" : ",").Append(System.Globalization.CultureInfo.InvariantCulture,
                $$"""{"t":{{t * 10}},"type":"n","in":{{(6 + 2 * t) * 64}},"out":64,"hash_ids":[{{string.Join(',', ids)}}],"stop":"{{stops[t]}}","think_time":{{think[t]}}}""");
        }

        sb.Append("]}");
        using var file = File.Create(Path.Combine(_dir, name + ".json.gz"));
        using var gz = new GZipStream(file, CompressionLevel.Fastest);
        gz.Write(Encoding.UTF8.GetBytes(sb.ToString()));
    }

    private async Task<(RunReport Report, AgentRetentionService Agents, string Metrics)> RunAsync(bool toolCalls)
    {
        WriteTrace("trace_0001", 100);
        WriteTrace("trace_0002", 200);
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { KvBlocks = 8192, TimeScale = 0.2 });
        await using var gateway = await GatewayHost.StartAsync(new Dictionary<string, string?>
        {
            ["Gateway:Listen"] = "http://127.0.0.1:0",
            ["Gateway:Workers:Mode"] = "Static",
            ["Gateway:Workers:Urls:0"] = worker.BaseAddress.GetLeftPart(UriPartial.Authority),
            ["Gateway:Auth:ServerSecret"] = "loadgen-test-secret",
            ["Gateway:Health:Interval"] = "00:00:00.200",
            ["Gateway:Agents:Mode"] = "enabled",
            ["Gateway:Agents:Policy"] = "fixed:30",
            ["Logging:LogLevel:Default"] = "Warning",
        });

        var options = new ScenarioOptions
        {
            Tenants = [new Tenant("tenant-1", DemoKey)],
            TraceDir = _dir,
            TraceSessions = 2,
            Concurrency = 2,
            Duration = TimeSpan.FromSeconds(60),
            Agent = new AgentScaling { Scale = 4, TimeScale = 0.02, MaxThink = TimeSpan.FromSeconds(0.5), ToolCalls = toolCalls },
        };
        var plan = ScenarioCatalog.Build("agent", options);
        using var http = SseChatClient.CreateHttpClient();
        var client = new SseChatClient(http, gateway.BaseAddress, "llama3-8b", new ClientTimeouts(TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(30)));
        var metrics = new MetricsCollector();
        var run = await new Runner(client, metrics, new RunOptions { Duration = options.Duration, MaxRequests = 12 }).RunAsync(plan.Flows, CancellationToken.None);
        var report = RunReport.Build("agent", plan.Description, gateway.BaseAddress.ToString(), "llama3-8b", DateTimeOffset.UtcNow,
            new SortedDictionary<string, string>(StringComparer.Ordinal), run, metrics.Live.ToDictionary(kv => kv.Key, kv => kv.Value.Issued, StringComparer.Ordinal));

        // Hints are fire-and-forget after each answer and the last gap's score lands with the last turn: read after a
        // short settle, from the gateway's own Prometheus endpoint as an operator would.
        await Task.Delay(300);
        using var scrape = new HttpClient { BaseAddress = gateway.BaseAddress };
        string text = await scrape.GetStringAsync("/metrics");
        var agents = gateway.Services.GetRequiredService<AgentRetentionService>();
        output.WriteLine(ReportWriter.Markdown(report));
        output.WriteLine($"gateway: retains {agents.Stats.Retains}, tool gaps closed {agents.Stats.ToolGapsClosed}, gaps closed {agents.Stats.GapsClosed}, " +
            $"hits {agents.Stats.Hits}, misses {agents.Stats.Misses}, uncovered {agents.Stats.Uncovered}, hints sent {agents.Hints.Sent}");
        return (report, agents, text);
    }

    [Fact]
    public async Task ToolUseTurns_EndInToolCalls_GatewayScoresToolGaps_ReturningTurnsReuseTheContext()
    {
        var (report, agents, metrics) = await RunAsync(toolCalls: true);

        Assert.Equal(12, report.Overall.Requests);
        Assert.Equal(12, report.Overall.Ok);
        // Two sessions of five turns run to the end (the 12-request budget leaves two more): each has three turns after
        // a tool gap and one after a human gap.
        var tool = report.ResumedAfter[Gap.Tool];
        Assert.True(tool.Ok >= 6, $"tool-resumed turns {tool.Ok}");
        Assert.True(report.ResumedAfter[Gap.Human].Ok >= 2, $"human-resumed turns {report.ResumedAfter[Gap.Human].Ok}");
        // The returning turn extends the previous prompt: most of it is served from the (pinned) prefix. Nothing is
        // evicted from this pool, so at most the previous prompt's last, partial 16-token block is computed again.
        Assert.True(tool.CacheHitRatio > 0.6, $"cache hit of tool-resumed turns {tool.CacheHitRatio}");
        Assert.InRange(tool.ReprefilledTokens, 0, 15 * tool.Ok);

        var s = agents.Stats;
        Assert.True(s.ToolGapsClosed >= tool.Ok, $"gateway closed {s.ToolGapsClosed} tool gaps, LoadGen sent {tool.Ok}");
        Assert.True(s.Retains >= tool.Ok, $"retains {s.Retains}");
        Assert.True(s.Hits >= tool.Ok, $"hits {s.Hits} misses {s.Misses} uncovered {s.Uncovered}");
        Assert.Equal(0, s.Uncovered);
        Assert.True(agents.Hints.Sent >= s.Retains, $"hints sent {agents.Hints.Sent}");
        Assert.Contains("outcome=\"hit\"", MetricLine(metrics, "gateway_agent_retention_gaps", "outcome=\"hit\""), StringComparison.Ordinal);
        Assert.True(MetricValue(metrics, "gateway_agent_retention_gaps", "outcome=\"hit\"") >= tool.Ok);
    }

    [Fact]
    public async Task WithoutTools_EveryGapIsAHumanGap()
    {
        var (report, agents, metrics) = await RunAsync(toolCalls: false);

        Assert.Equal(12, report.Overall.Ok);
        Assert.Empty(report.ResumedAfter); // nothing labelled: the old replay sends one user message per request
        Assert.Equal(0, agents.Stats.ToolGapsClosed);
        Assert.Equal(0, agents.Stats.Retains);
        Assert.True(agents.Stats.GapsClosed >= 8, $"gaps closed {agents.Stats.GapsClosed}");
        Assert.Equal(0, MetricValue(metrics, "gateway_agent_retention_gaps", "outcome=\"hit\""));
    }

    private static string MetricLine(string text, string name, string label) =>
        text.Split('\n').FirstOrDefault(l => l.StartsWith(name, StringComparison.Ordinal) && l.Contains(label, StringComparison.Ordinal)) ?? "";

    private static double MetricValue(string text, string name, string label)
    {
        string line = MetricLine(text, name, label);
        return line.Length == 0 ? 0 : double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }
}
