using System.Diagnostics;
using System.Net;
using Gateway.Core.Routing;
using Gateway.Hosting;
using Gateway.Scheduling;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Proxy.Pipeline;

/// <summary>
/// "Where" is decided once: a request the fair queue released for the worker that freed a slot is sent to that worker,
/// not routed again from scratch; a retry after that worker fails routes again. Two fake workers on 127.0.0.1 with one
/// slot each; a routing policy that sends its first request to worker A and every later one to worker B, and predicts
/// the prompt cached on A only, so routing from scratch and the locality pick disagree. The behaviour is
/// <c>Gateway:Scheduling:SendToPickedWorker</c> (off by default: routing places every request).
/// </summary>
public sealed class ForwardingStageTests
{
    private const string HangingStream = "{\"model\":\"llama3-8b\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hold the slot\"}]}";
    private const string Chat = "{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"queued\"}]}";

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ReleasedForTheFreedWorker_SentThere_SwitchedOffRoutingDecides(bool sendToPicked)
    {
        await using var a = await FakeWorker.StartAsync();
        await using var b = await FakeWorker.StartAsync();
        await using var gw = await StartAsync(a, b, sendToPicked);
        var (holdA, holdB) = await HoldBothSlotsAsync(gw, a, b);
        using var http = TestGateway.Client(gw);
        var queued = http.PostAsync("v1/chat/completions", TestGateway.Json(Chat));
        var sched = gw.Services.GetRequiredService<GatewayScheduling>();
        await WaitUntilAsync(() => sched.Dispatcher.Queued == 1);

        holdA.Dispose(); // A's slot frees: the pick for A releases the queued request (its prompt is predicted cached there)
        using var resp = await queued;
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.Equal(sendToPicked ? (2, 1) : (1, 2), (a.InferenceCount, b.InferenceCount)); // switched off: routing's B
        holdB.Dispose();
    }

    [Fact]
    public async Task ReleasedForAWorkerThatFails_TheRetryRoutesAgain()
    {
        await using var a = await FakeWorker.StartAsync();
        await using var b = await FakeWorker.StartAsync();
        await using var gw = await StartAsync(a, b, sendToPicked: true);
        var (holdA, holdB) = await HoldBothSlotsAsync(gw, a, b);
        using var http = TestGateway.Client(gw);
        var queued = http.PostAsync("v1/chat/completions", TestGateway.Json(Chat));
        var sched = gw.Services.GetRequiredService<GatewayScheduling>();
        await WaitUntilAsync(() => sched.Dispatcher.Queued == 1);

        a.Mode = FakeMode.Status500;
        holdA.Dispose();
        using var resp = await queued;
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.Equal((2, 2), (a.InferenceCount, b.InferenceCount)); // first attempt on A (500), the retry on B
        holdB.Dispose();
    }

    private static async Task<GatewayHost> StartAsync(FakeWorker a, FakeWorker b, bool sendToPicked)
    {
        var gw = await TestGateway.StartAsync([a.Url, b.Url], new Dictionary<string, string?>
        {
            ["Gateway:Scheduling:MaxInFlightPerWorker"] = "1",
            ["Gateway:Scheduling:SendToPickedWorker"] = sendToPicked ? "true" : "false",
            ["Gateway:Health:Interval"] = "01:00:00",
        }, configureServices: s => s.AddSingleton<IRoutingPolicy>(new FirstToATheRestToB(a.Url, b.Url)));
        await WaitUntilAsync(() => gw.Workers.All.All(w => w.Models.Count > 0));
        return gw;
    }

    /// <summary>
    /// Two streams that hang after their first event (the workers stay in that mode, which only streams obey): the first
    /// on A, the second on B; both slots are then taken.
    /// </summary>
    private static async Task<(HttpResponseMessage A, HttpResponseMessage B)> HoldBothSlotsAsync(GatewayHost gw, FakeWorker a, FakeWorker b)
    {
        a.Mode = FakeMode.HangAfterFirstEvent;
        b.Mode = FakeMode.HangAfterFirstEvent;
        var http = TestGateway.Client(gw); // not disposed here: that would end the streams
        var holdA = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = TestGateway.Json(HangingStream) }, HttpCompletionOption.ResponseHeadersRead);
        var holdB = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = TestGateway.Json(HangingStream) }, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (holdA.StatusCode, holdB.StatusCode));
        await WaitUntilAsync(() => a.Running == 1 && b.Running == 1);
        return (holdA, holdB);
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

    /// <summary>Routes its first request to A and every later one to B; predicts every prompt cached on A only.</summary>
    private sealed class FirstToATheRestToB(string a, string b) : IRoutingPolicy, IPrefixAffinity
    {
        private int _routed;

        public string Name => "first-to-a";

        public RouteDecision Route(RouteRequest request, IReadOnlyList<WorkerInfo> workers)
        {
            string target = Interlocked.Increment(ref _routed) == 1 ? a : b;
            for (int i = 0; i < workers.Count; i++)
            {
                if (workers[i].Eligible && workers[i].Id == target)
                {
                    return new RouteDecision(i, 0, 0, "test");
                }
            }

            return RouteDecision.None;
        }

        public void OnRouted(RouteRequest request, WorkerInfo worker)
        {
        }

        public void OnCompleted(RouteRequest request, WorkerInfo worker, int actualCachedTokens)
        {
        }

        public int PredictCachedTokens(RouteRequest request, WorkerInfo worker) => worker.Id == a ? 4096 : 0;
    }
}
