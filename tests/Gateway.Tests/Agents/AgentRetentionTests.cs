using System.Text;
using System.Text.Json;
using Gateway.Agents;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Worker;

namespace Gateway.Tests.Agents;

/// <summary>The agent layer end to end: real in-process workers, a tool-call turn, the retain hint, the returning turn.</summary>
public sealed class AgentRetentionTests
{
    internal static readonly string Context = string.Join(' ', Enumerable.Range(0, 400).Select(i => $"line{i} of the repository context;"));

    internal static string FirstTurn(bool stream) => JsonSerializer.Serialize(new
    {
        model = "llama3-8b",
        stream,
        max_tokens = 64,
        tool_choice = "required",
        tools = new[] { new { type = "function", function = new { name = "bash", description = "run a shell command", parameters = new { type = "object", properties = new { cmd = new { type = "string" } } } } } },
        messages = new object[]
        {
            new { role = "system", content = Context },
            new { role = "user", content = "fix the failing test" },
        },
    });

    internal static string SecondTurn(string toolCallId, string arguments, int maxTokens = 16) => JsonSerializer.Serialize(new
    {
        model = "llama3-8b",
        max_tokens = maxTokens,
        tool_choice = "none",
        tools = new[] { new { type = "function", function = new { name = "bash", description = "run a shell command", parameters = new { type = "object", properties = new { cmd = new { type = "string" } } } } } },
        messages = new object[]
        {
            new { role = "system", content = Context },
            new { role = "user", content = "fix the failing test" },
            new { role = "assistant", content = (string?)null, tool_calls = new[] { new { id = toolCallId, type = "function", function = new { name = "bash", arguments } } } },
            new { role = "tool", tool_call_id = toolCallId, content = "1 passed" },
        },
    });

    /// <summary>Sends a non-streamed chat turn of <paramref name="session"/> and asserts it was answered.</summary>
    internal static async Task SendTurnAsync(HttpClient http, string body, string session)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = TestGateway.Json(body) };
        req.Headers.Add("x-session-id", session);
        using var resp = await http.SendAsync(req);
        Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());
    }

    private static async Task<(WorkerHost Worker, Gateway.Hosting.GatewayHost Gateway)> StartAsync(string mode)
    {
        var worker = await WorkerHost.StartAsync(new WorkerOptions { KvBlocks = 65_536, TimeScale = 1.0 });
        var gw = await TestGateway.StartAsync([worker.BaseAddress.GetLeftPart(UriPartial.Authority)], new Dictionary<string, string?>
        {
            ["Gateway:Agents:Mode"] = mode,
            ["Gateway:Agents:Policy"] = "predictive",
            ["Gateway:Agents:HbmPins"] = "true",
        });
        return (worker, gw);
    }

    internal static async Task<(string Id, string Args)> ToolCallTurnAsync(HttpClient http, string session = "agent-1")
    {
        using var req = Sse.ChatStream(FirstTurn(stream: true), ("x-session-id", session));
        using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());
        var events = await Sse.ReadAllAsync(resp);
        string? id = null, finish = null;
        var args = new StringBuilder();
        foreach (var (data, _) in events)
        {
            if (data == "[DONE]")
            {
                continue;
            }

            using var doc = JsonDocument.Parse(data);
            foreach (var choice in doc.RootElement.GetProperty("choices").EnumerateArray())
            {
                if (choice.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String)
                {
                    finish = f.GetString();
                }

                if (choice.GetProperty("delta").TryGetProperty("tool_calls", out var calls))
                {
                    foreach (var c in calls.EnumerateArray())
                    {
                        if (c.TryGetProperty("id", out var cid))
                        {
                            id = cid.GetString();
                        }

                        if (c.GetProperty("function").TryGetProperty("arguments", out var a))
                        {
                            args.Append(a.GetString());
                        }
                    }
                }
            }
        }

        Assert.Equal("tool_calls", finish);
        Assert.NotNull(id);
        return (id!, args.ToString());
    }

    [Fact]
    public async Task SideCallToTheSameModelDuringAToolGap_LeavesTheGapOpen_AndOpensNone()
    {
        var (worker, gw) = await StartAsync("enabled");
        await using var _w = worker;
        await using var _g = gw;
        using var http = TestGateway.Client(gw);
        var service = gw.Services.GetRequiredService<AgentRetentionService>();

        var (id, args) = await ToolCallTurnAsync(http, "agent-same");
        await SendTurnAsync(http, """{"model":"llama3-8b","max_tokens":4,"messages":[{"role":"user","content":"one-line title for: fix the failing test"}]}""", "agent-same");

        for (int i = 0; i < 500 && service.SideCalls < 1; i++)
        {
            await Task.Delay(10); // the side call's answer was seen and set aside
        }

        Assert.Equal(1, service.SideCalls);
        await SendTurnAsync(http, SecondTurn(id, args), "agent-same");

        // One gap closed: the tool gap, by the returning turn and within its pin; the side call closed nothing.
        Assert.Equal(1, service.Stats.GapsClosed);
        Assert.Equal(1, service.Stats.ToolGapsClosed);
        Assert.Equal(1, service.Stats.Hits);
        Assert.Equal(1, service.Stats.Retains);
    }

    [Fact]
    public async Task SideCallToAnotherModelDuringAToolGap_LeavesTheMainModelsGapOpen()
    {
        // Two workers, two models; the agent's main loop runs on llama3-8b, its side calls on llama3-70b, one session id.
        await using var main = await WorkerHost.StartAsync(new WorkerOptions { KvBlocks = 65_536, TimeScale = 1.0 });
        await using var side = await WorkerHost.StartAsync(new WorkerOptions { KvBlocks = 65_536, TimeScale = 1.0, Profile = "h100-llama3-70b-tp4" });
        await using var gw = await TestGateway.StartAsync(
            [main.BaseAddress.GetLeftPart(UriPartial.Authority), side.BaseAddress.GetLeftPart(UriPartial.Authority)],
            new Dictionary<string, string?> { ["Gateway:Agents:Mode"] = "enabled", ["Gateway:Agents:Policy"] = "fixed:30" });
        for (int i = 0; i < 400 && gw.Workers.Models.Count < 2; i++)
        {
            await Task.Delay(50); // ready means one worker probed; the side model's worker may answer its first probe later
        }

        Assert.Equal(2, gw.Workers.Models.Count);
        using var http = TestGateway.Client(gw);
        var stats = gw.Services.GetRequiredService<AgentRetentionService>().Stats;

        var (id, args) = await ToolCallTurnAsync(http, "agent-side");
        await SendTurnAsync(http, """{"model":"llama3-70b","max_tokens":4,"messages":[{"role":"user","content":"one-line title for: fix the failing test"}]}""", "agent-side");

        for (int i = 0; i < 500 && stats.Retains + stats.Releases < 2; i++)
        {
            await Task.Delay(10); // both turns decided (the side call's plain answer: a release on its own stream)
        }

        await SendTurnAsync(http, SecondTurn(id, args), "agent-side");

        // The return closed the tool gap, within its pin; the side call's own gap (other model) is still open, not closed by it.
        Assert.Equal(1, stats.GapsClosed);
        Assert.Equal(1, stats.ToolGapsClosed);
        Assert.Equal(1, stats.Hits);
    }

    [Fact]
    public async Task Enabled_ToolCallTurn_PinsContextOnWorker_ReturningTurnHitsCache()
    {
        var (worker, gw) = await StartAsync("enabled");
        await using var _w = worker;
        await using var _g = gw;
        using var http = TestGateway.Client(gw);

        var (id, args) = await ToolCallTurnAsync(http);

        // The hint is fire-and-forget: poll /worker/state (bounded).
        int pinned = 0;
        using var plain = new HttpClient { BaseAddress = worker.BaseAddress };
        for (int i = 0; i < 100 && pinned == 0; i++)
        {
            using var state = JsonDocument.Parse(await plain.GetStringAsync("/worker/state"));
            pinned = state.RootElement.GetProperty("kv_blocks_pinned").GetInt32();
            if (pinned == 0)
            {
                await Task.Delay(50);
            }
        }

        Assert.True(pinned > 10, $"pinned blocks {pinned}");
        var service = gw.Services.GetRequiredService<AgentRetentionService>();
        Assert.Equal(1, service.Stats.Retains);

        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = TestGateway.Json(SecondTurn(id, args)) };
        req.Headers.Add("x-session-id", "agent-1");
        using var resp = await http.SendAsync(req);
        Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());
        using var body = JsonDocument.Parse(await resp.Content.ReadAsStringAsync());
        var usage = body.RootElement.GetProperty("usage");
        int cached = usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();
        Assert.True(cached >= pinned * 16 * 9 / 10, $"cached {cached} of prompt {usage.GetProperty("prompt_tokens").GetInt32()}, pinned {pinned} blocks");

        // The returning turn closed the gap within the TTL: a hit; its plain "stop" answer opened a human gap (release).
        Assert.Equal(1, service.Stats.Hits);
        Assert.Equal(1, service.Stats.ToolGapsClosed);
    }

    [Fact]
    public async Task Enabled_WorkerDropsThePinForAnAdmission_GatewayHearsItFromTheKvEvents_ReturnIsNotAHit()
    {
        // 800 blocks: the ~250-block tool-turn context pinned for 30 s, then a one-shot prompt that needs more than the
        // unpinned rest, so the worker drops the pin to admit it and says so on its KV event stream.
        var worker = await WorkerHost.StartAsync(new WorkerOptions { KvBlocks = 800, TimeScale = 1.0 });
        await using var _w = worker;
        await using var gw = await TestGateway.StartAsync([worker.BaseAddress.GetLeftPart(UriPartial.Authority)], new Dictionary<string, string?>
        {
            ["Gateway:Agents:Mode"] = "enabled",
            ["Gateway:Agents:Policy"] = "fixed:30",
        });
        var subs = gw.Services.GetRequiredService<Gateway.Hosting.KvEventSubscriptions>();
        await WaitForAsync(() => subs.Active == 1, "KV event subscription running");
        using var http = TestGateway.Client(gw);
        var service = gw.Services.GetRequiredService<AgentRetentionService>();
        var (id, args) = await ToolCallTurnAsync(http);
        await WaitForAsync(() => worker.GetEngineState().PinsActive == 1, "tool-turn context pinned");

        string big = string.Join(' ', Enumerable.Range(0, 2_300).Select(i => $"unrelated{i} text"));
        using (var resp = await http.PostAsync("/v1/chat/completions", TestGateway.Json(JsonSerializer.Serialize(new { model = "llama3-8b", max_tokens = 1, messages = new[] { new { role = "user", content = big } } }))))
        {
            Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());
        }

        Assert.Equal(1, worker.GetEngineState().PinsDroppedTotal);
        await WaitForAsync(() => service.Stats.EngineDrops == 1, $"pin drop reached the retention layer (drops {service.Stats.EngineDrops})");
        Assert.Equal(1, service.Stats.Misses); // ended unused

        // The session comes back within the 30 s TTL: not a hit (the pin was gone), a tool gap nothing covered.
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = TestGateway.Json(SecondTurn(id, args)) };
        req.Headers.Add("x-session-id", "agent-1");
        using var second = await http.SendAsync(req);
        Assert.True(second.IsSuccessStatusCode, await second.Content.ReadAsStringAsync());
        Assert.Equal((0, 1), (service.Stats.Hits, service.Stats.Uncovered));
    }

    private static async Task WaitForAsync(Func<bool> condition, string what)
    {
        for (int i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(50);
        }

        Assert.True(condition(), what);
    }

    [Fact]
    public async Task Shadow_ToolCallTurn_DecidesButSendsNothing()
    {
        var (worker, gw) = await StartAsync("shadow");
        await using var _w = worker;
        await using var _g = gw;
        using var http = TestGateway.Client(gw);
        await ToolCallTurnAsync(http);
        var service = gw.Services.GetRequiredService<AgentRetentionService>();
        Assert.True(service.Stats.Retains == 1, $"retains {service.Stats.Retains} releases {service.Stats.Releases} skipped {service.Stats.Skipped} budget {service.Stats.BudgetSkipped}");
        await Task.Delay(300);
        Assert.Equal(0, worker.GetEngineState().KvBlocksPinned);
        Assert.Equal(0, service.Hints.Sent);
    }

    [Fact]
    public async Task Shadow_ScoreIsExportedAsMetrics_LabelledByPolicyAndModeOnly()
    {
        var (worker, gw) = await StartAsync("shadow");
        await using var _w = worker;
        await using var _g = gw;
        using var http = TestGateway.Client(gw);
        var (id, args) = await ToolCallTurnAsync(http);
        var second = new StringContent(SecondTurn(id, args), Encoding.UTF8, "application/json");
        second.Headers.Add("x-session-id", "agent-1");
        using (var resp = await http.PostAsync("/v1/chat/completions", second))
        {
            Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());
        }

        var e = Gateway.Tests.Telemetry.Exposition.Parse(await gw.Services.GetRequiredService<Gateway.Telemetry.GatewayMetrics>().ScrapeAsync());
        var seen = new Dictionary<string, double>(StringComparer.Ordinal);
        var labelKeys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var sample in e.Samples.Where(s => s.Name.StartsWith("gateway_agent_", StringComparison.Ordinal)))
        {
            string key = sample.Name;
            foreach (var (k, v) in sample.Labels)
            {
                labelKeys.Add(k);
                if (k is not ("policy" or "mode"))
                {
                    key += "|" + v;
                }
                else
                {
                    Assert.Equal(k == "policy" ? "predictive" : "shadow", v);
                }
            }

            seen[key] = sample.Value;
        }

        Assert.Equal(1, seen["gateway_agent_retention_decisions_total|retain"]);
        Assert.Equal(1, seen["gateway_agent_retention_gaps_total|hit"]);
        Assert.Equal(0, seen["gateway_agent_retention_hints_total|sent"]);
        Assert.True(seen["gateway_agent_retention_block_seconds_total|pinned"] > 0);
        Assert.Equal(1, seen["gateway_agent_gap_predictions_total"]);
        Assert.True(seen["gateway_agent_gap_prediction_error"] > 0);
        Assert.Subset(new HashSet<string>(["policy", "mode", "kind", "outcome", "state", "result"]), labelKeys);
    }
}
