using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Node;

/// <summary>
/// The real Codex CLI (npm <c>@openai/codex</c>, installed once into a cache folder under the temp directory) in
/// <c>codex exec</c> mode against a gateway over one embedded reference worker, pointed at it only by
/// <c>-c model_provider=...</c> flags (Responses API, the demo key from <c>OPENAI_API_KEY</c>), read-only sandbox, in a
/// scratch folder. The worker answers its first turn with a call of one of Codex's tools and, after one tool result,
/// in text; Codex's <c>x-codex-turn-metadata</c> header names the session. Needs node + npm; fails, rather than passing
/// silently, without them.
/// </summary>
public sealed class CodexCliTests
{
    [Fact]
    public async Task CodexExec_RunsAToolTurnThroughTheGateway_OneSessionWithAToolGapAndACachedSecondTurn()
    {
        string codex = await EnsureCodexAsync();
        await using var gw = await ClaudeCodeCliTests.StartAgentGatewayAsync();
        string scratch = Directory.CreateTempSubdirectory("codex-scratch-").FullName;
        string home = Directory.CreateTempSubdirectory("codex-home-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(scratch, "notes.txt"), "The gateway routes agent sessions.\n");
            string baseUrl = new Uri(gw.BaseAddress, "v1").ToString().TrimEnd('/');
            var env = new Dictionary<string, string>
            {
                ["HOME"] = home,
                ["CODEX_HOME"] = home,
                ["OPENAI_API_KEY"] = TestGateway.DemoKey,
                ["RUST_LOG"] = "error",
            };
            var (code, stdout, stderr) = await NpmClientTests.RunAsync(codex,
                [
                    "exec", "--skip-git-repo-check", "--ignore-user-config", "-s", "read-only", "-m", "llama3-8b", "--json",
                    "-c", "model_provider=gw", "-c", "model_providers.gw.name=\"gw\"", "-c", $"model_providers.gw.base_url=\"{baseUrl}\"",
                    "-c", "model_providers.gw.wire_api=\"responses\"", "-c", "model_providers.gw.env_key=\"OPENAI_API_KEY\"",
                    "Read notes.txt and summarise it.",
                ],
                env, TimeSpan.FromSeconds(180), scratch);
            Assert.True(code == 0, $"codex exited {code}: {stderr}\n{stdout}");
            var events = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(l => l.StartsWith('{'))
                .Select(l => JsonDocument.Parse(l).RootElement)
                .ToList();
            Assert.DoesNotContain(events, e => e.GetProperty("type").GetString() is "turn.failed" or "error");
            var completed = Assert.Single(events, e => e.GetProperty("type").GetString() == "turn.completed");
            Assert.True(completed.GetProperty("usage").GetProperty("cached_input_tokens").GetInt64() > 0, "the second request reused the first one's prefix: " + stdout);
            Assert.Contains(events, e => e.GetProperty("type").GetString() == "item.completed"
                && e.GetProperty("item").GetProperty("type").GetString() == "agent_message");

            using var http = TestGateway.Client(gw);
            string metrics = await http.GetStringAsync("/metrics");
            Assert.True(ClaudeCodeCliTests.Metric(metrics, "gateway_requests_total", "endpoint=\"responses\",status=\"200\"") >= 2, metrics);
            // A tool gap opened by the function_call turn and closed by the function_call_output turn of the same session
            // (the session named by x-codex-turn-metadata).
            Assert.True(ClaudeCodeCliTests.ToolGaps(metrics) >= 1, metrics);
            Assert.True(gw.Usage.Get("demo/default/demo-key").CachedTokens > 0);
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
            Directory.Delete(home, recursive: true);
        }
    }

    private static async Task<string> EnsureCodexAsync()
    {
        string module = await NpmClientTests.EnsureModuleAsync("gateway-tests-npm-codex", "@openai/codex", Path.Combine(".bin", "codex"));
        return new Uri(module).LocalPath;
    }
}
