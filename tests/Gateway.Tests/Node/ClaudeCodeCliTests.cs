using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Node;

/// <summary>
/// The real Claude Code CLI (npm <c>@anthropic-ai/claude-code</c>, installed once into a cache folder under the temp
/// directory) in print mode against a gateway over embedded reference workers, with the demo key, in a scratch folder,
/// read-only tools and <c>--max-turns 3</c>. The workers take max_tokens as a cap (Claude Code always asks for 32000)
/// and answer in text after one tool result, so the session is: a tool call, the CLI runs the tool, a text answer.
/// Needs node + npm; fails, rather than passing silently, without them.
/// </summary>
public sealed partial class ClaudeCodeCliTests
{
    private static readonly SemaphoreSlim InstallLock = new(1, 1);

    [Fact]
    public async Task ClaudePrint_ReadsAFileThroughTheGateway_OneSessionWithAToolGapAndACachedSecondTurn()
    {
        string claude = await EnsureClaudeAsync();
        await using var gw = await StartAgentGatewayAsync();
        string scratch = Directory.CreateTempSubdirectory("claude-scratch-").FullName;
        string home = Directory.CreateTempSubdirectory("claude-home-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(scratch, "notes.txt"), "The gateway routes agent sessions.\n");
            var env = new Dictionary<string, string>
            {
                ["HOME"] = home,
                ["ANTHROPIC_BASE_URL"] = gw.BaseAddress.ToString().TrimEnd('/'),
                ["ANTHROPIC_API_KEY"] = TestGateway.DemoKey,
                ["ANTHROPIC_MODEL"] = "llama3-8b",
                ["ANTHROPIC_DEFAULT_HAIKU_MODEL"] = "llama3-8b",
                ["DISABLE_TELEMETRY"] = "1",
                ["DISABLE_AUTOUPDATER"] = "1",
                ["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1",
            };
            var (code, stdout, stderr) = await NpmClientTests.RunAsync(claude,
                ["-p", "Read notes.txt and summarise it.", "--max-turns", "3", "--tools", "Read,Glob,Grep", "--allowedTools", "Read", "Glob", "Grep", "--output-format", "json"],
                env, TimeSpan.FromSeconds(180), scratch);
            Assert.True(code == 0, $"claude exited {code}: {stderr}\n{stdout}");
            var result = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]).RootElement;
            Assert.Equal("success", result.GetProperty("subtype").GetString());
            Assert.False(result.GetProperty("is_error").GetBoolean(), stdout);
            Assert.True(result.GetProperty("num_turns").GetInt32() >= 2, stdout);
            Assert.True(result.GetProperty("usage").GetProperty("cache_read_input_tokens").GetInt32() > 0, "the second turn reused the first turn's prefix: " + stdout);

            using var http = TestGateway.Client(gw);
            string metrics = await http.GetStringAsync("/metrics");
            Assert.True(Metric(metrics, "gateway_requests_total", "endpoint=\"messages\",status=\"200\"") >= 2, metrics);
            // A tool gap opened by the tool_use turn and closed by the tool_result turn of the same session.
            Assert.True(ToolGaps(metrics) >= 1, metrics);
            Assert.True(gw.Usage.Get("demo/default/demo-key").CachedTokens > 0);
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
            Directory.Delete(home, recursive: true);
        }
    }

    /// <summary>
    /// A gateway over one embedded reference worker for a CLI agent: one worker (the second turn finds the first one's
    /// prefix whatever the routing), max_tokens taken as a cap, a text answer after one tool result.
    /// </summary>
    internal static Task<Gateway.Hosting.GatewayHost> StartAgentGatewayAsync() =>
        TestGateway.StartEmbeddedAsync([(TestGateway.DemoKey, "demo/default/demo-key")], new Dictionary<string, string?>
        {
            ["Gateway:Workers:Embedded:Count"] = "1",
            ["Gateway:Workers:Embedded:MaxToolResults"] = "1",
            ["Gateway:Workers:Embedded:MaxTokensAsCap"] = "true",
        });

    /// <summary>Tool gaps the agent layer closed (shadow mode scores a gap with no pin "uncovered"; hit/miss with pins).</summary>
    internal static double ToolGaps(string metrics) =>
        Metric(metrics, "gateway_agent_retention_gaps_total", "outcome=\"hit\"")
        + Metric(metrics, "gateway_agent_retention_gaps_total", "outcome=\"miss\"")
        + Metric(metrics, "gateway_agent_retention_gaps_total", "outcome=\"uncovered\"");

    internal static double Metric(string text, string name, string labelPart)
    {
        double sum = 0;
        foreach (Match m in MetricLine().Matches(text))
        {
            // every label of labelPart, in any order (exporters differ in label order)
            if (m.Groups[1].Value == name && labelPart.Split(',').All(l => m.Groups[2].Value.Contains(l, StringComparison.Ordinal)))
            {
                sum += double.Parse(m.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return sum;
    }

    [GeneratedRegex(@"^(\w+)\{([^}]*)\} ([0-9.eE+-]+)$", RegexOptions.Multiline)]
    private static partial Regex MetricLine();

    private static async Task<string> EnsureClaudeAsync()
    {
        string dir = Path.Combine(Path.GetTempPath(), "gateway-tests-npm-claude");
        string bin = Path.Combine(dir, "node_modules", ".bin", "claude");
        await InstallLock.WaitAsync();
        try
        {
            if (!File.Exists(bin))
            {
                Directory.CreateDirectory(dir);
                var (code, _, err) = await NpmClientTests.RunAsync("npm", ["install", "--prefix", dir, "--no-audit", "--no-fund", "@anthropic-ai/claude-code"], new(), TimeSpan.FromSeconds(300));
                Assert.True(code == 0 && File.Exists(bin), "npm install @anthropic-ai/claude-code failed: " + err);
            }
        }
        finally
        {
            InstallLock.Release();
        }

        return bin;
    }
}
