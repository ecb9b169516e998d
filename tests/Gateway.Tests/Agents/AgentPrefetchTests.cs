using System.Text.Json;
using Gateway.Agents;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Worker;

namespace Gateway.Tests.Agents;

/// <summary>
/// The agent layer on a worker with a host KV tier (real worker and gateway on loopback): after a tool-call turn the
/// predictive policy pins nothing and schedules <c>POST /worker/kv/prefetch</c> ahead of the predicted return; the
/// session's next turn cancels a prefetch that has not fired yet.
/// </summary>
public sealed class AgentPrefetchTests
{
    // Time scale 0.05: the worker's steps take 1/20 of the profile's time (the flush below decodes in about a second),
    // its reported prefill rate and reload time scale alike, so reloading stays cheaper than recomputing.
    private static async Task<(WorkerHost Worker, Gateway.Hosting.GatewayHost Gateway)> StartAsync(int hostKvBlocks, int kvBlocks = 600, double timeScale = 0.05)
    {
        var worker = await WorkerHost.StartAsync(new WorkerOptions { Url = "http://127.0.0.1:0", KvBlocks = kvBlocks, HostKvBlocks = hostKvBlocks, TimeScale = timeScale });
        var gw = await TestGateway.StartAsync([worker.BaseAddress.GetLeftPart(UriPartial.Authority)], new Dictionary<string, string?>
        {
            ["Gateway:Agents:Mode"] = "enabled",
            ["Gateway:Agents:Policy"] = "predictive",
            ["Gateway:Agents:HbmPins"] = "true", // the test without a host tier pins in HBM
        });
        return (worker, gw);
    }

    // The hint is decided once the answer is complete, just after the client has it.
    /// <summary>Waits (bounded) until <paramref name="count"/> prefetches were scheduled: a turn's observation is settled
    /// after its answer reaches the client, so the schedule can trail the response.</summary>
    private static async Task ScheduledAsync(AgentRetentionService service, long count = 1)
    {
        for (int i = 0; i < 500 && service.Prefetches.Scheduled < count; i++)
        {
            await Task.Delay(10);
        }
    }

    private static async Task<JsonElement> StateAsync(HttpClient worker)
    {
        using var doc = JsonDocument.Parse(await worker.GetStringAsync("/worker/state"));
        return doc.RootElement.Clone();
    }

    private static async Task<JsonElement> PostAsync(HttpClient http, string body, string? session = null)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = TestGateway.Json(body) };
        if (session is not null)
        {
            req.Headers.Add("x-session-id", session);
        }

        using var resp = await http.SendAsync(req);
        string text = await resp.Content.ReadAsStringAsync();
        Assert.True(resp.IsSuccessStatusCode, text);
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.Clone();
    }

    // Other traffic straight to the worker: its prompts push the agent's context out of the 600-block HBM pool into the
    // host tier; the last one decodes long, so its blocks (never cached) are free again afterwards, room a prefetch may use.
    private static async Task FlushAsync(HttpClient worker)
    {
        for (int i = 0; i < 4; i++)
        {
            string text = string.Join(' ', Enumerable.Range(0, 1500).Select(k => $"flush{i}w{k}"));
            string body = JsonSerializer.Serialize(new { model = "llama3-8b", max_tokens = i == 3 ? 2500 : 2, messages = new[] { new { role = "user", content = text } } });
            await PostAsync(worker, body);
        }
    }

    [Fact]
    public async Task ToolGapOnAWorkerWithAHostTier_PrefetchesTheDemotedContextBeforeTheReturn_WhichThenReloadsNothing()
    {
        var (worker, gw) = await StartAsync(hostKvBlocks: 6000);
        await using var _w = worker;
        await using var _g = gw;
        using var http = TestGateway.Client(gw);
        using var direct = new HttpClient { BaseAddress = worker.BaseAddress };
        var service = gw.Services.GetRequiredService<AgentRetentionService>();

        var (id, args) = await AgentRetentionTests.ToolCallTurnAsync(http, "agent-pf");
        await ScheduledAsync(service);

        Assert.Equal(1, service.Prefetches.Scheduled); // no pin: a prefetch at the predicted gap's 0.4 quantile (about 6 s with the prior)
        Assert.Equal(0, service.Stats.Retains);
        Assert.Equal(0, (await StateAsync(direct)).GetProperty("kv_blocks_pinned").GetInt32());

        await FlushAsync(direct);
        long reloadedBefore = (await StateAsync(direct)).GetProperty("host_kv_reloaded_blocks_total").GetInt64();
        Assert.Equal(0, service.Prefetches.Sent); // still waiting: the flush took less than the predicted gap

        for (int i = 0; i < 300 && service.Prefetches.LoadedBlocks == 0 && service.Prefetches.Failed == 0; i++)
        {
            await Task.Delay(50);
        }

        var pf = service.Prefetches;
        Assert.Equal((1, 0, 0), (pf.Sent, pf.Failed, pf.Skipped));
        Assert.True(pf.LoadedBlocks > 0);
        var afterPrefetch = await StateAsync(direct);
        Assert.Equal(reloadedBefore + pf.LoadedBlocks, afterPrefetch.GetProperty("host_kv_reloaded_blocks_total").GetInt64());

        // The return finds the prefetched blocks in HBM: of its cached tokens, at least those were not reloaded on admission
        // (the prefetch took only free blocks; what did not fit is reloaded on demand, still not recomputed).
        var answer = await PostAsync(http, AgentRetentionTests.SecondTurn(id, args), "agent-pf");
        int cached = answer.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();
        long reloadedOnAdmission = (await StateAsync(direct)).GetProperty("prefix_cache_host_hit_tokens").GetInt64()
            - afterPrefetch.GetProperty("prefix_cache_host_hit_tokens").GetInt64();
        Assert.True(cached - reloadedOnAdmission >= pf.LoadedBlocks * 16, $"cached {cached}, reloaded {reloadedOnAdmission}, prefetched {pf.LoadedBlocks} blocks");
    }

    [Fact]
    public async Task TheSessionsTurnArrivingFirst_CancelsItsPendingPrefetch()
    {
        var (worker, gw) = await StartAsync(hostKvBlocks: 6000);
        await using var _w = worker;
        await using var _g = gw;
        using var http = TestGateway.Client(gw);
        var service = gw.Services.GetRequiredService<AgentRetentionService>();

        var (id, args) = await AgentRetentionTests.ToolCallTurnAsync(http, "agent-early");
        await ScheduledAsync(service);

        await PostAsync(http, AgentRetentionTests.SecondTurn(id, args), "agent-early");
        await ScheduledAsync(service, 2);

        // The tool gap's prefetch was cancelled unsent; the answer (no tool call: a human gap) scheduled the next one.
        var pf = service.Prefetches;
        Assert.Equal((2L, 1L, 0L), (pf.Scheduled, pf.Cancelled, pf.Sent));
    }

    [Fact]
    public async Task WithoutAHostTier_AndHbmPinsOn_ThePolicyPinsInHbmAndSchedulesNoPrefetch()
    {
        var (worker, gw) = await StartAsync(hostKvBlocks: 0, kvBlocks: 65_536, timeScale: 1.0);
        await using var _w = worker;
        await using var _g = gw;
        using var http = TestGateway.Client(gw);
        using var direct = new HttpClient { BaseAddress = worker.BaseAddress };
        var service = gw.Services.GetRequiredService<AgentRetentionService>();

        await AgentRetentionTests.ToolCallTurnAsync(http, "agent-hbm");
        for (int i = 0; i < 500 && (await StateAsync(direct)).GetProperty("kv_blocks_pinned").GetInt32() == 0; i++)
        {
            await Task.Delay(10);
        }

        Assert.True((await StateAsync(direct)).GetProperty("kv_blocks_pinned").GetInt32() > 0);
        Assert.Equal(1, service.Stats.Retains);
        Assert.Equal(0, service.Prefetches.Scheduled);
    }
}
