using System.Diagnostics;
using Gateway.Agents;
using Gateway.Scheduling;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Worker;

namespace Gateway.Tests.Agents;

/// <summary>
/// Program-level ordering (Gateway:Agents:ResumedTurnPriority) end to end: a real gateway on 127.0.0.1 and an
/// in-process reference worker. Session agent-1's tool-call turn completes; then, while a busy request holds the only
/// slot, a fresh request of the same tenant queues, and after it agent-1's resumed turn (the tool result appended).
/// The busy request is cancelled to free the slot. Order is asserted (which answer completes first: the loser starts
/// only when the winner is done and then decodes 120 tokens, ~0.8 s of modelled time), never durations.
/// </summary>
public sealed class ResumedTurnPriorityTests
{
    private static string Fresh(int maxTokens) => System.Text.Json.JsonSerializer.Serialize(new
    {
        model = "llama3-8b",
        max_tokens = maxTokens,
        messages = new[] { new { role = "user", content = "a fresh question from another session of the same tenant" } },
    });

    private static async Task<(WorkerHost Worker, Gateway.Hosting.GatewayHost Gateway)> StartAsync(bool priority, int perWorker, int workerRunning)
    {
        var worker = await WorkerHost.StartAsync(new WorkerOptions { KvBlocks = 65_536, TimeScale = 1.0, MaxRunningSequences = workerRunning });
        var gw = await TestGateway.StartAsync([worker.BaseAddress.GetLeftPart(UriPartial.Authority)], new Dictionary<string, string?>
        {
            ["Gateway:Agents:Mode"] = "shadow",
            ["Gateway:Agents:ResumedTurnPriority"] = priority ? "true" : "false",
            ["Gateway:Scheduling:MaxInFlightPerWorker"] = perWorker.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Gateway:Scheduling:TickInterval"] = "00:00:00.020",
            // hfair's locality pick would prefer the resumed turn anyway (its context is cached on the worker that
            // freed the slot); off, so only the resumed-turn credit can reorder.
            ["Gateway:Scheduling:Locality"] = "false",
        });
        return (worker, gw);
    }

    private static async Task<bool> ResumedFinishesFirstAsync(WorkerHost worker, Gateway.Hosting.GatewayHost gw, Func<int, bool> queuedAtGateway, Func<int, bool> waitingOnWorker)
    {
        using var http = TestGateway.Client(gw);
        var (id, args) = await AgentRetentionTests.ToolCallTurnAsync(http);

        using var cancelBusy = new CancellationTokenSource();
        var busyReq = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = TestGateway.Json(Fresh(4000)) };
        busyReq.Headers.Add("x-session-id", "busy");
        var busy = http.SendAsync(busyReq, cancelBusy.Token);
        await WaitUntilAsync(() => worker.GetEngineState().RunningRequests == 1);

        var freshReq = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = TestGateway.Json(Fresh(120)) };
        freshReq.Headers.Add("x-session-id", "other-session");
        var fresh = http.SendAsync(freshReq);
        await WaitUntilAsync(() => queuedAtGateway(1) && waitingOnWorker(1));

        var resumedReq = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = TestGateway.Json(AgentRetentionTests.SecondTurn(id, args, maxTokens: 120)) };
        resumedReq.Headers.Add("x-session-id", "agent-1");
        var resumed = http.SendAsync(resumedReq);
        await WaitUntilAsync(() => queuedAtGateway(2) && waitingOnWorker(2));

        await cancelBusy.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => busy);
        var first = await Task.WhenAny(fresh, resumed);
        using var f = await fresh;
        using var r = await resumed;
        Assert.True(f.IsSuccessStatusCode, await f.Content.ReadAsStringAsync());
        Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());
        return first == resumed;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task GatewayQueue_ResumedToolTurn_OvertakesQueuedFreshRequestOfSameTenant_OnlyWhenEnabled(bool priority)
    {
        // One request in flight per worker: both wait in the gateway's hfair queue (same tenant, different sessions).
        var (worker, gw) = await StartAsync(priority, perWorker: 1, workerRunning: 256);
        await using var _w = worker;
        await using var _g = gw;
        var dispatcher = gw.Services.GetRequiredService<GatewayScheduling>().Dispatcher;
        bool resumedFirst = await ResumedFinishesFirstAsync(worker, gw, n => dispatcher.Queued == n, _ => true);
        Assert.Equal(priority, resumedFirst);
        Assert.Equal(priority ? 1 : 0, gw.Services.GetRequiredService<AgentRetentionService>().ResumedTurns);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task WorkerQueue_ResumedToolTurn_SentWithPriority_AdmittedBeforeWaitingFreshRequest(bool priority)
    {
        // The gateway sends everything on; the worker runs one sequence at a time, so both wait in its engine queue and
        // only x-request-priority (set by the gateway for the resumed turn) can change their order.
        var (worker, gw) = await StartAsync(priority, perWorker: 16, workerRunning: 1);
        await using var _w = worker;
        await using var _g = gw;
        bool resumedFirst = await ResumedFinishesFirstAsync(worker, gw, _ => true, n => worker.GetEngineState().WaitingRequests == n);
        Assert.Equal(priority, resumedFirst);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), "condition not reached within 20 s");
            await Task.Delay(10);
        }
    }
}
