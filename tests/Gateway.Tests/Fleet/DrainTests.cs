using System.Net;
using Gateway.Tests.Infrastructure;
using Worker;

namespace Gateway.Tests.Fleet;

/// <summary>
/// Workers leave the fleet without dropping streams: a drained worker finishes what it has and gets nothing new; a
/// stopping worker finishes its streams while new requests go elsewhere; a worker removed by discovery keeps its
/// in-flight stream until it ends.
/// </summary>
public sealed class DrainTests
{
    private const string LongStream = """{"model":"llama3-8b","stream":true,"max_tokens":400,"messages":[{"role":"user","content":"tell a long story"}]}""";

    [Fact]
    public async Task DrainedWorker_FinishesItsStream_AndGetsNoNewRequests()
    {
        await using var fleet = await Fleet.StartAsync();
        using var http = TestGateway.Client(fleet.Gateway);
        using var stream = await http.SendAsync(Sse.ChatStream(LongStream), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
        var (busy, idle) = await fleet.WhereIsTheStreamAsync();

        using (var drain = new HttpClient { BaseAddress = busy.BaseAddress })
        {
            Assert.Equal(HttpStatusCode.OK, (await drain.PostAsync("worker/drain", TestGateway.Json("{}"))).StatusCode);
        }

        var endpoint = fleet.Gateway.Workers.All.Single(e => e.BaseUri == busy.BaseAddress);
        Assert.True(await Eventually(() => endpoint.Info.Draining), "the gateway never saw the worker drain");

        long busyPrompts = busy.GetEngineState().PromptTokensTotal;
        for (int i = 0; i < 6; i++)
        {
            var r = await http.PostAsync("v1/chat/completions", TestGateway.Json(
                $$"""{"model":"llama3-8b","max_tokens":3,"messages":[{"role":"user","content":"question {{i}}"}]}"""));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        Assert.Equal(busyPrompts, busy.GetEngineState().PromptTokensTotal);
        await AssertCompleteAsync(stream);
    }

    [Fact]
    public async Task StoppingWorker_FinishesItsStream_WhileNewRequestsSucceedElsewhere()
    {
        await using var fleet = await Fleet.StartAsync();
        using var http = TestGateway.Client(fleet.Gateway);
        using var stream = await http.SendAsync(Sse.ChatStream(LongStream), HttpCompletionOption.ResponseHeadersRead);
        var (busy, _) = await fleet.WhereIsTheStreamAsync();

        var stopping = busy.StopAsync(); // what SIGTERM does: drain, wait for in-flight, exit
        var reading = AssertCompleteAsync(stream);
        for (int i = 0; i < 6; i++)
        {
            var r = await http.PostAsync("v1/chat/completions", TestGateway.Json(
                $$"""{"model":"llama3-8b","max_tokens":3,"messages":[{"role":"user","content":"during shutdown {{i}}"}]}"""));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        await reading;
        await stopping;
    }

    [Fact]
    public async Task WorkerRemovedByDiscovery_InFlightStreamCompletes_NewRequestsGoToTheRest()
    {
        await using var fleet = await Fleet.StartAsync();
        using var http = TestGateway.Client(fleet.Gateway);
        using var stream = await http.SendAsync(Sse.ChatStream(LongStream), HttpCompletionOption.ResponseHeadersRead);
        var (busy, idle) = await fleet.WhereIsTheStreamAsync();

        fleet.Gateway.Workers.SetWorkers([idle.BaseAddress]);
        long busyPrompts = busy.GetEngineState().PromptTokensTotal;
        for (int i = 0; i < 4; i++)
        {
            var r = await http.PostAsync("v1/chat/completions", TestGateway.Json(
                $$"""{"model":"llama3-8b","max_tokens":3,"messages":[{"role":"user","content":"after removal {{i}}"}]}"""));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        Assert.Equal(busyPrompts, busy.GetEngineState().PromptTokensTotal);
        await AssertCompleteAsync(stream);
    }

    /// <summary>The stream ends with its last token's finish_reason and [DONE], never with an error event.</summary>
    private static async Task AssertCompleteAsync(HttpResponseMessage stream)
    {
        var events = await Sse.ReadAllAsync(stream);
        Assert.Equal("[DONE]", events[^1].Data);
        Assert.DoesNotContain(events, e => e.Data.Contains("\"error\"", StringComparison.Ordinal));
        Assert.Contains(events, e => e.Data.Contains("\"finish_reason\":\"length\"", StringComparison.Ordinal));
    }

    private static async Task<bool> Eventually(Func<bool> condition)
    {
        for (int i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(25);
        }

        return condition();
    }

    /// <summary>Two real workers at wall-clock speed (a 400-token stream takes about two seconds) behind a gateway.</summary>
    private sealed class Fleet : IAsyncDisposable
    {
        private Fleet(WorkerHost a, WorkerHost b, Gateway.Hosting.GatewayHost gateway)
        {
            A = a;
            B = b;
            Gateway = gateway;
        }

        public WorkerHost A { get; }

        public WorkerHost B { get; }

        public Gateway.Hosting.GatewayHost Gateway { get; }

        public static async Task<Fleet> StartAsync()
        {
            var a = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 1 });
            var b = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 1 });
            var gw = await TestGateway.StartAsync([a.BaseAddress.ToString(), b.BaseAddress.ToString()],
                new Dictionary<string, string?> { ["Gateway:Health:Interval"] = "00:00:00.050" });
            return new Fleet(a, b, gw);
        }

        /// <summary>The worker running the one open stream, and the other.</summary>
        public async Task<(WorkerHost Busy, WorkerHost Idle)> WhereIsTheStreamAsync()
        {
            Assert.True(await Eventually(() => A.GetEngineState().RunningRequests + B.GetEngineState().RunningRequests == 1),
                "the stream never started on a worker");
            return A.GetEngineState().RunningRequests == 1 ? (A, B) : (B, A);
        }

        public async ValueTask DisposeAsync()
        {
            await Gateway.DisposeAsync();
            await A.DisposeAsync();
            await B.DisposeAsync();
        }
    }
}
