using System.Diagnostics;
using System.Net;
using Gateway.Core.Routing.KvAware;
using Gateway.Hosting;
using Gateway.Proxy;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Worker;

namespace Gateway.Tests.Routing;

/// <summary>The gateway keeps one KV event subscriber per event-publishing worker and drops it with the worker.</summary>
public sealed class KvEventSubscriptionsTests
{
    [Fact]
    public async Task WorkerRemoved_SubscriberStopsAndIndexForgetsWorker()
    {
        await using var w1 = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 0.02 });
        await using var w2 = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 0.02 });
        string u1 = w1.BaseAddress.GetLeftPart(UriPartial.Authority), u2 = w2.BaseAddress.GetLeftPart(UriPartial.Authority);
        await using var gw = await TestGateway.StartAsync([u1, u2]); // default policy: kv-aware
        var subs = gw.Services.GetRequiredService<KvEventSubscriptions>();
        var policy = Assert.IsType<KvAwarePolicy>(gw.Services.GetRequiredService<ProxyHandler>().Policy);
        await WaitUntilAsync(() => subs.Active == 2);

        using var http = TestGateway.Client(gw);
        string prompt = string.Join(' ', Enumerable.Range(0, 200).Select(i => "subscription test word " + i));
        for (int i = 0; i < 4; i++)
        {
            var r = await http.PostAsync("v1/completions", TestGateway.Json($$"""{"model":"llama3-8b","max_tokens":2,"prompt":"{{prompt}} {{i}}"}"""));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        // Remove a worker whose events reached the precise index.
        await WaitUntilAsync(() => gw.Workers.All.Any(w => policy.Precise.IsTracking(w.Info.Index)));
        var victim = gw.Workers.All.First(w => policy.Precise.IsTracking(w.Info.Index));
        var survivor = gw.Workers.All.First(w => !ReferenceEquals(w, victim));
        int removed = victim.Info.Index;

        gw.Workers.SetWorkers([survivor.BaseUri]);
        await WaitUntilAsync(() => subs.Active == 1);
        await WaitUntilAsync(() => !policy.Precise.IsTracking(removed));
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("v1/completions", TestGateway.Json($$"""{"model":"llama3-8b","max_tokens":2,"prompt":"{{prompt}}"}"""))).StatusCode);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), "condition not reached within 20 s");
            await Task.Delay(20);
        }
    }
}
