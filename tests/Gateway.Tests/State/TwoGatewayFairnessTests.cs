using System.Net;
using Gateway.Auth;
using Gateway.Hosting;
using Gateway.Scheduling;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Worker;
using Xunit.Abstractions;

namespace Gateway.Tests.State;

/// <summary>
/// Two real gateways share one reference worker and one real redis-server; ingress is skewed: gateway 1 receives all of
/// org a's traffic and part of org b's, gateway 2 only org b's; gateway 1 holds 4 of the worker's 5 slots. Weights
/// a=2, b=1. With tenant service shared through Redis, gateway 1 sees the service gateway 2 gives b and hands its
/// slots to a, so the cluster moves toward 2/3 : 1/3; with local state only, each gateway is fair over its own traffic.
/// </summary>
public sealed class TwoGatewayFairnessTests(ITestOutputHelper output)
{
    private const string KeyA = "sk-two-gw-a";
    private const string KeyB = "sk-two-gw-b";

    private static async Task<(int A, int B, int Gw1, int Gw2)> RunAsync(RedisServer? redis, string url)
    {
        string prefix = "gw2f:" + Guid.NewGuid().ToString("N")[..8] + ":";
        Dictionary<string, string?> Settings(int slots) => new()
        {
            ["Gateway:Auth:Keys:0:Hash"] = ApiKeyAuthenticator.HashKey(TestGateway.Secret, KeyA),
            ["Gateway:Auth:Keys:0:Tenant"] = "a/team/key",
            ["Gateway:Auth:Keys:1:Hash"] = ApiKeyAuthenticator.HashKey(TestGateway.Secret, KeyB),
            ["Gateway:Auth:Keys:1:Tenant"] = "b/team/key",
            // Service sharing alone: with unequal slot counts per replica (4 + 1 below), overdrawing would hand the
            // 1-slot replica's tenant a slot beyond its grant and move the split off the weights (docs/policies/hfair.md).
            ["Gateway:Scheduling:Overdraw"] = "false",
            ["Gateway:Scheduling:Tenants:0:Name"] = "a",
            ["Gateway:Scheduling:Tenants:0:Weight"] = "2",
            ["Gateway:Scheduling:Tenants:1:Name"] = "b",
            ["Gateway:Scheduling:Tenants:1:Weight"] = "1",
            ["Gateway:Scheduling:MaxInFlightPerWorker"] = slots.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Gateway:Scheduling:TickInterval"] = "00:00:00.020",
            ["Gateway:State:Redis"] = redis is null ? "" : "127.0.0.1:" + redis.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Gateway:State:Prefix"] = prefix,
        };
        await using var gw1 = await TestGateway.StartAsync([url], Settings(4));
        await using var gw2 = await TestGateway.StartAsync([url], Settings(1));
        using var a1 = TestGateway.Client(gw1, KeyA);
        using var b1 = TestGateway.Client(gw1, KeyB);
        using var b2 = TestGateway.Client(gw2, KeyB);
        const int Target = 240;
        var counts = new int[4]; // a, b, via gw1, via gw2
        int total = 0;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        async Task Loop(HttpClient http, bool isA, bool first)
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var r = await http.PostAsync("v1/chat/completions", TestGateway.Json("""{"model":"llama3-8b","max_tokens":8,"messages":[{"role":"user","content":"two gateways one fleet"}]}"""), stop.Token);
                    Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                Interlocked.Increment(ref counts[isA ? 0 : 1]);
                Interlocked.Increment(ref counts[first ? 2 : 3]);
                if (Interlocked.Increment(ref total) >= Target)
                {
                    await stop.CancelAsync();
                }
            }
        }

        var loops = new List<Task>();
        for (int i = 0; i < 8; i++)
        {
            loops.Add(Loop(a1, true, true));
        }

        for (int i = 0; i < 2; i++)
        {
            loops.Add(Loop(b1, false, true));
        }

        for (int i = 0; i < 4; i++)
        {
            loops.Add(Loop(b2, false, false));
        }

        await Task.WhenAll(loops);
        Assert.True(total >= Target, $"only {total} served before the deadline");
        return (counts[0], counts[1], counts[2], counts[3]);
    }

    [Fact]
    public async Task SkewedIngress_SharedRedis_ClusterMovesTowardConfiguredShares_LocalStateDoesNot()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 0.05 });
        string url = worker.BaseAddress.GetLeftPart(UriPartial.Authority);
        var shared = await RunAsync(redis, url);
        var local = await RunAsync(null, url);
        double Share((int A, int B, int Gw1, int Gw2) r) => r.A / (double)(r.A + r.B);
        output.WriteLine($"shared redis: a={shared.A} b={shared.B} share a {Share(shared):F3} (target 0.667), ingress gw1 {shared.Gw1 / (double)(shared.Gw1 + shared.Gw2):F2}");
        output.WriteLine($"local only:   a={local.A} b={local.B} share a {Share(local):F3}, ingress gw1 {local.Gw1 / (double)(local.Gw1 + local.Gw2):F2}");
        Assert.True(Share(shared) > Share(local), $"shared {Share(shared):F3} vs local {Share(local):F3}");
        // Measured 0.658-0.665 over 4 runs (target 0.667 +- 5% = 0.633-0.700); asserted with a wider margin for loaded CI.
        Assert.InRange(Share(shared), 0.60, 0.73);
    }
}
