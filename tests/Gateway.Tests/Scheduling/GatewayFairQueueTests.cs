using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Gateway.Auth;
using Gateway.Hosting;
using Gateway.Scheduling;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;
using Worker;

namespace Gateway.Tests.Scheduling;

/// <summary>
/// The gateway-held fair queue in the real request path: one in-process reference worker (WorkerHost) of small
/// capacity behind a gateway on 127.0.0.1, tenants configured in Gateway:Scheduling:Tenants, keys in Gateway:Auth:Keys.
/// </summary>
public sealed class GatewayFairQueueTests(Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime
{
    private const string KeyA = "sk-tenant-a";
    private const string KeyB = "sk-tenant-b";
    private WorkerHost _worker = null!;

    public async Task InitializeAsync() =>
        _worker = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 0.1 });

    public async Task DisposeAsync() => await _worker.DisposeAsync();

    private Task<GatewayHost> StartGatewayAsync(int perWorker = 1, Dictionary<string, string?>? extra = null, WorkerHost? worker = null)
    {
        var settings = TestGateway.KeySettings((KeyA, "a/team/key"), (KeyB, "b/team/key"));
        settings["Gateway:Scheduling:Tenants:0:Name"] = "a";
        settings["Gateway:Scheduling:Tenants:0:Weight"] = "1";
        settings["Gateway:Scheduling:Tenants:1:Name"] = "b";
        settings["Gateway:Scheduling:Tenants:1:Weight"] = "3";
        settings["Gateway:Scheduling:MaxInFlightPerWorker"] = perWorker.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["Gateway:Scheduling:TickInterval"] = "00:00:00.020";
        foreach (var (k, v) in extra ?? [])
        {
            settings[k] = v;
        }

        return TestGateway.StartAsync([(worker ?? _worker).BaseAddress.GetLeftPart(UriPartial.Authority)], settings);
    }

    private static ChatClient Chat(GatewayHost gw, string key) =>
        new("llama3-8b", new ApiKeyCredential(key), new OpenAIClientOptions
        {
            Endpoint = new Uri(gw.BaseAddress, "v1"),
            RetryPolicy = new ClientRetryPolicy(0),
            NetworkTimeout = TimeSpan.FromSeconds(60),
        });

    private static string Body(int maxTokens, string text = "fair share please") =>
        JsonSerializer.Serialize(new { model = "llama3-8b", max_tokens = maxTokens, messages = new[] { new { role = "user", content = text } } });

    [Fact]
    public async Task Flood_TwoTenantsWeights1To3_ServedCountsSplitNear1To3()
    {
        await using var gw = await StartGatewayAsync();
        var sched = gw.Services.GetRequiredService<GatewayScheduling>();
        var served = new int[2];
        int total = 0;
        const int Target = 80;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 8 };

        async Task Loop(int tenant, ChatClient client)
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    ChatCompletion c = await client.CompleteChatAsync([new UserChatMessage($"tenant {tenant} floods the gateway")], options, stop.Token);
                    Assert.True(c.Usage.OutputTokenCount > 0);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                Interlocked.Increment(ref served[tenant]);
                if (Interlocked.Increment(ref total) >= Target)
                {
                    await stop.CancelAsync();
                }
            }
        }

        var a = Chat(gw, KeyA);
        var b = Chat(gw, KeyB);
        var loops = new List<Task>();
        for (int i = 0; i < 6; i++)
        {
            loops.Add(Loop(0, a));
            loops.Add(Loop(1, b));
        }

        await Task.WhenAll(loops);
        Assert.True(total >= Target, $"only {total} served before the deadline");
        double ratio = served[1] / (double)Math.Max(1, served[0]);
        output.WriteLine($"served a={served[0]} b={served[1]} b/a={ratio:F2}");
        // Weights 1:3 -> 25% / 75%; wide margin for warm-up and settlement granularity.
        Assert.True(ratio is >= 2.0 and <= 4.5, $"served a={served[0]} b={served[1]} (b/a = {ratio:F2}, weights 1:3)");
        await WaitUntilAsync(() => sched.Dispatcher.Queued == 0); // the clients' cancels empty the queue
    }

    [Fact]
    public async Task Queued_ClientCancels_RequestLeavesQueue()
    {
        await using var gw = await StartGatewayAsync();
        var sched = gw.Services.GetRequiredService<GatewayScheduling>();
        using var http = TestGateway.Client(gw, KeyA);
        // Long enough (about 1 s at time scale 0.1) that the second request is surely queued behind it, even on a loaded machine.
        var busy = http.PostAsync("v1/chat/completions", TestGateway.Json(Body(1500)));
        await WaitUntilAsync(() => sched.Dispatcher.InFlight == 1);

        using var cts = new CancellationTokenSource();
        var queued = http.PostAsync("v1/chat/completions", TestGateway.Json(Body(4)), cts.Token);
        await WaitUntilAsync(() => sched.Dispatcher.Queued == 1);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => queued);
        await WaitUntilAsync(() => sched.Dispatcher.Queued == 0);

        var first = await busy;
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var after = await http.PostAsync("v1/chat/completions", TestGateway.Json(Body(2)));
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        await WaitUntilAsync(() => sched.Dispatcher.InFlight == 0);
    }

    [Fact]
    public async Task TenantQueueCap_Reached_429WithRetryAfterInOpenAiShape()
    {
        await using var gw = await StartGatewayAsync(extra: new() { ["Gateway:Scheduling:DefaultTenantMaxQueued"] = "1" });
        var sched = gw.Services.GetRequiredService<GatewayScheduling>();
        using var http = TestGateway.Client(gw, KeyA);
        // busy must outlast every step below (it holds the only slot): ~4 s of decode at time scale 0.1, so a loaded
        // 2-core machine cannot let it finish (and the queue drain) before the official client's request arrives.
        var busy = http.PostAsync("v1/chat/completions", TestGateway.Json(Body(6000)));
        await WaitUntilAsync(() => sched.Dispatcher.InFlight == 1);
        var queued = http.PostAsync("v1/chat/completions", TestGateway.Json(Body(2)));
        await WaitUntilAsync(() => sched.Dispatcher.Queued == 1);

        var refused = await http.PostAsync("v1/chat/completions", TestGateway.Json(Body(2)));
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.NotNull(refused.Headers.RetryAfter?.Delta);
        Assert.True(refused.Headers.RetryAfter!.Delta >= TimeSpan.FromSeconds(1));
        using var doc = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
        Assert.Equal("rate_limit_exceeded", doc.RootElement.GetProperty("error").GetProperty("code").GetString());

        // The official client surfaces it as a 429 too.
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => Chat(gw, KeyA).CompleteChatAsync([new UserChatMessage("x")]));
        Assert.Equal(429, ex.Status);

        Assert.Equal(HttpStatusCode.OK, (await busy).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await queued).StatusCode);
    }

    [Fact]
    public async Task QueueTimeout_Expired_429()
    {
        await using var gw = await StartGatewayAsync(extra: new() { ["Gateway:Scheduling:DefaultQueueTimeout"] = "00:00:00.200" });
        var sched = gw.Services.GetRequiredService<GatewayScheduling>();
        using var http = TestGateway.Client(gw, KeyA);
        var busy = http.PostAsync("v1/chat/completions", TestGateway.Json(Body(400)));
        await WaitUntilAsync(() => sched.Dispatcher.InFlight == 1);
        var timedOut = await http.PostAsync("v1/chat/completions", TestGateway.Json(Body(2)));
        Assert.Equal(HttpStatusCode.TooManyRequests, timedOut.StatusCode);
        Assert.NotNull(timedOut.Headers.RetryAfter);
        Assert.Contains("waited too long", await timedOut.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await busy).StatusCode);
    }

    [Theory]
    [InlineData("hfair")]
    [InlineData("fcfs")]
    public async Task Flood_TenantWithinShare_KeepsBeingServedAheadOfFlooder(string policy)
    {
        // Equal weights here: b floods with 8 concurrent requests, a sends one at a time (well within its half).
        // fcfs is the contrast: the light tenant queues behind the flood like everyone else.
        await using var gw = await StartGatewayAsync(extra: new() { ["Gateway:Scheduling:Tenants:1:Weight"] = "1", ["Gateway:Scheduling:Policy"] = policy });
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var floodLatencies = new System.Collections.Concurrent.ConcurrentBag<double>();
        using var httpB = TestGateway.Client(gw, KeyB);

        async Task Flood()
        {
            while (!stop.IsCancellationRequested)
            {
                var sw = Stopwatch.StartNew();
                try
                {
                    using var r = await httpB.PostAsync("v1/chat/completions", TestGateway.Json(Body(8, "flood")), stop.Token);
                    Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                floodLatencies.Add(sw.Elapsed.TotalMilliseconds);
            }
        }

        var flooders = Enumerable.Range(0, 8).Select(_ => Flood()).ToList();
        var sched = gw.Services.GetRequiredService<GatewayScheduling>();
        await WaitUntilAsync(() => sched.Dispatcher.Queued >= 5);

        var a = Chat(gw, KeyA);
        var light = new List<double>();
        for (int i = 0; i < 8; i++)
        {
            var sw = Stopwatch.StartNew();
            ChatCompletion c = await a.CompleteChatAsync([new UserChatMessage("light tenant")], new ChatCompletionOptions { MaxOutputTokenCount = 8 });
            Assert.True(c.Usage.OutputTokenCount > 0);
            light.Add(sw.Elapsed.TotalMilliseconds);
        }

        await stop.CancelAsync();
        await Task.WhenAll(flooders);
        double lightMedian = Median(light);
        double floodMedian = Median([.. floodLatencies]);
        output.WriteLine($"{policy}: light median {lightMedian:F1} ms, flood median {floodMedian:F1} ms");
        // FCFS puts each light request behind ~7 flood requests; the fair queue serves it next.
        if (policy == "fcfs")
        {
            Assert.True(lightMedian > 0.6 * floodMedian, $"fcfs: light median {lightMedian:F1} ms vs flood median {floodMedian:F1} ms");
        }
        else
        {
            Assert.True(lightMedian < 0.6 * floodMedian, $"{policy}: light median {lightMedian:F1} ms vs flood median {floodMedian:F1} ms");
        }
    }

    [Fact]
    public async Task WorkerSaturatedByOthers_NothingInFlightHere_StillServedOneAtATimeBeforeNextPoll()
    {
        // The worker's last report shows a queue this gateway did not cause (other replicas, direct clients). Without
        // a slot, every request would wait for the next poll; here polls are an hour apart and the queue timeout 5 s.
        await using var gw = await StartGatewayAsync(perWorker: 4, extra: new()
        {
            ["Gateway:Health:Interval"] = "01:00:00",
            ["Gateway:Scheduling:DefaultQueueTimeout"] = "00:00:05",
        });
        var sched = gw.Services.GetRequiredService<GatewayScheduling>();
        // No poll may overwrite the report below: besides the interval, a model refresh or membership change starts a
        // probe round, so stop the prober and let a round already under way finish first.
        await gw.Services.GetRequiredService<Gateway.Fleet.HealthProber>().StopAsync(CancellationToken.None);
        await Task.Delay(300);
        var info = gw.Services.GetRequiredService<Gateway.Fleet.WorkerRegistry>().All.Single().Info;
        info.InFlightAtReport = 0;
        info.ReportedWaiting = 50;
        Assert.Equal(1, sched.FreeCapacity());

        using var http = TestGateway.Client(gw, KeyA);
        var answers = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => http.PostAsync("v1/chat/completions", TestGateway.Json(Body(2)))));
        Assert.All(answers, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));

        // A response can reach the client before the gateway's completion bookkeeping has run: wait (bounded) for the
        // last one to be accounted; a gateway that forgot the report would show MaxInFlightPerWorker (4) here instead.
        for (int i = 0; i < 100 && sched.FreeCapacity() == 0; i++)
        {
            await Task.Delay(50);
        }

        Assert.Equal(1, sched.FreeCapacity()); // still saturated by the report: one slot, not MaxInFlightPerWorker
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task FreedWorker_ReleasesTheQueuedRequestWhosePrefixItHolds_WhenWithinTheBound(bool locality)
    {
        // One worker slot. b warms the worker with a long prompt, a occupies the slot, then c (never served, so first in
        // strict fair order) and b (same long prefix as its warm-up, cached on that worker, b is within the lag bound)
        // queue in that order. When a's request finishes, the locality pick releases b's request first; with
        // Gateway:Scheduling:Locality=false the strict fair order releases c's first. One slot, so completion order =
        // release order.
        const string KeyC = "sk-tenant-c";
        await using var gw = await StartGatewayAsync(extra: new()
        {
            ["Gateway:Scheduling:Tenants:1:Weight"] = "1",
            ["Gateway:Auth:Keys:2:Hash"] = ApiKeyAuthenticator.HashKey(TestGateway.Secret, KeyC),
            ["Gateway:Auth:Keys:2:Tenant"] = "c/team/key",
            ["Gateway:Scheduling:Locality"] = locality ? "true" : "false",
        });
        var sched = gw.Services.GetRequiredService<GatewayScheduling>();
        Assert.Equal(locality, sched.Locality.Enabled);
        using var httpA = TestGateway.Client(gw, KeyA);
        using var httpB = TestGateway.Client(gw, KeyB);
        using var httpC = TestGateway.Client(gw, KeyC);
        string prefix = string.Join(' ', Enumerable.Range(0, 300).Select(i => $"clause{i}"));
        Assert.Equal(HttpStatusCode.OK, (await httpB.PostAsync("v1/chat/completions", TestGateway.Json(Body(2, prefix + " first question")))).StatusCode);

        var busy = httpA.PostAsync("v1/chat/completions", TestGateway.Json(Body(1000)));
        await WaitUntilAsync(() => sched.Dispatcher.InFlight == 1);
        var order = new System.Collections.Concurrent.ConcurrentQueue<string>();
        async Task Send(HttpClient http, string name, string text)
        {
            using var r = await http.PostAsync("v1/chat/completions", TestGateway.Json(Body(4, text)));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            order.Enqueue(name);
        }

        var c = Send(httpC, "c", string.Join(' ', Enumerable.Range(0, 300).Select(i => $"other{i}")));
        await WaitUntilAsync(() => sched.Dispatcher.Queued == 1);
        var b = Send(httpB, "b", prefix + " second question");
        await WaitUntilAsync(() => sched.Dispatcher.Queued == 2);
        Assert.False(busy.IsCompleted, "the long request finished before both requests queued");
        Assert.Equal(HttpStatusCode.OK, (await busy).StatusCode);
        await Task.WhenAll(b, c);
        output.WriteLine($"locality={locality}: completion order {string.Join(",", order)}");
        Assert.Equal(locality ? ["b", "c"] : new[] { "c", "b" }, order.ToArray());

        // The dispatcher exports what the pick did, next to the bound.
        using var metrics = await httpA.GetAsync("/metrics");
        string exposition = await metrics.Content.ReadAsStringAsync();
        double reorders = MetricValue(exposition, "gateway_fair_locality_reorders_total");
        double maxLag = MetricValue(exposition, "gateway_fair_locality_max_lag");
        output.WriteLine($"reorders {reorders}, max lag {maxLag}");
        Assert.Equal(locality ? 1 : 0, reorders);
        Assert.InRange(maxLag, 0, 4096);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(0)]
    public async Task ReservedSlot_LentToOverShareTenant_WithinShareTenantTakesItBackAtOnce(int reserved)
    {
        // Four slots, equal weights, OverShareFactor 1. a holds one slot, b two; b's third request finds one slot free
        // while b holds 2 of the 3 requests in flight against a half share. Work-conserving: with nobody within its share
        // waiting the reserved slot is lent to b, and b keeps two more requests waiting (a backlog); a's next request
        // takes the slot back at once (released beyond the four slots, with the urgency hint). Without the reserve a's
        // request waits behind the long requests.
        await using var gw = await StartGatewayAsync(perWorker: 4, extra: new()
        {
            ["Gateway:Scheduling:Tenants:1:Weight"] = "1",
            ["Gateway:Scheduling:ReservedSlots"] = reserved.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Gateway:Scheduling:OverShareFactor"] = "1",
        });
        var sched = gw.Services.GetRequiredService<GatewayScheduling>();
        Assert.Equal(reserved, sched.Reserve.Reserve);
        using var httpA = TestGateway.Client(gw, KeyA);
        using var httpB = TestGateway.Client(gw, KeyB);
        using var longRun = new CancellationTokenSource();
        var running = new List<Task>();
        async Task Long(HttpClient http, int inFlight)
        {
            running.Add(http.PostAsync("v1/chat/completions", TestGateway.Json(Body(6000)), longRun.Token));
            await WaitUntilAsync(() => sched.Dispatcher.InFlight == inFlight);
        }

        await Long(httpA, 1);
        await Long(httpB, 2);
        await Long(httpB, 3);
        Assert.Equal(1, sched.FreeCapacity());

        var b3 = httpB.PostAsync("v1/chat/completions", TestGateway.Json(Body(6000)), longRun.Token);
        if (reserved > 0)
        {
            await WaitUntilAsync(() => sched.Dispatcher.InFlight == 4); // lent: the slot does not stay idle
            Assert.Equal(0, sched.Dispatcher.Queued);
            running.Add(httpB.PostAsync("v1/chat/completions", TestGateway.Json(Body(6000)), longRun.Token));
            running.Add(httpB.PostAsync("v1/chat/completions", TestGateway.Json(Body(6000)), longRun.Token));
            await WaitUntilAsync(() => sched.Dispatcher.Queued == 2);
            using var a2 = await httpA.PostAsync("v1/chat/completions", TestGateway.Json(Body(2)));
            Assert.Equal(HttpStatusCode.OK, a2.StatusCode); // released at once, served while the long ones run
            Assert.False(b3.IsCompleted);

            using var metrics = await httpA.GetAsync("/metrics");
            string exposition = await metrics.Content.ReadAsStringAsync();
            double lent = MetricValue(exposition, "gateway_fair_reserve_lent_total");
            double reclaimed = MetricValue(exposition, "gateway_fair_reserve_reclaimed_total");
            output.WriteLine($"lent {lent}, reclaimed {reclaimed}");
            Assert.True(lent >= 1);
            Assert.Equal(1, reclaimed);
        }
        else
        {
            await WaitUntilAsync(() => sched.Dispatcher.InFlight == 4); // b takes the last slot
            var a2 = httpA.PostAsync("v1/chat/completions", TestGateway.Json(Body(2)), longRun.Token);
            await WaitUntilAsync(() => sched.Dispatcher.Queued == 1); // and a waits for a long request to finish
            Assert.False(a2.IsCompleted);
            running.Add(a2);
        }

        running.Add(b3);
        await longRun.CancelAsync();
        foreach (var t in running)
        {
            try
            {
                (await (Task<HttpResponseMessage>)t).Dispose();
            }
            catch (OperationCanceledException)
            {
            }
        }

        await WaitUntilAsync(() => sched.Dispatcher.InFlight == 0 && sched.Dispatcher.Queued == 0);
    }

    [Fact]
    public async Task PendingPrefillRule_FirstTokenReleasesTheQueuedRequest_WithoutWaitingForACompletionOrTick()
    {
        // MaxPendingPrefillTokens = 1: a worker with any prompt not yet prefilled takes nothing new. a's long prompt
        // (about a second of modelled prefill at wall-clock speed) saturates the worker, so b's small request queues.
        // a's first token frees that capacity: b must be released then and finish while a is still decoding its 300
        // tokens, not after a completes. Ticks and health polls are an hour apart, so nothing else pumps the queue.
        // (a streams: the gateway sees a non-streamed answer's first token only with the whole body.)
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 1 });
        await using var gw = await StartGatewayAsync(perWorker: 4, worker: worker, extra: new()
        {
            ["Gateway:Scheduling:MaxPendingPrefillTokens"] = "1",
            ["Gateway:Scheduling:TickInterval"] = "01:00:00",
            ["Gateway:Health:Interval"] = "01:00:00",
        });
        var sched = gw.Services.GetRequiredService<GatewayScheduling>();
        using var httpA = TestGateway.Client(gw, KeyA);
        using var httpB = TestGateway.Client(gw, KeyB);
        string longPrompt = string.Join(' ', Enumerable.Range(0, 20_000).Select(i => (i % 7) switch { 0 => "alpha", 1 => "beta", 2 => "gamma", 3 => "delta", 4 => "omega", 5 => "sigma", _ => "kappa" }));

        var sw = Stopwatch.StartNew();
        var a = httpA.PostAsync("v1/chat/completions", TestGateway.Json(JsonSerializer.Serialize(new
        {
            model = "llama3-8b", max_tokens = 300, stream = true, messages = new[] { new { role = "user", content = longPrompt } },
        })));
        await WaitUntilAsync(() => sched.Dispatcher.InFlight == 1);
        var b = httpB.PostAsync("v1/chat/completions", TestGateway.Json(Body(2)));
        await WaitUntilAsync(() => sched.Dispatcher.Queued == 1 || b.IsCompleted);
        Assert.False(b.IsCompleted, "b was not held by the pending-prefill rule: a's prefill ended before b arrived");

        using var answerB = await b;
        double bDone = sw.Elapsed.TotalMilliseconds;
        Assert.Equal(HttpStatusCode.OK, answerB.StatusCode);
        Assert.False(a.IsCompleted, $"b finished at {bDone:F0} ms, after a completed: released by a's completion, not its first token");
        using var answerA = await a;
        double aDone = sw.Elapsed.TotalMilliseconds;
        Assert.Equal(HttpStatusCode.OK, answerA.StatusCode);
        output.WriteLine($"b done at {bDone:F0} ms, a done at {aDone:F0} ms");
        Assert.True(bDone < 0.8 * aDone, $"b done at {bDone:F0} ms, a at {aDone:F0} ms");
    }

    [Fact]
    public async Task PendingPrefillRule_RequestsArrivingTogether_ReachTheWorkerOneAtATime()
    {
        // Three long prompts at once against a worker with eight free slots. Under the pending-prefill rule the first
        // released one counts as in transit until it reaches the worker, so the other two stay queued until its prefill
        // is done, instead of one pump releasing all three into one engine step.
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 1 });
        await using var gw = await StartGatewayAsync(perWorker: 8, worker: worker, extra: new()
        {
            ["Gateway:Scheduling:MaxPendingPrefillTokens"] = "1",
            ["Gateway:Health:Interval"] = "01:00:00",
        });
        var sched = gw.Services.GetRequiredService<GatewayScheduling>();
        using var http = TestGateway.Client(gw, KeyA);
        var sends = Enumerable.Range(0, 3).Select(k => http.PostAsync("v1/chat/completions", TestGateway.Json(Body(2,
            string.Join(' ', Enumerable.Range(0, 4_000).Select(i => $"w{k}x{i % 97}")))))).ToList();
        var info = gw.Services.GetRequiredService<Gateway.Fleet.WorkerRegistry>().All.Single().Info;
        long onePrompt = 0, maxPending = 0;
        int maxQueued = 0;
        while (!sends.All(t => t.IsCompleted))
        {
            long pending = info.PendingPrefillTokens;
            onePrompt = onePrompt == 0 ? pending : onePrompt;
            maxPending = Math.Max(maxPending, pending);
            maxQueued = Math.Max(maxQueued, sched.Dispatcher.Queued);
            await Task.Delay(2);
        }

        foreach (var t in sends)
        {
            using var r = await t;
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        output.WriteLine($"pending prefill: first seen {onePrompt}, max {maxPending} tokens; max queued {maxQueued}");
        Assert.True(onePrompt > 0);
        Assert.True(maxPending < 1.5 * onePrompt, $"{maxPending} tokens pending at once: more than one prompt (~{onePrompt})");
        Assert.Equal(2, maxQueued);
    }

    private static double MetricValue(string exposition, string name)
    {
        foreach (var line in exposition.Split('\n'))
        {
            if (line.StartsWith(name + " ", StringComparison.Ordinal) || line.StartsWith(name + "{", StringComparison.Ordinal))
            {
                return double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        throw new Xunit.Sdk.XunitException($"metric {name} not exposed");
    }

    private static double Median(List<double> xs)
    {
        xs.Sort();
        return xs.Count == 0 ? double.NaN : xs[xs.Count / 2];
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
