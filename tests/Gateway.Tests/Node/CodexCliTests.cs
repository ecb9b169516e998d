using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Node;

/// <summary>
/// The real Codex CLI (npm <c>@openai/codex</c>, installed once into a cache folder under the temp directory) running
/// <c>codex exec</c> read-only against a gateway over embedded reference workers through the Responses API, with the
/// provider flags of docs/clients.md. Needs node + npm; fails, rather than passing silently, without them.
/// </summary>
public sealed class CodexCliTests
{
    private static readonly SemaphoreSlim InstallLock = new(1, 1);

    [Fact]
    public async Task CodexExec_RunsAToolSessionThroughTheResponsesApi()
    {
        string codex = await EnsureCodexAsync();
        await using var gw = await TestGateway.StartEmbeddedAsync([(TestGateway.DemoKey, "demo/default/demo-key")], new Dictionary<string, string?>
        {
            ["Gateway:Workers:Embedded:MaxToolResults"] = "1",
            ["Gateway:Workers:Embedded:MaxTokensAsCap"] = "true",
        });
        string scratch = Directory.CreateTempSubdirectory("codex-scratch-").FullName;
        string home = Directory.CreateTempSubdirectory("codex-home-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(scratch, "notes.txt"), "The gateway routes agent sessions.\n");
            string baseUrl = new Uri(gw.BaseAddress, "v1").ToString();
            var (code, stdout, stderr) = await NpmClientTests.RunAsync(codex,
                ["exec", "-m", "llama3-8b", "-s", "read-only", "--skip-git-repo-check",
                 "-c", "model_provider=gw", "-c", "model_providers.gw.name=\"gw\"", "-c", $"model_providers.gw.base_url=\"{baseUrl}\"",
                 "-c", "model_providers.gw.wire_api=\"responses\"", "-c", "model_providers.gw.env_key=\"OPENAI_API_KEY\"",
                 "Read notes.txt and summarise it."],
                new() { ["HOME"] = home, ["CODEX_HOME"] = home, ["OPENAI_API_KEY"] = TestGateway.DemoKey }, TimeSpan.FromSeconds(180), scratch);
            Assert.True(code == 0, $"codex exited {code}: {stderr}\n{stdout}");

            using var http = TestGateway.Client(gw);
            string metrics = await http.GetStringAsync("/metrics");
            Assert.True(ClaudeCodeCliTests.Metric(metrics, "gateway_requests_total", "endpoint=\"responses\"") >= 2, metrics);
            double gaps = ClaudeCodeCliTests.Metric(metrics, "gateway_agent_retention_gaps_total", "outcome=\"hit\"")
                + ClaudeCodeCliTests.Metric(metrics, "gateway_agent_retention_gaps_total", "outcome=\"miss\"")
                + ClaudeCodeCliTests.Metric(metrics, "gateway_agent_retention_gaps_total", "outcome=\"uncovered\"");
            Assert.True(gaps >= 1, metrics);
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
        string dir = Path.Combine(Path.GetTempPath(), "gateway-tests-npm-codex");
        string bin = Path.Combine(dir, "node_modules", ".bin", "codex");
        await InstallLock.WaitAsync();
        try
        {
            if (!File.Exists(bin))
            {
                Directory.CreateDirectory(dir);
                var (code, _, err) = await NpmClientTests.RunAsync("npm", ["install", "--prefix", dir, "--no-audit", "--no-fund", "@openai/codex"], new(), TimeSpan.FromSeconds(300));
                Assert.True(code == 0 && File.Exists(bin), "npm install @openai/codex failed: " + err);
            }
        }
        finally
        {
            InstallLock.Release();
        }

        return bin;
    }
}
